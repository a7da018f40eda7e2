//! KubeVirt (v1.9) as pdc meets it: a VirtualMachine's run strategy decides whether a
//! VirtualMachineInstance exists; an instance starts only when what it needs exists;
//! hot-pluggable volumes reach a running instance, other changes wait for a restart.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use pdc_operator::compute::build::{dv_resource, vm_resource, vmi_resource};

use super::{Cluster, text};

/// Run strategies that want an instance (`Always`, `RerunOnFailure`; `Manual` and
/// `Once` start on request only, which pdc never makes), or the deprecated
/// `running: true` (KubeVirt reads it as `Always`, `false` as `Halted`:
/// `VirtualMachine.RunStrategy()` in `staging/src/kubevirt.io/api/core/v1`).
fn wants_running(vm: &DynamicObject) -> bool {
    match vm.data.pointer("/spec/running").and_then(serde_json::Value::as_bool) {
        Some(r) => r,
        None => matches!(text(&vm.data, "/spec/runStrategy"), Some("Always" | "RerunOnFailure")),
    }
}

/// What keeps a started VM from running, as KubeVirt v1.9 reports it
/// (`printableStatus`, first match wins as in `pkg/virt-controller/watch/vm/vm.go`
/// `setPrintableStatus`) and a message. A DataVolume named only in `volumes` (not a
/// `dataVolumeTemplate`) does not stop the VMI from being created, but its
/// virt-launcher pod is not made until every non-hotplug DataVolume has `Succeeded`
/// (`pkg/virt-controller/watch/vmi/datavolumes.go`): a missing one is
/// `ErrorPvcNotFound`, a failed one (phase `Failed`, or `Running=False` with reason
/// `Error`/`ImagePullFailed`, `pkg/storage/types/dv.go`) `DataVolumeError`, one
/// still populating `Provisioning`. A Secret the pod mounts (cloud-init
/// `secretRef`/`networkDataSecretRef`, secret volumes) that does not exist
/// keeps the pod in ContainerCreating (`FailedMount`): the VM shows `Starting` until
/// the Secret appears.
pub fn start_blocked(c: &Cluster, vm: &DynamicObject) -> Option<(&'static str, String)> {
    let ns = vm.namespace().unwrap_or_default();
    let volumes = vm.data.pointer("/spec/template/spec/volumes").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let mut found: Vec<(u8, &'static str, String)> = Vec::new();
    for v in &volumes {
        if hotpluggable(v) {
            continue;
        }
        if let Some(dv) = text(v, "/dataVolume/name") {
            match Cluster::find(&c.dvs, &dv_resource(), &ns, dv) {
                None => found.push((0, "ErrorPvcNotFound", format!("PVC {ns}/{dv} does not exist, waiting for it to appear"))),
                Some(d) => {
                    let failed = text(&d.data, "/status/phase") == Some("Failed")
                        || d.data.pointer("/status/conditions").and_then(|c| c.as_array()).into_iter().flatten().any(|c| {
                            text(c, "/type") == Some("Running") && text(c, "/status") == Some("False") && matches!(text(c, "/reason"), Some("Error" | "ImagePullFailed"))
                        });
                    match text(&d.data, "/status/phase") {
                        _ if failed => found.push((1, "DataVolumeError", format!("DataVolume {dv} failed to import"))),
                        Some("Succeeded") => {}
                        p => found.push((2, "Provisioning", format!("DataVolume {dv} is {}", p.unwrap_or("Pending")))),
                    }
                }
            }
        }
        if let Some(claim) = text(v, "/persistentVolumeClaim/claimName")
            && c.pvcs.get(&ObjectRef::new(claim).within(&ns)).is_none()
        {
            found.push((0, "ErrorPvcNotFound", format!("PVC {ns}/{claim} does not exist, waiting for it to appear")));
        }
        for path in ["/cloudInitNoCloud/secretRef/name", "/cloudInitNoCloud/networkDataSecretRef/name", "/secret/secretName"] {
            if let Some(s) = text(v, path)
                && !c.secret_exists(&ns, s)
            {
                found.push((3, "Starting", format!("virt-launcher: FailedMount: secret \"{s}\" not found")));
            }
        }
    }
    found.sort_by_key(|f| f.0);
    found.into_iter().next().map(|(_, p, m)| (p, m))
}

fn hotpluggable(v: &serde_json::Value) -> bool {
    v.pointer("/dataVolume/hotpluggable").and_then(|h| h.as_bool()) == Some(true) || v.pointer("/persistentVolumeClaim/hotpluggable").and_then(|h| h.as_bool()) == Some(true)
}

/// The template with its hot-pluggable volumes and their disks left out: what a
/// running instance must be restarted to change.
fn cold_part(spec: &serde_json::Value) -> serde_json::Value {
    let mut s = spec.clone();
    let hot: Vec<String> = s.pointer("/volumes").and_then(|v| v.as_array()).into_iter().flatten().filter(|v| hotpluggable(v)).filter_map(|v| text(v, "/name").map(str::to_string)).collect();
    if let Some(vs) = s.pointer_mut("/volumes").and_then(|v| v.as_array_mut()) {
        vs.retain(|v| !hotpluggable(v));
    }
    if let Some(ds) = s.pointer_mut("/domain/devices/disks").and_then(|v| v.as_array_mut()) {
        ds.retain(|d| !text(d, "/name").is_some_and(|n| hot.iter().any(|h| h == n)));
    }
    s
}

/// Hotplug, KubeVirt v1.9 declarative route (feature gate `DeclarativeHotplugVolumes`,
/// Beta and on by default since v1.9; `pkg/storage/hotplug/hotplug.go`
/// `HandleDeclarativeVolumes`): a `dataVolume`/`persistentVolumeClaim` volume marked
/// `hotpluggable` that is added to a running VM's template is attached to the instance
/// once its DataVolume has `Succeeded`, with a disk of bus `scsi` or `virtio`
/// (`pkg/storage/admitters/storagehotplug.go`); one removed is detached. Any other
/// change of the template reaches the instance only at its next start: the VM reports
/// `RestartRequired` ("a non-live-updatable field was changed in the template spec",
/// `vm.go` `syncRestartRequired`).
fn hotplug(c: &Cluster, vm: &DynamicObject, vmi: &DynamicObject) -> (Option<serde_json::Value>, bool) {
    let ns = vm.namespace().unwrap_or_default();
    let want = vm.data.pointer("/spec/template/spec").cloned().unwrap_or_default();
    let have = vmi.data.pointer("/spec").cloned().unwrap_or_default();
    let restart = cold_part(&want) != cold_part(&have);
    let ready = |v: &serde_json::Value| {
        text(v, "/dataVolume/name").is_none_or(|dv| Cluster::find(&c.dvs, &dv_resource(), &ns, dv).is_some_and(|d| text(&d.data, "/status/phase") == Some("Succeeded")))
    };
    let bus_ok = |name: &str| {
        want.pointer("/domain/devices/disks").and_then(|d| d.as_array()).into_iter().flatten().any(|d| text(d, "/name") == Some(name) && matches!(text(d, "/disk/bus"), Some("scsi" | "virtio")))
    };
    let wanted_hot: Vec<serde_json::Value> = want
        .pointer("/volumes")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter(|v| hotpluggable(v) && ready(v) && text(v, "/name").is_some_and(bus_ok))
        .cloned()
        .collect();
    let hot_names: Vec<&str> = wanted_hot.iter().filter_map(|v| text(v, "/name")).collect();
    let mut next = have.clone();
    if let Some(vs) = next.pointer_mut("/volumes").and_then(|v| v.as_array_mut()) {
        vs.retain(|v| !hotpluggable(v));
        vs.extend(wanted_hot.iter().cloned());
    }
    let want_disks: Vec<serde_json::Value> = want.pointer("/domain/devices/disks").and_then(|d| d.as_array()).into_iter().flatten().filter(|d| text(d, "/name").is_some_and(|n| hot_names.contains(&n))).cloned().collect();
    if let Some(ds) = next.pointer_mut("/domain/devices/disks").and_then(|v| v.as_array_mut()) {
        let have_hot: Vec<String> = have.pointer("/volumes").and_then(|v| v.as_array()).into_iter().flatten().filter(|v| hotpluggable(v)).filter_map(|v| text(v, "/name").map(str::to_string)).collect();
        ds.retain(|d| !text(d, "/name").is_some_and(|n| have_hot.iter().any(|h| h == n)));
        ds.extend(want_disks);
    }
    ((next != have).then_some(next), restart)
}

async fn set_vm_status(c: &Cluster, vm: &DynamicObject, printable: &str, message: &str, restart: bool) {
    let running = printable == "Running";
    let mut conds = vec![serde_json::json!({"type": "Ready", "status": if running { "True" } else { "False" }, "reason": if running { "" } else { printable }, "message": message})];
    if restart {
        conds.push(serde_json::json!({"type": "RestartRequired", "status": "True", "reason": "", "message": "a non-live-updatable field was changed in the template spec"}));
    }
    let want = serde_json::json!({"printableStatus": printable, "ready": running, "created": running, "conditions": conds});
    let same = ["printableStatus", "ready", "created"].iter().all(|k| vm.data.pointer(&format!("/status/{k}")) == want.get(*k))
        && vm.data.pointer("/status/conditions").and_then(|c| c.as_array()).map(|c| c.len()) == Some(conds.len())
        && vm.data.pointer("/status/conditions/0/message").and_then(|m| m.as_str()) == Some(message);
    if same {
        return;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &vm.namespace().unwrap_or_default(), &vm_resource());
    let _ = api.patch_status(&vm.name_any(), &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": want }))).await;
}

/// virt-controller's VM loop for one VM.
async fn reconcile(c: &Cluster, vm: &DynamicObject) {
    let ns = vm.namespace().unwrap_or_default();
    let vmis: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &ns, &vmi_resource());
    let vmi = Cluster::find(&c.vmis, &vmi_resource(), &ns, &vm.name_any());
    if vm.metadata.deletion_timestamp.is_some() {
        return;
    }
    if !wants_running(vm) {
        if let Some(i) = vmi
            && i.metadata.deletion_timestamp.is_none()
        {
            let _ = vmis.delete(&i.name_any(), &Default::default()).await;
        }
        set_vm_status(c, vm, "Stopped", "VMI does not exist", false).await;
        return;
    }
    match vmi {
        None => {
            // The instance: the template as it is now (its metadata's labels and
            // annotations too: `setupVMIFromVM` in `pkg/virt-controller/watch/vm.go`
            // starts from a copy of the template's ObjectMeta), owned by the VM.
            let mut i = DynamicObject::new(&vm.name_any(), &vmi_resource()).within(&ns);
            i.metadata.labels = vm.data.pointer("/spec/template/metadata/labels").and_then(|l| serde_json::from_value(l.clone()).ok());
            i.metadata.annotations = vm.data.pointer("/spec/template/metadata/annotations").and_then(|l| serde_json::from_value(l.clone()).ok());
            i.metadata.owner_references = vm.controller_owner_ref(&vm_resource()).map(|o| vec![o]);
            i.data = serde_json::json!({"spec": vm.data.pointer("/spec/template/spec").cloned().unwrap_or_default()});
            let _ = vmis.create(&PostParams::default(), &i).await;
            set_vm_status(c, vm, "Starting", "", false).await;
        }
        Some(i) if i.metadata.deletion_timestamp.is_some() => set_vm_status(c, vm, "Stopping", "", false).await,
        Some(i) => {
            // Not running yet: its pod waits for what it needs.
            if text(&i.data, "/status/phase") != Some("Running") {
                let (phase, printable, why) = match start_blocked(c, vm) {
                    Some(("Starting", why)) => ("Scheduling", "Starting", why),
                    Some((p, why)) => ("Pending", p, why),
                    None => ("Running", "Running", String::new()),
                };
                if text(&i.data, "/status/phase") != Some(phase) {
                    let _ = vmis.patch_status(&i.name_any(), &PatchParams::default(), &Patch::Merge(&serde_json::json!({"status": {"phase": phase}}))).await;
                }
                set_vm_status(c, vm, printable, &why, false).await;
                return;
            }
            let (next, restart) = hotplug(c, vm, &i);
            if let Some(spec) = next {
                let _ = vmis.patch(&i.name_any(), &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "spec": spec }))).await;
            }
            set_vm_status(c, vm, "Running", "", restart).await;
        }
    }
}

/// One pass of KubeVirt over a cluster.
pub async fn play(c: &Cluster) {
    super::each(c.vms.state(), |vm| async move { reconcile(c, &vm).await }).await;
}
