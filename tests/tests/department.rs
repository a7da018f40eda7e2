//! Departments as tenants, against a real kube-apiserver with the chart applied and
//! the operator running under the chart's RBAC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{Department, DepartmentSpec, GuestQuota, Province, Subjects};
use pdc_tests::cluster::{TestEnv, shared_env, unique, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn env() -> (&'static TestEnv, Client) {
    let env = shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    ensure_province(&client).await;
    (env, client)
}

async fn ensure_province(client: &Client) {
    pdc_tests::cluster::apply_sample_province(client).await.unwrap();
}

fn spec(display: &str, code: &str) -> DepartmentSpec {
    let storage = BTreeMap::from([("ssd".into(), "500Gi".into())]);
    DepartmentSpec::new(display, code, GuestQuota { vcpu: 32, memory: "64Gi".into(), storage, vms: 8, public_addresses: 1 })
}

fn is_ready(d: &Department) -> bool {
    d.status.as_ref().is_some_and(|s| s.observed_generation == d.metadata.generation && conditions::is_true(&s.conditions, READY))
}

async fn create(client: &Client, name: &str, spec: DepartmentSpec) -> Result<Department, kube::Error> {
    let api: Api<Department> = Api::all(client.clone());
    api.create(&PostParams::default(), &Department::new(name, spec)).await
}

/// The API server's message for a rejected create.
fn rejection(r: Result<Department, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) => {
            assert!(s.code == 422 || s.code == 403 || s.code == 409, "unexpected code {}: {}", s.code, s.message);
            s.message
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(d) => panic!("{} was accepted", d.name_any()),
    }
}

#[tokio::test]
async fn department_gets_namespace_quota_limits_bindings_and_policies() {
    let (_, client) = env().await;
    let name = unique("so-y-te");
    let mut s = spec("Sở Y tế", "H15.23");
    s.admins = Subjects { users: vec!["an@soyte.daklak.gov.vn".into()], groups: vec!["soyte-admins".into()] };
    create(&client, &name, s).await.unwrap();
    let api: Api<Department> = Api::all(client.clone());
    let d = wait_for(&api, &name, TIMEOUT, "Ready", is_ready).await.unwrap();
    let status = d.status.unwrap();
    assert_eq!(status.namespace.as_deref(), Some(name.as_str()));
    assert_eq!(status.subdomain, Some(format!("{name}.daklak.gov.vn")));

    let ns = Api::<Namespace>::all(client.clone()).get(&name).await.unwrap();
    assert_eq!(ns.labels()["pdc.io/department"], name);
    assert_eq!(ns.labels()["pdc.io/code"], "H15.23");
    assert_eq!(ns.labels()["pdc.io/subdomain"], format!("{name}.daklak.gov.vn"));
    assert_eq!(ns.owner_references()[0].kind, "Department");

    let rq = Api::<ResourceQuota>::namespaced(client.clone(), &name).get("pdc-guest-quota").await.unwrap();
    let hard = rq.spec.unwrap().hard.unwrap();
    assert_eq!(hard["requests.cpu"].0, "32");
    // Twice the department's storage: a DR replica and the disk restored from it.
    assert_eq!(hard["pdc-ssd.storageclass.storage.k8s.io/requests.storage"].0, "1000Gi");
    assert_eq!(hard["pdc-hdd.storageclass.storage.k8s.io/requests.storage"].0, "0");
    Api::<LimitRange>::namespaced(client.clone(), &name).get("pdc-defaults").await.unwrap();
    let rb = Api::<RoleBinding>::namespaced(client.clone(), &name).get("pdc-department-admin").await.unwrap();
    let subjects: Vec<String> = rb.subjects.unwrap().iter().map(|s| format!("{}:{}", s.kind, s.name)).collect();
    assert_eq!(subjects, vec!["User:an@soyte.daklak.gov.vn", "Group:soyte-admins"]);
    let np = Api::<NetworkPolicy>::namespaced(client.clone(), &name).get("pdc-default-deny").await.unwrap();
    assert_eq!(np.spec.unwrap().policy_types.unwrap(), vec!["Ingress", "Egress"]);
}

#[tokio::test]
async fn quota_change_is_applied_and_generation_observed() {
    let (_, client) = env().await;
    let name = unique("xa-ea-sup");
    create(&client, &name, spec("Xã Ea Súp", "H15.1")).await.unwrap();
    let api: Api<Department> = Api::all(client.clone());
    wait_for(&api, &name, TIMEOUT, "Ready", is_ready).await.unwrap();
    let patch = serde_json::json!({"spec": {"quota": {"vcpu": 48, "storage": {"ssd": "500Gi", "hdd": "2Ti"}}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let d = wait_for(&api, &name, TIMEOUT, "Ready at generation 2", |d| is_ready(d) && d.metadata.generation == Some(2)).await.unwrap();
    assert_eq!(d.status.unwrap().observed_generation, Some(2));
    let rq = Api::<ResourceQuota>::namespaced(client.clone(), &name).get("pdc-guest-quota").await.unwrap();
    let hard = rq.spec.unwrap().hard.unwrap();
    assert_eq!(hard["requests.cpu"].0, "48");
    assert_eq!(hard["pdc-hdd.storageclass.storage.k8s.io/requests.storage"].0, "4Ti");
}

#[tokio::test]
async fn children_edited_or_deleted_out_of_band_are_repaired() {
    let (_, client) = env().await;
    let name = unique("xa-krong-pac");
    create(&client, &name, spec("Xã Krông Pắc", "H15.2")).await.unwrap();
    let api: Api<Department> = Api::all(client.clone());
    wait_for(&api, &name, TIMEOUT, "Ready", is_ready).await.unwrap();

    // Someone raises the CPU quota by hand and deletes the default-deny policy.
    let rq_api = Api::<ResourceQuota>::namespaced(client.clone(), &name);
    let raise = serde_json::json!({"spec": {"hard": {"requests.cpu": "999"}}});
    rq_api.patch("pdc-guest-quota", &PatchParams::default(), &Patch::Merge(&raise)).await.unwrap();
    let np_api = Api::<NetworkPolicy>::namespaced(client.clone(), &name);
    np_api.delete("pdc-default-deny", &DeleteParams::default()).await.unwrap();

    wait_for(&rq_api, "pdc-guest-quota", TIMEOUT, "quota back to 32 CPUs", |rq| {
        rq.spec.as_ref().and_then(|s| s.hard.as_ref()).is_some_and(|h| h.get("requests.cpu").is_some_and(|q| q.0 == "32"))
    })
    .await
    .unwrap();
    wait_for(&np_api, "pdc-default-deny", TIMEOUT, "default-deny policy restored", |_| true).await.unwrap();
}

#[tokio::test]
async fn bad_departments_are_rejected_at_the_api_with_a_clear_message() {
    let (_, client) = env().await;
    // Code pattern (CRD CEL).
    let m = rejection(create(&client, &unique("bad-code"), spec("Sở Tư pháp", "15.23")).await);
    assert!(m.contains("code must look like H15.23"), "{m}");
    // A name that is not a DNS label (diacritics) (CRD CEL on metadata.name).
    let m = rejection(create(&client, "sở-y-tế", spec("Sở Y tế", "H15.23")).await);
    assert!(m.contains("pdcctl slug"), "{m}");
    // A name with capitals and dots is not a label either.
    let m = rejection(create(&client, "So.Y.Te", spec("Sở Y tế", "H15.23")).await);
    assert!(m.contains("its namespace name"), "{m}");
    // Negative and malformed quantities.
    let mut s = spec("Sở Xây dựng", "H15.8");
    s.quota.memory = "-1Gi".into();
    let m = rejection(create(&client, &unique("neg-mem"), s).await);
    assert!(m.contains("non-negative quantity"), "{m}");
    let mut s = spec("Sở Xây dựng", "H15.8");
    s.quota.storage.insert("ssd".into(), "lots".into());
    let m = rejection(create(&client, &unique("bad-qty"), s).await);
    assert!(m.contains("non-negative quantity"), "{m}");
    let mut s = spec("Sở Xây dựng", "H15.8");
    s.quota.vcpu = -4;
    let m = rejection(create(&client, &unique("neg-cpu"), s).await);
    assert!(m.contains("vcpu must be between 0"), "{m}");
    // Unknown tier (admission policy with the Province as parameter).
    let mut s = spec("Sở Tài chính", "H15.4");
    s.quota.storage.insert("nvme".into(), "1Ti".into());
    let m = rejection(create(&client, &unique("bad-tier"), s).await);
    assert!(m.contains("nvme") && m.contains("known tiers: ssd, hdd"), "{m}");
    // Subdomain outside the province domain.
    let name = unique("so-tai-chinh");
    let mut s = spec("Sở Tài chính", "H15.4");
    s.subdomain = Some(format!("{name}.gialai.gov.vn"));
    let m = rejection(create(&client, &name, s).await);
    assert!(m.contains("outside the province domain daklak.gov.vn"), "{m}");
    // A code from another province.
    let m = rejection(create(&client, &unique("other-prov"), spec("Sở Nội vụ", "H08.3")).await);
    assert!(m.contains("not under the province code prefix H15 or H45"), "{m}");
    // Two Departments with one slug: the name is the slug, so the second create fails.
    let name = unique("so-noi-vu");
    create(&client, &name, spec("Sở Nội vụ", "H15.3")).await.unwrap();
    let m = rejection(create(&client, &name, spec("Sở Nội Vụ", "H15.30")).await);
    assert!(m.contains("already exists"), "{m}");
    // Codes of the absorbed province are accepted.
    create(&client, &unique("xa-son-thanh"), spec("Xã Sơn Thành", "H45.90")).await.unwrap();
}

#[tokio::test]
async fn department_admin_is_confined_to_its_namespace() {
    let (env, client) = env().await;
    let (a, b) = (unique("phuong-tan-an"), unique("phuong-tan-lap"));
    let mut sa = spec("Phường Tân An", "H15.56");
    sa.admins.users = vec![format!("admin@{a}")];
    create(&client, &a, sa).await.unwrap();
    create(&client, &b, spec("Phường Tân Lập", "H15.57")).await.unwrap();
    let api: Api<Department> = Api::all(client.clone());
    wait_for(&api, &a, TIMEOUT, "Ready", is_ready).await.unwrap();
    wait_for(&api, &b, TIMEOUT, "Ready", is_ready).await.unwrap();

    let admin = env.client_as(&format!("admin@{a}"), &["tenants"]).await.unwrap();
    let cm = ConfigMap {
        metadata: ObjectMeta { name: Some("web-config".into()), ..Default::default() },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..Default::default()
    };
    // Manages objects in its own namespace.
    let own: Api<ConfigMap> = Api::namespaced(admin.clone(), &a);
    own.create(&PostParams::default(), &cm).await.unwrap();
    // (kube-root-ca.crt: published in every namespace by the controller-manager.)
    let mut names: Vec<String> = own.list(&Default::default()).await.unwrap().items.iter().map(|c| c.metadata.name.clone().unwrap_or_default()).collect();
    names.sort();
    assert_eq!(names, ["kube-root-ca.crt", "web-config"]);
    // Cannot read or write the other department's namespace.
    let other: Api<ConfigMap> = Api::namespaced(admin.clone(), &b);
    assert_forbidden(other.list(&Default::default()).await.map(|_| ()));
    assert_forbidden(other.create(&PostParams::default(), &cm).await.map(|_| ()));
    // Cannot change the quota or policies of its own namespace.
    let rq: Api<ResourceQuota> = Api::namespaced(admin.clone(), &a);
    assert_forbidden(rq.delete("pdc-guest-quota", &DeleteParams::default()).await.map(|_| ()));
    // Cannot change any Department, its own included, nor the Province.
    let depts: Api<Department> = Api::all(admin.clone());
    let patch = serde_json::json!({"spec": {"quota": {"vcpu": 1000}}});
    assert_forbidden(depts.patch(&a, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ()));
    assert_forbidden(depts.list(&Default::default()).await.map(|_| ()));
    assert_forbidden(Api::<Province>::all(admin.clone()).delete("daklak", &DeleteParams::default()).await.map(|_| ()));
    // Cannot label its namespace (RBAC), and nobody but the operator may change the
    // keys that make it a department's (admission policy), cluster admins included.
    let ns_patch = |k: &str, v: &str, annotation: bool| {
        let field = if annotation { "annotations" } else { "labels" };
        serde_json::json!({"metadata": {field: {k: v}}})
    };
    assert_forbidden(Api::<Namespace>::all(admin.clone()).patch(&a, &PatchParams::default(), &Patch::Merge(ns_patch("pdc.io/department", &b, false))).await.map(|_| ()));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (k, v, annotation) in [("pdc.io/department", b.as_str(), false), ("pdc.io/subdomain", "evil.daklak.gov.vn", true), ("pdc.io/subdomain", "evil.daklak.gov.vn", false)] {
        let e = refused(namespaces.patch(&a, &PatchParams::default(), &Patch::Merge(ns_patch(k, v, annotation))).await);
        assert!(e.contains("written by the pdc operator") && e.contains(&a), "{e}");
    }
    let fake = Namespace { metadata: ObjectMeta { name: Some(unique("fake-dept")), labels: Some(BTreeMap::from([("pdc.io/department".into(), a.clone())])), ..Default::default() }, ..Default::default() };
    let e = refused(namespaces.create(&PostParams::default(), &fake).await);
    assert!(e.contains("written by the pdc operator"), "{e}");
    // Other labels stay free.
    namespaces.patch(&a, &PatchParams::default(), &Patch::Merge(ns_patch("team", "web", false))).await.unwrap();
    assert_eq!(namespaces.get(&a).await.unwrap().labels()["pdc.io/department"], a);

    // Services: ClusterIP yes; NodePort and externalIPs are refused with the reason; a
    // LoadBalancer counts against the department's public addresses (one here).
    let svcs: Api<Service> = Api::namespaced(admin, &a);
    let svc = |name: &str, spec: serde_json::Value| -> Service {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let port = serde_json::json!([{"port": 443, "targetPort": 8443}]);
    svcs.create(&PostParams::default(), &svc("web", serde_json::json!({"ports": port}))).await.unwrap();
    let e = refused(svcs.create(&PostParams::default(), &svc("web-np", serde_json::json!({"type": "NodePort", "ports": port}))).await);
    assert!(e.contains("NodePort is not allowed") && e.contains(&a), "{e}");
    let e = refused(svcs.create(&PostParams::default(), &svc("web-ext", serde_json::json!({"ports": port, "externalIPs": ["203.113.1.10"]}))).await);
    assert!(e.contains("externalIPs are not allowed"), "{e}");
    // Quota admission enforces what the controller-manager's quota controller has put
    // in the quota's status: wait for it to count load balancers.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &a);
    wait_for(&quotas, "pdc-guest-quota", TIMEOUT, "load balancers counted", |rq| {
        rq.status.as_ref().is_some_and(|s| {
            s.hard.as_ref().is_some_and(|h| h.contains_key("services.loadbalancers")) && s.used.as_ref().is_some_and(|u| u.contains_key("services.loadbalancers"))
        })
    })
    .await
    .unwrap();
    svcs.create(&PostParams::default(), &svc("web-lb", serde_json::json!({"type": "LoadBalancer", "ports": port}))).await.unwrap();
    let e = svcs.create(&PostParams::default(), &svc("web-lb2", serde_json::json!({"type": "LoadBalancer", "ports": port}))).await.unwrap_err().to_string();
    assert!(e.contains("services.loadbalancers"), "{e}");
}

/// The operator holds its writes only inside department namespaces (bound there by
/// itself), and its admission policy refuses the cluster-wide ones elsewhere; the
/// other DR site's identity reads and writes only there too.
#[tokio::test]
async fn operator_and_dr_peer_rights_stop_at_department_namespaces() {
    use k8s_openapi::api::core::v1::Secret;
    let (env, client) = env().await;
    let d = unique("so-tai-chinh");
    let mut s = spec("Sở Tài chính", "H15.24");
    s.admins.users = vec![format!("admin@{d}")];
    create(&client, &d, s).await.unwrap();
    wait_for(&Api::<Department>::all(client.clone()), &d, TIMEOUT, "Ready", is_ready).await.unwrap();
    // Its own rights in the namespace: a binding of the namespaced role to its ServiceAccount.
    let own = Api::<RoleBinding>::namespaced(client.clone(), &d).get("pdc-operator-namespaced").await.unwrap();
    let who: Vec<String> = own.subjects.unwrap().iter().map(|s| format!("{}:{}/{}", s.kind, s.namespace.clone().unwrap_or_default(), s.name)).collect();
    assert_eq!(who, ["ServiceAccount:pdc-system/pdc-operator"]);

    let operator = pdc_tests::cluster::client_for(&env.operator_kubeconfig).await.unwrap();
    let secret = |name: &str| Secret { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    // No Secret outside department namespaces (its TSIG keys in pdc-system are read by name only).
    assert_forbidden(Api::<Secret>::namespaced(operator.clone(), "kube-system").get("bootstrap-token-abcdef").await.map(|_| ()));
    assert_forbidden(Api::<Secret>::namespaced(operator.clone(), "default").create(&PostParams::default(), &secret("x")).await.map(|_| ()));
    // Inside one, it may.
    let dsec: Api<Secret> = Api::namespaced(operator.clone(), &d);
    dsec.create(&PostParams::default(), &secret("operator-made")).await.unwrap();
    dsec.delete("operator-made", &DeleteParams::default()).await.unwrap();
    // It cannot bind itself elsewhere, though it may create RoleBindings cluster-wide.
    let grab: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "grab"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pdc-operator-namespaced"},
        "subjects": [{"kind": "ServiceAccount", "name": "pdc-operator", "namespace": "pdc-system"}]
    }))
    .unwrap();
    let e = refused(Api::<RoleBinding>::namespaced(operator.clone(), "kube-system").create(&PostParams::default(), &grab).await);
    assert!(e.contains("only in department namespaces") && e.contains("kube-system"), "{e}");
    // Nor delete a namespace that is not a department's, nor make one a department's.
    let plain = unique("ke-toan-rieng");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.create(&PostParams::default(), &Namespace { metadata: ObjectMeta { name: Some(plain.clone()), ..Default::default() }, ..Default::default() }).await.unwrap();
    let ops: Api<Namespace> = Api::all(operator.clone());
    let e = refused(ops.delete(&plain, &DeleteParams::default()).await);
    assert!(e.contains("deletes only department namespaces") && e.contains(&plain), "{e}");
    let label = serde_json::json!({"metadata": {"labels": {"pdc.io/department": plain}}});
    let e = refused(ops.patch(&plain, &PatchParams::default(), &Patch::Merge(&label)).await);
    assert!(e.contains("not made by pdc"), "{e}");
    assert!(namespaces.get(&plain).await.unwrap().metadata.deletion_timestamp.is_none());

    // The DR peer: the department's namespace and the key Secrets in it, nothing else.
    let peer = env.client_as(pdc_tests::cluster::DR_PEER_USER, pdc_tests::cluster::SERVICE_ACCOUNT_GROUPS).await.unwrap();
    for ns in ["kube-system", "pdc-system", "default"] {
        assert_forbidden(Api::<Secret>::namespaced(peer.clone(), ns).get("anything").await.map(|_| ()));
    }
    let psec: Api<Secret> = Api::namespaced(peer.clone(), &d);
    psec.create(&PostParams::default(), &secret("volsync-rsync-tls-web")).await.unwrap();
    psec.get("volsync-rsync-tls-web").await.unwrap();
    assert_forbidden(psec.list(&Default::default()).await.map(|_| ()));
    assert_forbidden(psec.delete("volsync-rsync-tls-web", &DeleteParams::default()).await.map(|_| ()));
    Api::<Namespace>::all(peer.clone()).get(&d).await.unwrap();
    assert_forbidden(Api::<Namespace>::all(peer.clone()).delete(&d, &DeleteParams::default()).await.map(|_| ()));
    // A department admin reads its own Secrets, not another department's.
    let other = unique("so-noi-vu");
    create(&client, &other, spec("Sở Nội vụ", "H15.25")).await.unwrap();
    wait_for(&Api::<Department>::all(client.clone()), &other, TIMEOUT, "Ready", is_ready).await.unwrap();
    Api::<Secret>::namespaced(client.clone(), &other).create(&PostParams::default(), &secret("db-password")).await.unwrap();
    let admin = env.client_as(&format!("admin@{d}"), &["tenants"]).await.unwrap();
    Api::<Secret>::namespaced(admin.clone(), &d).get("volsync-rsync-tls-web").await.unwrap();
    assert_forbidden(Api::<Secret>::namespaced(admin, &other).get("db-password").await.map(|_| ()));
}

/// A department admin's requests are checked against its Department when made: a
/// VM in a zone the department may not use, another department's disk as an image,
/// an address in another department's subnet — each refused at the API with a
/// message, nothing stored.
#[tokio::test]
async fn a_department_admins_escapes_through_requests_are_refused_at_the_api() {
    use pdc_api::{AddressClaim, TenantVM};
    let (env, client) = env().await;
    let (a, b) = (unique("so-giao-duc"), unique("so-van-hoa"));
    pdc_tests::addressing::load_plan(&client, "app", 24, &[a.clone(), b.clone()]).await.unwrap();
    let depts: Api<Department> = Api::all(client.clone());
    depts.patch(&a, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"admins": {"users": [format!("admin@{a}")]}}}))).await.unwrap();
    let rb: Api<RoleBinding> = Api::namespaced(client.clone(), &a);
    wait_for(&rb, "pdc-department-admin", TIMEOUT, "the admin bound", |r| r.subjects.as_ref().is_some_and(|s| !s.is_empty())).await.unwrap();
    let theirs = depts.get(&b).await.unwrap().status.unwrap().subnets[0].ipv4.clone().unwrap();
    let mine = depts.get(&a).await.unwrap().status.unwrap().subnets[0].ipv4.clone().unwrap();
    let host = |subnet: &str| format!("{}.90", subnet.rsplit_once('.').unwrap().0);
    let admin = env.client_as(&format!("admin@{a}"), &["tenants"]).await.unwrap();
    pdc_tests::cluster::wait_allowed(&admin, "create", "pdc.io", "tenantvms", &a, TIMEOUT).await.unwrap();
    let vms: Api<TenantVM> = Api::namespaced(admin.clone(), &a);
    let vm = |zone: &str, image: serde_json::Value| -> TenantVM {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": "cong-thong-tin"},
            "spec": {"size": "m1.small", "image": image, "rootDisk": {"size": "20Gi", "tier": "ssd"}, "nics": [{"zone": zone}], "hostname": "cong-thong-tin"}
        }))
        .unwrap()
    };
    let url = serde_json::json!({"url": "https://images.daklak.gov.vn/ubuntu-24.04.qcow2"});
    let e = refused(vms.create(&PostParams::default(), &vm("dmz", url.clone())).await);
    assert!(e.contains(&format!("zone(s) dmz are not allowed for department {a} (its zones: app)")), "{e}");
    let e = refused(vms.create(&PostParams::default(), &vm("app", serde_json::json!({"dataSource": format!("{b}/ho-so-du-lieu")}))).await);
    assert!(e.contains(&format!("image.dataSource {b}/ho-so-du-lieu is in namespace {b}")), "{e}");
    let dry = PostParams { dry_run: true, ..Default::default() };
    vms.create(&dry, &vm("app", url)).await.unwrap();
    let claims: Api<AddressClaim> = Api::namespaced(admin, &a);
    let claim = |addr: &str| -> AddressClaim {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "db"}, "spec": {"zone": "app", "ipv4Address": addr}})).unwrap()
    };
    let e = refused(claims.create(&PostParams::default(), &claim(&host(&theirs))).await);
    assert!(e.contains(&format!("{} is outside the subnets of department {a} in zone app ({mine}", host(&theirs))), "{e}");
    claims.create(&dry, &claim(&host(&mine))).await.unwrap();
    assert!(Api::<TenantVM>::namespaced(client.clone(), &a).list(&Default::default()).await.unwrap().items.is_empty());
}

/// The message of a request refused at admission (the chart's policies are enforced
/// before the tests start: the harness waits for them).
fn refused<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => s.message,
        other => panic!("expected a refusal at admission, got {other:?}"),
    }
}

fn assert_forbidden(r: Result<(), kube::Error>) {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn deletion_waits_for_pdc_resources_and_honours_protection() {
    let (_, client) = env().await;
    let api: Api<Department> = Api::all(client.clone());
    // Protected: the API refuses the delete.
    let name = unique("thanh-tra");
    let mut s = spec("Thanh tra tỉnh", "H15.13");
    s.deletion_protection = true;
    create(&client, &name, s).await.unwrap();
    wait_for(&api, &name, TIMEOUT, "Ready", is_ready).await.unwrap();
    match api.delete(&name, &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => assert!(s.message.contains("deletionProtection: true"), "{}", s.message),
        other => panic!("protected delete: {other:?}"),
    }

    // Unprotected and holding a pdc resource: deletion waits with a clear condition.
    let name = unique("so-xay-dung");
    create(&client, &name, spec("Sở Xây dựng", "H15.8")).await.unwrap();
    wait_for(&api, &name, TIMEOUT, "Ready", is_ready).await.unwrap();
    let held = pdc_tests::cluster::namespaced_pdc_probe(&client, &name).await.unwrap();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let d = wait_for(&api, &name, TIMEOUT, "DeletionBlocked", |d| {
        d.status.as_ref().and_then(|s| conditions::find(&s.conditions, READY)).is_some_and(|c| c.reason == "DeletionBlocked")
    })
    .await
    .unwrap();
    let msg = conditions::find(&d.status.unwrap().conditions, READY).unwrap().message.clone();
    assert!(msg.contains(&held) && msg.contains("delete them first"), "{msg}");

    // Once the namespace is empty of pdc resources, the Department goes.
    pdc_tests::cluster::delete_pdc_probe(&client, &name).await.unwrap();
    let start = std::time::Instant::now();
    while api.get_opt(&name).await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "Department {name} still present");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The namespace controller (the real kube-controller-manager) then removes the
    // namespace and what is left in it (quota, limits, bindings, policies).
    let nss = Api::<Namespace>::all(client.clone());
    let start = std::time::Instant::now();
    while let Some(ns) = nss.get_opt(&name).await.unwrap() {
        assert!(start.elapsed() < Duration::from_secs(60), "namespace {name} was not removed: {:?}", ns.status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn operator_serves_metrics_health_and_readiness() {
    let (env, client) = env().await;
    let name = unique("so-cong-thuong");
    create(&client, &name, spec("Sở Công thương", "H15.10")).await.unwrap();
    wait_for(&Api::<Department>::all(client.clone()), &name, TIMEOUT, "Ready", is_ready).await.unwrap();
    let port = env.operator_metrics_port.unwrap();
    let (code, _) = pdc_tests::operator::http_get(port, "/healthz").unwrap();
    assert_eq!(code, 200);
    let (code, _) = pdc_tests::operator::http_get(port, "/readyz").unwrap();
    assert_eq!(code, 200);
    // /metrics asks who is asking: no token, a token the API server does not know,
    // an identity not allowed /metrics (the DR peer), then the scraper bound to
    // pdc-metrics-reader.
    let (code, body) = pdc_tests::operator::http_get(port, "/metrics").unwrap();
    assert_eq!(code, 401, "{body}");
    let (code, _) = pdc_tests::operator::http_get_with(port, "/metrics", Some("not-a-token")).unwrap();
    assert_eq!(code, 401);
    let peer_token = pdc_tests::cluster::service_account_token(&client, "pdc-system", "pdc-dr-peer").await.unwrap();
    let (code, body) = pdc_tests::operator::http_get_with(port, "/metrics", Some(&peer_token)).unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("system:serviceaccount:pdc-system:pdc-dr-peer may not get /metrics"), "{body}");
    let (code, body) = env.metrics_get("/metrics").unwrap();
    assert_eq!(code, 200);
    let ok = pdc_tests::operator::metric_value(&body, r#"pdc_reconcile_total{controller="department",result="success"}"#);
    assert!(ok >= 1.0, "{body}");
    assert!(body.contains("pdc_reconcile_duration_seconds_bucket{"), "{body}");
    assert_eq!(pdc_tests::operator::metric_value(&body, "pdc_leader"), 1.0);
    // Labels are bounded: no object names in any series.
    assert!(!body.contains(&name), "object name leaked into metrics");
    // Every family passes promtool's lint (promtool comes from tests/setup.sh).
    pdc_tests::operator::promtool_check_metrics(&body).unwrap();
}

