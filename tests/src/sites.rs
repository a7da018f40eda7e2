//! Two sites for DR tests and the DR benchmark: two real control planes (daklak,
//! the primary, and phuyen, the standby), each with the chart, the province, a zone
//! spanning both sites and a department; one real Knot DNS server both write to; an
//! operator per site with its own `PDC_SITE`, each given the other site's kubeconfig.
//!
//! The players ([`crate::players`]) play KubeVirt, CDI and VolSync at both sites
//! (VolSync moves data between them) and record any moment when a VM is set to run at
//! both sites at once.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use pdc_api::Department;
use pdc_api::conditions::{self, READY};

use crate::HarnessError;
use crate::cluster::{DR_PEER_USER, SERVICE_ACCOUNT_GROUPS, SYSTEM_NAMESPACE, TestEnv, apply_yaml, client_for, private_env, wait_for};
use crate::controlplane::ControlPlane;
use crate::dns::{KnotServer, register_zones};
use crate::operator::{OperatorOptions, OperatorProcess};
pub use crate::players::Players;

pub const PRIMARY: &str = "daklak";
pub const STANDBY: &str = "phuyen";

/// One site: its cluster and its operator.
pub struct SiteEnv {
    pub name: &'static str,
    pub env: TestEnv,
    pub plane: ControlPlane,
    pub operator: Option<OperatorProcess>,
    pub opts: OperatorOptions,
    restarts: u32,
}

impl SiteEnv {
    pub async fn client(&self) -> Result<Client, HarnessError> {
        self.env.client().await
    }

    /// Start (or start again) this site's operator.
    pub fn start_operator(&mut self) -> Result<(), HarnessError> {
        self.restarts += 1;
        let mut o = self.opts.clone();
        o.identity = format!("pdc-{}-{}", self.name, self.restarts);
        self.operator = Some(OperatorProcess::start(&self.env.operator_kubeconfig, &o, &self.env.dir)?);
        Ok(())
    }

    /// SIGKILL this site's operator, as a crash would.
    pub fn kill_operator(&mut self) {
        if let Some(mut o) = self.operator.take() {
            o.kill();
        }
    }

    pub fn log(&self) -> Option<PathBuf> {
        self.operator.as_ref().map(|o| o.log.clone())
    }
}

pub struct TwoSites {
    pub primary: SiteEnv,
    pub standby: SiteEnv,
    pub knot: KnotServer,
    /// KubeVirt, CDI and VolSync at both sites (index 0: primary, 1: standby).
    pub players: Players,
}

const ZONE: &str = "apiVersion: pdc.io/v1alpha1\nkind: NetworkZone\nmetadata: {name: app}\nspec:\n  vlan: 120\n  sites:\n    - {site: daklak, ipv4: 10.15.0.0/16, ipv6: \"2001:db8:1500::/48\"}\n    - {site: phuyen, ipv4: 10.45.0.0/16, ipv6: \"2001:db8:4500::/48\"}\n  subnetSizes: {ipv4: 22, ipv6: 64}\n  resolvers: [10.15.255.53]\n";
const SIZES: &str = "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n";

/// The province's definitions at one site: Sites, the `app` zone at both sites, a
/// size, the department (quota for `vms` VMs), the DNS zones.
async fn define(client: &Client, dept: &str, vms: u32, knot: &KnotServer) -> Result<(), HarnessError> {
    crate::addressing::load_province_and_sites(client).await?;
    apply_yaml(client, ZONE, None).await?;
    apply_yaml(client, SIZES, None).await?;
    let d = serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": dept},
        "spec": {"displayName": "Sở Y tế", "code": "H15.20", "zones": ["app"],
                 "quota": {"vcpu": vms * 2, "memory": format!("{}Gi", vms * 4), "vms": vms, "storage": {"ssd": format!("{}Gi", vms * 20), "hdd": format!("{}Gi", vms * 50)}}}
    });
    apply_yaml(client, &serde_yaml::to_string(&d).map_err(|e| HarnessError::Other(e.to_string()))?, None).await?;
    register_zones(client, knot, "dr-tsig").await?;
    Ok(())
}

/// Wait until the department has its subnets at both sites.
async fn ready(client: &Client, dept: &str) -> Result<(), HarnessError> {
    wait_for(&Api::<Department>::all(client.clone()), dept, Duration::from_secs(120), "Ready with subnets at both sites", |d| {
        d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && s.subnets.len() >= 2)
    })
    .await?;
    Ok(())
}

/// Give `client`'s cluster the kubeconfig of the other site (`peer`), as the Site's Secret.
async fn link(client: &Client, peer: &str, kubeconfig: &std::path::Path) -> Result<(), HarnessError> {
    let text = std::fs::read_to_string(kubeconfig).map_err(|e| HarnessError::Io("reading a kubeconfig".into(), e))?;
    let name = format!("site-{peer}-kubeconfig");
    let s = Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.clone()), namespace: Some(SYSTEM_NAMESPACE.into()), ..Default::default() },
        string_data: Some([("kubeconfig".to_string(), text)].into()),
        ..Default::default()
    };
    let pp = PatchParams::apply("pdc-tests").force();
    Api::<Secret>::namespaced(client.clone(), SYSTEM_NAMESPACE).patch(&name, &pp, &Patch::Apply(&s)).await?;
    let site = serde_json::json!({"spec": {"kubeconfigSecret": {"name": name}}});
    Api::<pdc_api::Site>::all(client.clone()).patch(peer, &PatchParams::default(), &Patch::Merge(&site)).await?;
    Ok(())
}

impl TwoSites {
    /// Both sites defined, linked and running their operators, with department
    /// `dept` allowed `vms` VMs. `env`: more operator environment (both sites).
    pub async fn start(dept: &str, vms: u32, env: &[(&str, &str)]) -> Result<Self, HarnessError> {
        let (penv, pplane) = private_env("daklak").await?;
        let (senv, splane) = private_env("phuyen").await?;
        let knot = KnotServer::start(&penv.dir, &["daklak.gov.vn", "15.10.in-addr.arpa", "45.10.in-addr.arpa"])?;
        let (pc, sc) = (penv.client().await?, senv.client().await?);
        let (a, b) = tokio::join!(define(&pc, dept, vms, &knot), define(&sc, dept, vms, &knot));
        a?;
        b?;
        // Each site reaches the other as the other's pdc-dr-peer identity, with the
        // chart's DR peer role there: not with that operator's own rights.
        link(&pc, STANDBY, &splane.kubeconfig_for(DR_PEER_USER, SERVICE_ACCOUNT_GROUPS)?).await?;
        link(&sc, PRIMARY, &pplane.kubeconfig_for(DR_PEER_USER, SERVICE_ACCOUNT_GROUPS)?).await?;
        let opts = |site: &str| {
            let mut o = OperatorOptions::new(&format!("pdc-{site}"));
            // Short leases: a killed operator's successor takes over within seconds.
            o.lease_duration = "4s";
            o.renew_deadline = "3s";
            o.retry_period = "1s";
            o.env = [("PDC_SITE", site), ("PDC_DNS_RESYNC", "2s"), ("PDC_DNS_MAX_BACKOFF", "2s")]
                .iter()
                .chain(env.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            o
        };
        let mut primary = SiteEnv { name: PRIMARY, env: penv, plane: pplane, operator: None, opts: opts(PRIMARY), restarts: 0 };
        let mut standby = SiteEnv { name: STANDBY, env: senv, plane: splane, operator: None, opts: opts(STANDBY), restarts: 0 };
        let players = Players::start(vec![(PRIMARY.into(), primary.env.kubeconfig.clone()), (STANDBY.into(), standby.env.kubeconfig.clone())])?;
        primary.start_operator()?;
        standby.start_operator()?;
        let (a, b) = tokio::join!(ready(&pc, dept), ready(&sc, dept));
        a?;
        b?;
        Ok(Self { primary, standby, knot, players })
    }
}

/// A DrPlan for `dept` protecting every `drProtected` VM, RPO `rpo`.
pub fn plan(dept: &str, rpo: &str) -> Result<pdc_api::DrPlan, HarnessError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DrPlan", "metadata": {"name": dept, "namespace": dept},
        "spec": {"primarySite": PRIMARY, "standbySite": STANDBY, "rpo": rpo, "replication": {"method": "RsyncTLS", "serviceType": "ClusterIP"}}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))
}

/// A TenantVM with a 20Gi root disk and one NIC in zone `app`.
pub fn vm(name: &str, protected: bool) -> Result<pdc_api::TenantVM, HarnessError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name},
        "spec": {"size": "m1.small", "image": {"url": "https://images.daklak.gov.vn/ubuntu-24.04.qcow2"},
                 "rootDisk": {"size": "20Gi", "tier": "ssd"}, "nics": [{"zone": "app"}], "hostname": name, "drProtected": protected}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))
}

/// A client for a kubeconfig file (re-exported for tests that rebuild clients).
pub async fn client(path: &std::path::Path) -> Result<Client, HarnessError> {
    client_for(path).await
}
