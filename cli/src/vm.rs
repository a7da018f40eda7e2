//! `pdcctl vm`: a department's virtual machines.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use pdc_api::conditions;
use pdc_api::{SizeClass, TenantVM};
use serde::Serialize;

use crate::output::{Listing, Row, age};
use crate::{Cli, CliError, client, outln};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// VMs of one department (or all).
    List {
        #[arg(long, short = 'd')]
        department: Option<String>,
    },
    /// One VM: size, phase, addresses, FQDN, conditions.
    Show { name: String, #[arg(long, short = 'd')] department: String },
    /// Create a VM and wait (showing progress) until it is Ready.
    Create {
        name: String,
        #[arg(long, short = 'd')]
        department: String,
        /// SizeClass name (`vm sizes` lists them).
        #[arg(long)]
        size: String,
        /// Root image: an http(s) URL, `docker://…`, or a DataSource name.
        #[arg(long)]
        image: String,
        /// Root disk as SIZE:TIER, e.g. `20Gi:ssd`.
        #[arg(long, default_value = "20Gi:ssd")]
        root: String,
        /// A blank data disk NAME=SIZE:TIER (repeatable).
        #[arg(long = "disk")]
        disks: Vec<String>,
        /// A NIC's zone (repeatable; the first carries the hostname).
        #[arg(long = "zone", required = true)]
        zones: Vec<String>,
        /// Host name (default: the VM's name).
        #[arg(long)]
        hostname: Option<String>,
        /// Return once created instead of waiting for Ready.
        #[arg(long)]
        no_wait: bool,
    },
    /// Start a stopped VM (run strategy Always).
    Start { name: String, #[arg(long, short = 'd')] department: String },
    /// Stop a VM (run strategy Halted).
    Stop { name: String, #[arg(long, short = 'd')] department: String },
    /// Restart a running VM once, with its current spec (applies a resize).
    Restart { name: String, #[arg(long, short = 'd')] department: String },
    /// Change a VM's size (the quota is checked again; a restart applies it).
    Resize { name: String, #[arg(long, short = 'd')] department: String, #[arg(long)] size: String },
    /// Delete a VM (addresses and records released; disks per its policy).
    Delete { name: String, #[arg(long, short = 'd')] department: String },
    /// The SizeClasses.
    Sizes,
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    let c = client(cli).await?;
    match cmd {
        Cmd::List { department } => list(cli, c, department.as_deref()).await?,
        Cmd::Show { name, department } => {
            let v = Api::<TenantVM>::namespaced(c, department).get(name).await?;
            if !cli.output().object(&v)? {
                show(&v);
            }
        }
        Cmd::Create { name, department, size, image, root, disks, zones, hostname, no_wait } => {
            let v = new_vm(name, size, image, root, disks, zones, hostname.as_deref())?;
            let api: Api<TenantVM> = Api::namespaced(c, department);
            api.create(&PostParams::default(), &v).await?;
            outln!("tenantvm {department}/{name} created");
            if !no_wait {
                return wait_ready(&api, name).await;
            }
        }
        Cmd::Start { name, department } => run_strategy(c, department, name, "Always", "started").await?,
        Cmd::Stop { name, department } => run_strategy(c, department, name, "Halted", "stopped").await?,
        Cmd::Restart { name, department } => {
            let tok = k8s_openapi::jiff::Timestamp::now().to_string();
            Api::<TenantVM>::namespaced(c, department).patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"restartRequest": tok}}))).await?;
            outln!("tenantvm {department}/{name} restart requested");
        }
        Cmd::Resize { name, department, size } => {
            Api::<TenantVM>::namespaced(c, department).patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"size": size}}))).await?;
            outln!("tenantvm {department}/{name} resized to {size}; restart it to apply (see its RestartRequired condition)");
        }
        Cmd::Delete { name, department } => {
            Api::<TenantVM>::namespaced(c, department).delete(name, &DeleteParams::default()).await?;
            outln!("tenantvm {department}/{name} deleted");
        }
        Cmd::Sizes => {
            let mut items = Api::<SizeClass>::all(c).list(&ListParams::default()).await?.items;
            items.sort_by_key(|s| (s.spec.vcpu, s.name_any()));
            let rows = items.iter().map(|s| Row::object::<SizeClass>(&s.name_any(), vec![s.name_any(), s.spec.vcpu.to_string(), s.spec.memory.clone(), s.spec.description.clone().unwrap_or_default()]));
            cli.output().list(&Listing::objects(&["NAME", "VCPU", "MEMORY", "DESCRIPTION"]).rows(rows), &items)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(cli: &Cli, c: kube::Client, department: Option<&str>) -> Result<(), CliError> {
    let api: Api<TenantVM> = match department {
        Some(d) => Api::namespaced(c, d),
        None => Api::all(c),
    };
    let mut items = api.list(&ListParams::default()).await?.items;
    items.sort_by_key(|v| (v.namespace(), v.name_any()));
    cli.output().list(&listing(&items), &items.iter().map(summary).collect::<Vec<_>>())
}

/// `vm list` as a table; wide adds the run strategy, every NIC's zone and the disks.
fn listing(items: &[TenantVM]) -> Listing {
    let rows = items.iter().map(|v| {
        let r = summary(v);
        let zones: Vec<&str> = v.spec.nics.iter().map(|n| n.zone.as_str()).collect();
        let disks = std::iter::once(&v.spec.root_disk).chain(&v.spec.disks).map(|d| format!("{}={}:{}", d.name, d.size, d.tier)).collect::<Vec<_>>();
        Row::object::<TenantVM>(&r.name, vec![r.department, r.name.clone(), r.size, r.phase, r.ipv4, r.ipv6, r.fqdn, r.ready, age(v.metadata.creation_timestamp.as_ref())])
            .wide(vec![format!("{:?}", v.spec.run_strategy), zones.join(","), disks.join(",")])
    });
    Listing::objects(&["DEPARTMENT", "NAME", "SIZE", "PHASE", "IPV4", "IPV6", "FQDN", "READY", "AGE"]).wide(&["RUN STRATEGY", "ZONES", "DISKS"]).rows(rows)
}

/// The TenantVM `pdcctl vm create` makes from its flags.
fn new_vm(name: &str, size: &str, image: &str, root: &str, disks: &[String], zones: &[String], hostname: Option<&str>) -> Result<TenantVM, CliError> {
    let disk = |s: &str, default_name: &str| -> Result<serde_json::Value, CliError> {
        let (n, rest) = s.split_once('=').unwrap_or((default_name, s));
        let (sz, tier) = rest.split_once(':').ok_or_else(|| CliError::Usage(format!("{s:?}: write a disk as SIZE:TIER, e.g. 20Gi:ssd")))?;
        Ok(serde_json::json!({"name": n, "size": sz, "tier": tier}))
    };
    let img = if image.starts_with("http://") || image.starts_with("https://") {
        serde_json::json!({"url": image})
    } else if image.starts_with("docker://") {
        serde_json::json!({"registry": image})
    } else {
        serde_json::json!({"dataSource": image})
    };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name},
        "spec": {"size": size, "image": img, "rootDisk": disk(root, "root")?,
                 "disks": disks.iter().map(|d| disk(d, "data")).collect::<Result<Vec<_>, _>>()?,
                 "nics": zones.iter().map(|z| serde_json::json!({"zone": z})).collect::<Vec<_>>(),
                 "hostname": hostname.unwrap_or(name)}
    }))
    .map_err(|e| CliError::Usage(e.to_string()))
}

#[derive(Serialize)]
struct Summary {
    department: String,
    name: String,
    size: String,
    phase: String,
    ipv4: String,
    ipv6: String,
    fqdn: String,
    ready: String,
}

fn summary(v: &TenantVM) -> Summary {
    let st = v.status.clone().unwrap_or_default();
    let nic = st.nics.first().cloned().unwrap_or_default();
    let ready = conditions::find(&st.conditions, "Ready").map(|c| if c.status == "True" { "True".to_string() } else { format!("False ({})", c.reason) }).unwrap_or_else(|| "Unknown".into());
    Summary {
        department: v.namespace().unwrap_or_default(),
        name: v.name_any(),
        size: v.spec.size.clone(),
        phase: st.phase.unwrap_or_else(|| "-".into()),
        ipv4: nic.ipv4.unwrap_or_else(|| "-".into()),
        ipv6: nic.ipv6.unwrap_or_else(|| "-".into()),
        fqdn: st.fqdn.unwrap_or_else(|| "-".into()),
        ready,
    }
}

fn show(v: &TenantVM) {
    let st = v.status.clone().unwrap_or_default();
    outln!("Name:        {}/{}", v.namespace().unwrap_or_default(), v.name_any());
    outln!("Size:        {}{}", v.spec.size, st.running_size.as_ref().filter(|s| **s != v.spec.size).map(|s| format!(" (running as {s})")).unwrap_or_default());
    outln!("Phase:       {}", st.phase.clone().unwrap_or_else(|| "-".into()));
    outln!("FQDN:        {}", st.fqdn.clone().unwrap_or_else(|| "-".into()));
    outln!("Run:         {:?}", v.spec.run_strategy);
    for (i, n) in st.nics.iter().enumerate() {
        outln!("NIC {i}:       zone {}  {}  {}  {}", n.zone, n.ipv4.clone().unwrap_or_default(), n.ipv6.clone().unwrap_or_default(), n.mac.clone().unwrap_or_default());
    }
    outln!("Disks:       root {} {}{}", v.spec.root_disk.size, v.spec.root_disk.tier, v.spec.disks.iter().map(|d| format!(", {} {} {}", d.name, d.size, d.tier)).collect::<String>());
    outln!("Conditions:");
    for c in &st.conditions {
        outln!("  {:<20} {:<6} {:<18} {}", c.type_, c.status, c.reason, c.message);
    }
}

async fn run_strategy(c: kube::Client, ns: &str, name: &str, strategy: &str, done: &str) -> Result<(), CliError> {
    Api::<TenantVM>::namespaced(c, ns).patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"runStrategy": strategy}}))).await?;
    outln!("tenantvm {ns}/{name} {done}");
    Ok(())
}

/// Print each step as it completes until the VM is Ready, or stop at a refusal.
async fn wait_ready(api: &Api<TenantVM>, name: &str) -> Result<ExitCode, CliError> {
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let v = api.get(name).await?;
        let st = v.status.clone().unwrap_or_default();
        for t in ["QuotaAccepted", "AddressesAllocated", "DnsProgrammed", "Ready"] {
            if let Some(c) = conditions::find(&st.conditions, t) {
                let line = format!("{t}={} {}", c.status, c.message);
                if !seen.contains(&line) {
                    outln!("  [{:>5.1}s] {line}", start.elapsed().as_secs_f64());
                    seen.push(line);
                }
            }
        }
        let ready = conditions::find(&st.conditions, "Ready");
        if ready.is_some_and(|c| c.status == "True") {
            outln!("tenantvm {name} is Ready: {}", st.fqdn.unwrap_or_default());
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(c) = ready.filter(|c| ["UnknownSize", "UnknownTier", "ZoneNotAllowed", "QuotaExceeded", "NotADepartment", "InvalidSize"].contains(&c.reason.as_str())) {
            return Err(CliError::Usage(format!("tenantvm {name}: {}", c.message)));
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err(CliError::Usage(format!("tenantvm {name} not Ready after 10 minutes; see `pdcctl vm show {name}`")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, Output};

    /// A TenantVM as the API server returns it once the operator has run it.
    fn web() -> TenantVM {
        let mut v = new_vm("web-1", "m1.small", "https://images.daklak.gov.vn/ubuntu-24.04.qcow2", "20Gi:ssd", &["data=50Gi:hdd".into()], &["app".into(), "dmz".into()], None).unwrap();
        v.metadata.namespace = Some("so-y-te".into());
        v.status = serde_json::from_value(serde_json::json!({
            "phase": "Running", "fqdn": "web-1.so-y-te.daklak.gov.vn.",
            "nics": [{"zone": "app", "ipv4": "10.15.0.8", "ipv6": "2001:db8:1500::8"}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "message": "", "lastTransitionTime": "2025-07-01T00:00:00Z"}]
        }))
        .unwrap();
        v
    }

    #[test]
    fn vm_list_prints_kubectl_names() {
        let names = Output { format: Format::Name, headers: true }.render(&listing(&[web()])).unwrap();
        assert_eq!(names, "tenantvm.pdc.io/web-1");
    }

    #[test]
    fn vm_list_without_headers_is_the_rows_alone() {
        let text = Output { format: Format::Table, headers: false }.render(&listing(&[web()])).unwrap();
        let cells: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(cells[..8], ["so-y-te", "web-1", "m1.small", "Running", "10.15.0.8", "2001:db8:1500::8", "web-1.so-y-te.daklak.gov.vn.", "True"], "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn vm_list_wide_adds_run_strategy_zones_and_disks() {
        let text = Output { format: Format::Wide, headers: true }.render(&listing(&[web()])).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        assert!(lines[0].ends_with(&["RUN", "STRATEGY", "ZONES", "DISKS"]), "{text}");
        assert!(lines[1].ends_with(&["app,dmz", "root=20Gi:ssd,data=50Gi:hdd"]), "{text}");
    }
}
