//! The operator as a real process, for tests and benchmarks: started with its own
//! identity and metrics port, killed by pid.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::HarnessError;
use crate::controlplane::{free_port, spawn_tied, stop_child};

/// Path of a binary built from this workspace (`pdc-operator`, `pdcctl`), found beside
/// the running test executable (`target/<profile>/deps/..`).
pub fn workspace_binary(name: &str) -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe().map_err(|e| HarnessError::Io("locating the test binary".into(), e))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(HarnessError::Other(format!("{} is missing: run `cargo build --workspace --bins` first", p.display())))
    }
}

/// Settings for one operator replica.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    pub identity: String,
    pub namespace: String,
    pub lease_duration: &'static str,
    pub renew_deadline: &'static str,
    pub retry_period: &'static str,
    /// More environment for the process (e.g. `PDC_DNS_RESYNC`).
    pub env: Vec<(String, String)>,
}

impl OperatorOptions {
    pub fn new(identity: &str) -> Self {
        Self {
            identity: identity.into(),
            namespace: "pdc-system".into(),
            lease_duration: "15s",
            renew_deadline: "10s",
            retry_period: "2s",
            env: Vec::new(),
        }
    }
}

/// A running operator replica.
pub struct OperatorProcess {
    pub identity: String,
    pub metrics_port: u16,
    pub log: PathBuf,
    /// The bearer token /metrics asks for ([`METRICS_TOKEN_FILE`] in the plane's directory).
    token_file: PathBuf,
    child: Option<Child>,
}

/// Name of the file, in a control plane's directory, that holds a token of the
/// ServiceAccount the harness binds to ClusterRole pdc-metrics-reader.
pub const METRICS_TOKEN_FILE: &str = "metrics-token";

impl OperatorProcess {
    /// Start the operator against `kubeconfig`, logging JSON to `log_dir/<identity>.log`.
    /// With PDC_OPERATOR_IMAGE set (the archive deploy/image.sh writes, an OCI layout
    /// or an unpacked bundle) it runs from that image, as [`Self::start_image`] does.
    pub fn start(kubeconfig: &Path, opts: &OperatorOptions, log_dir: &Path) -> Result<Self, HarnessError> {
        if let Some(image) = std::env::var_os("PDC_OPERATOR_IMAGE").filter(|v| !v.is_empty()) {
            return Self::start_image(Path::new(&image), kubeconfig, opts, log_dir);
        }
        let bin = workspace_binary("pdc-operator")?;
        // PDC_OPERATOR_WRAPPER (e.g. `heaptrack -o /tmp/op`): a profiler that runs the
        // operator, for the benchmarks.
        let wrapper = std::env::var("PDC_OPERATOR_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(w) => {
                let mut c = Command::new(w);
                c.args(words).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.env("KUBECONFIG", kubeconfig);
        Self::spawn(cmd, opts, log_dir)
    }

    /// Start the operator from its image as a container runtime would
    /// ([`image_command`]): `kubeconfig` mounted read-only at [`IMAGE_KUBECONFIG`],
    /// the image unpacked into `log_dir/image` ([`unpack_image`]). The process is the
    /// image's entrypoint itself, so [`Self::pid`] is the operator's.
    pub fn start_image(image: &Path, kubeconfig: &Path, opts: &OperatorOptions, log_dir: &Path) -> Result<Self, HarnessError> {
        let bundle = unpack_image(image, log_dir)?;
        let mut cmd = image_command(&bundle, &[(kubeconfig, IMAGE_KUBECONFIG)])?;
        cmd.env("KUBECONFIG", IMAGE_KUBECONFIG);
        Self::spawn(cmd, opts, log_dir)
    }

    fn spawn(mut cmd: Command, opts: &OperatorOptions, log_dir: &Path) -> Result<Self, HarnessError> {
        let port = free_port()?;
        let log = log_dir.join(format!("{}.log", opts.identity));
        let out = std::fs::File::create(&log).map_err(|e| HarnessError::Io(format!("creating {}", log.display()), e))?;
        let err = out.try_clone().map_err(|e| HarnessError::Io("cloning log file".into(), e))?;
        let child = spawn_tied(
            cmd.env("POD_NAMESPACE", &opts.namespace)
                .env("POD_NAME", &opts.identity)
                .env("PDC_METRICS_ADDR", format!("127.0.0.1:{port}"))
                .env("PDC_LEASE_DURATION", opts.lease_duration)
                .env("PDC_RENEW_DEADLINE", opts.renew_deadline)
                .env("PDC_RETRY_PERIOD", opts.retry_period)
                .env("RUST_LOG", "info,kube=warn")
                .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        )
        .map_err(|e| HarnessError::Io("starting pdc-operator".into(), e))?;
        Ok(Self { identity: opts.identity.clone(), metrics_port: port, log, token_file: log_dir.join(METRICS_TOKEN_FILE), child: Some(child) })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// GET `path` from the operator's metrics server, with the scraper's token:
    /// `(status code, body)`.
    pub fn http_get(&self, path: &str) -> Result<(u16, String), HarnessError> {
        let token = std::fs::read_to_string(&self.token_file).ok();
        http_get_with(self.metrics_port, path, token.as_deref())
    }

    /// The value of the sample `name{labels}` (exact text before the value) in /metrics, 0 when absent.
    pub fn metric(&self, series: &str) -> Result<f64, HarnessError> {
        let (_, body) = self.http_get("/metrics")?;
        Ok(metric_value(&body, series))
    }

    /// The operator's requests to the Kubernetes API so far, by verb
    /// (`pdc_kube_api_requests_total`).
    pub fn api_requests(&self) -> Result<ApiRequests, HarnessError> {
        let (_, body) = self.http_get("/metrics")?;
        let mut by_verb = std::collections::BTreeMap::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("pdc_kube_api_requests_total{verb=\"")
                && let Some((verb, value)) = rest.split_once("\"} ")
            {
                by_verb.insert(verb.to_string(), value.trim().parse::<f64>().unwrap_or(0.0));
            }
        }
        Ok(ApiRequests { by_verb })
    }

    /// How the process ended, when it has ended on its own (`None` while it runs, and
    /// after [`Self::kill`] or [`Self::stop`]).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kill the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop the process in order (SIGTERM): it releases its lease.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c);
        }
    }

    /// Peak resident memory of the process so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Resident memory of the process now, in KiB (Linux `VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// An operator's API requests by verb.
#[derive(Debug, Clone, Default)]
pub struct ApiRequests {
    pub by_verb: std::collections::BTreeMap<String, f64>,
}

impl ApiRequests {
    pub fn total(&self) -> f64 {
        self.by_verb.values().sum()
    }

    /// Creates, updates, patches and deletes.
    pub fn writes(&self) -> f64 {
        ["create", "update", "patch", "delete"].iter().filter_map(|v| self.by_verb.get(*v)).sum()
    }

    /// `"12.3 per object (writes 8.1, reads 4.2)"` over `objects`.
    pub fn per(&self, objects: usize) -> String {
        let n = objects.max(1) as f64;
        format!("{:.1} per object (writes {:.1}, reads {:.1})", self.total() / n, self.writes() / n, (self.total() - self.writes()) / n)
    }

    pub fn json(&self, objects: usize) -> serde_json::Value {
        let n = objects.max(1) as f64;
        serde_json::json!({"total": self.total(), "writes": self.writes(), "per_object": self.total() / n, "writes_per_object": self.writes() / n, "by_verb": self.by_verb})
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sum of the samples whose text before the value is `series` (e.g.
/// `pdc_reconcile_total{controller="department",result="success"}`).
pub fn metric_value(body: &str, series: &str) -> f64 {
    body.lines()
        .filter_map(|l| l.rsplit_once(' ').filter(|(k, _)| *k == series).and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// A minimal HTTP/1.0 GET on loopback.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), HarnessError> {
    http_get_with(port, path, None)
}

/// A minimal HTTP/1.0 GET on loopback, with a bearer token when given.
pub fn http_get_with(port: u16, path: &str, token: Option<&str>) -> Result<(u16, String), HarnessError> {
    let io = |e| HarnessError::Io(format!("GET 127.0.0.1:{port}{path}"), e);
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(io)?;
    let auth = token.map(|t| format!("Authorization: Bearer {}\r\n", t.trim())).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").map_err(io)?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(io)?;
    let code = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// Where [`OperatorProcess::start_image`] mounts the operator's kubeconfig in the image.
pub const IMAGE_KUBECONFIG: &str = "/var/run/secrets/pdc/kubeconfig";

/// Unpack `image` (the archive deploy/image.sh writes, an OCI layout directory, or a
/// bundle) into the bundle `dir/image` with deploy/oci.py, once per image digest: the
/// bundle's path. A bundle holds `rootfs/` and the image's `config.json`.
pub fn unpack_image(image: &Path, dir: &Path) -> Result<PathBuf, HarnessError> {
    let oci = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/oci.py");
    let mut cmd = Command::new("python3");
    cmd.arg(oci).arg("unpack").arg(image).arg(dir.join("image"));
    let out = crate::run_command(&mut cmd, None, &format!("deploy/oci.py unpack {}", image.display()))?;
    out.lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| HarnessError::Other(format!("deploy/oci.py unpack {} printed no bundle", image.display())))
}

/// What a runtime takes from an image's config: `User` (numeric `UID:GID`: the image
/// holds no tools to look names up), `WorkingDir`, `Entrypoint` + `Cmd`, `Env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub uid: u32,
    pub gid: u32,
    pub workdir: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ImageSpec {
    /// The spec of the bundle's `config.json`.
    pub fn read(bundle: &Path) -> Result<Self, HarnessError> {
        let path = bundle.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| HarnessError::Io(format!("reading {}", path.display()), e))?;
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| HarnessError::Other(format!("{} is not JSON: {e}", path.display())))?;
        Self::parse(&config).map_err(|e| HarnessError::Other(format!("{}: {e}", path.display())))
    }

    /// The spec of an image config (the OCI `application/vnd.oci.image.config.v1+json`).
    pub fn parse(config: &serde_json::Value) -> Result<Self, String> {
        let c = &config["config"];
        let strings = |key: &str| -> Vec<String> {
            c[key].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        let user = c["User"].as_str().unwrap_or("0");
        let (uid, gid) = user
            .split_once(':')
            .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)))
            .ok_or_else(|| format!("User {user:?} is not numeric UID:GID"))?;
        let argv: Vec<String> = strings("Entrypoint").into_iter().chain(strings("Cmd")).collect();
        if !argv.first().is_some_and(|a| a.starts_with('/')) {
            return Err(format!("the entrypoint {argv:?} is not an absolute path"));
        }
        let env = strings("Env").iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let workdir = c["WorkingDir"].as_str().filter(|w| !w.is_empty()).unwrap_or("/").to_string();
        Ok(Self { uid, gid, workdir, argv, env })
    }
}

/// The command that runs a bundle's entrypoint as a container runtime would: in a
/// mount namespace of its own, the bundle's root bind-mounted read-only (the chart's
/// readOnlyRootFilesystem), with /proc, a /dev of null, zero, full, random and
/// urandom, /sys read-only (its cgroup submounts as the host has them) and each
/// `(host file, path in the image)` of `binds` read-only; chrooted there, in the
/// image's WorkingDir, as its User with no supplementary groups, no capabilities and
/// no_new_privs; only the image's Env (add more with `Command::env`); the host's
/// network. The entrypoint is exec'd by the
/// spawned process itself.
pub fn image_command(bundle: &Path, binds: &[(&Path, &str)]) -> Result<Command, HarnessError> {
    let spec = ImageSpec::read(bundle)?;
    let runtime = ImageRuntime::prepare(&bundle.join("rootfs"), &spec, binds)?;
    let mut cmd = Command::new(spec.argv.first().map(String::as_str).unwrap_or_default());
    cmd.args(spec.argv.iter().skip(1)).env_clear().envs(spec.env.iter().map(|(k, v)| (k, v)));
    runtime.install(&mut cmd);
    Ok(cmd)
}

/// Paths and ids for [`ImageRuntime::enter`], made before the fork: the child may not
/// allocate.
struct ImageRuntime {
    root: std::ffi::CString,
    proc_dir: std::ffi::CString,
    dev_dir: std::ffi::CString,
    sys_dir: std::ffi::CString,
    /// (host device, file in the image's /dev)
    devices: Vec<(std::ffi::CString, std::ffi::CString)>,
    /// (host file, file in the image), mounted read-only
    binds: Vec<(std::ffi::CString, std::ffi::CString)>,
    workdir: std::ffi::CString,
    uid: u32,
    gid: u32,
}

const IMAGE_DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

impl ImageRuntime {
    /// The paths, and the mount points made in the bundle (the runtime's copy, not
    /// the image) while it is still writable, as runc makes them.
    fn prepare(rootfs: &Path, spec: &ImageSpec, binds: &[(&Path, &str)]) -> Result<Self, HarnessError> {
        use std::os::unix::ffi::OsStrExt;
        let cstr = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|e| HarnessError::Other(format!("{}: {e}", p.display())))
        };
        let io = |p: &Path| {
            let what = format!("preparing {} for the image's runtime", p.display());
            move |e| HarnessError::Io(what, e)
        };
        for dir in ["proc", "dev", "sys"] {
            std::fs::create_dir_all(rootfs.join(dir)).map_err(io(&rootfs.join(dir)))?;
        }
        let mut bind_paths = Vec::new();
        for (host, inside) in binds {
            let target = rootfs.join(inside.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::OpenOptions::new().create(true).append(true).open(&target).map_err(io(&target))?;
            let host = host.canonicalize().map_err(io(host))?;
            bind_paths.push((cstr(&host)?, cstr(&target)?));
        }
        let dev = rootfs.join("dev");
        let devices = IMAGE_DEVICES
            .iter()
            .map(|d| Ok((cstr(&Path::new("/dev").join(d))?, cstr(&dev.join(d))?)))
            .collect::<Result<Vec<_>, HarnessError>>()?;
        Ok(Self {
            root: cstr(rootfs)?,
            proc_dir: cstr(&rootfs.join("proc"))?,
            dev_dir: cstr(&dev)?,
            sys_dir: cstr(&rootfs.join("sys"))?,
            devices,
            binds: bind_paths,
            workdir: cstr(Path::new(&spec.workdir))?,
            uid: spec.uid,
            gid: spec.gid,
        })
    }

    #[allow(unsafe_code)]
    fn install(self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        // SAFETY: `enter` makes system calls only (no allocation, no locks) on memory
        // owned by the closure: what `pre_exec` allows between fork and exec.
        unsafe {
            cmd.pre_exec(move || self.enter());
        }
    }

    /// In the forked child: the mounts, the chroot, then the user. The parent-death
    /// signal is set after the change of user, which clears it.
    #[allow(unsafe_code)]
    fn enter(&self) -> std::io::Result<()> {
        use libc::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT};
        use std::ptr::null;
        let ok = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
        let ro = MS_BIND | MS_REMOUNT | MS_RDONLY;
        // SAFETY: every pointer is a NUL-terminated string owned by `self` or a literal.
        unsafe {
            ok(libc::unshare(libc::CLONE_NEWNS))?;
            ok(libc::mount(null(), c"/".as_ptr(), null(), MS_REC | MS_PRIVATE, null()))?;
            ok(libc::mount(self.root.as_ptr(), self.root.as_ptr(), null(), MS_BIND | MS_REC, null()))?;
            ok(libc::mount(c"proc".as_ptr(), self.proc_dir.as_ptr(), c"proc".as_ptr(), MS_NOSUID | MS_NODEV | MS_NOEXEC, null()))?;
            let dev_opts = c"mode=755,size=64k";
            ok(libc::mount(c"tmpfs".as_ptr(), self.dev_dir.as_ptr(), c"tmpfs".as_ptr(), MS_NOSUID | MS_NOEXEC, dev_opts.as_ptr().cast()))?;
            for (host, target) in &self.devices {
                let fd = libc::open(target.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o666);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                ok(libc::mount(host.as_ptr(), target.as_ptr(), null(), MS_BIND, null()))?;
            }
            ok(libc::mount(c"/sys".as_ptr(), self.sys_dir.as_ptr(), null(), MS_BIND | MS_REC, null()))?;
            ok(libc::mount(null(), self.sys_dir.as_ptr(), null(), ro | MS_NOSUID | MS_NODEV | MS_NOEXEC, null()))?;
            for (host, target) in &self.binds {
                ok(libc::mount(host.as_ptr(), target.as_ptr(), null(), MS_BIND, null()))?;
                ok(libc::mount(null(), target.as_ptr(), null(), ro | MS_NOSUID | MS_NODEV | MS_NOEXEC, null()))?;
            }
            ok(libc::mount(null(), self.root.as_ptr(), null(), ro, null()))?;
            ok(libc::chroot(self.root.as_ptr()))?;
            ok(libc::chdir(self.workdir.as_ptr()))?;
            ok(libc::setgroups(0, null()))?;
            ok(libc::setresgid(self.gid, self.gid, self.gid))?;
            ok(libc::setresuid(self.uid, self.uid, self.uid))?;
            ok(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            ok(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
        }
        Ok(())
    }
}

/// Lint a /metrics body with `promtool check metrics` (promtool from tests/setup.sh).
pub fn promtool_check_metrics(body: &str) -> Result<(), HarnessError> {
    crate::run_command(Command::new("promtool").args(["check", "metrics"]), Some(body), "promtool check metrics").map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::ImageSpec;

    #[test]
    fn image_spec_takes_user_entrypoint_cmd_env_and_workdir_from_the_config() {
        let config = serde_json::json!({"config": {
            "User": "65532:65532", "Entrypoint": ["/usr/local/bin/pdc-operator"], "Cmd": ["--concurrency", "4"],
            "Env": ["PATH=/usr/local/bin", "A=b=c"], "WorkingDir": ""}});
        let spec = ImageSpec::parse(&config).unwrap();
        assert_eq!((spec.uid, spec.gid, spec.workdir.as_str()), (65532, 65532, "/"));
        assert_eq!(spec.argv, ["/usr/local/bin/pdc-operator", "--concurrency", "4"]);
        assert_eq!(spec.env, [("PATH".to_string(), "/usr/local/bin".to_string()), ("A".to_string(), "b=c".to_string())]);
    }

    #[test]
    fn image_spec_refuses_user_names_and_relative_entrypoints() {
        let named = serde_json::json!({"config": {"User": "nonroot", "Entrypoint": ["/pdc-operator"]}});
        assert!(ImageSpec::parse(&named).unwrap_err().contains("not numeric"));
        let relative = serde_json::json!({"config": {"User": "1:1", "Entrypoint": ["pdc-operator"]}});
        assert!(ImageSpec::parse(&relative).unwrap_err().contains("absolute"));
    }
}
