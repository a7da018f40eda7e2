//! Disaster recovery: a department's plan for running its VMs at the standby site.
//!
//! A DrPlan has a copy in each site's cluster. The site that runs the VMs (the
//! active site) copies the plan and the VMs' definitions to the other, drives
//! VolSync replication of their disks, and reports lag against the RPO. An action
//! (failover, relocate, drill) is asked of the copy at the site that is to take
//! over, because failover must not need anything at the site that was lost.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// What a DrPlan is asked to do.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub enum DrAction {
    /// Keep replicating; no action.
    #[default]
    None,
    /// The active site is lost: fence it, promote the last replica here, start the
    /// VMs with this site's addresses and point DNS here. Needs nothing from the
    /// lost site.
    Failover,
    /// A planned move to this site: stop the VMs at the active site, sync a last
    /// time, then the same steps as a failover. No data is lost.
    Relocate,
    /// Bring up copies of the VMs here under the `drill` subdomain, check them and
    /// tear them down, without taking service from the active site.
    Drill,
}

impl DrAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DrAction::None => "None",
            DrAction::Failover => "Failover",
            DrAction::Relocate => "Relocate",
            DrAction::Drill => "Drill",
        }
    }
}

/// VolSync's replication methods pdc drives.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplicationMethod {
    /// Rsync over TLS, pushed from the active site to a Service at the standby.
    #[default]
    RsyncTLS,
    /// Restic: both sites use a shared object-store repository.
    Restic,
}

/// VolSync settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.method != 'Restic' || has(self.resticRepository)").message("the Restic method needs resticRepository: a Secret in the namespace with the restic repository settings"))]
pub struct ReplicationSettings {
    /// `RsyncTLS` (default) or `Restic`.
    #[serde(default)]
    pub method: ReplicationMethod,
    /// RsyncTLS: how the standby's mover is exposed to the active site
    /// (`LoadBalancer` by default; `ClusterIP` when the sites share a network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['LoadBalancer', 'ClusterIP', 'NodePort']").message("serviceType must be LoadBalancer, ClusterIP or NodePort"))]
    pub service_type: Option<String>,
    /// Restic: a Secret in the namespace with the repository URL and credentials
    /// (VolSync's restic Secret); pdc copies it to the standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub restic_repository: Option<String>,
    /// VolumeSnapshotClass for the point-in-time copies (the cluster default if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub volume_snapshot_class: Option<String>,
}

/// A department's disaster-recovery plan.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "DrPlan",
    plural = "drplans",
    shortname = "drp",
    namespaced,
    status = "DrPlanStatus",
    printcolumn(name = "Primary", type_ = "string", json_path = ".spec.primarySite"),
    printcolumn(name = "Standby", type_ = "string", json_path = ".spec.standbySite"),
    printcolumn(name = "Active", type_ = "string", json_path = ".status.activeSite"),
    printcolumn(name = "RPO", type_ = "string", json_path = ".spec.rpo"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.lagSeconds"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Protected", type_ = "string", json_path = ".status.conditions[?(@.type==\"Protected\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.spec.primarySite != self.spec.standbySite").message("primarySite and standbySite must be different Sites"),
    validation = Rule::new("self.spec.action == 'None' || (has(self.spec.actionToken) && size(self.spec.actionToken) > 0)").message("an action needs an actionToken (any new value runs the action once; pdcctl dr writes the time)")
)]
#[serde(rename_all = "camelCase")]
pub struct DrPlanSpec {
    /// The Site the VMs run at normally, e.g. `daklak`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')").message("primarySite must be a Site name such as daklak"))]
    #[schemars(length(max = 63))]
    pub primary_site: String,
    /// The Site that takes over, e.g. `phuyen`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')").message("standbySite must be a Site name such as phuyen"))]
    #[schemars(length(max = 63))]
    pub standby_site: String,
    /// The recovery point objective: how much recent data may be lost, e.g. `15m`,
    /// `1h`. Replication is scheduled at a third of it.
    #[x_kube(validation = Rule::new("self.matches('^[1-9][0-9]{0,5}(s|m|h)$')").message("rpo must be a duration such as 90s, 15m or 4h"))]
    #[schemars(length(max = 8))]
    pub rpo: String,
    /// Which TenantVMs the plan protects: those with `drProtected: true` whose labels
    /// match (all of the namespace's protected VMs when empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// How disks are replicated.
    #[serde(default)]
    pub replication: ReplicationSettings,
    /// `None`, `Failover`, `Relocate` or `Drill`; carried out by the operator of the
    /// site whose copy is asked, once per `actionToken`.
    #[serde(default)]
    pub action: DrAction,
    /// Any new value runs `action` once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub action_token: Option<String>,
    /// Plan the action's steps into `status.lastAction` without carrying them out.
    #[serde(default)]
    pub dry_run: bool,
}

/// One replicated disk.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrVolumeStatus {
    /// The PersistentVolumeClaim (the DataVolume's name).
    pub pvc: String,
    /// The TenantVM it belongs to.
    pub vm: String,
    /// VolSync's last completed sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Seconds since the last completed sync (since the plan began, before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// The newest replica at this site (a VolumeSnapshot), when this site receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_image: Option<String>,
    /// The mover's last result (`Successful`, `Failed`) and what it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mover: Option<String>,
}

/// One step of an action.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrStepStatus {
    /// The step (`Fence`, `StopSource`, `FinalSync`, `Promote`, `StartVMs`, `SwitchDNS`, …).
    pub name: String,
    /// `Pending`, `Running`, `Done`, `Failed` or `Planned` (dry run).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// What the step did or waits for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The last action: its steps with their times.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrActionStatus {
    pub action: DrAction,
    /// The `actionToken` it ran for.
    pub token: String,
    /// The site it moves the VMs to (or drills at).
    pub target_site: String,
    /// Whether the steps were only planned.
    #[serde(default)]
    pub dry_run: bool,
    /// `Running`, `Succeeded`, `Failed` or `Planned` (dry run).
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// The steps in order, each with its state, times and message.
    pub steps: Vec<DrStepStatus>,
    /// Why the action was refused or failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A drill's outcome.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrDrillResult {
    pub time: Time,
    /// `Passed` or `Failed`.
    pub result: String,
    /// What the check found.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What the operator observed of a DrPlan at this site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrPlanStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Protected`, `RpoMet`, `StandbyReady`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The Site this copy of the plan is at (the site of the operator that writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// `Protecting`, `Protected`, `Standby`, `FailingOver`, `FailedOver`,
    /// `Relocating`, `Relocated`, `Drilling`, `Unprotected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The Site that runs the VMs (the primary until an action moves them). Written
    /// only by the operator that carries out an action, at both sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_site: Option<String>,
    /// Raised by every failover or relocate; the copy with the higher epoch says
    /// which site is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// The Site whose addresses the DNS records carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_site: Option<String>,
    /// The step being carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// The largest lag of the plan's disks, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// The oldest of the disks' last sync times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// The plan's disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<DrVolumeStatus>,
    /// The TenantVMs the plan protects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<String>,
    /// Per disk (PVC), the replica it was restored from by the last failover or
    /// relocate to this site. Written only by actions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub promoted: BTreeMap<String, String>,
    /// The addresses the plan's VMs have at the other site: their PTRs are removed
    /// when DNS moves here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer_addresses: Vec<String>,
    /// The last action and its timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<DrActionStatus>,
    /// The last drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<DrDrillResult>,
    /// The last time the standby was shown able to run the VMs (a passed drill, a
    /// relocate or a failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_standby_check: Option<Time>,
    /// The last fence of the other site: when, and whether its VMs were seen halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<DrFence>,
}

/// A fence of the site that is no longer active.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrFence {
    /// The fenced site.
    pub site: String,
    pub time: Time,
    /// Whether the fenced site answered and its VMs were halted; while false the
    /// operator keeps trying.
    #[serde(default)]
    pub confirmed: bool,
    /// What the fence found at that site.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl DrPlan {
    /// The Site running the VMs.
    pub fn active_site(&self) -> &str {
        self.status.as_ref().and_then(|s| s.active_site.as_deref()).unwrap_or(&self.spec.primary_site)
    }

    /// The Site whose addresses DNS carries.
    pub fn dns_site(&self) -> &str {
        self.status.as_ref().and_then(|s| s.dns_site.as_deref()).unwrap_or_else(|| self.active_site())
    }

    /// The other site of the plan.
    pub fn peer_of(&self, site: &str) -> &str {
        if site == self.spec.primary_site { &self.spec.standby_site } else { &self.spec.primary_site }
    }

    pub fn epoch(&self) -> i64 {
        self.status.as_ref().and_then(|s| s.epoch).unwrap_or(0)
    }

    /// Whether the plan protects a VM with these labels and flag.
    pub fn covers(&self, protected: bool, labels: Option<&BTreeMap<String, String>>) -> bool {
        protected && self.spec.selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    }
}
