//! The operator image deploy/image.sh builds, run as a container runtime would run it
//! (tests/src/operator.rs `image_command`) against a real kube-apiserver under the
//! chart's RBAC: it runs as 65532 with no capabilities on the image's read-only root,
//! and makes a Department Ready. The chart's default image is the one it tags.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{Department, DepartmentSpec, GuestQuota};
use pdc_tests::cluster::{apply_sample_province, chart_dir, helm, shared_env, unique, wait_for};
use pdc_tests::operator::{ImageSpec, OperatorOptions, OperatorProcess, unpack_image};

const TIMEOUT: Duration = Duration::from_secs(60);

/// PDC_OPERATOR_IMAGE, else what deploy/image.sh writes for this version:
/// `target/image/pdc-operator-<version>.oci.tar` beside `target/<profile>/deps/<test>`.
fn image_archive() -> PathBuf {
    if let Some(image) = std::env::var_os("PDC_OPERATOR_IMAGE").filter(|v| !v.is_empty()) {
        return image.into();
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    target.join("image").join(format!("pdc-operator-{}.oci.tar", env!("CARGO_PKG_VERSION")))
}

fn existing_image_archive() -> PathBuf {
    let archive = image_archive();
    assert!(archive.exists(), "{} is missing: build it with `bash deploy/image.sh` (tests/run.sh does before the tests)", archive.display());
    archive
}

fn department() -> DepartmentSpec {
    DepartmentSpec::new("Sở Tư pháp", "H15.17", GuestQuota { vcpu: 8, memory: "16Gi".into(), storage: BTreeMap::new(), vms: 2, public_addresses: 0 })
}

/// `field:` of /proc/<pid>/status, whitespace-separated.
fn status_field(pid: u32, field: &str) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix(field)).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().map(String::from).collect()
}

/// The options of the mount the process sees as its `/` (/proc/<pid>/mountinfo: the
/// fifth field is the mount point relative to the process's root, the sixth its
/// options; the last such line is the top of the stack).
fn root_mount_options(pid: u32) -> Vec<String> {
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo.lines().rev().map(|l| l.split(' ').collect::<Vec<_>>()).find(|f| f.len() > 5 && f[4] == "/");
    root.unwrap_or_else(|| panic!("no / in /proc/{pid}/mountinfo")).get(5).unwrap().split(',').map(String::from).collect()
}

#[tokio::test]
async fn the_image_runs_as_65532_on_its_read_only_root_and_makes_a_department_ready() {
    let archive = existing_image_archive();
    let env = shared_env(false).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    apply_sample_province(&client).await.unwrap();

    let operator = OperatorProcess::start_image(&archive, &env.operator_kubeconfig, &OperatorOptions::new("pdc-operator-image"), &env.dir).unwrap();
    let pid = operator.pid().unwrap();
    let bundle = unpack_image(&archive, &env.dir).unwrap();
    let spec = ImageSpec::read(&bundle).unwrap();
    assert_eq!((spec.uid, spec.gid), (65532, 65532), "the image's User");

    // The process is the image's entrypoint, as the image's user, with nothing more.
    assert_eq!(status_field(pid, "Uid:"), ["65532"; 4], "real, effective, saved and filesystem uid");
    assert_eq!(status_field(pid, "Gid:"), ["65532"; 4]);
    assert!(status_field(pid, "Groups:").is_empty(), "no supplementary groups");
    assert_eq!(status_field(pid, "CapEff:"), ["0000000000000000"], "no effective capabilities");
    assert_eq!(status_field(pid, "CapPrm:"), ["0000000000000000"], "no permitted capabilities");
    assert_eq!(status_field(pid, "NoNewPrivs:"), ["1"]);
    let rootfs = bundle.join("rootfs");
    let root = std::fs::metadata(format!("/proc/{pid}/root")).unwrap();
    let image_root = std::fs::metadata(&rootfs).unwrap();
    assert_eq!((root.dev(), root.ino()), (image_root.dev(), image_root.ino()), "its root is the unpacked image {}", rootfs.display());
    let exe = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    let entrypoint = std::fs::metadata(rootfs.join(spec.argv[0].trim_start_matches('/'))).unwrap();
    assert_eq!((exe.dev(), exe.ino()), (entrypoint.dev(), entrypoint.ino()), "it runs the image's entrypoint {}", spec.argv[0]);
    let options = root_mount_options(pid);
    assert!(options.iter().any(|o| o == "ro"), "its root is mounted read-only: {options:?}");

    // The department flow, with nothing but the image's files and the kubeconfig.
    let name = unique("so-tu-phap");
    let api: Api<Department> = Api::all(client.clone());
    api.create(&PostParams::default(), &Department::new(&name, department())).await.unwrap();
    let ready = |d: &Department| d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY));
    let d = wait_for(&api, &name, TIMEOUT, "Ready", ready).await.unwrap_or_else(|e| {
        let log = std::fs::read_to_string(&operator.log).unwrap_or_default();
        panic!("{e}; the operator's log:\n{log}")
    });
    assert_eq!(d.status.unwrap().namespace.as_deref(), Some(name.as_str()));
    let ns = Api::<Namespace>::all(client.clone()).get(&name).await.unwrap();
    assert_eq!(ns.labels()["pdc.io/department"], name);

    // PDC_METRICS_ADDR reached the process: its probes answer on the host's loopback.
    assert_eq!(operator.http_get("/readyz").unwrap().0, 200);
    assert_eq!(status_field(pid, "Uid:"), ["65532"; 4], "still the operator, still 65532");
}

#[test]
fn the_charts_default_image_is_the_one_deploy_image_sh_tags() {
    let archive = existing_image_archive();
    let oci = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/oci.py");
    let reference = pdc_tests::run_command(std::process::Command::new("python3").arg(oci).arg("ref").arg(&archive), None, "deploy/oci.py ref").unwrap();
    let reference = reference.trim();
    assert_eq!(reference, format!("pdc-operator:{}", env!("CARGO_PKG_VERSION")), "the image is tagged with the crate version");
    let rendered = helm(&["template", "pdc", &chart_dir().display().to_string(), "--kube-version", "1.36.3"]).unwrap();
    let images: Vec<&str> = rendered.lines().filter_map(|l| l.trim().strip_prefix("image: ")).collect();
    // The Deployment and the helm test Pod both run it.
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(images.iter().all(|i| *i == format!("{reference:?}")), "the chart runs the image deploy/image.sh tags: {images:?}");
}
