//! `pdcctl vm`: a department's virtual machines.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions;
use pdc_api::{SizeClass, TenantVM};
use serde::Serialize;

use crate::connect::{ListScope, Scope};
use crate::console::{self, Stream};
use crate::output::{Listing, Row, age};
use crate::wait::{Deadline, parse_duration};
use crate::{Cli, CliError, client, confirm, outln};

#[path = "vmimport.rs"]
mod vmimport;

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// VMs of one department (-d/-n, else the context's namespace), or of all (-A).
    List {
        #[command(flatten)]
        scope: ListScope,
    },
    /// One VM: size, phase, addresses, FQDN, conditions.
    Show {
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Create a VM and wait (showing progress) until it is Ready.
    Create(CreateArgs),
    /// Bring a VM pdc did not make under a TenantVM: adopt a running KubeVirt
    /// VirtualMachine (never restarted), record one still on the old hypervisor
    /// (--external), or move such a record onto KubeVirt (--from-image).
    Import(vmimport::ImportArgs),
    /// Start a stopped VM (run strategy Always).
    Start {
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Stop a VM (run strategy Halted).
    Stop {
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Restart a running VM once, with its current spec (applies a resize).
    Restart {
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Change a VM's size (the quota is checked again; a restart applies it).
    Resize {
        name: String,
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        size: String,
    },
    /// Delete a VM (addresses and records released; disks per its policy). Asks first
    /// on a terminal; elsewhere needs --yes.
    Delete {
        name: String,
        #[command(flatten)]
        scope: Scope,
        /// Delete without asking.
        #[arg(long)]
        yes: bool,
    },
    /// The SizeClasses.
    Sizes,
    /// The VM's serial console on this terminal (KubeVirt's console subresource); ^] ends it.
    Console(StreamArgs),
    /// The VM's display for a VNC viewer, on a local port (KubeVirt's vnc subresource).
    Vnc(VncArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    name: String,
    #[command(flatten)]
    scope: Scope,
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
    /// How long to wait for Ready (e.g. 90s, 10m; 0 waits without limit); exit 4 when it runs out.
    #[arg(long, value_parser = parse_duration, default_value = "10m", value_name = "DURATION")]
    timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct StreamArgs {
    /// The VM (its TenantVM's name, which its KubeVirt VM and VMI carry too).
    name: String,
    #[command(flatten)]
    scope: Scope,
    /// How long to wait for the VM to be Running (e.g. 30s, 5m; 0 waits without limit); exit 4 when it runs out.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct VncArgs {
    #[command(flatten)]
    stream: StreamArgs,
    /// The local port a VNC viewer connects to (0: any free port, printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    let c = client(cli).await?;
    match cmd {
        Cmd::List { scope } => list(cli, c, scope).await?,
        Cmd::Show { name, scope } => {
            let ns = scope.namespace(&c)?;
            let v = Api::<TenantVM>::namespaced(c, &ns).get(name).await?;
            if !cli.output().object(&v)? {
                show(&v);
            }
        }
        Cmd::Create(a) => return create(c, a).await,
        Cmd::Import(a) => return vmimport::run(cli, c, a).await,
        Cmd::Start { name, scope } => run_strategy(c, scope, name, "Always", "started").await?,
        Cmd::Stop { name, scope } => run_strategy(c, scope, name, "Halted", "stopped").await?,
        Cmd::Restart { name, scope } => {
            let ns = scope.namespace(&c)?;
            let tok = k8s_openapi::jiff::Timestamp::now().to_string();
            Api::<TenantVM>::namespaced(c, &ns).patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"restartRequest": tok}}))).await?;
            outln!("tenantvm {ns}/{name} restart requested");
        }
        Cmd::Resize { name, scope, size } => {
            let ns = scope.namespace(&c)?;
            Api::<TenantVM>::namespaced(c, &ns).patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"size": size}}))).await?;
            outln!("tenantvm {ns}/{name} resized to {size}; restart it to apply (see its RestartRequired condition)");
        }
        Cmd::Delete { name, scope, yes } => {
            let ns = scope.namespace(&c)?;
            let api = Api::<TenantVM>::namespaced(c, &ns);
            // A VM that is not there is said so before anyone is asked.
            api.get(name).await?;
            confirm::confirm(&format!("Delete tenantvm {ns}/{name} (its addresses and records are released)"), *yes)?;
            api.delete(name, &DeleteParams::default()).await?;
            outln!("tenantvm {ns}/{name} deleted");
        }
        Cmd::Sizes => sizes(cli, c).await?,
        Cmd::Console(a) => {
            let (c, ns) = stream_ready(c, a, Stream::Console).await?;
            let socket = console::open(&c, &ns, &a.name, Stream::Console).await?;
            return console::console(socket, &format!("{ns}/{}", a.name)).await;
        }
        Cmd::Vnc(a) => return vnc(c, a).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The hint `vm sizes` and `vm create` give when there is no SizeClass at all.
const NO_SIZES: &str = "There are no SizeClasses yet: a cluster admin adds one, e.g.

  kubectl apply -f - <<EOF
  apiVersion: pdc.io/v1alpha1
  kind: SizeClass
  metadata:
    name: m1.small
  spec:
    vcpu: 2
    memory: 4Gi
    description: small web or application server
  EOF

and `pdcctl vm sizes` lists them.";

async fn sizes(cli: &Cli, c: Client) -> Result<(), CliError> {
    let mut items = Api::<SizeClass>::all(c).list(&ListParams::default()).await?.items;
    items.sort_by_key(|s| (s.spec.vcpu, s.name_any()));
    let rows = items.iter().map(|s| Row::object::<SizeClass>(&s.name_any(), vec![s.name_any(), s.spec.vcpu.to_string(), s.spec.memory.clone(), s.spec.description.clone().unwrap_or_default()]));
    cli.output().list(&Listing::objects(&["NAME", "VCPU", "MEMORY", "DESCRIPTION"]).rows(rows), &items)?;
    if items.is_empty() && cli.format.for_people() {
        eprintln!("{NO_SIZES}");
    }
    Ok(())
}

async fn create(c: Client, a: &CreateArgs) -> Result<ExitCode, CliError> {
    let ns = a.scope.namespace(&c)?;
    // With no SizeClass at all, no size can be right: say how to add one. (Those
    // who may not list SizeClasses, and a size that is merely unknown, get the
    // operator's answer, which names the sizes there are.)
    if let Ok(list) = Api::<SizeClass>::all(c.clone()).list(&ListParams::default()).await
        && list.items.is_empty()
    {
        return Err(CliError::Usage(format!("size {:?} is not a SizeClass. {NO_SIZES}", a.size)));
    }
    let v = new_vm(&a.name, &a.size, &a.image, &a.root, &a.disks, &a.zones, a.hostname.as_deref())?;
    let api: Api<TenantVM> = Api::namespaced(c, &ns);
    api.create(&PostParams::default(), &v).await?;
    outln!("tenantvm {ns}/{} created", a.name);
    if a.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_ready(&api, &a.name, Deadline::start(a.timeout)).await
}

/// The client and namespace for a VM's console or VNC, once KubeVirt's API is known
/// to serve it and the VM runs.
async fn stream_ready(c: Client, a: &StreamArgs, stream: Stream) -> Result<(Client, String), CliError> {
    let ns = a.scope.namespace(&c)?;
    console::check_served(&c, stream).await?;
    let api: Api<TenantVM> = Api::namespaced(c.clone(), &ns);
    let deadline = Deadline::start(a.timeout);
    loop {
        let phase = api.get(&a.name).await?.status.and_then(|s| s.phase);
        if phase.as_deref() == Some("Running") {
            return Ok((c, ns));
        }
        deadline.check(|| format!("tenantvm {ns}/{} is not Running (phase {}); start it with `pdcctl vm start {} -n {ns}`", a.name, phase.as_deref().unwrap_or("-"), a.name))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn vnc(c: Client, a: &VncArgs) -> Result<ExitCode, CliError> {
    let (c, ns) = stream_ready(c, &a.stream, Stream::Vnc).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port)).await?;
    let addr = listener.local_addr()?;
    outln!("VNC of tenantvm {ns}/{} on {addr}: point a viewer at it, e.g. `vncviewer {addr}` or `remote-viewer vnc://{addr}`", a.stream.name);
    console::vnc(listener, || console::open(&c, &ns, &a.stream.name, Stream::Vnc)).await
}

async fn list(cli: &Cli, c: Client, scope: &ListScope) -> Result<(), CliError> {
    let api: Api<TenantVM> = scope.api(c)?;
    let mut items = api.list(&scope.params()).await?.items;
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

async fn run_strategy(c: Client, scope: &Scope, name: &str, strategy: &str, done: &str) -> Result<(), CliError> {
    let ns = scope.namespace(&c)?;
    Api::<TenantVM>::namespaced(c, &ns).patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"runStrategy": strategy}}))).await?;
    outln!("tenantvm {ns}/{name} {done}");
    Ok(())
}

/// Print each step as it completes until the VM is Ready, or stop at a refusal or
/// when the deadline passes.
/// The reasons the operator refuses an adoption with.
const ADOPTION_REFUSALS: [&str; 9] = ["AddressTaken", "AddressMismatch", "ControlledElsewhere", "VirtualMachineNotFound", "UnknownDisk", "DiskNotFound", "TierMismatch", "DiskUndercharged", "UnchargedDisk"];

pub(crate) async fn wait_ready(api: &Api<TenantVM>, name: &str, deadline: Deadline) -> Result<ExitCode, CliError> {
    let mut seen: Vec<String> = Vec::new();
    loop {
        let v = api.get(name).await?;
        let st = v.status.clone().unwrap_or_default();
        for t in ["QuotaAccepted", "AddressesAllocated", "DnsProgrammed", "Ready"] {
            if let Some(c) = conditions::find(&st.conditions, t) {
                let line = format!("{t}={} {}", c.status, c.message);
                if !seen.contains(&line) {
                    outln!("  [{:>5.1}s] {line}", deadline.elapsed().as_secs_f64());
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
        // An adoption the operator refused: nothing was charged or changed.
        if let Some(c) = ready.filter(|c| ADOPTION_REFUSALS.contains(&c.reason.as_str())) {
            return Err(CliError::Refused(format!("tenantvm {name}: {} ({})", c.message, c.reason)));
        }
        deadline.check(|| format!("tenantvm {name} is not Ready (the operator goes on); see `pdcctl vm show {name}`"))?;
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
