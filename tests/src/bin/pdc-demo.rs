//! The demo's helpers (`deploy/demo.sh`): the systems pdc drives that a local control
//! plane has not (KubeVirt, CDI with a CSI driver under it, VolSync), played by
//! `pdc_tests::players`, and the wiring of two sites for DR.
//!
//!     pdc-demo detect
//!
//! says whether the cluster of $KUBECONFIG serves the APIs the players stand in for
//! (KubeVirt, CDI, VolumeSnapshot, VolSync): prints `play` when the cluster serves
//! none of them itself (absent, or only as the stand-ins this binary installed), `real`
//! when it serves KubeVirt and CDI, `mixed` otherwise; what it found goes to stderr.
//!
//!     pdc-demo play [--ready-file FILE] NAME=KUBECONFIG...
//!
//! installs in each cluster the stand-in CRDs of `tests/crds` (labelled
//! `pdc.io/stand-in`) and what the players need (`players::install`), then plays
//! KubeVirt, CDI and VolSync there (VolSync between the clusters) until SIGINT or
//! SIGTERM; FILE is written once they play. A cluster that serves any of those APIs
//! itself is refused: nothing is installed there and nothing is played.
//!
//!     pdc-demo link-sites NAME=KUBECONFIG NAME=KUBECONFIG
//!
//! gives each site's cluster a kubeconfig for the other, acting as the other's
//! `pdc-dr-peer` ServiceAccount (a TokenRequest token, 24 h), in the Secret its Site
//! object for the other names (`spec.kubeconfigSecret`; `site-<name>-kubeconfig` is
//! set when it names none).
//!
//!     pdc-demo copy-dns FROM_KUBECONFIG TO_KUBECONFIG
//!
//! declares the DnsZones of one cluster, with their TSIG Secrets, in another: both
//! sites write to the province's one DNS server.
//!
//!     pdc-demo made NAMESPACE TENANTVM
//!
//! prints what pdc made in KubeVirt and CDI for a TenantVM of the cluster of
//! $KUBECONFIG: the VirtualMachine, its instance, the DataVolumes and their claims.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Client, ResourceExt};
use pdc_api::{DnsZone, Site};
use pdc_operator::compute::build::{VM_LABEL, dv_resource, vm_resource, vmi_resource};
use pdc_tests::cluster::{SYSTEM_NAMESPACE, apply_yaml, client_for, service_account_token};
use pdc_tests::players::{self, Players, text};

/// The stand-in CRDs the tests install (`tests/crds`): structural schemas written from
/// the upstream API types.
const STAND_INS: &[&str] = &[
    include_str!("../../crds/kubevirt-cdi-snapshot.yaml"),
    include_str!("../../crds/volsync.yaml"),
    include_str!("../../crds/network-attachment-definitions.yaml"),
    include_str!("../../crds/multi-networkpolicies.yaml"),
];
/// The API groups whose controllers the players play, and what serves them for real.
const PLAYED: &[(&str, &str)] = &[
    ("kubevirt.io", "KubeVirt"),
    ("cdi.kubevirt.io", "CDI"),
    ("snapshot.storage.k8s.io", "the CSI snapshotter"),
    ("volsync.backube", "VolSync"),
];
/// The label on every CRD this binary installs: how it tells its stand-ins from the real thing.
const STAND_IN: &str = "pdc.io/stand-in";
const MANAGER: &str = "pdc-demo";
/// The chart's ServiceAccount the other DR site acts as.
const DR_PEER: &str = "pdc-dr-peer";
const USAGE: &str = "usage: pdc-demo detect | play [--ready-file FILE] NAME=KUBECONFIG... | link-sites NAME=KUBECONFIG NAME=KUBECONFIG | copy-dns FROM_KUBECONFIG TO_KUBECONFIG | made NAMESPACE TENANTVM";

enum Failure {
    Usage,
    Failed(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Failed(s)
    }
}

type Result<T> = std::result::Result<T, Failure>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default().to_vec();
    let result = match args.first().map(String::as_str) {
        Some("detect") => block_on(detect()),
        Some("play") => play(rest),
        Some("link-sites") => block_on(link_sites(rest)),
        Some("copy-dns") => block_on(copy_dns(rest)),
        Some("made") => block_on(made(rest)),
        _ => Err(Failure::Usage),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage) => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("pdc-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run `work` on a runtime of its own.
fn block_on<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("starting a runtime: {e}")))?
        .block_on(work)
}

fn failed(what: &str) -> impl Fn(kube::Error) -> Failure + '_ {
    move |e| Failure::Failed(format!("{what}: {e}"))
}

/// `NAME=KUBECONFIG` arguments.
fn sites(args: &[String]) -> Result<Vec<(String, PathBuf)>> {
    args.iter().map(|a| a.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()).map(|(n, p)| (n.to_string(), PathBuf::from(p))).ok_or(Failure::Usage)).collect()
}

/// How a cluster serves an API group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Served {
    No,
    /// Only through CRDs this binary installed (labelled [`STAND_IN`]).
    StandIn,
    /// By the cluster itself: the real controllers own it.
    Real,
}

impl Served {
    fn describe(self) -> &'static str {
        match self {
            Served::No => "not served",
            Served::StandIn => "served by the demo's stand-in CRDs",
            Served::Real => "served by the cluster itself",
        }
    }
}

/// How the cluster serves `group`. A group whose CRDs cannot be read is taken as
/// served for real: nothing is installed over what cannot be seen.
async fn served(client: &Client, group: &str) -> Result<Served> {
    let groups = client.list_api_groups().await.map_err(failed("listing the cluster's API groups"))?;
    if !groups.groups.iter().any(|g| g.name == group) {
        return Ok(Served::No);
    }
    let Ok(crds) = Api::<CustomResourceDefinition>::all(client.clone()).list(&ListParams::default()).await else {
        return Ok(Served::Real);
    };
    let of_group: Vec<&CustomResourceDefinition> = crds.items.iter().filter(|c| c.spec.group == group).collect();
    let stand_ins = !of_group.is_empty() && of_group.iter().all(|c| c.labels().contains_key(STAND_IN));
    Ok(if stand_ins { Served::StandIn } else { Served::Real })
}

async fn detect() -> Result<()> {
    let client = Client::try_default().await.map_err(failed("connecting to the cluster of $KUBECONFIG"))?;
    let mut states = Vec::new();
    for (group, what) in PLAYED {
        let s = served(&client, group).await?;
        eprintln!("  {what} ({group}): {}", s.describe());
        states.push((*group, s));
    }
    let real = |g: &str| states.iter().any(|(x, s)| *x == g && *s == Served::Real);
    let word = if states.iter().all(|(_, s)| *s != Served::Real) {
        "play"
    } else if real("kubevirt.io") && real("cdi.kubevirt.io") {
        "real"
    } else {
        "mixed"
    };
    println!("{word}");
    Ok(())
}

fn play(args: Vec<String>) -> Result<()> {
    let mut ready_file: Option<PathBuf> = None;
    let mut named = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ready-file" => ready_file = Some(it.next().map(PathBuf::from).ok_or(Failure::Usage)?),
            _ => named.push(a),
        }
    }
    let clusters = sites(&named)?;
    if clusters.is_empty() {
        return Err(Failure::Usage);
    }
    block_on(async {
        for (name, path) in &clusters {
            install_stand_ins(name, path).await?;
        }
        Ok(())
    })?;
    let players = Players::start(clusters.clone()).map_err(|e| Failure::Failed(e.to_string()))?;
    let names: Vec<&str> = clusters.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!("playing KubeVirt, CDI with a CSI driver, and VolSync at {} (tests/src/players)", names.join(" and "));
    if let Some(f) = ready_file {
        std::fs::write(&f, format!("PDC_PLAYED_AT={}\n", names.join(","))).map_err(|e| Failure::Failed(format!("writing {}: {e}", f.display())))?;
    }
    block_on(async {
        wait_for_signal().await;
        Ok(())
    })?;
    players.stop();
    Ok(())
}

/// The stand-in CRDs of the groups `name`'s cluster does not serve itself, each
/// labelled [`STAND_IN`], then what the players need there. Refused, with nothing
/// installed, when the cluster serves any played API itself.
async fn install_stand_ins(name: &str, path: &Path) -> Result<()> {
    let client = client_for(path).await.map_err(|e| Failure::Failed(format!("{name}: {e}")))?;
    let mut states: BTreeMap<String, Served> = BTreeMap::new();
    let mut real = Vec::new();
    for (group, what) in PLAYED {
        let s = served(&client, group).await?;
        if s == Served::Real {
            real.push(format!("{what} ({group})"));
        }
        states.insert((*group).to_string(), s);
    }
    if !real.is_empty() {
        return Err(Failure::Failed(format!("{name} serves {} itself: nothing is played there and no stand-in is installed", real.join(", "))));
    }
    let mut docs = Vec::new();
    let mut kinds = Vec::new();
    for text in STAND_INS {
        for mut doc in yaml_documents(text)? {
            let group = doc.pointer("/spec/group").and_then(|g| g.as_str()).unwrap_or_default().to_string();
            let state = match states.get(&group) {
                Some(s) => *s,
                None => served(&client, &group).await?,
            };
            // A cluster with Multus keeps its own CRDs: they are only declared here, never played.
            if state == Served::Real {
                continue;
            }
            if let Some(meta) = doc.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.insert("labels".into(), serde_json::json!({ STAND_IN: "true" }));
            }
            kinds.push(doc.pointer("/spec/names/kind").and_then(|k| k.as_str()).unwrap_or_default().to_string());
            docs.push(serde_json::to_string(&doc).map_err(|e| Failure::Failed(e.to_string()))?);
        }
    }
    apply_yaml(&client, &docs.join("\n---\n"), None).await.map_err(|e| Failure::Failed(format!("{name}: installing the stand-in CRDs: {e}")))?;
    players::install(&client).await.map_err(|e| Failure::Failed(format!("{name}: {e}")))?;
    eprintln!("{name}: stand-in CRDs installed ({STAND_IN}=true): {}; CDI's DataVolume rule as an admission policy; StorageClasses pdc-ssd and pdc-hdd", kinds.join(", "));
    Ok(())
}

fn yaml_documents(text: &str) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: serde_json::Value = serde::Deserialize::deserialize(doc).map_err(|e| Failure::Failed(format!("parsing a stand-in CRD: {e}")))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

async fn wait_for_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn link_sites(args: Vec<String>) -> Result<()> {
    let named = sites(&args)?;
    let [(a, ap), (b, bp)] = named.as_slice() else {
        return Err(Failure::Usage);
    };
    let connect = |p: &PathBuf| {
        let p = p.clone();
        async move { client_for(&p).await.map_err(|e| Failure::Failed(e.to_string())) }
    };
    let (ac, bc) = (connect(ap).await?, connect(bp).await?);
    link(a, &ac, b, &bc, bp).await?;
    link(b, &bc, a, &ac, ap).await
}

/// At site `here`: the kubeconfig that reaches `peer` as its pdc-dr-peer
/// ServiceAccount, in the Secret that Site `peer` names here.
async fn link(here: &str, hc: &Client, peer: &str, pc: &Client, peer_admin: &Path) -> Result<()> {
    let token = service_account_token(pc, SYSTEM_NAMESPACE, DR_PEER).await.map_err(|e| Failure::Failed(format!("{peer}: {e}")))?;
    let kubeconfig = token_kubeconfig(peer_admin, &token)?;
    let sites: Api<Site> = Api::all(hc.clone());
    let site = sites.get(peer).await.map_err(failed(&format!("{here}: reading Site {peer}")))?;
    let (name, key) = match site.spec.kubeconfig_secret {
        Some(r) => (r.name, r.key),
        None => {
            let n = format!("site-{peer}-kubeconfig");
            let body = serde_json::json!({"spec": {"kubeconfigSecret": {"name": n}}});
            sites.patch(peer, &PatchParams::default(), &Patch::Merge(&body)).await.map_err(failed(&format!("{here}: setting Site {peer}'s kubeconfigSecret")))?;
            (n, "kubeconfig".to_string())
        }
    };
    let secret = Secret {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(SYSTEM_NAMESPACE.into()), ..Default::default() },
        string_data: Some([(key, kubeconfig)].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(hc.clone(), SYSTEM_NAMESPACE)
        .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&secret))
        .await
        .map_err(failed(&format!("{here}: writing Secret {name}")))?;
    eprintln!("site {here} reaches site {peer} as {SYSTEM_NAMESPACE}/{DR_PEER} (Secret {SYSTEM_NAMESPACE}/{name} at {here})");
    Ok(())
}

/// The cluster of the admin kubeconfig at `path`, with `token` as its only user.
fn token_kubeconfig(path: &Path, token: &str) -> Result<String> {
    use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedContext};
    let mut kc = Kubeconfig::read_from(path).map_err(|e| Failure::Failed(format!("reading {}: {e}", path.display())))?;
    let current = kc.current_context.clone().unwrap_or_default();
    let cluster = kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| Failure::Failed(format!("{} has no current context", path.display())))?;
    let user = format!("system:serviceaccount:{SYSTEM_NAMESPACE}:{DR_PEER}");
    kc.auth_infos = vec![NamedAuthInfo { name: user.clone(), auth_info: Some(AuthInfo { token: Some(token.to_string().into()), ..Default::default() }), ..Default::default() }];
    kc.contexts = vec![NamedContext { name: user.clone(), context: Some(Context { cluster, user: Some(user.clone()), ..Default::default() }), ..Default::default() }];
    kc.current_context = Some(user);
    serde_yaml::to_string(&kc).map_err(|e| Failure::Failed(e.to_string()))
}

async fn copy_dns(args: Vec<String>) -> Result<()> {
    let [from, to] = args.as_slice() else {
        return Err(Failure::Usage);
    };
    let fc = client_for(Path::new(from)).await.map_err(|e| Failure::Failed(e.to_string()))?;
    let tc = client_for(Path::new(to)).await.map_err(|e| Failure::Failed(e.to_string()))?;
    let pp = PatchParams::apply(MANAGER).force();
    let zones = Api::<DnsZone>::all(fc.clone()).list(&ListParams::default()).await.map_err(failed("listing DnsZones"))?.items;
    let mut secrets = BTreeSet::new();
    for z in &zones {
        let name = z.name_any();
        Api::<DnsZone>::all(tc.clone()).patch(&name, &pp, &Patch::Apply(&DnsZone::new(&name, z.spec.clone()))).await.map_err(failed(&format!("declaring DnsZone {name}")))?;
        secrets.insert(z.spec.tsig.secret_name.clone());
    }
    for s in &secrets {
        let have = Api::<Secret>::namespaced(fc.clone(), SYSTEM_NAMESPACE).get(s).await.map_err(failed(&format!("reading Secret {s}")))?;
        let copy = Secret {
            metadata: ObjectMeta { name: Some(s.clone()), namespace: Some(SYSTEM_NAMESPACE.into()), ..Default::default() },
            data: have.data,
            type_: have.type_,
            ..Default::default()
        };
        Api::<Secret>::namespaced(tc.clone(), SYSTEM_NAMESPACE).patch(s, &pp, &Patch::Apply(&copy)).await.map_err(failed(&format!("writing Secret {s}")))?;
    }
    let names: Vec<String> = zones.iter().map(|z| z.spec.zone.clone()).collect();
    eprintln!("declared at {to}: DnsZones {} (TSIG key Secret {})", names.join(", "), secrets.into_iter().collect::<Vec<_>>().join(", "));
    Ok(())
}

async fn made(args: Vec<String>) -> Result<()> {
    let [ns, name] = args.as_slice() else {
        return Err(Failure::Usage);
    };
    let client = Client::try_default().await.map_err(failed("connecting to the cluster of $KUBECONFIG"))?;
    let lp = ListParams::default().labels(&format!("{VM_LABEL}={name}"));
    let vms = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &vm_resource()).list(&lp).await.map_err(failed("listing VirtualMachines"))?;
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vmi_resource());
    for vm in &vms.items {
        let vmi = vmis.get_opt(&vm.name_any()).await.map_err(failed("reading a VirtualMachineInstance"))?;
        print_vm(ns, vm, vmi.as_ref());
    }
    let dvs = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &dv_resource()).list(&lp).await.map_err(failed("listing DataVolumes"))?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let mut rows = vec![["DATAVOLUME", "SOURCE", "SIZE", "STORAGECLASS", "PHASE", "CLAIM"].map(String::from).to_vec()];
    for dv in &dvs.items {
        let claim = pvcs.get_opt(&dv.name_any()).await.map_err(failed("reading a PersistentVolumeClaim"))?;
        rows.push(dv_row(dv, claim.as_ref()));
    }
    println!("CDI DataVolumes ({ns}, label {VM_LABEL}={name}):");
    print_table(&rows);
    if served(&client, "kubevirt.io").await? == Served::StandIn {
        println!("(statuses written by the KubeVirt and CDI players, tests/src/players: KubeVirt, CDI and a CSI driver are not installed here)");
    }
    Ok(())
}

fn print_vm(ns: &str, vm: &DynamicObject, vmi: Option<&DynamicObject>) {
    let spec = vm.data.pointer("/spec/template/spec").cloned().unwrap_or_default();
    let list = |p: &str| spec.pointer(p).and_then(|v| v.as_array()).cloned().unwrap_or_default();
    println!("KubeVirt VirtualMachine {ns}/{}:", vm.name_any());
    println!("  run strategy  {} (status {})", text(&vm.data, "/spec/runStrategy").unwrap_or("-"), text(&vm.data, "/status/printableStatus").unwrap_or("-"));
    let cores = spec.pointer("/domain/cpu/cores").and_then(|c| c.as_i64()).unwrap_or_default();
    println!("  cpu, memory   {cores} cores, {} guest memory", text(&spec, "/domain/memory/guest").unwrap_or("-"));
    let networks = list("/networks");
    for i in list("/domain/devices/interfaces") {
        let n = text(&i, "/name").unwrap_or_default();
        let net = networks.iter().find(|x| text(x, "/name") == Some(n)).and_then(|x| text(x, "/multus/networkName")).unwrap_or("-");
        println!("  NIC {n:<9} bridge, MAC {}, Multus network {net}", text(&i, "/macAddress").unwrap_or("-"));
    }
    let disks: Vec<String> = list("/volumes")
        .iter()
        .map(|v| match (text(v, "/name"), text(v, "/dataVolume/name")) {
            (Some(n), Some(dv)) => format!("{n} ← DataVolume {dv}"),
            (Some(n), None) if v.get("cloudInitNoCloud").is_some() => format!("{n} (cloud-init NoCloud)"),
            (n, _) => n.unwrap_or_default().to_string(),
        })
        .collect();
    println!("  disks         {}", disks.join(", "));
    if let Some(net) = list("/volumes").iter().find_map(|v| text(v, "/cloudInitNoCloud/networkData").map(str::to_string)) {
        println!("  network data  {}", network_data_summary(&net));
    }
    match vmi {
        Some(i) => {
            let size = i.annotations().get(pdc_api::labels::VM_SIZE).cloned().unwrap_or_default();
            println!("  instance      VirtualMachineInstance {ns}/{}: phase {}, started as {size}", i.name_any(), text(&i.data, "/status/phase").unwrap_or("-"));
        }
        None => println!("  instance      none (the VM is not running)"),
    }
}

/// The addresses, routes and resolvers of cloud-init network data (netplan v2).
fn network_data_summary(yaml: &str) -> String {
    let Ok(v) = serde_yaml::from_str::<serde_json::Value>(yaml) else { return "unreadable".into() };
    let mut parts = Vec::new();
    for (nic, e) in v.get("ethernets").and_then(|e| e.as_object()).into_iter().flatten() {
        let addrs: Vec<&str> = e.get("addresses").and_then(|a| a.as_array()).into_iter().flatten().filter_map(|a| a.as_str()).collect();
        let via: Vec<&str> = e.get("routes").and_then(|a| a.as_array()).into_iter().flatten().filter_map(|r| text(r, "/via")).collect();
        let dns: Vec<&str> = e.pointer("/nameservers/addresses").and_then(|a| a.as_array()).into_iter().flatten().filter_map(|a| a.as_str()).collect();
        let mut p = format!("{nic} {}", addrs.join(" "));
        if !via.is_empty() {
            p.push_str(&format!(" via {}", via.join(" ")));
        }
        if !dns.is_empty() {
            p.push_str(&format!(", resolvers {}", dns.join(" ")));
        }
        parts.push(p);
    }
    parts.join("; ")
}

fn dv_row(dv: &DynamicObject, claim: Option<&PersistentVolumeClaim>) -> Vec<String> {
    let source = match dv.data.pointer("/spec/source").and_then(|s| s.as_object()).and_then(|s| s.iter().next()) {
        Some((kind, s)) => match (text(s, "/url"), text(s, "/name")) {
            (Some(url), _) => format!("{kind} {url}"),
            (None, Some(n)) => format!("{kind} {n}"),
            _ => kind.clone(),
        },
        None => text(&dv.data, "/spec/sourceRef/name").map(|n| format!("DataSource {n}")).unwrap_or_else(|| "-".into()),
    };
    let claim = match claim {
        Some(c) => {
            let st = c.status.as_ref();
            let phase = st.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into());
            let cap = st.and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("storage")).map(|q| q.0.clone()).unwrap_or_default();
            format!("{phase} {cap}")
        }
        None => "-".into(),
    };
    vec![
        dv.name_any(),
        source,
        text(&dv.data, "/spec/storage/resources/requests/storage").unwrap_or("-").to_string(),
        text(&dv.data, "/spec/storage/storageClassName").unwrap_or("-").to_string(),
        text(&dv.data, "/status/phase").unwrap_or("-").to_string(),
        claim,
    ]
}

fn print_table(rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(x) => *x = (*x).max(w),
                None => widths.push(w),
            }
        }
    }
    for r in rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("  {}", cells.join("  ").trim_end());
    }
}
