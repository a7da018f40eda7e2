//! The province's reorganization: what one legal act (merges, dissolutions, renames,
//! code reissues) comes down to for the estate that runs, decided without I/O. The
//! same [`plan`] answers `pdcctl reorg plan` offline and drives the operator.
//!
//! Rules the plan follows (the README says why):
//! - A merged unit's VMs named in `keep` move to the successor: their disks go with
//!   them, their addresses are claimed again in the successor's subnets (a unit's
//!   addresses come from its own subnets, which the zone policies and the admission
//!   rules tie to its namespace) and each VM restarts once with the new addresses.
//!   Its DNS names are declared again under the successor's subdomain and the old
//!   names answer as CNAMEs of the new ones until the transition ends.
//! - A merged unit's TenantVolumes (unattached, or attached to a kept VM) move to
//!   the successor, restored there from a snapshot and charged to its quota; its
//!   standalone AddressClaims are claimed again in the successor's subnets, in the
//!   same zone. A dissolved unit's volumes, and a merged unit's attached to a VM
//!   that is not kept, are snapshotted and kept until the retention date.
//! - Every other VM of a merged or dissolved unit is halted and its disks archived
//!   (snapshots kept until the retention date). Its names keep their records until
//!   the transition ends (or alias the unit its lookups go to); its addresses are
//!   held until the retention date, then released and held back for the cool-down.
//! - The successor keeps one portal: its own (the records at its subdomain), or the
//!   first merged unit's when it has none; every other merged unit's subdomain
//!   becomes a CNAME of the successor's.
//! - A renamed unit with a new slug moves whole to a new Department of that name:
//!   every VM, volume and claim moves as in a merge, and each old name pdc serves
//!   answers as a CNAME of its new name for the transition.
//! - Nothing the act does not name is touched, and every alias is made from a name
//!   pdc already serves for the unit.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::quota::{self, Charge};

/// A calendar day, counted from 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.format())
    }
}

impl Day {
    /// `YYYY-MM-DD`, or `None` when it is not a real date.
    pub fn parse(s: &str) -> Option<Day> {
        let mut it = s.splitn(3, '-');
        let (y, m, d) = (it.next()?.parse::<i64>().ok()?, it.next()?.parse::<i64>().ok()?, it.next()?.parse::<i64>().ok()?);
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let max = *days_in.get(usize::try_from(m - 1).ok()?)?;
        if !(1..=max).contains(&d) || s.len() != 10 {
            return None;
        }
        // Days from civil (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(Day(era * 146_097 + doe - 719_468))
    }

    pub fn plus(self, days: u32) -> Day {
        Day(self.0 + i64::from(days))
    }

    /// `YYYY-MM-DD`.
    pub fn format(self) -> String {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// The act, as plain data (the Reorganization's spec).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Act {
    pub reference: String,
    pub effective_date: String,
    pub merges: Vec<Merge>,
    pub dissolutions: Vec<Dissolution>,
    pub renames: Vec<Rename>,
    pub code_reissues: Vec<CodeReissue>,
    pub transition_days: u32,
    pub retention_days: u32,
    pub cool_down_days: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Merge {
    pub units: Vec<String>,
    pub successor: String,
    pub successor_display_name: Option<String>,
    pub successor_code: Option<String>,
    /// `unit/vm` or `unit/*`.
    pub keep: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dissolution {
    pub unit: String,
    pub lookups_go_to: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rename {
    pub unit: String,
    pub display_name: String,
    pub new_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodeReissue {
    pub from: String,
    pub to: String,
    pub deadline: String,
}

/// What runs, as plain data: the units by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Estate {
    pub units: BTreeMap<String, Unit>,
}

/// A unit's lifecycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lifecycle {
    #[default]
    Active,
    Retiring,
    Retired,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unit {
    pub display_name: String,
    pub code: String,
    /// The DNS name its records live under (`xa-hoa-phu.daklak.gov.vn`).
    pub subdomain: String,
    pub lifecycle: Lifecycle,
    pub quota: Charge,
    /// The quota ledger: `vm/<name>`, `volume/<name>` → what each holds.
    pub ledger: BTreeMap<String, Charge>,
    pub vms: BTreeMap<String, Vm>,
    /// TenantVolumes by name, with the VM each is attached to.
    pub volumes: BTreeMap<String, Option<String>>,
    /// Standalone AddressClaims (not a VM's) by name, with their addresses.
    pub claims: BTreeMap<String, Vec<String>>,
    /// The NetworkZone of each standalone AddressClaim.
    pub claim_zones: BTreeMap<String, String>,
    /// DnsRecords: fully qualified name (no trailing dot) and type.
    pub records: Vec<Record>,
    /// The NetworkZones it may use.
    pub zones: BTreeSet<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vm {
    /// DataVolume (disk) names.
    pub disks: Vec<String>,
    pub addresses: Vec<String>,
    pub running: bool,
    /// The zones of its NICs.
    pub zones: Vec<String>,
    /// Taken over rather than made by pdc (`spec.adopt`): an act neither moves nor
    /// archives such a VM yet, and refuses it up front.
    pub taken_over: Option<TakenOver>,
}

/// How a VM came to pdc without pdc making it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakenOver {
    /// A KubeVirt VirtualMachine another system made, adopted as it runs.
    Adopted,
    /// A record of a VM still running outside the cluster.
    External,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub fqdn: String,
    pub rtype: String,
    /// The VM whose record this is (made by pdc for it), if any.
    pub vm: Option<String>,
}

/// What the act does to one unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Fate {
    Merged { into: String },
    Dissolved { lookups_go_to: Option<String> },
    Renamed { display_name: String, new_name: Option<String> },
}

/// A VM moved to another unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmMove {
    pub vm: String,
    pub to: String,
    /// Its addresses now; claimed again in `to`'s subnets (one restart).
    pub addresses: Vec<String>,
}

/// The disks of a halted VM, kept until `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Archive {
    pub vm: String,
    pub disks: Vec<String>,
    pub until: Day,
}

/// A TenantVolume of a unit that ends, snapshotted and kept until `until` (a
/// dissolved unit's volumes, or those attached to a VM a merge does not keep).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeArchive {
    pub volume: String,
    /// The VM it is attached to: snapshotted once that VM has stopped.
    pub vm: Option<String>,
    pub until: Day,
}

/// An old name answering for a new one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    pub from: String,
    pub to: String,
    /// `CNAME`: one per name pdc serves; `DNAME`: the unit's whole subdomain, where
    /// every one of its names moves to the same name under `to` (the zone writer
    /// uses it in place of those CNAMEs once they all answer and every set below
    /// the old subdomain is pdc's; until then, or where it never is, the CNAMEs).
    pub kind: &'static str,
    pub until: Day,
}

/// Addresses given back, and from when they may be handed out again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub addresses: Vec<String>,
    /// When they are released (the move, or the retention date).
    pub on: Day,
    /// When another unit may get them.
    pub reusable_from: Day,
}

/// A unit's part of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitPlan {
    pub unit: String,
    pub fate: Fate,
    pub vms_moved: Vec<VmMove>,
    pub vms_halted: Vec<String>,
    /// TenantVolumes moved to the successor: restored there from a snapshot, charged
    /// to its quota, the old ones removed once the new ones are ready.
    pub volumes_moved: Vec<String>,
    /// Standalone AddressClaims claimed again in the successor's subnets (same zone).
    pub claims_moved: Vec<String>,
    pub archives: Vec<Archive>,
    pub volumes_archived: Vec<VolumeArchive>,
    /// Record names declared again: old → new.
    pub records_redeclared: Vec<(String, String)>,
    pub releases: Vec<Release>,
    /// Quota the moves add at the successor.
    pub quota_moved: Charge,
}

/// A Department the act creates (a merge's new successor, a rename's new slug).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUnit {
    pub name: String,
    pub display_name: String,
    pub code: String,
    /// The units whose quotas it starts with.
    pub from: Vec<String>,
    pub quota: Charge,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeChange {
    pub unit: String,
    pub old: String,
    pub new: String,
    pub deadline: Day,
}

/// The steps an act is carried out in, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Units Retiring: no new objects; admins become viewers.
    Freeze,
    /// New successors and renamed units' Departments made.
    CreateUnits,
    /// Kept VMs (and their volumes, claims) moved; each restarts once.
    MoveVms,
    /// Other VMs halted; their disks snapshotted with the retention date.
    Archive,
    /// Names declared under the new subdomains; the old ones alias them.
    Redeclare,
    /// Codes reissued on the Departments (old kept in `previousCodes`).
    ReissueCodes,
    /// On the effective date: the units Retired, their namespaces read-only.
    Retire,
    /// After the transition: the aliases removed, the old names reclaimed.
    RemoveAliases,
    /// After the retention period: addresses released (with a cool-down), archives
    /// may go.
    Release,
}

pub const STEPS: [Step; 9] =
    [Step::Freeze, Step::CreateUnits, Step::MoveVms, Step::Archive, Step::Redeclare, Step::ReissueCodes, Step::Retire, Step::RemoveAliases, Step::Release];

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Freeze => "Freeze",
            Step::CreateUnits => "CreateUnits",
            Step::MoveVms => "MoveVMs",
            Step::Archive => "Archive",
            Step::Redeclare => "Redeclare",
            Step::ReissueCodes => "ReissueCodes",
            Step::Retire => "Retire",
            Step::RemoveAliases => "RemoveAliases",
            Step::Release => "Release",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        STEPS.into_iter().find(|x| x.as_str() == s)
    }
}

/// Everything the act comes down to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub effective: Day,
    pub transition_ends: Day,
    pub retention_ends: Day,
    pub units: Vec<UnitPlan>,
    pub new_units: Vec<NewUnit>,
    pub aliases: Vec<Alias>,
    pub codes: Vec<CodeChange>,
    /// Why the act cannot be carried out as written; empty when it can.
    pub refusals: Vec<String>,
}

impl Plan {
    /// Counts per kind of change, for a status summary.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        let sum = |f: &dyn Fn(&UnitPlan) -> usize| self.units.iter().map(f).sum::<usize>();
        BTreeMap::from([
            ("units", self.units.len()),
            ("newUnits", self.new_units.len()),
            ("vmsMoved", sum(&|u| u.vms_moved.len())),
            ("vmsHalted", sum(&|u| u.vms_halted.len())),
            ("archives", sum(&|u| u.archives.len())),
            ("volumesMoved", sum(&|u| u.volumes_moved.len())),
            ("claimsMoved", sum(&|u| u.claims_moved.len())),
            ("volumesArchived", sum(&|u| u.volumes_archived.len())),
            ("recordsRedeclared", sum(&|u| u.records_redeclared.len())),
            ("aliases", self.aliases.len()),
            ("codes", self.codes.len()),
            ("refusals", self.refusals.len()),
        ])
    }

    /// Whether `step` has anything to do in this plan. A step with nothing to do is
    /// recorded done at once.
    pub fn has_work(&self, step: Step) -> bool {
        let any = |f: &dyn Fn(&UnitPlan) -> bool| self.units.iter().any(f);
        match step {
            Step::Freeze | Step::Retire => any(&|u| u.retires()),
            Step::CreateUnits => !self.new_units.is_empty() || any(&|u| matches!(u.fate, Fate::Renamed { .. })),
            Step::MoveVms => any(&|u| !u.vms_moved.is_empty() || !u.volumes_moved.is_empty() || !u.claims_moved.is_empty()),
            Step::Archive => any(&|u| !u.vms_halted.is_empty() || !u.archives.is_empty() || !u.volumes_archived.is_empty()),
            Step::Redeclare => any(&|u| !u.records_redeclared.is_empty()) || !self.aliases.is_empty(),
            Step::ReissueCodes => !self.codes.is_empty(),
            Step::RemoveAliases => !self.aliases.is_empty(),
            Step::Release => any(&|u| !u.releases.is_empty() || !u.volumes_archived.is_empty()),
        }
    }
}

impl UnitPlan {
    /// Whether the unit ends with the act (merged away, dissolved, or renamed to a
    /// new slug): it is frozen first and Retired on the effective date.
    pub fn retires(&self) -> bool {
        match &self.fate {
            Fate::Merged { .. } | Fate::Dissolved { .. } => true,
            Fate::Renamed { new_name, .. } => new_name.is_some(),
        }
    }
}

/// What the planner works out for one merged, dissolved or moved unit, before the
/// successors' checks.
struct Ctx<'a> {
    act: &'a Act,
    estate: &'a Estate,
    effective: Day,
    transition_ends: Day,
    retention_ends: Day,
    refusals: Vec<String>,
}

/// Plan `act` over `estate`. Never fails: what cannot be done is in `refusals`.
pub fn plan(act: &Act, estate: &Estate) -> Plan {
    let effective = Day::parse(&act.effective_date);
    let mut refusals = Vec::new();
    if effective.is_none() {
        refusals.push(format!("effectiveDate {:?} is not a date: write it as YYYY-MM-DD, e.g. 2025-07-01", act.effective_date));
    }
    refusals.extend(check_act(act));
    let effective = effective.unwrap_or(Day(0));
    let mut cx = Ctx {
        act,
        estate,
        effective,
        transition_ends: effective.plus(act.transition_days),
        retention_ends: effective.plus(act.retention_days),
        refusals,
    };
    let mut units = Vec::new();
    let mut new_units = Vec::new();
    let mut aliases = Vec::new();
    for m in &act.merges {
        merge(&mut cx, m, &mut units, &mut new_units, &mut aliases);
    }
    for d in &act.dissolutions {
        dissolve(&mut cx, d, &mut units, &mut aliases);
    }
    for r in &act.renames {
        rename(&mut cx, r, &mut units, &mut new_units, &mut aliases);
    }
    let codes = reissue(&mut cx, &new_units);
    refuse_taken_over(&mut cx, &units);
    aliases.sort();
    Plan {
        effective,
        transition_ends: cx.transition_ends,
        retention_ends: cx.retention_ends,
        units,
        new_units,
        aliases,
        codes,
        refusals: cx.refusals,
    }
}

/// A VM pdc took over (adopted or external) that the act would move or halt and
/// archive: its disks are not named as pdc names them and an external one is not
/// in the cluster at all, so the act is refused with what to do first.
fn refuse_taken_over(cx: &mut Ctx, units: &[UnitPlan]) {
    for p in units {
        let Some(u) = cx.estate.units.get(&p.unit) else { continue };
        for vm in p.vms_moved.iter().map(|m| &m.vm).chain(&p.vms_halted) {
            match u.vms.get(vm).and_then(|v| v.taken_over) {
                Some(TakenOver::Adopted) => cx.refusals.push(format!(
                    "VM {vm} of {} was adopted from a VirtualMachine pdc did not make (spec.adopt): an act does not move or archive it yet; move it by hand before the act (a TenantVM at the successor from a copy of its disks) or delete its TenantVM",
                    p.unit
                )),
                Some(TakenOver::External) => cx.refusals.push(format!(
                    "VM {vm} of {} runs outside the cluster (spec.adopt.external): move it onto KubeVirt first (pdcctl vm import {vm} --from-image <url>) or delete its record before the act",
                    p.unit
                )),
                None => {}
            }
        }
    }
}

/// The rules the API's CEL holds an act to, checked again here so that an act
/// planned offline is refused for the same reasons.
pub fn check_act(act: &Act) -> Vec<String> {
    let mut r = Vec::new();
    let mut merged: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &act.merges {
        for u in &m.units {
            *merged.entry(u.as_str()).or_default() += 1;
        }
    }
    let dissolved: BTreeSet<&str> = act.dissolutions.iter().map(|d| d.unit.as_str()).collect();
    for (u, n) in &merged {
        if *n > 1 {
            r.push(format!("{u} appears in {n} merges: each unit can be merged once per act"));
        }
        if dissolved.contains(u) {
            r.push(format!("{u} is both dissolved and merged: it can only be one"));
        }
    }
    for m in &act.merges {
        if dissolved.contains(m.successor.as_str()) {
            r.push(format!("successor {} is dissolved by the same act: name a successor that survives", m.successor));
        }
        if merged.contains_key(m.successor.as_str()) {
            r.push(format!("successor {} is itself merged away by the same act: merge into the final successor instead", m.successor));
        }
    }
    if dissolved.len() != act.dissolutions.len() {
        r.push("a unit is dissolved twice".into());
    }
    for d in &act.dissolutions {
        if d.lookups_go_to.as_deref().is_some_and(|t| dissolved.contains(t) || merged.contains_key(t)) {
            r.push(format!("{}'s lookupsGoTo {} does not survive the act: point it at a unit that does", d.unit, d.lookups_go_to.as_deref().unwrap_or_default()));
        }
    }
    let renamed: BTreeSet<&str> = act.renames.iter().map(|x| x.unit.as_str()).collect();
    if renamed.len() != act.renames.len() {
        r.push("a unit is renamed twice in one act".into());
    }
    for u in &renamed {
        if dissolved.contains(u) || merged.contains_key(u) {
            r.push(format!("{u} is renamed and also merged away or dissolved: rename the successor instead"));
        }
    }
    let (froms, tos): (BTreeSet<&str>, BTreeSet<&str>) = (act.code_reissues.iter().map(|c| c.from.as_str()).collect(), act.code_reissues.iter().map(|c| c.to.as_str()).collect());
    if froms.len() != act.code_reissues.len() {
        r.push("a code is reissued twice".into());
    }
    if tos.len() != act.code_reissues.len() {
        r.push("two code reissues give the same new code: each new code is issued once".into());
    }
    r
}

impl Ctx<'_> {
    /// The unit, or a refusal saying it does not exist or is already retired.
    fn unit(&mut self, name: &str, role: &str) -> Option<&Unit> {
        match self.estate.units.get(name) {
            None => {
                self.refusals.push(format!("{role} {name} does not exist: no Department of that name"));
                None
            }
            Some(u) if u.lifecycle == Lifecycle::Retired => {
                self.refusals.push(format!("{role} {name} is already Retired"));
                None
            }
            Some(u) => Some(u),
        }
    }

    fn halt_and_archive(&self, u: &Unit, vm: &str, p: &mut UnitPlan) {
        let Some(v) = u.vms.get(vm) else { return };
        p.vms_halted.push(vm.to_string());
        p.archives.push(Archive { vm: vm.to_string(), disks: v.disks.clone(), until: self.retention_ends });
        if !v.addresses.is_empty() {
            p.releases.push(Release {
                addresses: v.addresses.clone(),
                on: self.retention_ends,
                reusable_from: self.retention_ends.plus(self.act.cool_down_days),
            });
        }
    }

    /// A merged unit's TenantVolumes and standalone AddressClaims. A volume attached
    /// to a VM the merge keeps, or to none, moves to the successor (restored there
    /// from a snapshot, charged to its quota); one attached to a VM that is halted is
    /// archived with it. A standalone claim is claimed again in the successor's
    /// subnets, in its zone, which an existing successor must use; its old addresses
    /// are released at the move and held back for the cool-down. `taken`: the
    /// volume and claim names at the successor so far.
    fn carry_data(&mut self, u: &Unit, name: &str, successor: &str, kept: &dyn Fn(&str, &str) -> bool, taken: &mut BTreeMap<String, String>, p: &mut UnitPlan) {
        for (vol, at) in &u.volumes {
            if let Some(vm) = attached_to(u, at.as_deref()).filter(|vm| !kept(name, vm)) {
                p.volumes_archived.push(VolumeArchive { volume: vol.clone(), vm: Some(vm.to_string()), until: self.retention_ends });
                continue;
            }
            if let Some(other) = taken.insert(format!("TenantVolume {vol}"), name.to_string()) {
                self.refusals.push(format!("TenantVolume {vol} of {name} would clash with TenantVolume {vol} of {other} at {successor}: copy one to a volume of another name before the act"));
            }
            p.volumes_moved.push(vol.clone());
            if let Some(c) = u.ledger.get(&format!("volume/{vol}")) {
                add(&mut p.quota_moved, c);
            }
        }
        for (claim, addresses) in &u.claims {
            let zone = u.claim_zones.get(claim);
            if let (Some(s), Some(z)) = (self.estate.units.get(successor), zone)
                && !s.zones.contains(z)
            {
                self.refusals.push(format!("AddressClaim {claim} of {name} is in zone {z}, which successor {successor} does not use: add {z} to its zones before the act"));
            }
            if let Some(other) = taken.insert(format!("AddressClaim {claim}"), name.to_string()) {
                self.refusals.push(format!("AddressClaim {claim} of {name} would clash with AddressClaim {claim} of {other} at {successor}: rename one of them before the act"));
            }
            p.claims_moved.push(claim.clone());
            if !addresses.is_empty() {
                p.releases.push(Release { addresses: addresses.clone(), on: self.effective, reusable_from: self.effective.plus(self.act.cool_down_days) });
            }
        }
    }

    fn move_vm(&self, u: &Unit, vm: &str, to: &str, p: &mut UnitPlan) {
        let Some(v) = u.vms.get(vm) else { return };
        p.vms_moved.push(VmMove { vm: vm.to_string(), to: to.to_string(), addresses: v.addresses.clone() });
        if let Some(c) = u.ledger.get(&format!("vm/{vm}")) {
            add(&mut p.quota_moved, c);
        }
        if !v.addresses.is_empty() {
            p.releases.push(Release { addresses: v.addresses.clone(), on: self.effective, reusable_from: self.effective.plus(self.act.cool_down_days) });
        }
    }
}

/// The VM a volume is attached to, when that VM exists in the unit (a volume naming
/// a VM that does not exist is attached to nothing).
fn attached_to<'a>(u: &Unit, at: Option<&'a str>) -> Option<&'a str> {
    at.filter(|vm| u.vms.contains_key(*vm))
}

fn add(total: &mut Charge, c: &Charge) {
    total.add(c);
}

fn empty_plan(unit: &str, fate: Fate) -> UnitPlan {
    UnitPlan {
        unit: unit.to_string(),
        fate,
        vms_moved: Vec::new(),
        vms_halted: Vec::new(),
        volumes_moved: Vec::new(),
        claims_moved: Vec::new(),
        archives: Vec::new(),
        volumes_archived: Vec::new(),
        records_redeclared: Vec::new(),
        releases: Vec::new(),
        quota_moved: Charge::default(),
    }
}

/// `name` relative to `subdomain` (`www` for `www.x.daklak.gov.vn` under
/// `x.daklak.gov.vn`; empty for the apex), or `None` when it is not under it.
fn relative<'a>(name: &'a str, subdomain: &str) -> Option<&'a str> {
    if name == subdomain {
        return Some("");
    }
    name.strip_suffix(subdomain).and_then(|r| r.strip_suffix('.'))
}

/// The DNAME alias of `u`'s whole subdomain to `to`, when every name the unit serves
/// aliases the same name under `to` (a name left behind, such as a VM that is not
/// kept, rules it out: a DNAME hides every name below its owner). The CNAMEs stay in
/// the plan: they answer until the DNAME can, and wherever it cannot.
fn whole_subdomain(u: &Unit, to: &str, until: Day, aliases: &mut Vec<Alias>) {
    let mut names = u.records.iter().map(|r| r.fqdn.as_str()).peekable();
    if names.peek().is_none() || u.subdomain == to {
        return;
    }
    let follows = |n: &str| relative(n, &u.subdomain).is_some_and(|rel| aliases.iter().any(|a| a.kind == "CNAME" && a.from == n && a.to == under(rel, to)));
    if names.all(follows) {
        aliases.push(Alias { from: u.subdomain.clone(), to: to.to_string(), kind: "DNAME", until });
    }
}

fn under(rel: &str, subdomain: &str) -> String {
    if rel.is_empty() { subdomain.to_string() } else { format!("{rel}.{subdomain}") }
}

/// The successor's subdomain: its own, or `<name>.<domain of the first unit>` when
/// the act creates it.
fn successor_subdomain(estate: &Estate, successor: &str, units: &[String]) -> String {
    if let Some(s) = estate.units.get(successor) {
        return s.subdomain.clone();
    }
    let domain = units
        .iter()
        .filter_map(|u| estate.units.get(u))
        .find_map(|u| u.subdomain.split_once('.').map(|(_, d)| d.to_string()))
        .unwrap_or_default();
    format!("{successor}.{domain}")
}

fn merge(cx: &mut Ctx, m: &Merge, out: &mut Vec<UnitPlan>, new_units: &mut Vec<NewUnit>, aliases: &mut Vec<Alias>) {
    let succ_sub = successor_subdomain(cx.estate, &m.successor, &m.units);
    let mut limits = match cx.estate.units.get(&m.successor) {
        Some(s) if s.lifecycle != Lifecycle::Active => {
            cx.refusals.push(format!("successor {} is {:?}: merge into a unit that stays Active", m.successor, s.lifecycle));
            return;
        }
        Some(s) => Some((s.quota.clone(), s.ledger.clone())),
        None => None,
    };
    if limits.is_none() {
        match (&m.successor_display_name, &m.successor_code) {
            (Some(display), Some(code)) => {
                let mut q = Charge::default();
                for u in m.units.iter().filter_map(|u| cx.estate.units.get(u)) {
                    add(&mut q, &u.quota);
                }
                new_units.push(NewUnit { name: m.successor.clone(), display_name: display.clone(), code: code.clone(), from: m.units.clone(), quota: q.clone() });
                limits = Some((q, BTreeMap::new()));
            }
            _ => cx.refusals.push(format!(
                "successor {} does not exist: create that Department first, or give successorDisplayName and successorCode so the act creates it",
                m.successor
            )),
        }
    }
    for k in &m.keep {
        let (unit, vm) = k.split_once('/').unwrap_or((k.as_str(), "*"));
        if !m.units.iter().any(|u| u == unit) {
            cx.refusals.push(format!("keep {k}: {unit} is not one of the merged units {}", m.units.join(", ")));
        } else if vm != "*" && cx.estate.units.get(unit).is_some_and(|u| !u.vms.contains_key(vm)) {
            cx.refusals.push(format!("keep {k}: {unit} has no VM named {vm}"));
        }
    }
    let kept = |unit: &str, vm: &str| m.keep.iter().any(|k| k == &format!("{unit}/{vm}") || k == &format!("{unit}/*"));
    // Names taken at the successor: its VMs and record names, then each move's.
    let mut vm_names: BTreeMap<String, String> =
        cx.estate.units.get(&m.successor).map(|s| s.vms.keys().map(|v| (v.clone(), m.successor.clone())).collect()).unwrap_or_default();
    let mut names: BTreeMap<String, String> =
        cx.estate.units.get(&m.successor).map(|s| s.records.iter().map(|r| (format!("{} {}", r.fqdn, r.rtype), m.successor.clone())).collect()).unwrap_or_default();
    let mut data_names: BTreeMap<String, String> = cx
        .estate
        .units
        .get(&m.successor)
        .map(|s| s.volumes.keys().map(|v| format!("TenantVolume {v}")).chain(s.claims.keys().map(|c| format!("AddressClaim {c}"))).map(|k| (k, m.successor.clone())).collect())
        .unwrap_or_default();
    let mut moved = Charge::default();
    for name in &m.units {
        let Some(u) = cx.unit(name, "merged unit").cloned() else { continue };
        let mut p = empty_plan(name, Fate::Merged { into: m.successor.clone() });
        for vm in u.vms.keys() {
            if kept(name, vm) {
                // A moved VM claims its addresses again in the successor's subnets:
                // an existing successor must use every zone of its NICs.
                if let Some(s) = cx.estate.units.get(&m.successor) {
                    for z in u.vms.get(vm).map(|v| v.zones.as_slice()).unwrap_or_default().iter().filter(|z| !s.zones.contains(*z)) {
                        cx.refusals.push(format!("VM {vm} of {name} has a NIC in zone {z}, which successor {} does not use: add {z} to its zones before the act", m.successor));
                    }
                }
                if let Some(other) = vm_names.insert(vm.clone(), name.clone()) {
                    cx.refusals.push(format!("VM {vm} of {name} would clash with VM {vm} of {other} at {}: rename one of them before the act", m.successor));
                }
                cx.move_vm(&u, vm, &m.successor, &mut p);
            } else {
                cx.halt_and_archive(&u, vm, &mut p);
            }
        }
        cx.carry_data(&u, name, &m.successor, &kept, &mut data_names, &mut p);
        // The unit's portal (its apex): the successor keeps the first merged unit's
        // when it has none of its own; every other apex aliases the successor's.
        let apex_moves = !names.keys().any(|k| k.split(' ').next() == Some(succ_sub.as_str()));
        for r in &u.records {
            let moves = r.vm.as_deref().is_none_or(|vm| kept(name, vm));
            let Some(rel) = relative(&r.fqdn, &u.subdomain).filter(|_| moves) else { continue };
            if rel.is_empty() && !apex_moves {
                let alias = Alias { from: r.fqdn.clone(), to: succ_sub.clone(), kind: "CNAME", until: cx.transition_ends };
                if !aliases.contains(&alias) {
                    aliases.push(alias);
                }
                continue;
            }
            let new = under(rel, &succ_sub);
            if let Some(other) = names.insert(format!("{new} {}", r.rtype), name.clone()) {
                cx.refusals.push(format!("{} {} of {name} would clash with {new} {} of {other}: rename one of them before the act", r.fqdn, r.rtype, r.rtype));
            }
            p.records_redeclared.push((r.fqdn.clone(), new.clone()));
            let alias = Alias { from: r.fqdn.clone(), to: new, kind: "CNAME", until: cx.transition_ends };
            if !aliases.contains(&alias) {
                aliases.push(alias);
            }
        }
        whole_subdomain(&u, &succ_sub, cx.transition_ends, aliases);
        add(&mut moved, &p.quota_moved);
        out.push(p);
    }
    if let Some((limit, ledger)) = limits
        && let Err(over) = quota::admit(&limit, &ledger, "reorganization", &moved)
    {
        cx.refusals.push(format!("successor {}'s quota is too small for what moves to it: {}; raise its quota first", m.successor, over.join("; ")));
    }
}

fn dissolve(cx: &mut Ctx, d: &Dissolution, out: &mut Vec<UnitPlan>, aliases: &mut Vec<Alias>) {
    let Some(u) = cx.unit(&d.unit, "dissolved unit").cloned() else { return };
    let target = match &d.lookups_go_to {
        Some(t) => cx.unit(t, "lookupsGoTo").map(|t| t.subdomain.clone()),
        None => None,
    };
    let mut p = empty_plan(&d.unit, Fate::Dissolved { lookups_go_to: d.lookups_go_to.clone() });
    for vm in u.vms.keys() {
        cx.halt_and_archive(&u, vm, &mut p);
    }
    // Every volume is snapshotted and kept until the retention date (one attached
    // to a VM once that VM has stopped).
    for (vol, at) in &u.volumes {
        p.volumes_archived.push(VolumeArchive { volume: vol.clone(), vm: attached_to(&u, at.as_deref()).map(str::to_string), until: cx.retention_ends });
    }
    for addresses in u.claims.values() {
        p.releases.push(Release { addresses: addresses.clone(), on: cx.retention_ends, reusable_from: cx.retention_ends.plus(cx.act.cool_down_days) });
    }
    if let Some(t) = target {
        let names: BTreeSet<&str> = u.records.iter().map(|r| r.fqdn.as_str()).collect();
        for n in names {
            aliases.push(Alias { from: n.to_string(), to: t.clone(), kind: "CNAME", until: cx.transition_ends });
        }
    }
    out.push(p);
}

fn rename(cx: &mut Ctx, r: &Rename, out: &mut Vec<UnitPlan>, new_units: &mut Vec<NewUnit>, aliases: &mut Vec<Alias>) {
    let Some(u) = cx.unit(&r.unit, "renamed unit").cloned() else { return };
    let mut p = empty_plan(&r.unit, Fate::Renamed { display_name: r.display_name.clone(), new_name: r.new_name.clone() });
    if let Some(new) = &r.new_name {
        if cx.estate.units.contains_key(new) || new_units.iter().any(|n| &n.name == new) {
            cx.refusals.push(format!("rename of {} to {new}: a Department {new} already exists; choose another name", r.unit));
        }
        let domain = u.subdomain.split_once('.').map(|(_, d)| d.to_string()).unwrap_or_default();
        let new_sub = format!("{new}.{domain}");
        new_units.push(NewUnit { name: new.clone(), display_name: r.display_name.clone(), code: u.code.clone(), from: vec![r.unit.clone()], quota: u.quota.clone() });
        for vm in u.vms.keys() {
            cx.move_vm(&u, vm, new, &mut p);
        }
        p.volumes_moved = u.volumes.keys().cloned().collect();
        p.claims_moved = u.claims.keys().cloned().collect();
        for addresses in u.claims.values().filter(|a| !a.is_empty()) {
            p.releases.push(Release { addresses: addresses.clone(), on: cx.effective, reusable_from: cx.effective.plus(cx.act.cool_down_days) });
        }
        // Each name pdc serves under the old subdomain answers as a CNAME of its new
        // name, and the whole subdomain as a DNAME of the new one once that is safe
        // (see `whole_subdomain`).
        for rec in &u.records {
            if let Some(rel) = relative(&rec.fqdn, &u.subdomain) {
                let new = under(rel, &new_sub);
                p.records_redeclared.push((rec.fqdn.clone(), new.clone()));
                let alias = Alias { from: rec.fqdn.clone(), to: new, kind: "CNAME", until: cx.transition_ends };
                if !aliases.contains(&alias) {
                    aliases.push(alias);
                }
            }
        }
        whole_subdomain(&u, &new_sub, cx.transition_ends, aliases);
    }
    out.push(p);
}

fn reissue(cx: &mut Ctx, new_units: &[NewUnit]) -> Vec<CodeChange> {
    let mut changes = Vec::new();
    let taken: BTreeMap<&str, &str> =
        cx.estate.units.iter().map(|(n, u)| (u.code.as_str(), n.as_str())).chain(new_units.iter().map(|n| (n.code.as_str(), n.name.as_str()))).collect();
    for c in &cx.act.code_reissues {
        let Some(deadline) = Day::parse(&c.deadline) else {
            cx.refusals.push(format!("code reissue {} → {}: deadline {:?} is not a date (YYYY-MM-DD)", c.from, c.to, c.deadline));
            continue;
        };
        let mut any = false;
        for (name, u) in &cx.estate.units {
            let Some(rest) = u.code.strip_prefix(&c.from).filter(|r| r.is_empty() || r.starts_with('.')) else { continue };
            any = true;
            let new = format!("{}{rest}", c.to);
            if !crate::code::is_identifier_code(&new) {
                cx.refusals.push(format!("{name}'s code {} would become {new}, which is not an identifier code (at most four groups after the prefix)", u.code));
            } else if let Some(holder) = taken.get(new.as_str()).filter(|h| **h != name.as_str()) {
                cx.refusals.push(format!("{name}'s code {} would become {new}, which {holder} already holds: codes are never reused", u.code));
            } else {
                changes.push(CodeChange { unit: name.clone(), old: u.code.clone(), new, deadline });
            }
        }
        if !any {
            cx.refusals.push(format!("code reissue {} → {}: no unit holds {} or a code under it", c.from, c.to, c.from));
        }
    }
    changes
}

/// What the runner does next with a recorded timeline: the first step not done,
/// unless it must wait for a date. Steps after the effective date wait for it; the
/// aliases' removal waits for the transition's end, the release for the retention's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Run(Step),
    WaitUntil(Step, Day),
    Done,
}

pub fn next_step(done: &BTreeSet<Step>, today: Day, plan: &Plan) -> Next {
    for s in STEPS {
        if done.contains(&s) {
            continue;
        }
        let not_before = match s {
            Step::Retire => Some(plan.effective),
            Step::RemoveAliases => Some(plan.transition_ends),
            Step::Release => Some(plan.retention_ends),
            _ => None,
        };
        return match not_before {
            Some(d) if today < d => Next::WaitUntil(s, d),
            _ => Next::Run(s),
        };
    }
    Next::Done
}

#[cfg(test)]
mod tests;
