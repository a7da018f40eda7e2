//! `pdcctl ip import`: take over the province's declared address plan. The plan is
//! read and checked whole (the file, then the file against the cluster) before
//! anything is written; a plan with a conflict writes nothing. The writes are
//! server-side applies, so a second import of the same file writes nothing and
//! reports every object unchanged. `pdcctl ip release-external` lets one go.

use std::path::Path;
use std::process::ExitCode;

use futures::{StreamExt, TryStreamExt};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use pdc_api::labels as l;
use pdc_api::{AddressAllocation, NetworkZone, Site, SiteRole, SubnetAllocation};
use pdc_core::import::{self, AddressState, AddressWrite, Holder, Report, SiteDecl, SiteState, Snapshot, SubnetState, SubnetWrite, Writes, ZoneState, ZoneWrite};
use pdc_core::ipam::{Addr, Family, Prefix};
use serde::Serialize;
use serde_json::json;

use crate::output::{Format, print_data};
use crate::pages::paged;
use crate::{Cli, CliError, client, exit, outln};

/// The field manager of every import write.
pub const MANAGER: &str = "pdcctl-import";
/// Writes in flight at once.
const CONCURRENCY: usize = 16;

/// Read a plan file: YAML by its extension (`.yaml`, `.yml`), CSV otherwise.
pub fn read(path: &Path) -> Result<import::Parsed, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let yaml = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if !yaml {
        return Ok(import::csv(&text));
    }
    let doc: import::YamlPlan = serde_yaml::from_str(&text).map_err(|e| {
        let at = e.location().map(|l| format!("line {}: ", l.line())).unwrap_or_default();
        CliError::Refused(format!("{}: {at}{e}\n    fix: the sections are sites, zones, subnets and addresses (see deploy/samples/address-plan.yaml)", path.display()))
    })?;
    Ok(import::yaml(doc, &text))
}

/// The plan's name, as the `pdc.io/plan` label and `spec.external.plan` carry it.
pub fn plan_name(path: &Path) -> String {
    let stem = path.file_name().and_then(|s| s.to_str()).unwrap_or("plan");
    let clean: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '-' }).take(63).collect();
    let clean = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    if clean.is_empty() { "plan".into() } else { clean }
}

/// What the cluster holds, as the check reads it.
pub async fn snapshot(c: &Client) -> Result<Snapshot, CliError> {
    let (sa, za) = (Api::<Site>::all(c.clone()), Api::<NetworkZone>::all(c.clone()));
    let (suba, adda) = (Api::<SubnetAllocation>::all(c.clone()), Api::<AddressAllocation>::all(c.clone()));
    let prefixes = |v: &[String]| v.iter().filter_map(|p| Prefix::parse(p).ok()).collect::<Vec<_>>();
    let site = |s: &Site| Some(SiteState { name: s.name_any(), primary: s.spec.role == SiteRole::Primary, ipv4_blocks: prefixes(&s.spec.ipv4_blocks), ipv6_blocks: prefixes(&s.spec.ipv6_blocks) });
    let subnet = |s: &SubnetAllocation| Some(SubnetState { prefix: Prefix::parse(&s.spec.prefix).ok()?, zone: s.spec.zone.clone(), site: s.spec.site.clone(), department: s.spec.department.clone() });
    let (sites, zones, subnets, addresses) = tokio::try_join!(paged(&sa, site), paged(&za, |z| Some(zone_state(z))), paged(&suba, subnet), paged(&adda, address_state))?;
    Ok(Snapshot { complete: true, sites, zones, subnets, addresses })
}

fn zone_state(z: &NetworkZone) -> ZoneState {
    let parse = |p: &Option<String>| p.as_deref().and_then(|p| Prefix::parse(p).ok());
    ZoneState {
        name: z.name_any(),
        vlan: z.spec.vlan,
        size_v4: u8::try_from(z.spec.subnet_sizes.ipv4).unwrap_or(32),
        size_v6: u8::try_from(z.spec.subnet_sizes.ipv6).unwrap_or(128),
        externally_assigned: z.spec.externally_assigned,
        sites: z.spec.sites.iter().map(|s| (s.site.clone(), (parse(&s.ipv4), parse(&s.ipv6)))).collect(),
    }
}

fn address_state(a: &AddressAllocation) -> Option<AddressState> {
    let holder = match &a.spec.external {
        Some(e) => Holder::External { role: e.role.clone(), plan: e.plan.clone(), description: e.description.clone() },
        None => Holder::Claim(format!("{}/{}", a.spec.claim.namespace, a.spec.claim.name)),
    };
    Some(AddressState {
        address: Addr::parse(&a.spec.address).ok()?,
        subnet: a.spec.subnet.clone(),
        zone: a.spec.zone.clone(),
        site: a.spec.site.clone(),
        department: a.spec.department.clone(),
        hostname: a.spec.hostname.clone(),
        holder,
    })
}

/// What an import did, for `-o json|yaml`.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    plan: String,
    checked_against_cluster: bool,
    conflicts: Vec<ConflictOut>,
    notes: Vec<String>,
    written: Counts,
    unchanged: Counts,
}

#[derive(Serialize)]
struct ConflictOut {
    at: String,
    line: Option<usize>,
    problem: String,
    fix: String,
}

#[derive(Serialize, Default)]
struct Counts {
    sites: usize,
    zones: usize,
    subnets: usize,
    addresses: usize,
}

pub async fn run(cli: &Cli, file: &Path, check_only: bool) -> Result<ExitCode, CliError> {
    let parsed = read(file)?;
    let plan = plan_name(file);
    let (report, client) = if check_only {
        (import::check(parsed, &Snapshot::offline()), None)
    } else {
        let c = client(cli).await?;
        let snap = snapshot(&c).await?;
        (import::check(parsed, &snap), Some(c))
    };
    let mut out = outcome(&plan, &report, client.is_some());
    let refused = !report.conflicts.is_empty();
    if let (Some(c), false) = (&client, refused) {
        let w = &report.writes;
        apply(c, &plan, w).await?;
        out.written = Counts { sites: w.sites.len(), zones: w.zones.len(), subnets: w.subnets.len(), addresses: w.addresses.len() };
    }
    show(cli.format, &out, check_only)?;
    Ok(exit::unless(!refused, exit::FAILED))
}

fn outcome(plan: &str, r: &Report, online: bool) -> Outcome {
    let u = r.writes.unchanged;
    Outcome {
        plan: plan.to_string(),
        checked_against_cluster: online,
        conflicts: r.conflicts.iter().map(|c| ConflictOut { at: c.at.to_string(), line: c.at.line, problem: c.problem.clone(), fix: c.fix.clone() }).collect(),
        notes: r.notes.clone(),
        written: Counts::default(),
        unchanged: Counts { sites: u.sites, zones: u.zones, subnets: u.subnets, addresses: u.addresses },
    }
}

fn show(format: Format, o: &Outcome, check_only: bool) -> Result<(), CliError> {
    if !format.for_people() {
        return print_data(format, o);
    }
    for c in &o.conflicts {
        outln!("{}: {}\n    fix: {}", c.at, c.problem, c.fix);
    }
    for n in &o.notes {
        outln!("note: {n}");
    }
    let counts = |c: &Counts| format!("{} sites, {} zones, {} subnets, {} addresses", c.sites, c.zones, c.subnets, c.addresses);
    if !o.conflicts.is_empty() {
        outln!("{} conflict(s) in {}: nothing was written", o.conflicts.len(), o.plan);
    } else if check_only {
        outln!("{}: no conflict in the file (checked offline; the import also checks it against the cluster)", o.plan);
    } else {
        outln!("{}: written {}; unchanged {}", o.plan, counts(&o.written), counts(&o.unchanged));
    }
    Ok(())
}

/// Apply the writes: sites, then subnets and addresses, then zones (a new zone's
/// declared blocks are held before the operator could carve from it).
pub async fn apply(c: &Client, plan: &str, w: &Writes) -> Result<(), CliError> {
    let pp = PatchParams::apply(MANAGER);
    let sites: Api<Site> = Api::all(c.clone());
    for s in &w.sites {
        sites.patch(&s.name, &pp, &Patch::Apply(site_object(s, plan))).await?;
    }
    let subnets: Api<SubnetAllocation> = Api::all(c.clone());
    in_parallel(w.subnets.iter().map(|s| (s.prefix.object_name(), subnet_object(s, plan))), &subnets, &pp).await?;
    let addresses: Api<AddressAllocation> = Api::all(c.clone());
    in_parallel(w.addresses.iter().map(|a| (a.address.object_name(), address_object(a, plan))), &addresses, &pp).await?;
    let zones: Api<NetworkZone> = Api::all(c.clone());
    for z in &w.zones {
        zones.patch(&z.name, &pp, &Patch::Apply(zone_object(z, plan))).await?;
    }
    Ok(())
}

async fn in_parallel<K>(objects: impl Iterator<Item = (String, serde_json::Value)>, api: &Api<K>, pp: &PatchParams) -> Result<(), CliError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    futures::stream::iter(objects)
        .map(|(name, obj)| async move { api.patch(&name, pp, &Patch::Apply(obj)).await.map(|_| ()) })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn family_label(f: Family) -> &'static str {
    if f == Family::V4 { "ipv4" } else { "ipv6" }
}

fn site_object(s: &SiteDecl, plan: &str) -> serde_json::Value {
    let blocks = |v: &[Prefix]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Site",
        "metadata": {"name": s.name, "labels": {l::PLAN: plan}},
        "spec": {
            "displayName": s.display_name.clone().unwrap_or_else(|| s.name.clone()),
            "role": if s.primary { "Primary" } else { "Standby" },
            "ipv4Blocks": blocks(&s.ipv4_blocks), "ipv6Blocks": blocks(&s.ipv6_blocks),
        }
    })
}

fn subnet_object(s: &SubnetWrite, plan: &str) -> serde_json::Value {
    json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "SubnetAllocation",
        "metadata": {"name": s.prefix.object_name(), "labels": {
            l::MANAGED_BY: l::MANAGED_BY_VALUE, l::DEPARTMENT: s.department, l::ZONE: s.zone, l::SITE: s.site,
            l::FAMILY: family_label(s.prefix.family), l::PLAN: plan,
        }},
        "spec": {"prefix": s.prefix.to_string(), "zone": s.zone, "site": s.site, "department": s.department}
    })
}

fn address_object(a: &AddressWrite, plan: &str) -> serde_json::Value {
    let mut external = json!({"role": a.role, "plan": plan});
    if let (Some(d), Some(o)) = (&a.description, external.as_object_mut()) {
        o.insert("description".into(), json!(d));
    }
    let mut spec = json!({
        "address": a.address.to_string(), "subnet": a.subnet.to_string(), "zone": a.zone, "site": a.site,
        "department": a.department, "claim": {"namespace": "", "name": "", "uid": ""}, "external": external,
    });
    if let (Some(h), Some(o)) = (&a.hostname, spec.as_object_mut()) {
        o.insert("hostname".into(), json!(h));
    }
    json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "AddressAllocation",
        "metadata": {"name": a.address.object_name(), "labels": {
            l::MANAGED_BY: l::MANAGED_BY_VALUE, l::DEPARTMENT: a.department, l::ZONE: a.zone, l::SITE: a.site,
            l::FAMILY: family_label(a.address.family), l::EXTERNAL: "true", l::PLAN: plan,
        }},
        "spec": spec
    })
}

fn zone_object(z: &ZoneWrite, plan: &str) -> serde_json::Value {
    let sites: Vec<serde_json::Value> = z
        .sites
        .iter()
        .map(|(site, (v4, v6))| {
            let mut e = json!({"site": site});
            if let Some(o) = e.as_object_mut() {
                for (k, p) in [("ipv4", v4), ("ipv6", v6)] {
                    if let Some(p) = p {
                        o.insert(k.into(), json!(p.to_string()));
                    }
                }
            }
            e
        })
        .collect();
    let mut spec = json!({"sites": sites});
    if z.create
        && let Some(o) = spec.as_object_mut()
    {
        o.insert("vlan".into(), json!(z.vlan));
        o.insert("subnetSizes".into(), json!({"ipv4": z.size_v4, "ipv6": z.size_v6}));
        if z.externally_assigned {
            o.insert("externallyAssigned".into(), json!(true));
        }
        if let Some(d) = &z.display_name {
            o.insert("displayName".into(), json!(d));
        }
    }
    let labels = if z.create { json!({l::PLAN: plan}) } else { json!({}) };
    json!({"apiVersion": "pdc.io/v1alpha1", "kind": "NetworkZone", "metadata": {"name": z.name, "labels": labels}, "spec": spec})
}

/// `pdcctl ip release-external`: delete external allocations, and only those.
pub async fn release(cli: &Cli, addresses: &[String], yes: bool) -> Result<ExitCode, CliError> {
    let parsed: Vec<Addr> = addresses.iter().map(|a| Addr::parse(a).map_err(|e| CliError::Usage(e.to_string()))).collect::<Result<_, _>>()?;
    let c = client(cli).await?;
    let api: Api<AddressAllocation> = Api::all(c);
    let mut found = Vec::new();
    for a in &parsed {
        let Some(obj) = api.get_opt(&a.object_name()).await? else {
            return Err(CliError::Refused(format!("{a} is not allocated; nothing was released")));
        };
        if obj.spec.external.is_none() {
            let msg = format!("{a} is held by AddressClaim {}/{}, not imported as external; release it by deleting that claim. Nothing was released", obj.spec.claim.namespace, obj.spec.claim.name);
            return Err(CliError::Refused(msg));
        }
        found.push(obj);
    }
    let list = found.iter().map(|o| o.spec.address.clone()).collect::<Vec<_>>().join(", ");
    crate::confirm::confirm(&format!("Release the external address(es) {list} (they may then be handed to claims)"), yes)?;
    for obj in &found {
        let dp = DeleteParams { preconditions: Some(Preconditions { uid: obj.uid(), resource_version: None }), ..DeleteParams::default() };
        api.delete(&obj.name_any(), &dp).await?;
        outln!("released {} ({}, zone {}, site {})", obj.spec.address, obj.spec.external.as_ref().map_or("", |e| e.role.as_str()), obj.spec.zone, obj.spec.site);
    }
    Ok(ExitCode::SUCCESS)
}
