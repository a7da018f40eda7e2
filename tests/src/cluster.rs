//! The shared test environment of one test binary — a real control plane with the
//! chart applied and, when asked, the operator running with the chart's own RBAC —
//! and helpers to apply manifests and wait for conditions.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::HarnessError;
use crate::controlplane::{ControlPlane, bin_dir};
use crate::operator::{OperatorOptions, OperatorProcess};

/// Namespace the chart is installed into.
pub const SYSTEM_NAMESPACE: &str = "pdc-system";
/// The operator's identity: its ServiceAccount's user name, so tests run it with
/// exactly the chart's RBAC.
pub const OPERATOR_USER: &str = "system:serviceaccount:pdc-system:pdc-operator";
/// The identity the other DR site's operator has here (the chart's pdc-dr-peer
/// ServiceAccount).
pub const DR_PEER_USER: &str = "system:serviceaccount:pdc-system:pdc-dr-peer";
/// The groups the API server gives a ServiceAccount of the chart's namespace.
pub const SERVICE_ACCOUNT_GROUPS: &[&str] = &["system:serviceaccounts", "system:serviceaccounts:pdc-system"];

/// A control plane shared by the tests of one binary.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub dir: PathBuf,
    pub port: u16,
    /// Admin (system:masters) kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kubeconfig of the operator's ServiceAccount user.
    pub operator_kubeconfig: PathBuf,
    /// The operator's metrics port, when the environment runs one.
    pub operator_metrics_port: Option<u16>,
    pki_dir: PathBuf,
}

impl TestEnv {
    /// GET `path` from the operator's metrics server with the scraper's token.
    pub fn metrics_get(&self, path: &str) -> Result<(u16, String), HarnessError> {
        let port = self.operator_metrics_port.ok_or_else(|| HarnessError::Other("this environment runs no operator".into()))?;
        let token = std::fs::read_to_string(self.dir.join(crate::operator::METRICS_TOKEN_FILE)).ok();
        crate::operator::http_get_with(port, path, token.as_deref())
    }

    pub async fn client(&self) -> Result<Client, HarnessError> {
        client_for(&self.kubeconfig).await
    }

    /// A client authenticated as `user` in `groups` (client certificate from the plane's CA).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<Client, HarnessError> {
        let pki = crate::pki::Pki::open(&self.pki_dir);
        let file = format!("user-{}", user.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        pki.issue_client(&file, user, groups)?;
        let path = crate::controlplane::write_kubeconfig(&self.dir.join(format!("{file}.kubeconfig")), self.port, &pki, &file)?;
        client_for(&path).await
    }
}

/// A client from a kubeconfig file.
pub async fn client_for(path: &Path) -> Result<Client, HarnessError> {
    let kc = Kubeconfig::read_from(path).map_err(|e| HarnessError::Other(format!("reading {}: {e}", path.display())))?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| HarnessError::Other(format!("kubeconfig {}: {e}", path.display())))?;
    Ok(Client::try_from(cfg)?)
}

/// Where control planes put their files; stale directories of dead test processes
/// are removed on the way.
pub fn base_dir() -> PathBuf {
    let base = std::env::temp_dir().join("pdc-test");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let pid = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    base
}

static SHARED: OnceLock<Result<TestEnv, String>> = OnceLock::new();

/// The environment shared by this test binary: started once, on a thread that lives
/// as long as the process (its children die with the process). `with_operator`
/// applies to the first call only.
pub fn shared_env(with_operator: bool) -> Result<&'static TestEnv, String> {
    SHARED
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            let spawned = std::thread::Builder::new().name("pdc-test-keeper".into()).spawn(move || {
                match start_env(with_operator) {
                    Ok((env, plane, operator, players)) => {
                        let _ = tx.send(Ok(env));
                        // Hold the plane, operator and players for the life of the process.
                        let _keep = (plane, operator, players);
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
            match spawned {
                Ok(_) => rx.recv().unwrap_or_else(|_| Err("the test keeper thread died".into())),
                Err(e) => Err(format!("starting the test keeper thread: {e}")),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

type Kept = (TestEnv, ControlPlane, Option<OperatorProcess>, crate::players::Players);

fn start_env(with_operator: bool) -> Result<Kept, HarnessError> {
    let plane = ControlPlane::start("pdc", &base_dir())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HarnessError::Io("building a runtime".into(), e))?;
    rt.block_on(prepare(&plane))?;
    let players = crate::players::Players::start(vec![("pdc".into(), plane.kubeconfig())])?;
    let operator_kubeconfig =
        plane.kubeconfig_for(OPERATOR_USER, SERVICE_ACCOUNT_GROUPS)?;
    let operator = if with_operator {
        Some(OperatorProcess::start(&operator_kubeconfig, &OperatorOptions::new("pdc-operator-0"), &plane.dir)?)
    } else {
        None
    };
    let env = TestEnv {
        dir: plane.dir.clone(),
        port: plane.port,
        kubeconfig: plane.kubeconfig(),
        operator_kubeconfig,
        operator_metrics_port: operator.as_ref().map(|o| o.metrics_port),
        pki_dir: plane.pki.dir.clone(),
    };
    Ok((env, plane, operator, players))
}

/// Install the chart, the stand-in CRDs of optional integrations (Multus, KubeVirt,
/// CDI, VolumeSnapshot, VolSync) and what the players need ([`crate::players::install`]).
async fn prepare(plane: &ControlPlane) -> Result<(), HarnessError> {
    let client = client_for(&plane.kubeconfig()).await?;
    install_chart(&client).await?;
    metrics_scraper(&client, &plane.dir).await?;
    let nad = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/network-attachment-definitions.yaml"))
        .map_err(|e| HarnessError::Io("reading the NetworkAttachmentDefinition CRD".into(), e))?;
    apply_yaml(&client, &nad, None).await?;
    let mnp = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/multi-networkpolicies.yaml"))
        .map_err(|e| HarnessError::Io("reading the MultiNetworkPolicy CRD".into(), e))?;
    apply_yaml(&client, &mnp, None).await?;
    let kv = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kubevirt-cdi-snapshot.yaml"))
        .map_err(|e| HarnessError::Io("reading the KubeVirt, CDI and snapshot CRDs".into(), e))?;
    apply_yaml(&client, &kv, None).await?;
    let volsync = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/volsync.yaml"))
        .map_err(|e| HarnessError::Io("reading the VolSync CRDs".into(), e))?;
    apply_yaml(&client, &volsync, None).await?;
    crate::players::install(&client).await
}

/// A control plane of its own, with the chart installed, for tests that start and
/// kill operators themselves. Dropped → stopped.
pub async fn private_env(name: &str) -> Result<(TestEnv, ControlPlane), HarnessError> {
    let plane = ControlPlane::start(name, &base_dir())?;
    prepare(&plane).await?;
    let operator_kubeconfig =
        plane.kubeconfig_for(OPERATOR_USER, SERVICE_ACCOUNT_GROUPS)?;
    let env = TestEnv {
        dir: plane.dir.clone(),
        port: plane.port,
        kubeconfig: plane.kubeconfig(),
        operator_kubeconfig,
        operator_metrics_port: None,
        pki_dir: plane.pki.dir.clone(),
    };
    Ok((env, plane))
}

/// Path of the chart in this repository.
pub fn chart_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/pdc"))
}

/// Run the Go-built helm with `args`; its stdout.
pub fn helm(args: &[&str]) -> Result<String, HarnessError> {
    let bin = bin_dir().join("helm");
    if !bin.is_file() {
        return Err(HarnessError::MissingBinary(bin));
    }
    let out = std::process::Command::new(&bin).args(args).output().map_err(|e| HarnessError::Io("running helm".into(), e))?;
    if !out.status.success() {
        return Err(HarnessError::Other(format!("helm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Render the chart with helm and apply every object to the cluster (CRDs first,
/// waiting until they are Established): what `helm install` makes, so without the
/// `helm test` Pod, which only `helm test` creates.
pub async fn install_chart(client: &Client) -> Result<(), HarnessError> {
    let chart = chart_dir();
    let rendered = helm(&[
        "template",
        "pdc",
        &chart.display().to_string(),
        "--namespace",
        SYSTEM_NAMESPACE,
        "--include-crds",
        "--skip-tests",
        "--kube-version",
        "1.36.3",
    ])?;
    let ns = Namespace { metadata: kube::api::ObjectMeta { name: Some(SYSTEM_NAMESPACE.into()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).patch(SYSTEM_NAMESPACE, &ssa(), &Patch::Apply(&ns)).await?;
    apply_yaml(client, &rendered, Some(SYSTEM_NAMESPACE)).await?;
    wait_policies_enforced(client).await
}

/// A token of ServiceAccount `ns`/`sa` from the TokenRequest API, valid 24 h.
pub async fn service_account_token(client: &Client, ns: &str, sa: &str) -> Result<String, HarnessError> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let req = TokenRequest { spec: Some(TokenRequestSpec { expiration_seconds: Some(86_400), ..Default::default() }), ..Default::default() };
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(sa, &Default::default(), &req)
        .await?
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| HarnessError::Other(format!("the API server returned no token for {ns}/{sa}")))
}

/// A scraper's identity, as a Prometheus has: ServiceAccount pdc-system/metrics-scraper
/// bound to the chart's ClusterRole pdc-metrics-reader, its token (TokenRequest, 24 h)
/// written to `dir`/[`crate::operator::METRICS_TOKEN_FILE`].
pub async fn metrics_scraper(client: &Client, dir: &Path) -> Result<(), HarnessError> {
    let objects = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: metrics-scraper, namespace: {SYSTEM_NAMESPACE}}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: pdc-tests-metrics-scraper}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pdc-metrics-reader}}\n\
         subjects: [{{kind: ServiceAccount, name: metrics-scraper, namespace: {SYSTEM_NAMESPACE}}}]\n"
    );
    apply_yaml(client, &objects, None).await?;
    let token = service_account_token(client, SYSTEM_NAMESPACE, "metrics-scraper").await?;
    let path = dir.join(crate::operator::METRICS_TOKEN_FILE);
    std::fs::write(&path, token).map_err(|e| HarnessError::Io(format!("writing {}", path.display()), e))
}

/// Apply the sample Province (deploy/samples/province.yaml) and wait until the
/// admission policy that takes it as its parameter sees it: until then the API server
/// refuses every Department ("no params found").
pub async fn apply_sample_province(client: &Client) -> Result<(), HarnessError> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/samples/province.yaml");
    let text = std::fs::read_to_string(path).map_err(|e| HarnessError::Io(format!("reading {path}"), e))?;
    apply_yaml(client, &text, None).await?;
    let probe: pdc_api::Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": "province-probe"},
        "spec": {"displayName": "Probe", "code": "H15.1"}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))?;
    let dry = kube::api::PostParams { dry_run: true, ..Default::default() };
    let depts: Api<pdc_api::Department> = Api::all(client.clone());
    let start = Instant::now();
    loop {
        match depts.create(&dry, &probe).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                return Err(HarnessError::Other(format!("the admission policies did not see the Province within 30 s: {e}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A new ValidatingAdmissionPolicy takes effect a moment after it is stored. Probe
/// each of the chart's policies with server-side dry runs of objects it must refuse
/// until it does, so no test races the API server's policy cache.
async fn wait_policies_enforced(client: &Client) -> Result<(), HarnessError> {
    let dry = kube::api::PostParams { dry_run: true, ..Default::default() };
    let dept: pdc_api::Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": "policy-probe"},
        "spec": {"displayName": "Probe", "code": "Z99.1", "quota": {"storage": {"no-such-tier": "1Gi"}}}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))?;
    let rec: pdc_api::DnsRecord = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": "policy-probe"},
        "spec": {"name": "probe", "type": "A", "values": ["192.0.2.1"]}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))?;
    let vm: pdc_api::TenantVM = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": "policy-probe"},
        "spec": {"size": "m1.small", "image": {"url": "https://images.daklak.gov.vn/u.qcow2"}, "rootDisk": {"size": "20Gi", "tier": "ssd"}, "nics": [{"zone": "app"}], "hostname": "probe"}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))?;
    let depts: Api<pdc_api::Department> = Api::all(client.clone());
    let recs: Api<pdc_api::DnsRecord> = Api::namespaced(client.clone(), "default");
    let vms: Api<pdc_api::TenantVM> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    loop {
        let d = depts.create(&dry, &dept).await.is_err();
        let r = recs.create(&dry, &rec).await.is_err();
        let v = vms.create(&dry, &vm).await.is_err();
        if d && r && v {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(HarnessError::Other("the chart's admission policies were not enforced within 60 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ssa() -> PatchParams {
    PatchParams::apply("pdc-tests").force()
}

/// Apply every document of a multi-document YAML text, CRDs first.
pub async fn apply_yaml(client: &Client, text: &str, default_ns: Option<&str>) -> Result<(), HarnessError> {
    let mut docs: Vec<DynamicObject> = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: serde_json::Value = serde::Deserialize::deserialize(doc).map_err(|e| HarnessError::Other(format!("parsing YAML: {e}")))?;
        if v.is_null() {
            continue;
        }
        docs.push(serde_json::from_value(v).map_err(|e| HarnessError::Other(format!("not a Kubernetes object: {e}")))?);
    }
    let is_crd = |d: &DynamicObject| d.types.as_ref().is_some_and(|t| t.kind == "CustomResourceDefinition");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for d in docs.iter().filter(|d| is_crd(d)) {
        let name = d.name_any();
        crds.patch(&name, &ssa(), &Patch::Apply(d)).await?;
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .map_err(|_| HarnessError::Other(format!("CRD {name} not Established within 30 s")))?
            .map_err(|e| HarnessError::Other(format!("waiting for CRD {name}: {e}")))?;
    }
    let discovery = Discovery::new(client.clone()).run().await?;
    for d in docs.iter().filter(|d| !is_crd(d)) {
        let t = d.types.as_ref().ok_or_else(|| HarnessError::Other(format!("{} has no apiVersion/kind", d.name_any())))?;
        let gvk = GroupVersionKind::try_from(t).map_err(|e| HarnessError::Other(e.to_string()))?;
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| HarnessError::Other(format!("the API server does not serve {}/{}", t.api_version, t.kind)))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(client.clone(), &ar),
            Scope::Namespaced => {
                let ns = d.namespace().or(default_ns.map(str::to_string)).unwrap_or_else(|| "default".into());
                Api::namespaced_with(client.clone(), &ns, &ar)
            }
        };
        // A CRD reports Established a moment before its resource is served under
        // load (404 "page not found"): try again for a few seconds.
        let mut tries = 0;
        loop {
            match api.patch(&d.name_any(), &ssa(), &Patch::Apply(d)).await {
                Err(kube::Error::Api(s)) if s.code == 404 && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                r => {
                    r?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Poll `name` until `ok` holds (every 100 ms); the object, or an error naming `what`
/// and the last state seen.
pub async fn wait_for<K>(api: &Api<K>, name: &str, timeout: Duration, what: &str, ok: impl Fn(&K) -> bool) -> Result<K, HarnessError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let start = Instant::now();
    loop {
        let last = api.get_opt(name).await?;
        if let Some(obj) = last.as_ref().filter(|o| ok(o)) {
            return Ok(obj.clone());
        }
        if start.elapsed() > timeout {
            return Err(HarnessError::Other(format!("{name}: {what} not reached within {timeout:?}; last seen: {last:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait for an event about the object `name` in `namespace` with `reason` whose
/// note `ok` accepts (events.k8s.io, as the operator publishes them).
pub async fn wait_event(client: &Client, namespace: &str, name: &str, reason: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> Result<String, HarnessError> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let lp = kube::api::ListParams::default().fields(&format!("regarding.name={name}"));
    let start = Instant::now();
    loop {
        let seen = api.list(&lp).await?.items;
        if let Some(note) = seen.iter().filter(|e| e.reason.as_deref() == Some(reason)).filter_map(|e| e.note.clone()).find(|n| ok(n)) {
            return Ok(note);
        }
        if start.elapsed() > timeout {
            let got: Vec<_> = seen.iter().map(|e| (e.reason.clone(), e.note.clone())).collect();
            return Err(HarnessError::Other(format!("{namespace}/{name}: no {reason} event within {timeout:?}; events: {got:?}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the API server lets `client`'s user `verb` `resource` (`kind/sub` for a
/// subresource) of `group` in `namespace` (a SelfSubjectAccessReview).
pub async fn allowed(client: &Client, verb: &str, group: &str, resource: &str, namespace: &str) -> Result<bool, HarnessError> {
    use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.into()),
                resource: Some(resource.split('/').next().unwrap_or(resource).into()),
                subresource: resource.split_once('/').map(|(_, sub)| sub.to_string()),
                verb: Some(verb.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone()).create(&Default::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Wait until [`allowed`]. The authorizer reads RoleBindings from the API server's
/// cache, a moment behind what a GET returns: a test that has just seen a binding
/// waits here before it asserts what the binding allows or refuses.
pub async fn wait_allowed(client: &Client, verb: &str, group: &str, resource: &str, namespace: &str, timeout: Duration) -> Result<(), HarnessError> {
    let start = Instant::now();
    while !allowed(client, verb, group, resource, namespace).await? {
        if start.elapsed() > timeout {
            return Err(HarnessError::Other(format!("{verb} {resource}.{group} in {namespace} not allowed within {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A name unique to this process and call, for test objects: `<prefix>-<n><pid>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}{}", N.fetch_add(1, Ordering::Relaxed), std::process::id() % 100_000)
}

/// A namespaced kind of group `pdc.io` that only the tests install, standing in for
/// the department resources (VMs, volumes, records) a namespace can hold. The
/// operator finds namespaced pdc kinds by discovery, so this is what it sees of them.
const PROBE_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: testprobes.pdc.io
spec:
  group: pdc.io
  names: {kind: TestProbe, plural: testprobes, singular: testprobe}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn probe_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let ar = kube::core::ApiResource {
        group: "pdc.io".into(),
        version: "v1alpha1".into(),
        api_version: "pdc.io/v1alpha1".into(),
        kind: "TestProbe".into(),
        plural: "testprobes".into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Create a `TestProbe` in namespace `ns`; returns `TestProbe/<name>` as the operator reports it.
pub async fn namespaced_pdc_probe(client: &Client, ns: &str) -> Result<String, HarnessError> {
    apply_yaml(client, PROBE_CRD, None).await?;
    let obj: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TestProbe", "metadata": {"name": "held-by-test"}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))?;
    probe_api(client, ns).patch("held-by-test", &ssa(), &Patch::Apply(&obj)).await?;
    Ok("TestProbe/held-by-test".into())
}

/// Delete the `TestProbe` of namespace `ns`.
pub async fn delete_pdc_probe(client: &Client, ns: &str) -> Result<(), HarnessError> {
    probe_api(client, ns).delete("held-by-test", &Default::default()).await?;
    Ok(())
}
