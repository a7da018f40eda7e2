//! A real Kubernetes control plane for tests: etcd, kube-apiserver and
//! kube-controller-manager, built from their Go modules by `tests/controlplane/build.sh`,
//! started as child processes on loopback with free ports and their own PKI. The
//! controller-manager runs every controller that needs no kubelet or cloud (see
//! [`CONTROLLERS`]): garbage collection, namespace deletion and ResourceQuota usage
//! happen as in a real cluster. Children get `PR_SET_PDEATHSIG`, so
//! they die with the process that started them even when it is killed; `Drop`
//! stops them by pid and removes their files.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::pki::Pki;

/// Where the Go-built binaries live.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("K8S_BIN_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/pdc/bin")
}

fn binary(name: &str) -> Result<PathBuf, HarnessError> {
    let p = bin_dir().join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(HarnessError::MissingBinary(p))
    }
}

pub fn free_port() -> Result<u16, HarnessError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::Io("finding a free port".into(), e))?;
    l.local_addr().map(|a| a.port()).map_err(|e| HarnessError::Io("finding a free port".into(), e))
}

/// Spawn `cmd` so that it is killed when the thread that spawned it ends.
pub fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        #[allow(unsafe_code)]
        // SAFETY: `prctl` is async-signal-safe and touches no memory of the parent;
        // this is the documented use of `pre_exec`.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
}

/// The kube-controller-manager controllers that need no node, scheduler or cloud:
/// what a real cluster does to the API objects pdc writes. Not run: those that make
/// Pods (Deployments, Jobs, …: no kubelet runs them), node and cloud controllers, and
/// the PersistentVolume binder (the tests' CDI player binds the claims it makes).
pub const CONTROLLERS: &[&str] = &[
    "garbage-collector-controller",
    "namespace-controller",
    "resourcequota-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
    "root-ca-certificate-publisher-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "validatingadmissionpolicy-status-controller",
    "legacy-serviceaccount-token-cleaner-controller",
];

/// One running control plane.
pub struct ControlPlane {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
    pub pki: Pki,
    children: Vec<(String, Child)>,
    /// How kube-apiserver was started, to start it again after [`ControlPlane::stop_apiserver`].
    apiserver_cmd: Vec<String>,
}

impl ControlPlane {
    /// Start etcd and kube-apiserver under a fresh directory in `base`, and wait until
    /// `/readyz` answers (at most 120 s).
    pub fn start(name: &str, base: &Path) -> Result<Self, HarnessError> {
        let etcd_bin = binary("etcd")?;
        let apiserver_bin = binary("kube-apiserver")?;
        let dir = base.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| HarnessError::Io(format!("creating {}", dir.display()), e))?;
        let pki = Pki::create(&dir.join("pki"))?;
        let (etcd_port, peer_port, port) = (free_port()?, free_port()?, free_port()?);
        let log = |n: &str| std::fs::File::create(dir.join(n)).map_err(|e| HarnessError::Io(format!("creating {n}"), e));

        let mut cp = ControlPlane { name: name.to_string(), dir: dir.clone(), port, pki, children: Vec::new(), apiserver_cmd: Vec::new() };
        let etcd = spawn_tied(
            Command::new(etcd_bin)
                .arg(format!("--name={name}"))
                .arg(format!("--data-dir={}", dir.join("etcd").display()))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
                .arg(format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!("--initial-cluster={name}=http://127.0.0.1:{peer_port}"))
                .arg("--unsafe-no-fsync=true")
                .arg("--log-level=warn")
                .stdin(Stdio::null())
                .stdout(log("etcd.log")?)
                .stderr(log("etcd.log")?),
        )
        .map_err(|e| HarnessError::Io("starting etcd".into(), e))?;
        cp.children.push(("etcd".into(), etcd));

        let p = |n: &str| cp.pki.path(n).display().to_string();
        cp.apiserver_cmd = vec![
            apiserver_bin.display().to_string(),
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            "--advertise-address=127.0.0.1".into(),
            "--endpoint-reconciler-type=none".into(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
        ];
        let apiserver = cp.spawn_apiserver()?;
        cp.children.push(("kube-apiserver".into(), apiserver));
        cp.write_kubeconfig("kubeconfig", "admin")?;
        cp.wait_ready(Duration::from_secs(120))?;
        cp.start_controller_manager()?;
        Ok(cp)
    }

    /// Start kube-controller-manager and wait until it works: the serviceaccount
    /// controller has made the `default` ServiceAccount (at most 60 s). A
    /// controller-manager that exits (a bad flag, a controller name it does not know)
    /// fails the start with its log.
    fn start_controller_manager(&mut self) -> Result<(), HarnessError> {
        let kcm = self.spawn_controller_manager()?;
        self.children.push(("kube-controller-manager".into(), kcm));
        let start = Instant::now();
        loop {
            self.check_children()?;
            if get_ok(self.port, &self.pki, "/api/v1/namespaces/default/serviceaccounts/default") {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(HarnessError::Other(format!("kube-controller-manager of {} made no default ServiceAccount within 60 s", self.name)));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// kube-controller-manager with [`CONTROLLERS`], as the admin user (it needs to see
    /// and change everything, as in a real cluster); it signs ServiceAccount tokens with
    /// the API server's key.
    fn spawn_controller_manager(&self) -> Result<Child, HarnessError> {
        let bin = binary("kube-controller-manager")?;
        let log = std::fs::File::create(self.dir.join("kube-controller-manager.log")).map_err(|e| HarnessError::Io("creating kube-controller-manager.log".into(), e))?;
        let err = log.try_clone().map_err(|e| HarnessError::Io("cloning a log handle".into(), e))?;
        let kubeconfig = self.kubeconfig().display().to_string();
        spawn_tied(
            Command::new(bin)
                .arg(format!("--kubeconfig={kubeconfig}"))
                .arg(format!("--authentication-kubeconfig={kubeconfig}"))
                .arg(format!("--authorization-kubeconfig={kubeconfig}"))
                .arg("--leader-elect=false")
                .arg("--secure-port=0")
                .arg("--use-service-account-credentials=false")
                .arg(format!("--controllers={}", CONTROLLERS.join(",")))
                .arg(format!("--service-account-private-key-file={}", self.pki.path("sa.key").display()))
                .arg(format!("--root-ca-file={}", self.pki.path("ca.crt").display()))
                // Quota usage recomputed often, so tests see it within seconds.
                .arg("--resource-quota-sync-period=10s")
                .arg("--concurrent-gc-syncs=10")
                .arg("--v=1")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err),
        )
        .map_err(|e| HarnessError::Io("starting kube-controller-manager".into(), e))
    }

    fn spawn_apiserver(&self) -> Result<Child, HarnessError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kube-apiserver.log"))
            .map_err(|e| HarnessError::Io("opening kube-apiserver.log".into(), e))?;
        let err = log.try_clone().map_err(|e| HarnessError::Io("cloning a log handle".into(), e))?;
        let (bin, args) = self.apiserver_cmd.split_first().ok_or_else(|| HarnessError::Other("no kube-apiserver command".into()))?;
        spawn_tied(Command::new(bin).args(args).stdin(Stdio::null()).stdout(log).stderr(err)).map_err(|e| HarnessError::Io("starting kube-apiserver".into(), e))
    }

    /// Stop kube-apiserver (etcd keeps the data): the site's API is gone, as when a
    /// data centre is lost. The controller-manager goes with it (it exits when it
    /// loses the API server, and a kubelet would restart it: see `start_apiserver`).
    pub fn stop_apiserver(&mut self) {
        for name in ["kube-controller-manager", "kube-apiserver"] {
            if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
                let (_, mut child) = self.children.remove(i);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Start kube-apiserver again on the same port and data, wait until ready, then the
    /// controller-manager.
    pub fn start_apiserver(&mut self) -> Result<(), HarnessError> {
        let child = self.spawn_apiserver()?;
        self.children.push(("kube-apiserver".into(), child));
        self.wait_ready(Duration::from_secs(120))?;
        self.start_controller_manager()
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A kubeconfig for `user` in `groups`, with a client certificate from this
    /// control plane's CA (for RBAC tests).
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf, HarnessError> {
        let file = format!("user-{}", user.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        self.pki.issue_client(&file, user, groups)?;
        self.write_kubeconfig(&format!("{file}.kubeconfig"), &file)
    }

    fn write_kubeconfig(&self, name: &str, cert: &str) -> Result<PathBuf, HarnessError> {
        write_kubeconfig(&self.dir.join(name), self.port, &self.pki, cert)
    }

    /// An error with the log's last lines if any child has exited.
    fn check_children(&mut self) -> Result<(), HarnessError> {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                return Err(HarnessError::Exited(name.clone(), status.to_string(), tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
            }
        }
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let start = Instant::now();
        loop {
            self.check_children()?;
            if readyz(self.port, &self.pki) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(HarnessError::NotReady(self.name.clone(), timeout));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stop every process by pid (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&mut self) {
        for (_, child) in self.children.iter_mut().rev() {
            stop_child(child);
        }
        self.children.clear();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM `child`, wait up to 5 s, then SIGKILL.
pub fn stop_child(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        #[allow(unsafe_code)]
        // SAFETY: sending a signal to our own child's pid has no memory effects.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether the API server on `port` answers `/readyz` with 200 (checked with curl-free
/// plain TLS through the kube client would need a runtime; use the `curl` binary).
fn readyz(port: u16, pki: &Pki) -> bool {
    get_ok(port, pki, "/readyz")
}

/// Whether a GET of `path` as the admin answers 2xx.
fn get_ok(port: u16, pki: &Pki, path: &str) -> bool {
    Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", "--max-time", "2", "--cacert"])
        .arg(pki.path("ca.crt"))
        .arg("--cert")
        .arg(pki.path("admin.crt"))
        .arg("--key")
        .arg(pki.path("admin.key"))
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Write a kubeconfig at `path` for the API server on `port`, authenticating with the
/// client certificate `<cert>.crt`/`<cert>.key` of `pki`.
pub fn write_kubeconfig(path: &Path, port: u16, pki: &Pki, cert: &str) -> Result<PathBuf, HarnessError> {
    let b64 = |n: &str| -> Result<String, HarnessError> {
        let data = std::fs::read(pki.path(n)).map_err(|e| HarnessError::Io(format!("reading {n}"), e))?;
        Ok(base64(&data))
    };
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: pdc-test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {ca}
users:
- name: {cert}
  user:
    client-certificate-data: {crt}
    client-key-data: {key}
contexts:
- name: pdc-test
  context:
    cluster: pdc-test
    user: {cert}
current-context: pdc-test
",
        ca = b64("ca.crt")?,
        crt = b64(&format!("{cert}.crt"))?,
        key = b64(&format!("{cert}.key"))?,
    );
    std::fs::write(path, text).map_err(|e| HarnessError::Io(format!("writing {}", path.display()), e))?;
    Ok(path.to_path_buf())
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}
