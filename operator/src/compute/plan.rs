//! A TenantVM's plan, as values: no client, no clock. The controller
//! ([`super::vm`]) reads what the plan needs, asks it what the VM should have
//! ([`admit`] → [`children`]), applies that, and asks it the status from what the
//! API server returned ([`status`]). Each case the controller meets is a table test
//! here.
//!
//! DR enters as plain data, a [`Placement`], produced by the DR side through
//! [`Placements`]; this module and the VM controller never import the DR module.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::DynamicObject;
use pdc_api::conditions::{Cond, READY};
use pdc_api::{DiskSpec, DnsRecord, Province, SizeClass, TenantVM};
use pdc_core::quota::Charge;

use super::build::{self, NicPlan};

pub const QUOTA_ACCEPTED: &str = "QuotaAccepted";
pub const ADDRESSES: &str = "AddressesAllocated";
pub const DNS: &str = pdc_api::conditions::DNS_PROGRAMMED;
pub const RESTART: &str = "RestartRequired";
/// Every disk has the size its spec asks (a grown disk's claim is expanded in place).
pub const DISKS_GROWN: &str = "DisksResized";

/// Where a TenantVM stands under disaster recovery at this site.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// No plan protects it (or this operator has no site): as any VM.
    Unprotected,
    /// Protected, but the DR side has not yet checked the plan against the other
    /// site since this operator started: change nothing.
    Unconfirmed,
    /// It runs here. `promoted`: per disk, the replica to restore it from; `dns`:
    /// whether its names carry this site's addresses yet.
    Active { plan: String, primary: String, promoted: BTreeMap<String, String>, dns: bool },
    /// It runs at `active`: defined and halted here, its addresses reserved.
    Standby { plan: String, primary: String, active: String },
}

impl Placement {
    /// The site whose addresses the VM's claims take: this site when it is not the
    /// plan's primary (`None`: the primary's, the claims' default).
    pub fn claim_site(&self, here: Option<&str>) -> Option<String> {
        match (self, here) {
            (Placement::Active { primary, .. } | Placement::Standby { primary, .. }, Some(me)) if me != primary => Some(me.to_string()),
            _ => None,
        }
    }

    fn standby(&self) -> bool {
        matches!(self, Placement::Standby { .. })
    }

    /// Whether the VM's names carry this site's addresses.
    fn carries_dns(&self) -> bool {
        match self {
            Placement::Standby { .. } => false,
            Placement::Active { dns, .. } => *dns,
            _ => true,
        }
    }
}

/// What the VM controller asks of DR: this operator's site and a VM's placement.
pub trait Placements: Send + Sync {
    fn site(&self) -> Option<&str>;
    fn placement(&self, vm: &TenantVM) -> Placement;
}

/// A planned status: the conditions, the phase, the size it runs as, and when to
/// look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub conditions: Vec<Cond>,
    pub phase: String,
    pub ready: bool,
    /// `None`: leave the recorded size as it is.
    pub running_size: Option<Option<String>>,
    /// `None`: leave the recorded FQDN as it is.
    pub fqdn: Option<String>,
    pub requeue: Duration,
}

impl Planned {
    fn waiting(conditions: Vec<Cond>, phase: &str, requeue: Duration) -> Self {
        Planned { conditions, phase: phase.into(), ready: false, running_size: None, fqdn: None, requeue }
    }
}

/// Why a VM cannot be made as asked: a reason and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal(pub &'static str, pub String);

impl Refusal {
    /// The status of a refused VM. Sizes, tiers and zones may be added later: look
    /// again in a minute.
    pub fn planned(&self) -> Planned {
        Planned::waiting(vec![Cond::new(READY, false, self.0, self.1.clone())], "Failed", Duration::from_secs(60))
    }
}

/// An admissible request: its size, its quota charge, and per disk (root first)
/// whether it is the root and its StorageClass.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub size: SizeClass,
    pub charge: Charge,
    pub classes: Vec<(bool, String)>,
}

impl Admitted {
    pub fn accepted(&self) -> Cond {
        let msg = format!("{} vCPU, {} memory, {} disk(s) charged", self.size.spec.vcpu, self.size.spec.memory, self.classes.len());
        Cond::new(QUOTA_ACCEPTED, true, "Admitted", msg)
    }
}

/// Check the request against the province, the department's zones and the size.
/// `size`: the SizeClass, or the names of those that exist.
pub fn admit(vm: &TenantVM, dept_zones: Option<&[String]>, province: Option<&Province>, size: Result<SizeClass, Vec<String>>) -> Result<Admitted, Refusal> {
    let ns = vm.namespace().unwrap_or_default();
    let zones = dept_zones.ok_or_else(|| Refusal("NotADepartment", format!("namespace {ns} is not a Department's")))?;
    let province = province.ok_or_else(|| Refusal("NoProvince", "no Province is defined".into()))?;
    let size = size.map_err(|known| Refusal("UnknownSize", format!("size {:?} is not a SizeClass; sizes: {}", vm.spec.size, known.join(", "))))?;
    let mut storage = BTreeMap::<String, u128>::new();
    let mut classes = Vec::new();
    for (root, d) in disks(vm) {
        let sc = province.storage_class(&d.tier).ok_or_else(|| {
            let tiers: Vec<&str> = province.spec.storage_tiers.iter().map(|t| t.name.as_str()).collect();
            Refusal("UnknownTier", format!("disk {} asks tier {:?}; the province's tiers: {}", d.name, d.tier, tiers.join(", ")))
        })?;
        let bytes = pdc_core::quantity::parse(&d.size).map_err(|e| Refusal("InvalidSize", format!("disk {}: {e}", d.name)))?;
        *storage.entry(d.tier.clone()).or_default() += bytes;
        classes.push((root, sc.to_string()));
    }
    if let Some(n) = vm.spec.nics.iter().find(|n| !zones.contains(&n.zone)) {
        return Err(Refusal("ZoneNotAllowed", format!("NIC zone {:?} is not one of the department's zones ({})", n.zone, zones.join(", "))));
    }
    let memory = pdc_core::quantity::parse(&size.spec.memory).map_err(|e| Refusal("InvalidSize", format!("SizeClass {}: {e}", size.name_any())))?;
    let charge = Charge { vcpu: u64::try_from(size.spec.vcpu).unwrap_or(0), memory, storage, vms: 1 };
    Ok(Admitted { size, charge, classes })
}

/// The root disk, then the data disks, each with whether it is the root.
pub fn disks(vm: &TenantVM) -> impl Iterator<Item = (bool, &DiskSpec)> {
    std::iter::once((true, &vm.spec.root_disk)).chain(vm.spec.disks.iter().map(|d| (false, d)))
}

/// Over the department's quota: the status, until a release elsewhere in the
/// department wakes the VM (the Department watch), or two minutes.
pub fn over_quota(over: &[String]) -> Planned {
    let msg = format!("over the department's quota: {}", over.join("; "));
    let conds = vec![Cond::new(QUOTA_ACCEPTED, false, "QuotaExceeded", msg.clone()), Cond::new(READY, false, "QuotaExceeded", msg)];
    Planned::waiting(conds, "Pending", Duration::from_secs(120))
}

/// How long a VM waiting on its children waits at most before it looks again: the
/// watches of its claims, disks, VirtualMachine and records wake it on every change
/// that matters, so this is a fallback, not a poll. (Polling every few seconds made
/// a burst of 1,000 VMs ask for more reconciles than the controller could run, and
/// the controller's queue then starved the VMs it had not yet seen.)
pub const FALLBACK: Duration = Duration::from_secs(60);

/// A NIC's claim is not bound yet.
pub fn addresses_pending(admitted: &Admitted, zone: &str, why: Option<&str>) -> Planned {
    let m = format!("waiting for addresses in zone {zone}: {}", why.unwrap_or("not bound yet"));
    let conds = vec![admitted.accepted(), Cond::new(ADDRESSES, false, "Pending", m.clone()), Cond::new(READY, false, "AddressesPending", m)];
    Planned::waiting(conds, "Pending", FALLBACK)
}

/// KubeVirt or CDI is not installed: its CRD is missing.
pub fn integration_missing(msg: String) -> Planned {
    Planned::waiting(vec![Cond::new(READY, false, "IntegrationMissing", msg)], "Pending", Duration::from_secs(60))
}

/// What the children are made from, besides the VM itself.
pub struct Inputs<'a> {
    pub placement: &'a Placement,
    pub admitted: &'a Admitted,
    pub nics: &'a [NicPlan],
    pub subdomain: &'a str,
    pub resolvers: &'a [String],
    /// The DataVolumes of TenantVolumes attached to it, sorted.
    pub hotplug: &'a [String],
}

/// A disk as it should be: its DataVolume, the size asked, and the replica it is
/// restored from by a failover or relocate here.
pub struct Disk {
    /// The disk's name in the TenantVM's spec.
    pub disk: String,
    /// Its DataVolume's (and claim's) name.
    pub name: String,
    pub dv: DynamicObject,
    pub size: String,
    pub restore: Option<String>,
}

/// The children a VM with bound addresses should have.
pub struct Children {
    /// None at a standby site: its disks come from replicas when it takes over.
    pub disks: Vec<Disk>,
    pub vm: DynamicObject,
    /// Only where the names carry this site's addresses.
    pub records: Vec<DnsRecord>,
}

pub fn children(vm: &TenantVM, i: &Inputs) -> Children {
    let standby = i.placement.standby();
    let promoted = match i.placement {
        Placement::Active { promoted, .. } => promoted.clone(),
        _ => BTreeMap::new(),
    };
    // A VM a reorganization moved here: its disks come from the old VM's, in the
    // old namespace.
    let moved = vm.annotations().get(pdc_api::labels::MOVED_FROM).and_then(|m| m.split_once('/')).map(|(ns, act)| (ns.to_string(), act.to_string()));
    let disks = if standby {
        Vec::new()
    } else {
        disks(vm)
            .zip(i.admitted.classes.iter())
            .map(|((root, d), (_, sc))| {
                let name = build::disk_name(vm, d);
                let (ns, snap) = match (promoted.get(&name), moved.as_ref()) {
                    (Some(s), _) => (vm.namespace().unwrap_or_default(), Some(s.clone())),
                    (None, Some((from, act))) => (from.to_string(), Some(pdc_api::labels::move_snapshot(act, &name))),
                    (None, None) => (String::new(), None),
                };
                let dv = build::data_volume(vm, d, root, sc, snap.as_deref().map(|s| (ns.as_str(), s)));
                Disk { dv, disk: d.name.clone(), name, size: d.size.clone(), restore: snap }
            })
            .collect()
    };
    let hotplug: &[String] = if vm.spec.dr_protected { &[] } else { i.hotplug };
    let kv = build::virtual_machine(vm, i.admitted.size.spec.vcpu, &i.admitted.size.spec.memory, i.nics, i.resolvers, i.subdomain, hotplug, standby);
    let first = i.nics.first();
    let (v4, v6) = (first.and_then(NicPlan::ipv4_address), first.and_then(NicPlan::ipv6_address));
    let records = if i.placement.carries_dns() { build::dns_records(vm, v4.as_deref(), v6.as_deref()) } else { Vec::new() };
    Children { disks, vm: kv, records }
}

/// What applying the children returned.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// KubeVirt's printable status of the VirtualMachine.
    pub phase: Option<String>,
    /// The running instance (not being deleted): the size it says it was started
    /// with (`None` when it predates that annotation). `None`: no live instance.
    pub instance: Option<Option<String>>,
    pub disk_failures: Vec<String>,
    pub disk_growth: Vec<String>,
    /// Records not programmed yet, each with why.
    pub dns_pending: Vec<String>,
}

/// The status of a VM whose children were applied.
pub fn status(vm: &TenantVM, placement: &Placement, admitted: &Admitted, nics: usize, subdomain: &str, a: &Applied) -> Planned {
    // KubeVirt's status lags a moment behind an instance deleted for a restart: no
    // live instance is not running.
    let phase = match a.phase.clone() {
        Some(p) if p == "Running" && a.instance.is_none() => "Restarting".to_string(),
        p => p.unwrap_or_else(|| "Provisioning".into()),
    };
    let running = phase == "Running";
    let fqdn = format!("{}.{subdomain}.", vm.spec.hostname);
    let recorded = vm.status.as_ref().and_then(|s| s.running_size.clone());
    // An instance started before pdc put its size on it: the size last recorded.
    let running_size = match &a.instance {
        Some(size) if running => Some(size.clone().or(recorded).unwrap_or_else(|| vm.spec.size.clone())),
        _ => None,
    };
    let carries = placement.carries_dns();
    let dns_msg = match placement {
        _ if carries => a.dns_pending.join("; "),
        Placement::Standby { active, .. } => format!("the name carries site {active}'s addresses"),
        _ => "the name moves to this site's addresses at the DR plan's SwitchDNS step".into(),
    };
    let dns_ok = carries && a.dns_pending.is_empty();
    let ready = running && dns_ok && a.disk_failures.is_empty();
    let restart = running_size.as_ref().is_some_and(|s| *s != vm.spec.size);
    let ready_cond = if let Placement::Standby { plan, active, .. } = placement {
        Cond::new(READY, false, "Standby", format!("protected by DrPlan {plan}: it runs at site {active}; here it is defined and halted, its addresses reserved"))
    } else if !a.disk_failures.is_empty() {
        Cond::new(READY, false, "DiskFailed", a.disk_failures.join("; "))
    } else if ready {
        Cond::new(READY, true, "Running", format!("running as {fqdn}"))
    } else if !running {
        Cond::new(READY, false, "NotRunning", format!("the VirtualMachine is {phase}"))
    } else {
        Cond::new(READY, false, "DnsPending", dns_msg.clone())
    };
    let conditions = vec![
        admitted.accepted(),
        Cond::new(ADDRESSES, true, "Bound", format!("{nics} NIC(s) with static IPv4 and IPv6")),
        match (dns_ok, carries) {
            (true, _) => Cond::new(DNS, true, "Programmed", format!("{fqdn} A/AAAA answer")),
            (false, false) => Cond::new(DNS, false, "Standby", dns_msg),
            (false, true) => Cond::new(DNS, false, "Pending", dns_msg),
        },
        if restart {
            let msg = format!("restart the VM to run as {} (it runs as {})", vm.spec.size, running_size.clone().unwrap_or_default());
            Cond::new(RESTART, true, "Resized", msg)
        } else {
            Cond::new(RESTART, false, "UpToDate", "the guest runs with its size")
        },
        if a.disk_growth.is_empty() {
            Cond::new(DISKS_GROWN, true, "UpToDate", "every disk has the size asked")
        } else {
            Cond::new(DISKS_GROWN, false, "Expanding", format!("the claims are being expanded: {}", a.disk_growth.join("; ")))
        },
        ready_cond,
    ];
    let requeue = match (ready, a.disk_growth.is_empty()) {
        (false, _) => FALLBACK,
        (true, false) => Duration::from_secs(3),
        (true, true) => Duration::from_secs(300),
    };
    Planned { conditions, phase, ready, running_size: Some(running_size), fqdn: Some(fqdn), requeue }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::type_complexity)]
    use super::*;

    fn vm(protected: bool) -> TenantVM {
        let mut v: TenantVM = serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM",
            "metadata": {"name": "his", "namespace": "so-y-te", "uid": "u-1", "generation": 1},
            "spec": {
                "size": "m1.large", "image": {"url": "http://203.0.113.10/ubuntu.img"},
                "rootDisk": {"name": "root", "size": "20Gi", "tier": "ssd"},
                "disks": [{"name": "data", "size": "50Gi", "tier": "hdd"}],
                "nics": [{"zone": "app"}], "hostname": "his", "drProtected": protected
            }
        }))
        .unwrap();
        v.metadata.creation_timestamp = None;
        v
    }

    fn size(name: &str, vcpu: i32, memory: &str) -> SizeClass {
        serde_json::from_value(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "SizeClass", "metadata": {"name": name}, "spec": {"vcpu": vcpu, "memory": memory}})).unwrap()
    }

    fn province() -> Province {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "Province", "metadata": {"name": "daklak"},
            "spec": {"displayName": "Đắk Lắk", "domain": "daklak.gov.vn", "codePrefix": "H15",
                     "storageTiers": [{"name": "ssd", "storageClass": "pdc-ssd"}, {"name": "hdd", "storageClass": "pdc-hdd"}]}
        }))
        .unwrap()
    }

    fn zones() -> Vec<String> {
        vec!["app".into(), "dmz".into()]
    }

    fn admitted() -> Admitted {
        admit(&vm(false), Some(&zones()), Some(&province()), Ok(size("m1.large", 4, "8Gi"))).unwrap()
    }

    fn nics() -> Vec<NicPlan> {
        vec![NicPlan {
            zone: "app".into(),
            mac: "02:00:00:00:00:01".into(),
            ipv4: Some(("10.20.0.5/24".into(), "10.20.0.1".into())),
            ipv6: Some(("2001:db8:20::5/64".into(), "2001:db8:20::1".into())),
        }]
    }

    fn cond<'a>(p: &'a Planned, kind: &str) -> &'a Cond {
        p.conditions.iter().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn admission_refuses_with_a_reason_the_department_can_act_on() {
        let p = province();
        let ok = || Ok(size("m1.large", 4, "8Gi"));
        let cases: Vec<(TenantVM, Option<Vec<String>>, Option<&Province>, Result<SizeClass, Vec<String>>, &str, &str)> = vec![
            (vm(false), None, Some(&p), ok(), "NotADepartment", "namespace so-y-te"),
            (vm(false), Some(zones()), None, ok(), "NoProvince", "no Province"),
            (vm(false), Some(zones()), Some(&p), Err(vec!["m1.small".into(), "m1.xl".into()]), "UnknownSize", "sizes: m1.small, m1.xl"),
            (
                { let mut v = vm(false); v.spec.disks[0].tier = "nvme".into(); v },
                Some(zones()), Some(&p), ok(), "UnknownTier", "the province's tiers: ssd, hdd",
            ),
            (
                { let mut v = vm(false); v.spec.root_disk.size = "lots".into(); v },
                Some(zones()), Some(&p), ok(), "InvalidSize", "disk root",
            ),
            (vm(false), Some(vec!["dmz".into()]), Some(&p), ok(), "ZoneNotAllowed", "(dmz)"),
            (vm(false), Some(zones()), Some(&p), Ok(size("m1.odd", 4, "eight")), "InvalidSize", "SizeClass m1.odd"),
        ];
        for (v, z, prov, s, reason, msg) in cases {
            let r = admit(&v, z.as_deref(), prov, s).unwrap_err();
            assert_eq!(r.0, reason, "{r:?}");
            assert!(r.1.contains(msg), "{r:?}");
            let planned = r.planned();
            assert_eq!((planned.phase.as_str(), planned.ready, planned.requeue), ("Failed", false, Duration::from_secs(60)));
            assert_eq!(cond(&planned, READY).reason, reason);
        }
    }

    #[test]
    fn an_admitted_vm_is_charged_per_tier() {
        let a = admitted();
        assert_eq!((a.charge.vcpu, a.charge.memory, a.charge.vms), (4, 8 << 30, 1));
        assert_eq!(a.charge.storage, BTreeMap::from([("ssd".into(), 20u128 << 30), ("hdd".into(), 50u128 << 30)]));
        assert_eq!(a.classes, vec![(true, "pdc-ssd".into()), (false, "pdc-hdd".into())]);
        assert!(a.accepted().message.contains("4 vCPU, 8Gi memory, 2 disk(s)"));
    }

    #[test]
    fn waiting_for_quota_or_addresses() {
        let q = over_quota(&["vCPU: asks 4, 62 of 64 already in use, 2 over".into()]);
        assert_eq!((if cond(&q, QUOTA_ACCEPTED).ok { "True" } else { "False" }, cond(&q, READY).reason), ("False", "QuotaExceeded"));
        assert!(cond(&q, READY).message.contains("2 over"));
        assert_eq!((q.phase.as_str(), q.requeue, q.running_size.clone()), ("Pending", Duration::from_secs(120), None));
        let a = addresses_pending(&admitted(), "app", Some("zone app has no free IPv4 address"));
        assert!(cond(&a, QUOTA_ACCEPTED).ok);
        assert_eq!(cond(&a, READY).reason, "AddressesPending");
        assert!(cond(&a, ADDRESSES).message.contains("zone app: zone app has no free IPv4"));
    }

    fn inputs<'a>(p: &'a Placement, a: &'a Admitted, n: &'a [NicPlan], hot: &'a [String]) -> Inputs<'a> {
        Inputs { placement: p, admitted: a, nics: n, subdomain: "soyte.daklak.gov.vn", resolvers: &[], hotplug: hot }
    }

    #[test]
    fn children_per_placement() {
        let (a, n, hot) = (admitted(), nics(), vec!["vol-scans".to_string()]);
        let active = |dns: bool| Placement::Active {
            plan: "p".into(),
            primary: "daklak".into(),
            promoted: BTreeMap::from([("his-root".into(), "volsync-his-root-dst-20261202".into())]),
            dns,
        };
        let standby = Placement::Standby { plan: "p".into(), primary: "daklak".into(), active: "phuyen".into() };
        // (placement, protected, disks, restored root, halted, records, hotplug volumes)
        let cases = [
            (Placement::Unprotected, false, 2, None, false, 2, 1),
            (Placement::Unprotected, true, 2, None, false, 2, 0),
            (active(true), true, 2, Some("volsync-his-root-dst-20261202"), false, 2, 0),
            (active(false), true, 2, Some("volsync-his-root-dst-20261202"), false, 0, 0),
            (standby, true, 0, None, true, 0, 0),
        ];
        for (p, protected, disks, restore, halted, records, hotplugged) in cases {
            let c = children(&vm(protected), &inputs(&p, &a, &n, &hot));
            assert_eq!(c.disks.len(), disks, "{p:?}");
            assert_eq!(c.disks.first().and_then(|d| d.restore.as_deref()), restore, "{p:?}");
            let rs = c.vm.data["spec"]["runStrategy"].as_str().unwrap();
            assert_eq!(rs == "Halted", halted, "{p:?}");
            assert_eq!(c.records.len(), records, "{p:?}");
            let vols = c.vm.data["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
            assert_eq!(vols.iter().filter(|v| v["dataVolume"]["hotpluggable"] == true).count(), hotplugged, "{p:?}");
            assert_eq!(c.vm.data["spec"]["template"]["metadata"]["annotations"]["pdc.io/size"], "m1.large");
        }
        let c = children(&vm(false), &inputs(&Placement::Unprotected, &a, &n, &[]));
        let names: Vec<(&str, &str)> = c.disks.iter().map(|d| (d.disk.as_str(), d.name.as_str())).collect();
        assert_eq!(names, vec![("root", "his-root"), ("data", "his-data")]);
        assert_eq!(c.records.iter().map(|r| r.spec.values[0].as_str()).collect::<Vec<_>>(), vec!["10.20.0.5", "2001:db8:20::5"]);
        assert_eq!(Placement::Unprotected.claim_site(Some("phuyen")), None);
        assert_eq!(active(true).claim_site(Some("phuyen")).as_deref(), Some("phuyen"));
        assert_eq!(active(true).claim_site(Some("daklak")), None);
    }

    fn applied(phase: &str, instance: Option<Option<&str>>) -> Applied {
        Applied { phase: Some(phase.into()), instance: instance.map(|s| s.map(str::to_string)), ..Default::default() }
    }

    #[test]
    fn status_from_what_was_applied() {
        let a = admitted();
        let standby = Placement::Standby { plan: "p".into(), primary: "daklak".into(), active: "phuyen".into() };
        let not_dns = Placement::Active { plan: "p".into(), primary: "daklak".into(), promoted: BTreeMap::new(), dns: false };
        let mut recorded = vm(false);
        recorded.status = Some(pdc_api::TenantVMStatus { running_size: Some("m1.small".into()), ..Default::default() });
        let failed = Applied { disk_failures: vec!["disk root: import failed".into()], ..applied("Running", Some(Some("m1.large"))) };
        let pending = Applied { dns_pending: vec!["his-a: waiting for the zone writer".into()], ..applied("Running", Some(Some("m1.large"))) };
        let growing = Applied { disk_growth: vec!["disk data: 50Gi → 60Gi".into()], ..applied("Running", Some(Some("m1.large"))) };
        // (vm, placement, applied, ready reason, dns status, restart, running size, requeue s)
        let cases: Vec<(TenantVM, Placement, Applied, &str, &str, &str, Option<&str>, u64)> = vec![
            (vm(false), Placement::Unprotected, applied("Running", Some(Some("m1.large"))), "Running", "True", "False", Some("m1.large"), 300),
            (vm(false), Placement::Unprotected, applied("Starting", None), "NotRunning", "True", "False", None, 60),
            (vm(false), Placement::Unprotected, applied("Running", Some(Some("m1.small"))), "Running", "True", "True", Some("m1.small"), 300),
            (recorded.clone(), Placement::Unprotected, applied("Running", Some(None)), "Running", "True", "True", Some("m1.small"), 300),
            (recorded, Placement::Unprotected, applied("Running", None), "NotRunning", "True", "False", None, 60),
            (vm(false), Placement::Unprotected, failed, "DiskFailed", "True", "False", Some("m1.large"), 60),
            (vm(false), Placement::Unprotected, pending, "DnsPending", "False", "False", Some("m1.large"), 60),
            (vm(false), Placement::Unprotected, growing, "Running", "True", "False", Some("m1.large"), 3),
            (vm(true), standby, applied("Stopped", None), "Standby", "False", "False", None, 60),
            (vm(true), not_dns, applied("Running", Some(Some("m1.large"))), "DnsPending", "False", "False", Some("m1.large"), 60),
        ];
        for (i, (v, p, ap, reason, dns, restart, running, requeue)) in cases.into_iter().enumerate() {
            let s = status(&v, &p, &a, 1, "soyte.daklak.gov.vn", &ap);
            assert_eq!(cond(&s, READY).reason, reason, "case {i}: {s:?}");
            assert_eq!(pdc_api::conditions::status_str(cond(&s, DNS).ok), dns, "case {i}: {s:?}");
            assert_eq!(pdc_api::conditions::status_str(cond(&s, RESTART).ok), restart, "case {i}: {s:?}");
            assert_eq!(s.running_size, Some(running.map(str::to_string)), "case {i}");
            assert_eq!(s.requeue, Duration::from_secs(requeue), "case {i}");
            assert_eq!(s.ready, reason == "Running", "case {i}");
            assert_eq!(s.fqdn.as_deref(), Some("his.soyte.daklak.gov.vn."), "case {i}");
        }
        let s = status(&vm(true), &Placement::Standby { plan: "p".into(), primary: "daklak".into(), active: "phuyen".into() }, &a, 1, "x", &applied("Stopped", None));
        assert!(cond(&s, DNS).message.contains("site phuyen's addresses"));
        let s = status(&vm(false), &Placement::Unprotected, &a, 1, "x", &applied("Running", Some(Some("m1.small"))));
        assert!(cond(&s, RESTART).message.contains("run as m1.large (it runs as m1.small)"));
    }
}
