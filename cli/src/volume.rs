//! `pdcctl volume`: a department's volumes.

use std::process::ExitCode;

use clap::Subcommand;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::{Api, ResourceExt};
use pdc_api::conditions;
use pdc_api::TenantVolume;

use crate::connect::{ListScope, Scope};
use crate::output::{Listing, Row, age};
use crate::{Cli, CliError, client, outln};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a volume (SIZE of TIER), optionally attached to a VM.
    Create {
        name: String,
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        size: String,
        #[arg(long)]
        tier: String,
        /// Attach to this TenantVM (hotplug).
        #[arg(long)]
        vm: Option<String>,
        /// ReadWriteMany instead of ReadWriteOnce.
        #[arg(long)]
        shared: bool,
    },
    /// Volumes of one department (-d/-n, else the context's namespace), or of all (-A).
    List {
        #[command(flatten)]
        scope: ListScope,
    },
    /// Grow a volume (a smaller size is refused).
    Expand {
        name: String,
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        size: String,
    },
    /// Snapshot a volume (a CSI VolumeSnapshot of its claim).
    Snapshot {
        name: String,
        #[command(flatten)]
        scope: Scope,
        /// The snapshot's name (default: <volume>-<unix time>).
        #[arg(long)]
        snapshot: Option<String>,
    },
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    let c = client(cli).await?;
    match cmd {
        Cmd::Create { name, scope, size, tier, vm, shared } => {
            let department = &scope.namespace(&c)?;
            let v: TenantVolume = serde_json::from_value(serde_json::json!({
                "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVolume", "metadata": {"name": name},
                "spec": {"size": size, "tier": tier, "vm": vm, "accessMode": if *shared { "ReadWriteMany" } else { "ReadWriteOnce" }}
            }))
            .map_err(|e| CliError::Usage(e.to_string()))?;
            Api::<TenantVolume>::namespaced(c, department).create(&PostParams::default(), &v).await?;
            outln!("tenantvolume {department}/{name} created");
        }
        Cmd::List { scope } => {
            let api: Api<TenantVolume> = scope.api(c)?;
            let mut items = api.list(&scope.params()).await?.items;
            items.sort_by_key(|v| (v.namespace(), v.name_any()));
            let rows = items.iter().map(|v| {
                let ready = v.status.as_ref().and_then(|s| conditions::find(&s.conditions, "Ready")).map(|c| format!("{} {}", c.status, c.reason)).unwrap_or_else(|| "Unknown".into());
                let cells = vec![v.namespace().unwrap_or_default(), v.name_any(), v.spec.size.clone(), v.spec.tier.clone(), v.spec.vm.clone().unwrap_or_else(|| "-".into()), ready, age(v.metadata.creation_timestamp.as_ref())];
                Row::object::<TenantVolume>(&v.name_any(), cells).wide(vec![format!("{:?}", v.spec.access_mode)])
            });
            let listing = Listing::objects(&["DEPARTMENT", "NAME", "SIZE", "TIER", "VM", "READY", "AGE"]).wide(&["ACCESS MODE"]).rows(rows);
            cli.output().list(&listing, &items)?;
        }
        Cmd::Expand { name, scope, size } => {
            let department = &scope.namespace(&c)?;
            Api::<TenantVolume>::namespaced(c, department).patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"size": size}}))).await?;
            outln!("tenantvolume {department}/{name} expanding to {size}");
        }
        Cmd::Snapshot { name, scope, snapshot } => {
            let department = &scope.namespace(&c)?;
            Api::<TenantVolume>::namespaced(c.clone(), department).get(name).await?;
            let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"), "volumesnapshots");
            let sname = snapshot.clone().unwrap_or_else(|| format!("{name}-{}", k8s_openapi::jiff::Timestamp::now().as_second()));
            let mut o = DynamicObject::new(&sname, &ar).within(department);
            o.metadata.labels = Some([("pdc.io/tenantvolume".to_string(), name.clone())].into_iter().collect());
            o.data = serde_json::json!({"spec": {"source": {"persistentVolumeClaimName": format!("vol-{name}")}}});
            Api::<DynamicObject>::namespaced_with(c, department, &ar).create(&PostParams::default(), &o).await?;
            outln!("volumesnapshot {department}/{sname} of tenantvolume {name} created");
        }
    }
    Ok(ExitCode::SUCCESS)
}
