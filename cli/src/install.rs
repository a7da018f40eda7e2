//! `pdcctl install crds`: pdc's CustomResourceDefinitions as this pdcctl was built
//! with them (the same types generate the chart's `crds/`), server-side applied.
//! Helm installs a chart's `crds/` on the first install only and never upgrades
//! them, so an upgrade runs this first, then `helm upgrade`.
//!
//! Each CRD is applied with field manager `pdcctl`, forcing conflicts. A server-side
//! apply removes only the fields its own manager set before, so a CRD that another
//! installer wrote (`helm install`, `kubectl apply`) would keep a field a newer pdc
//! dropped: pdcctl first takes over the spec fields other managers hold, then
//! applies. The outcome per CRD (created, updated, unchanged) is read from what
//! the API server returns, and `--dry-run` asks the server the same questions
//! without it storing anything.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::output::{Listing, Row};
use crate::wait::{Deadline, parse_duration};
use crate::{Cli, CliError, client, connect};

/// The field manager of every write pdcctl makes here.
const MANAGER: &str = "pdcctl";
/// What installing the CRDs needs on customresourcedefinitions: reading them,
/// creating the missing ones, applying (patch) and the dry run of a takeover (update).
const VERBS: [&str; 4] = ["get", "create", "patch", "update"];

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create or upgrade pdc's CRDs to this pdcctl's version (server-side apply,
    /// field manager pdcctl, conflicts forced). Run it before `helm upgrade`, as a
    /// cluster administrator.
    Crds(CrdsArgs),
}

#[derive(clap::Args, Debug)]
pub struct CrdsArgs {
    /// Ask the API server what would change (server dry run) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for the created and updated CRDs to be Established (e.g. 60
    /// or 1m; 0 waits without limit); then exit 4.
    #[arg(long, value_parser = parse_duration, default_value = "1m", value_name = "DURATION")]
    timeout: Duration,
}

/// What applying one CRD did (or, in a dry run, would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        }
    }
}

/// One CRD's line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub name: String,
    pub change: Change,
    /// The versions the CRD serves after the apply.
    pub versions: Vec<String>,
    /// The other field managers whose spec fields pdcctl took over.
    pub taken_over_from: Vec<String>,
    pub dry_run: bool,
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    match cmd {
        Cmd::Crds(args) => {
            let c = client(cli).await?;
            check_rights(&c).await?;
            let api: Api<CustomResourceDefinition> = Api::all(c);
            let crds = pdc_api::all_crds();
            let mut report = Vec::with_capacity(crds.len());
            for crd in &crds {
                let done = report.len();
                let applied = apply(&api, crd, args.dry_run).await.map_err(|e| {
                    let name = crd.name_any();
                    CliError::Refused(format!("applying CRD {name}: {} ({done} of {} CRDs applied before it)", connect::describe(&e), crds.len()))
                })?;
                report.push(applied);
            }
            if !args.dry_run {
                wait_established(&api, &report, Deadline::start(args.timeout)).await?;
            }
            cli.output().list(&listing(&report), &report)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The report as a table: each CRD, what changed, the versions it serves; `-o wide`
/// adds whose fields were taken over.
fn listing(report: &[Applied]) -> Listing {
    Listing::objects(&["CRD", "CHANGE", "VERSIONS"]).wide(&["TAKEN OVER FROM"]).rows(report.iter().map(|a| {
        let change = if a.dry_run { format!("{} (server dry run)", a.change.as_str()) } else { a.change.as_str().to_string() };
        let from = if a.taken_over_from.is_empty() { "-".to_string() } else { a.taken_over_from.join(",") };
        Row::object::<CustomResourceDefinition>(&a.name, vec![a.name.clone(), change, a.versions.join(",")]).wide(vec![from])
    }))
}

/// Refuse before changing anything when the user may not do what installing the
/// CRDs needs (the API server's own answer, by SelfSubjectAccessReview).
async fn check_rights(client: &Client) -> Result<(), CliError> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut denied = Vec::new();
    for verb in VERBS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some("apiextensions.k8s.io".into()),
                    resource: Some("customresourcedefinitions".into()),
                    verb: Some(verb.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = reviews.create(&PostParams::default(), &review).await?;
        if !answer.status.is_some_and(|s| s.allowed) {
            denied.push(verb);
        }
    }
    if denied.is_empty() {
        return Ok(());
    }
    let who = whoami(client).await.map(|u| format!("user {u}")).unwrap_or_else(|| "the kubeconfig's user".into());
    Err(CliError::Refused(format!(
        "{who} may not {} customresourcedefinitions.apiextensions.k8s.io, which installing pdc's CRDs needs ({}); nothing was changed. \
         Run it as a cluster administrator (e.g. bound to ClusterRole cluster-admin), as helm install is",
        denied.join(", "),
        VERBS.join(", ")
    )))
}

/// The user name the API server sees (SelfSubjectReview), if it says.
async fn whoami(client: &Client) -> Option<String> {
    let review = Api::<SelfSubjectReview>::all(client.clone()).create(&PostParams::default(), &SelfSubjectReview::default()).await.ok()?;
    review.status?.user_info?.username
}

/// Apply one CRD (or ask the server what applying it would do) and say what changed.
async fn apply(api: &Api<CustomResourceDefinition>, crd: &CustomResourceDefinition, dry_run: bool) -> Result<Applied, kube::Error> {
    let name = crd.name_any();
    let before = api.get_opt(&name).await?;
    let mut params = PatchParams::apply(MANAGER).force();
    params.dry_run = dry_run;
    let takeover = before.as_ref().and_then(|b| take_over(b.metadata.managed_fields.as_deref().unwrap_or_default()));
    let after = match (&before, &takeover) {
        (Some(live), Some(_)) if dry_run => {
            // The takeover is not stored in a dry run, so the apply after it cannot
            // be asked; its outcome is the spec replaced by ours, which a dry-run
            // replace shows with the server's defaults.
            let mut replaced = live.clone();
            replaced.spec = crd.spec.clone();
            api.replace(&name, &PostParams { dry_run: true, field_manager: Some(MANAGER.into()) }, &replaced).await?
        }
        (Some(live), Some(t)) => {
            // The live resourceVersion makes the patch fail rather than take over
            // fields someone changed meanwhile.
            let patch = json!({"metadata": {"resourceVersion": live.resource_version(), "managedFields": t.entries}});
            api.patch(&name, &PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() }, &Patch::Merge(&patch)).await?;
            api.patch(&name, &params, &Patch::Apply(crd)).await?
        }
        _ => api.patch(&name, &params, &Patch::Apply(crd)).await?,
    };
    let change = match &before {
        None => Change::Created,
        Some(b) if spec_of(b) == spec_of(&after) => Change::Unchanged,
        Some(_) => Change::Updated,
    };
    Ok(Applied {
        name,
        change,
        versions: after.spec.versions.iter().filter(|v| v.served).map(|v| v.name.clone()).collect(),
        taken_over_from: takeover.map(|t| t.from).unwrap_or_default(),
        dry_run,
    })
}

fn spec_of(crd: &CustomResourceDefinition) -> Value {
    serde_json::to_value(&crd.spec).unwrap_or(Value::Null)
}

/// The managed fields of a CRD after pdcctl takes over the spec fields other
/// managers hold, and whose they were.
#[derive(Debug, Clone, PartialEq)]
pub struct Takeover {
    pub entries: Vec<ManagedFieldsEntry>,
    pub from: Vec<String>,
}

/// pdcctl's apply entry made to hold every spec field of the main resource (the
/// union of the managers' field sets under `f:spec`), those fields removed from the
/// other entries and entries left with no fields dropped; subresource entries (the
/// API server's status) kept as they are. `None` when no other manager holds a spec
/// field, so there is nothing to take over.
pub fn take_over(entries: &[ManagedFieldsEntry]) -> Option<Takeover> {
    let ours = |e: &ManagedFieldsEntry| e.manager.as_deref() == Some(MANAGER) && e.operation.as_deref() == Some("Apply");
    let main = |e: &ManagedFieldsEntry| e.subresource.as_deref().unwrap_or_default().is_empty();
    let mut fields = entries.iter().find(|e| ours(e) && main(e)).and_then(|e| e.fields_v1.as_ref()).map(|f| f.0.clone()).unwrap_or_else(|| json!({}));
    let mut kept = Vec::new();
    let mut from = Vec::new();
    for e in entries {
        if ours(e) && main(e) {
            continue;
        }
        let mut rest = e.fields_v1.as_ref().map(|f| f.0.clone()).unwrap_or_else(|| json!({}));
        let spec = if main(e) { rest.as_object_mut().and_then(|m| m.remove("f:spec")) } else { None };
        let Some(spec) = spec else {
            kept.push(e.clone());
            continue;
        };
        merge_fields(&mut fields, &json!({"f:spec": spec}));
        from.push(e.manager.clone().unwrap_or_else(|| "(unnamed)".into()));
        if rest.as_object().is_some_and(|m| !m.is_empty()) {
            kept.push(ManagedFieldsEntry { fields_v1: Some(FieldsV1(rest)), ..e.clone() });
        }
    }
    if from.is_empty() {
        return None;
    }
    from.sort();
    from.dedup();
    let entry = ManagedFieldsEntry {
        manager: Some(MANAGER.into()),
        operation: Some("Apply".into()),
        api_version: Some("apiextensions.k8s.io/v1".into()),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(FieldsV1(fields)),
        time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
        subresource: None,
    };
    Some(Takeover { entries: std::iter::once(entry).chain(kept).collect(), from })
}

/// Add the field set `more` to `into` (FieldsV1 is a tree of maps; the union of two
/// sets is the union of their trees).
fn merge_fields(into: &mut Value, more: &Value) {
    match (into.as_object_mut(), more.as_object()) {
        (Some(a), Some(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => merge_fields(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *into = more.clone(),
    }
}

/// Wait until every CRD created or updated is Established (its kind served), so a
/// `helm upgrade` or `kubectl apply` right after finds the kinds.
async fn wait_established(api: &Api<CustomResourceDefinition>, report: &[Applied], deadline: Deadline) -> Result<(), CliError> {
    for a in report.iter().filter(|a| a.change != Change::Unchanged) {
        loop {
            let crd = api.get(&a.name).await?;
            let established = crd.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            deadline.check(|| format!("CRD {} is not Established yet (kubectl get crd {} -o yaml shows why)", a.name, a.name))?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, Output};

    fn entry(manager: &str, operation: &str, subresource: Option<&str>, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            api_version: Some("apiextensions.k8s.io/v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            time: None,
            subresource: subresource.map(str::to_string),
        }
    }

    fn status_entry() -> ManagedFieldsEntry {
        entry("kube-apiserver", "Update", Some("status"), json!({"f:status": {"f:acceptedNames": {}, "f:conditions": {}}}))
    }

    #[test]
    fn the_spec_fields_of_every_other_manager_become_pdcctls_and_the_rest_stays_theirs() {
        let helm = entry("helm", "Update", None, json!({"f:metadata": {"f:labels": {".": {}, "f:team": {}}}, "f:spec": {"f:group": {}, "f:versions": {}}}));
        let kubectl = entry("kubectl", "Apply", None, json!({"f:spec": {"f:names": {"f:kind": {}}}}));
        let ours = entry(MANAGER, "Apply", None, json!({"f:spec": {"f:group": {}, "f:scope": {}}}));
        let t = take_over(&[helm, status_entry(), kubectl, ours]).unwrap();
        assert_eq!(t.from, ["helm", "kubectl"]);
        assert_eq!(t.entries.len(), 3, "pdcctl's, helm's labels, the status: {:?}", t.entries);
        let mine = &t.entries[0];
        assert_eq!((mine.manager.as_deref(), mine.operation.as_deref(), mine.subresource.as_deref()), (Some(MANAGER), Some("Apply"), None));
        assert_eq!(mine.fields_v1.as_ref().unwrap().0, json!({"f:spec": {"f:group": {}, "f:scope": {}, "f:versions": {}, "f:names": {"f:kind": {}}}}));
        // Helm keeps its labels (metadata is not taken over); kubectl, left with
        // nothing, is gone; the server's status entry is untouched.
        assert_eq!(t.entries[1].manager.as_deref(), Some("helm"));
        assert_eq!(t.entries[1].fields_v1.as_ref().unwrap().0, json!({"f:metadata": {"f:labels": {".": {}, "f:team": {}}}}));
        assert_eq!(t.entries[2], status_entry());
    }

    #[test]
    fn nothing_to_take_over_when_pdcctl_alone_holds_the_spec() {
        let ours = entry(MANAGER, "Apply", None, json!({"f:spec": {"f:group": {}}}));
        let labels = entry("someone", "Update", None, json!({"f:metadata": {"f:labels": {"f:x": {}}}}));
        assert_eq!(take_over(&[ours.clone(), status_entry(), labels]), None);
        assert_eq!(take_over(&[]), None);
        // pdcctl's own non-apply writes (the takeover patch) hold no spec fields.
        assert_eq!(take_over(&[ours, entry(MANAGER, "Update", None, json!({"f:metadata": {}}))]), None);
    }

    #[test]
    fn a_manager_without_an_apply_entry_of_pdcctl_hands_over_to_a_new_one() {
        let t = take_over(&[entry("pdc-tests", "Apply", None, json!({"f:spec": {"f:group": {}}}))]).unwrap();
        assert_eq!(t.from, ["pdc-tests"]);
        assert_eq!(t.entries.len(), 1);
        assert_eq!(t.entries[0].fields_v1.as_ref().unwrap().0, json!({"f:spec": {"f:group": {}}}));
    }

    #[test]
    fn the_report_says_what_changed_per_crd_and_marks_a_dry_run() {
        let report = vec![
            Applied { name: "sites.pdc.io".into(), change: Change::Updated, versions: vec!["v1alpha1".into()], taken_over_from: vec!["helm".into()], dry_run: true },
            Applied { name: "dnszones.pdc.io".into(), change: Change::Unchanged, versions: vec!["v1alpha1".into()], taken_over_from: vec![], dry_run: true },
        ];
        let out = |format| Output { format, headers: true }.render(&listing(&report)).unwrap();
        let table = out(Format::Table);
        let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows[0], ["CRD", "CHANGE", "VERSIONS"]);
        assert_eq!(rows[1], ["sites.pdc.io", "updated", "(server", "dry", "run)", "v1alpha1"]);
        assert_eq!(rows[2], ["dnszones.pdc.io", "unchanged", "(server", "dry", "run)", "v1alpha1"]);
        assert!(out(Format::Wide).lines().nth(1).unwrap().trim_end().ends_with("helm"), "{}", out(Format::Wide));
        assert_eq!(out(Format::Name), "customresourcedefinition.apiextensions.k8s.io/sites.pdc.io\ncustomresourcedefinition.apiextensions.k8s.io/dnszones.pdc.io");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json[0], json!({"name": "sites.pdc.io", "change": "updated", "versions": ["v1alpha1"], "takenOverFrom": ["helm"], "dryRun": true}));
    }

    /// What pdcctl applies is what the chart ships in crds/, file for file.
    #[test]
    fn the_crds_applied_are_the_charts() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/pdc/crds");
        let mut files: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let mut shipped: Vec<String> = pdc_api::all_crds().iter().map(|c| format!("{}.yaml", c.name_any())).collect();
        shipped.sort();
        assert_eq!(shipped, files);
        for crd in pdc_api::all_crds() {
            let text = std::fs::read_to_string(format!("{dir}/{}.yaml", crd.name_any())).unwrap();
            let chart: Value = serde_yaml::from_str(&text).unwrap();
            let ours = serde_json::to_value(&crd).unwrap();
            assert!(ours == chart, "{} differs from the chart's: regenerate them with `target/debug/crdgen charts/pdc/crds`", crd.name_any());
        }
    }
}
