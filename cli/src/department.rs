//! `pdcctl department ...`: list, show, create, import, quota.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{Department, DepartmentKind, DepartmentSpec, GuestQuota, Province, Subjects};
use pdc_core::slug::{SlugRule, slug};
use serde::Serialize;

use crate::output::{Format, Listing, Row, age, object_name, out, print_data, table};
use crate::outln;
use crate::wait::{Deadline, parse_duration};
use crate::{Cli, CliError, client, exit};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// List Departments.
    #[command(visible_alias = "ls")]
    List,
    /// Show one Department: identity, quota, namespace, conditions.
    Show { name: String },
    /// Create a Department from its Vietnamese name; the slug is derived unless --name is given.
    Create(CreateArgs),
    /// Create every unit of a tenant list (e.g. deploy/samples/daklak-tenants.yaml), with progress.
    Import(ImportArgs),
    /// Show a Department's quota in guest units with its namespace's usage, or change it.
    Quota(QuotaArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Official name in Vietnamese, e.g. "Sở Y tế".
    display_name: String,
    /// Identifier code, e.g. H15.23.
    #[arg(long)]
    code: String,
    /// Slug (object, namespace and subdomain label); derived from the name when absent.
    #[arg(long)]
    name: Option<String>,
    #[arg(long, value_enum, default_value = "department")]
    kind: KindArg,
    /// Admin user (repeatable).
    #[arg(long = "admin-user")]
    admin_users: Vec<String>,
    /// Admin group (repeatable).
    #[arg(long = "admin-group")]
    admin_groups: Vec<String>,
    /// NetworkZone the department may use (repeatable): it gets subnets there.
    #[arg(long = "zone")]
    zones: Vec<String>,
    #[command(flatten)]
    quota: QuotaFlags,
    /// Print the Department that would be created, and create nothing.
    #[arg(long)]
    dry_run: bool,
    /// Return at once instead of waiting until the Department is Ready.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for Ready (e.g. 30s, 2m; 0 waits without limit); exit 4 when it runs out.
    #[arg(long, value_parser = parse_duration, default_value = "2m", value_name = "DURATION")]
    timeout: Duration,
}

#[derive(clap::Args, Debug, Default)]
pub struct QuotaFlags {
    /// Virtual CPUs.
    #[arg(long)]
    vcpu: Option<i32>,
    /// Guest memory, e.g. 64Gi.
    #[arg(long)]
    memory: Option<String>,
    /// Storage for one tier, TIER=SIZE, e.g. ssd=500Gi (repeatable).
    #[arg(long = "storage", value_parser = parse_tier)]
    storage: Vec<(String, String)>,
    /// Number of VMs.
    #[arg(long)]
    vms: Option<i32>,
    /// Number of public addresses.
    #[arg(long)]
    public_addresses: Option<i32>,
}

impl QuotaFlags {
    fn is_empty(&self) -> bool {
        self.vcpu.is_none() && self.memory.is_none() && self.storage.is_empty() && self.vms.is_none() && self.public_addresses.is_none()
    }

    fn apply_to(&self, q: &mut GuestQuota) {
        if let Some(v) = self.vcpu {
            q.vcpu = v;
        }
        if let Some(m) = &self.memory {
            q.memory = m.clone();
        }
        for (t, s) in &self.storage {
            q.storage.insert(t.clone(), s.clone());
        }
        if let Some(v) = self.vms {
            q.vms = v;
        }
        if let Some(v) = self.public_addresses {
            q.public_addresses = v;
        }
    }
}

fn parse_tier(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(t, v)| (t.to_string(), v.to_string())).ok_or_else(|| format!("{s:?}: write TIER=SIZE, e.g. ssd=500Gi"))
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum KindArg {
    Department,
    Commune,
    Ward,
    Agency,
}

impl From<KindArg> for DepartmentKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Department => DepartmentKind::Department,
            KindArg::Commune => DepartmentKind::Commune,
            KindArg::Ward => DepartmentKind::Ward,
            KindArg::Agency => DepartmentKind::Agency,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Tenant list: YAML with `departments` (names) and `communes` ({index, name, kind}).
    file: String,
    /// Code of department number N is <prefix>.N; of commune index I, <prefix>.(100+I).
    #[arg(long)]
    code_prefix: Option<String>,
    /// NetworkZone the department may use (repeatable): it gets subnets there.
    #[arg(long = "zone")]
    zones: Vec<String>,
    #[command(flatten)]
    quota: QuotaFlags,
    /// Show the plan (name, slug, code) and create nothing.
    #[arg(long)]
    dry_run: bool,
    /// Return once created instead of waiting until every Department is Ready.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for all to be Ready (e.g. 5m; 0 waits without limit); exit 4 when it runs out.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct QuotaArgs {
    name: String,
    #[command(flatten)]
    set: QuotaFlags,
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    match cmd {
        Cmd::List => list(cli).await,
        Cmd::Show { name } => show(cli, name).await,
        Cmd::Create(a) => create(cli, a).await,
        Cmd::Import(a) => import(cli, a).await,
        Cmd::Quota(a) => quota(cli, a).await,
    }
}

fn ready_cell(d: &Department) -> String {
    match d.status.as_ref().and_then(|s| conditions::find(&s.conditions, READY)) {
        Some(c) if c.status == "True" => "True".into(),
        Some(c) => format!("False ({})", c.reason),
        None => "Unknown".into(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    name: String,
    display_name: String,
    code: String,
    kind: String,
    subdomain: Option<String>,
    lifecycle: String,
    ready: String,
    quota: GuestQuota,
}

fn summary(d: &Department) -> Summary {
    Summary {
        name: d.name_any(),
        display_name: d.spec.display_name.clone(),
        code: d.spec.code.clone(),
        kind: d.spec.kind.as_str().into(),
        subdomain: d.status.as_ref().and_then(|s| s.subdomain.clone()),
        lifecycle: format!("{:?}", d.spec.lifecycle),
        ready: ready_cell(d),
        quota: d.spec.quota.clone(),
    }
}

async fn list(cli: &Cli) -> Result<ExitCode, CliError> {
    let api: Api<Department> = Api::all(client(cli).await?);
    let mut items = api.list(&ListParams::default()).await?.items;
    items.sort_by_cached_key(|d| (pdc_core::code::sort_key(&d.spec.code), d.name_any()));
    cli.output().list(&listing(&items), &items.iter().map(summary).collect::<Vec<_>>())?;
    if cli.format.for_people() {
        let ready = items.iter().filter(|d| ready_cell(d) == "True").count();
        eprintln!("{} departments, {ready} ready", items.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `department list` as a table; wide adds the lifecycle, the rest of the quota,
/// the zones and the namespace.
fn listing(items: &[Department]) -> Listing {
    let dash = |o: Option<String>| o.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into());
    let rows = items.iter().map(|d| {
        let st = d.status.as_ref();
        let q = &d.spec.quota;
        let storage: Vec<String> = q.storage.iter().map(|(t, v)| format!("{t}={v}")).collect();
        Row::object::<Department>(
            &d.name_any(),
            vec![
                d.name_any(),
                d.spec.display_name.clone(),
                d.spec.code.clone(),
                d.spec.kind.as_str().into(),
                dash(st.and_then(|s| s.subdomain.clone())),
                q.vcpu.to_string(),
                q.memory.clone(),
                q.vms.to_string(),
                ready_cell(d),
                age(d.metadata.creation_timestamp.as_ref()),
            ],
        )
        .wide(vec![
            format!("{:?}", d.spec.lifecycle),
            dash(Some(storage.join(","))),
            q.public_addresses.to_string(),
            dash(Some(d.spec.zones.join(","))),
            dash(st.and_then(|s| s.namespace.clone())),
        ])
    });
    Listing::objects(&["NAME", "DISPLAY NAME", "CODE", "KIND", "SUBDOMAIN", "VCPU", "MEMORY", "VMS", "READY", "AGE"])
        .wide(&["LIFECYCLE", "STORAGE", "PUBLIC ADDRESSES", "ZONES", "NAMESPACE"])
        .rows(rows)
}

async fn show(cli: &Cli, name: &str) -> Result<ExitCode, CliError> {
    let api: Api<Department> = Api::all(client(cli).await?);
    let d = api.get_opt(name).await?.ok_or_else(|| CliError::Usage(format!("no Department named {name} (pdcctl department list shows them)")))?;
    if cli.output().object(&d)? {
        return Ok(ExitCode::SUCCESS);
    }
    let s = d.status.clone().unwrap_or_default();
    let q = &d.spec.quota;
    let subjects = |s: &Subjects| {
        let v: Vec<String> = s.users.iter().map(|u| format!("user {u}")).chain(s.groups.iter().map(|g| format!("group {g}"))).collect();
        if v.is_empty() { "-".to_string() } else { v.join(", ") }
    };
    outln!("Name:          {}", d.name_any());
    outln!("Display name:  {}", d.spec.display_name);
    outln!("Code:          {}", d.spec.code);
    outln!("Kind:          {}", d.spec.kind.as_str());
    outln!("Lifecycle:     {:?}{}", d.spec.lifecycle, if d.spec.deletion_protection { " (deletion protection on)" } else { "" });
    outln!("Namespace:     {}", s.namespace.as_deref().unwrap_or("-"));
    outln!("Subdomain:     {}", s.subdomain.as_deref().unwrap_or("-"));
    outln!("Admins:        {}", subjects(&d.spec.admins));
    outln!("Viewers:       {}", subjects(&d.spec.viewers));
    let storage: Vec<String> = q.storage.iter().map(|(t, v)| format!("{t} {v}")).collect();
    outln!(
        "Quota:         {} vCPU, {} memory, {} VMs, {} public addresses, storage: {}",
        q.vcpu,
        q.memory,
        q.vms,
        q.public_addresses,
        if storage.is_empty() { "none".into() } else { storage.join(", ") }
    );
    outln!("Conditions:");
    let rows = s
        .conditions
        .iter()
        .map(|c| vec![c.type_.clone(), c.status.clone(), c.reason.clone(), age(Some(&c.last_transition_time)), c.message.clone()])
        .collect();
    out(indent(&table(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], rows)));
    Ok(ExitCode::SUCCESS)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// The cluster's naming rule (from its Province), or the default when there is none.
async fn naming_rule(client: &Client) -> SlugRule {
    let api: Api<Province> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(l) => l.items.first().map(|p| SlugRule::from(&p.spec.naming)).unwrap_or_default(),
        Err(_) => SlugRule::default(),
    }
}

fn slug_for(display: &str, rule: SlugRule) -> Result<String, CliError> {
    let s = slug(display, rule).map_err(|e| CliError::Usage(e.to_string()))?;
    if s.truncated {
        eprintln!("note: {display:?} is longer than a DNS label; slug cut to {}", s.label);
    }
    Ok(s.label)
}

async fn create(cli: &Cli, a: &CreateArgs) -> Result<ExitCode, CliError> {
    let client = client(cli).await?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => slug_for(&a.display_name, naming_rule(&client).await)?,
    };
    let mut quota = GuestQuota::default();
    a.quota.apply_to(&mut quota);
    let d = Department::new(
        &name,
        DepartmentSpec {
            display_name: a.display_name.clone(),
            code: a.code.clone(),
            kind: a.kind.into(),
            subdomain: None,
            admins: Subjects { users: a.admin_users.clone(), groups: a.admin_groups.clone() },
            viewers: Subjects::default(),
            quota,
            zones: a.zones.clone(),
            lifecycle: Default::default(),
            deletion_protection: false,
            successor: None,
            previous_codes: Vec::new(),
        },
    );
    let api: Api<Department> = Api::all(client);
    if a.dry_run {
        let created = api.create(&PostParams { dry_run: true, ..Default::default() }, &d).await?;
        match cli.format {
            Format::Name => out(object_name::<Department>(&name)),
            Format::Json => print_data(Format::Json, &created)?,
            _ => print_data(Format::Yaml, &created)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    api.create(&PostParams::default(), &d).await?;
    eprintln!("department {name} created ({})", a.display_name);
    if a.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_ready(&api, &[name], Deadline::start(a.timeout)).await
}

/// Wait until every named Department is Ready, printing progress; exit 1 when one
/// reports a problem that needs a change, 4 when the deadline passes first.
async fn wait_ready(api: &Api<Department>, names: &[String], deadline: Deadline) -> Result<ExitCode, CliError> {
    let total = names.len();
    let mut last = usize::MAX;
    loop {
        let all = api.list(&ListParams::default()).await?.items;
        let by_name: BTreeMap<String, &Department> = all.iter().map(|d| (d.name_any(), d)).collect();
        let mut ready = 0;
        let mut stuck = Vec::new();
        for n in names {
            match by_name.get(n).and_then(|d| d.status.as_ref().map(|s| (d, s))) {
                Some((d, s)) if s.observed_generation == d.metadata.generation && conditions::is_true(&s.conditions, READY) => ready += 1,
                Some((_, s)) => {
                    if let Some(c) = conditions::find(&s.conditions, READY).filter(|c| c.reason == "InvalidSpec" || c.reason == "NamespaceConflict") {
                        stuck.push(format!("{n}: {}", c.message));
                    }
                }
                None => {}
            }
        }
        if ready != last {
            progress(&format!("{ready}/{total} ready ({:.1} s)", deadline.elapsed().as_secs_f64()), ready == total);
            last = ready;
        }
        if ready == total {
            return Ok(ExitCode::SUCCESS);
        }
        if !stuck.is_empty() {
            eprintln!();
            for s in stuck {
                eprintln!("error: {s}");
            }
            return Ok(ExitCode::from(exit::FAILED));
        }
        if let Err(e) = deadline.check(|| format!("{} of {total} not Ready (`pdcctl department show NAME` tells why)", total - ready)) {
            eprintln!();
            return Err(e);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Progress on stderr: one line rewritten in place on a terminal; on a pipe or log,
/// only the last state.
fn progress(line: &str, last: bool) {
    use std::io::IsTerminal;
    let mut e = std::io::stderr();
    if e.is_terminal() {
        let _ = write!(e, "\r{line}");
        if last {
            let _ = writeln!(e);
        }
        let _ = e.flush();
    } else if last {
        let _ = writeln!(e, "{line}");
    }
}

#[derive(Serialize)]
struct Planned {
    name: String,
    display_name: String,
    code: String,
    kind: String,
}

/// The Departments a tenant list (`../shared/data/daklak-tenants.yaml`'s shape) comes
/// down to: slug, display name, code and kind, refused when two names slug alike.
fn import_plan(text: &str, file: &str, code_prefix: Option<&str>, rule: SlugRule) -> Result<Vec<Planned>, CliError> {
    #[derive(serde::Deserialize)]
    struct List {
        #[serde(default)]
        province: Option<Prov>,
        #[serde(default)]
        departments: Vec<String>,
        #[serde(default)]
        communes: Vec<Unit>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Prov {
        code_prefix: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Unit {
        index: u32,
        name: String,
        #[serde(default)]
        kind: Option<String>,
    }
    let list: List = serde_yaml::from_str(text).map_err(|e| CliError::Usage(format!("{file} is not a tenant list: {e}")))?;
    let prefix = code_prefix
        .map(str::to_string)
        .or_else(|| list.province.and_then(|p| p.code_prefix))
        .ok_or_else(|| CliError::Usage("no code prefix: pass --code-prefix H15".into()))?;
    let mut plan = Vec::new();
    for (i, name) in list.departments.iter().enumerate() {
        plan.push(Planned { name: slug_for(name, rule)?, display_name: name.clone(), code: format!("{prefix}.{}", i + 1), kind: "department".into() });
    }
    for u in &list.communes {
        let kind = if u.kind.as_deref() == Some("ward") { "ward" } else { "commune" };
        plan.push(Planned { name: slug_for(&u.name, rule)?, display_name: u.name.clone(), code: format!("{prefix}.{}", 100 + u.index), kind: kind.into() });
    }
    let mut seen = BTreeMap::new();
    for p in &plan {
        if let Some(other) = seen.insert(p.name.clone(), p.display_name.clone()) {
            return Err(CliError::Usage(format!("{:?} and {:?} both slug to {}; give one of them a name by hand", other, p.display_name, p.name)));
        }
    }
    Ok(plan)
}

async fn import(cli: &Cli, a: &ImportArgs) -> Result<ExitCode, CliError> {
    let text = std::fs::read_to_string(&a.file).map_err(|e| CliError::Usage(format!("reading {}: {e}", a.file)))?;
    let client = client(cli).await?;
    let rule = naming_rule(&client).await;
    let plan = import_plan(&text, &a.file, a.code_prefix.as_deref(), rule)?;
    if a.dry_run {
        let rows = plan.iter().map(|p| Row::object::<Department>(&p.name, vec![p.name.clone(), p.display_name.clone(), p.code.clone(), p.kind.clone()]));
        cli.output().list(&Listing::objects(&["NAME", "DISPLAY NAME", "CODE", "KIND"]).rows(rows), &plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    let api: Api<Department> = Api::all(client);
    let total = plan.len();
    for (i, p) in plan.iter().enumerate() {
        let mut quota = GuestQuota::default();
        a.quota.apply_to(&mut quota);
        let kind = match p.kind.as_str() {
            "ward" => DepartmentKind::Ward,
            "commune" => DepartmentKind::Commune,
            _ => DepartmentKind::Department,
        };
        let spec = DepartmentSpec {
            display_name: p.display_name.clone(),
            code: p.code.clone(),
            kind,
            subdomain: None,
            admins: Subjects::default(),
            viewers: Subjects::default(),
            quota,
            zones: a.zones.clone(),
            lifecycle: Default::default(),
            deletion_protection: false,
            successor: None,
            previous_codes: Vec::new(),
        };
        // Server-side apply: re-running an import is harmless.
        let d = Department::new(&p.name, spec);
        api.patch(&p.name, &PatchParams::apply("pdcctl").force(), &Patch::Apply(&d)).await?;
        progress(&format!("applied {}/{total}", i + 1), i + 1 == total);
    }
    if a.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    let names: Vec<String> = plan.into_iter().map(|p| p.name).collect();
    wait_ready(&api, &names, Deadline::start(a.timeout)).await
}

async fn quota(cli: &Cli, a: &QuotaArgs) -> Result<ExitCode, CliError> {
    let client = client(cli).await?;
    let api: Api<Department> = Api::all(client.clone());
    let mut d = api.get_opt(&a.name).await?.ok_or_else(|| CliError::Usage(format!("no Department named {}", a.name)))?;
    if !a.set.is_empty() {
        let mut q = d.spec.quota.clone();
        a.set.apply_to(&mut q);
        let patch = serde_json::json!({ "spec": { "quota": q } });
        d = api.patch(&a.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        eprintln!("quota of {} updated", a.name);
    }
    let rq = Api::<ResourceQuota>::namespaced(client.clone(), &d.name_any()).get_opt("pdc-guest-quota").await.ok().flatten();
    let hard = rq.as_ref().and_then(|r| r.spec.as_ref()).and_then(|s| s.hard.clone()).unwrap_or_default();
    let used = rq.as_ref().and_then(|r| r.status.as_ref()).and_then(|s| s.used.clone()).unwrap_or_default();
    let q = &d.spec.quota;
    let mut rows = vec![
        ("vcpu".to_string(), q.vcpu.to_string(), "requests.cpu".to_string()),
        ("memory".to_string(), q.memory.clone(), "requests.memory".to_string()),
        ("vms".to_string(), q.vms.to_string(), "count/virtualmachines.kubevirt.io".to_string()),
        ("public addresses".to_string(), q.public_addresses.to_string(), "services.loadbalancers".to_string()),
    ];
    let province = Api::<Province>::all(client.clone()).list(&ListParams::default()).await?.items.into_iter().next();
    for (t, v) in &q.storage {
        let key = province
            .as_ref()
            .and_then(|p| p.storage_class(t))
            .map(|sc| format!("{sc}.storageclass.storage.k8s.io/requests.storage"))
            .unwrap_or_default();
        rows.push((format!("storage {t}"), v.clone(), key));
    }
    #[derive(Serialize)]
    struct Line {
        resource: String,
        quota: String,
        namespace_limit: Option<String>,
        used: Option<String>,
    }
    let lines: Vec<Line> = rows
        .into_iter()
        .map(|(r, v, key)| Line {
            resource: r,
            quota: v,
            namespace_limit: hard.get(&key).map(|q| q.0.clone()),
            used: used.get(&key).map(|q| q.0.clone()),
        })
        .collect();
    let rows = lines
        .iter()
        .map(|l| Row::new(vec![l.resource.clone(), l.quota.clone(), l.namespace_limit.clone().unwrap_or_else(|| "-".into()), l.used.clone().unwrap_or_else(|| "-".into())]));
    cli.output().list(&Listing::values(&["RESOURCE", "QUOTA", "NAMESPACE LIMIT", "USED"]).rows(rows), &lines)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Output;

    #[test]
    fn department_list_names_and_bare_rows_come_from_the_departments() {
        let d: Department = serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": "so-y-te"},
            "spec": {"displayName": "Sở Y tế", "code": "H15.23", "kind": "Department", "zones": ["app"],
                     "quota": {"vcpu": 64, "memory": "256Gi", "vms": 20, "publicAddresses": 2, "storage": {"ssd": "2Ti"}}},
            "status": {"namespace": "so-y-te", "subdomain": "so-y-te.daklak.gov.vn"}
        }))
        .unwrap();
        let list = listing(std::slice::from_ref(&d));
        assert_eq!(Output { format: Format::Name, headers: true }.render(&list).unwrap(), "department.pdc.io/so-y-te");
        let bare = Output { format: Format::Table, headers: false }.render(&list).unwrap();
        assert!(bare.starts_with("so-y-te  Sở Y tế  H15.23  department  so-y-te.daklak.gov.vn  64"), "{bare}");
        let wide = Output { format: Format::Wide, headers: false }.render(&list).unwrap();
        assert!(wide.split_whitespace().collect::<Vec<_>>().ends_with(&["ssd=2Ti", "2", "app", "so-y-te"]), "{wide}");
    }
}
