use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// CEL: a Department name (its slug).
const UNIT_RULE: &str = "self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')";
const UNIT_MESSAGE: &str = "must be a Department name (its slug) such as xa-hoa-phu";
/// CEL: an identifier code or prefix (`H45`, `H15.23`).
const CODE_RULE: &str = "self.matches('^[A-Z][0-9]{2}(\\\\.[0-9]{1,3}){0,4}$')";
const CODE_MESSAGE: &str = "must be an identifier code or prefix such as H45 or H15.23";
/// CEL: a calendar date.
const DATE_RULE: &str = "self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$')";

/// One legal act of the province's reorganization (a resolution or decision):
/// units merged into a successor, units dissolved, units renamed, identifier codes
/// reissued. `pdcctl reorg plan -f act.yaml` shows every change it comes down to,
/// offline or against the cluster; the operator carries it out as resumable steps
/// once `action: Apply` is set with a new `actionToken`.
///
/// What the API refuses here (a unit in two merges, a successor that is dissolved or
/// merged away, a code reissued twice); what needs the estate (a successor's quota
/// too small, a name clash under the successor's subdomain, a unit that does not
/// exist) the plan refuses with the reason.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "Reorganization",
    plural = "reorganizations",
    shortname = "reorg",
    status = "ReorganizationStatus",
    printcolumn(name = "Reference", type_ = "string", json_path = ".spec.reference"),
    printcolumn(name = "Effective", type_ = "string", json_path = ".spec.effectiveDate"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Step", type_ = "string", json_path = ".status.currentStep"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.spec.merges.all(m, self.spec.merges.filter(o, o.units.exists(u, u in m.units)).size() == 1)").message("a unit appears in two merges: each unit can be merged once per act"),
    validation = Rule::new("self.spec.merges.all(m, !self.spec.dissolutions.exists(d, d.unit == m.successor))").message("a merge's successor is dissolved by the same act: name a successor that survives"),
    validation = Rule::new("self.spec.merges.all(m, !self.spec.merges.exists(o, m.successor in o.units))").message("a merge's successor is itself merged away by the same act: merge into the final successor instead"),
    validation = Rule::new("self.spec.dissolutions.all(d, !self.spec.merges.exists(m, d.unit in m.units))").message("a unit is both dissolved and merged: it can only be one"),
    validation = Rule::new("self.spec.dissolutions.all(d, self.spec.dissolutions.filter(o, o.unit == d.unit).size() == 1)").message("a unit is dissolved twice"),
    validation = Rule::new("self.spec.dissolutions.all(d, !has(d.lookupsGoTo) || !self.spec.dissolutions.exists(o, o.unit == d.lookupsGoTo))").message("a dissolution's lookupsGoTo is dissolved by the same act: point it at a unit that survives"),
    validation = Rule::new("self.spec.renames.all(r, self.spec.renames.filter(o, o.unit == r.unit).size() == 1)").message("a unit is renamed twice in one act"),
    validation = Rule::new("self.spec.renames.all(r, !self.spec.dissolutions.exists(d, d.unit == r.unit) && !self.spec.merges.exists(m, r.unit in m.units))").message("a renamed unit is also merged away or dissolved: rename the successor instead"),
    validation = Rule::new("self.spec.codeReissues.all(c, self.spec.codeReissues.filter(o, o.to == c.to).size() == 1)").message("two code reissues give the same new code: each new code is issued once"),
    validation = Rule::new("self.spec.codeReissues.all(c, self.spec.codeReissues.filter(o, o.from == c.from).size() == 1)").message("a code is reissued twice"),
    validation = Rule::new("self.spec.action == 'None' || (has(self.spec.actionToken) && size(self.spec.actionToken) > 0)").message("action Apply needs an actionToken (any new value applies the act once; pdcctl reorg apply writes the time)")
)]
#[serde(rename_all = "camelCase")]
pub struct ReorganizationSpec {
    /// The act, e.g. `Nghị quyết 202/2025/QH15` or `Quyết định 1234/QĐ-UBND`.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 200").message("reference must be 1 to 200 characters"))]
    #[schemars(length(max = 200))]
    pub reference: String,
    /// The date the act takes effect, `YYYY-MM-DD`: until then the merged and
    /// dissolved units are Retiring (what runs keeps running), from then Retired.
    #[x_kube(validation = Rule::new(DATE_RULE).message("effectiveDate must be a date such as 2025-07-01"))]
    #[schemars(length(max = 10))]
    pub effective_date: String,
    /// Units merged into a successor (at most 16 merges of 32 units per act: split a
    /// larger reorganization into several acts).
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub merges: Vec<Merge>,
    /// Units dissolved: their VMs halted, disks archived, names kept answering for
    /// the transition, addresses released after the retention period.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub dissolutions: Vec<Dissolution>,
    /// Units renamed (display name; slug and subdomain when `newName` is given).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub renames: Vec<Rename>,
    /// Identifier codes (or whole prefixes) closed and reissued.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub code_reissues: Vec<CodeReissue>,
    /// Days the old names keep answering (as aliases of the new ones).
    #[serde(default = "default_transition")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 3650").message("transitionDays must be between 0 and 3650"))]
    pub transition_days: i32,
    /// Days archives (disk snapshots of halted VMs) are kept, and addresses of
    /// retired units held, before they are released.
    #[serde(default = "default_retention")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 36500").message("retentionDays must be between 1 and 36500"))]
    pub retention_days: i32,
    /// Days a released address is held back before it can be handed to another unit.
    #[serde(default = "default_cool_down")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 365").message("coolDownDays must be between 0 and 365"))]
    pub cool_down_days: i32,
    /// `None` or `Apply`: carried out once per `actionToken`.
    #[serde(default)]
    pub action: ReorgAction,
    /// Any new value applies the act once (steps already done are not repeated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub action_token: Option<String>,
    /// Plan into `status.steps` without carrying anything out.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_transition() -> i32 {
    180
}
fn default_retention() -> i32 {
    3650
}
fn default_cool_down() -> i32 {
    30
}

/// Units merged into one successor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Merge {
    /// The Departments merged away, e.g. `[xa-hoa-phu, xa-hoa-xuan]`.
    #[x_kube(validation = Rule::new("size(self) > 0 && self.all(u, u.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'))").message("units must be Department names (slugs) such as xa-hoa-phu, at least one"))]
    #[schemars(length(max = 32), inner(length(max = 63)))]
    pub units: Vec<String>,
    /// The Department that takes them over (it exists, or is made by the act from
    /// `successorDisplayName` and `successorCode`).
    #[x_kube(validation = Rule::new(UNIT_RULE).message(UNIT_MESSAGE))]
    #[schemars(length(max = 63))]
    pub successor: String,
    /// The successor's display name when the act creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub successor_display_name: Option<String>,
    /// The successor's code when the act creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(CODE_RULE).message(CODE_MESSAGE))]
    #[schemars(length(max = 32))]
    pub successor_code: Option<String>,
    /// Which of the units' systems the successor keeps: `unit/vm`, or `unit/*` for
    /// all of a unit's VMs. The others are halted and their disks archived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?|[*])$'))").message("keep entries must be unit/vm or unit/*, e.g. xa-hoa-phu/portal"))]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub keep: Vec<String>,
}

/// A unit dissolved.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Dissolution {
    /// The Department dissolved.
    #[x_kube(validation = Rule::new(UNIT_RULE).message(UNIT_MESSAGE))]
    #[schemars(length(max = 63))]
    pub unit: String,
    /// The unit whose names the dissolved unit's names alias to during the
    /// transition ("another access path for lookups"); without it the old names
    /// keep their records until the transition ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(UNIT_RULE).message(UNIT_MESSAGE))]
    #[schemars(length(max = 63))]
    pub lookups_go_to: Option<String>,
}

/// A unit renamed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rename {
    /// The Department renamed.
    #[x_kube(validation = Rule::new(UNIT_RULE).message(UNIT_MESSAGE))]
    #[schemars(length(max = 63))]
    pub unit: String,
    /// The new official name.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 200").message("displayName must be 1 to 200 characters"))]
    #[schemars(length(max = 200))]
    pub display_name: String,
    /// A new slug: the unit moves to a Department (namespace, subdomain) of that name,
    /// and its old subdomain aliases to the new one (DNAME) for the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(UNIT_RULE).message(UNIT_MESSAGE))]
    #[schemars(length(max = 63))]
    pub new_name: Option<String>,
}

/// Codes closed and reissued: `from` is a whole code or a prefix (`H45` reissues
/// every `H45.…` code under `to`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CodeReissue {
    /// The code or prefix closed, e.g. `H45`.
    #[x_kube(validation = Rule::new(CODE_RULE).message(CODE_MESSAGE))]
    #[schemars(length(max = 32))]
    pub from: String,
    /// What replaces it, e.g. `H15.300` (`H45.12` becomes `H15.300.12`).
    #[x_kube(validation = Rule::new(CODE_RULE).message(CODE_MESSAGE))]
    #[schemars(length(max = 32))]
    pub to: String,
    /// The date by which the old codes must be out of use (an alert fires after).
    #[x_kube(validation = Rule::new(DATE_RULE).message("deadline must be a date such as 2025-08-01"))]
    #[schemars(length(max = 10))]
    pub deadline: String,
}

/// What to do with the act.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReorgAction {
    #[default]
    None,
    Apply,
}

/// One step of the act, as carried out.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReorgStepStatus {
    /// `Freeze`, `MoveVMs`, `Archive`, `Redeclare`, `ReissueCodes`, `Retire`,
    /// `RemoveAliases`, `Release`.
    pub name: String,
    /// `Pending`, `Running`, `Waiting` (until a date), `Done`, `Failed` or `Planned`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// What the step did or waits for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What the operator made of the act.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReorganizationStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Planned` (the plan holds), `Refused` (it does not: see the message).
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// `Planned`, `Refused`, `Applying`, `InTransition`, `Retained`, `Done`, `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The step being carried out or waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// The `actionToken` last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The steps in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<ReorgStepStatus>,
    /// Summary of the plan: changes per kind (`vmsMoved`, `vmsHalted`, `aliases`, …).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub summary: std::collections::BTreeMap<String, i64>,
    /// Why the plan was refused, one reason a line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<String>,
}
