//! A real authoritative DNS server for tests: Knot DNS (Debian's `knot`), started on
//! loopback with its own configuration, zones signed automatically with DNSSEC, and
//! dynamic updates and transfers allowed only with a TSIG key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{HarnessError, run_command};
use crate::controlplane::{free_port, spawn_tied, stop_child};

/// A running knotd.
pub struct KnotServer {
    pub dir: PathBuf,
    pub port: u16,
    /// TSIG key name, algorithm and base64 secret that may update and transfer.
    pub key_name: String,
    pub key_algorithm: String,
    pub key_secret: String,
    pub zones: Vec<String>,
    child: Option<Child>,
}

/// A record set for pdc's DNS wire client (TTL 300).
pub fn rrset(name: &str, t: pdc_core::dnsplan::RecordType, values: &[&str]) -> pdc_core::dnsplan::RRset {
    pdc_core::dnsplan::RRset { name: name.into(), rtype: t, ttl: 300, values: values.iter().map(|v| v.to_string()).collect() }
}

impl KnotServer {
    /// The server, for pdc's DNS wire client.
    pub fn server(&self) -> pdc_dns::Server {
        pdc_dns::Server::new(std::net::SocketAddr::from(([127, 0, 0, 1], self.port)))
    }

    /// The TSIG key that may update and transfer.
    pub fn key(&self) -> Result<pdc_dns::Key, HarnessError> {
        pdc_dns::Key::from_base64(&self.key_name, &self.key_algorithm, &self.key_secret).map_err(|e| HarnessError::Other(e.to_string()))
    }
}

/// A fresh base64 secret of 32 random bytes.
pub fn random_secret() -> Result<String, HarnessError> {
    Ok(run_command(Command::new("openssl").args(["rand", "-base64", "32"]), None, "openssl rand")?.trim().to_string())
}

impl KnotServer {
    /// Start knotd serving `zones` (e.g. `daklak.gov.vn`, `15.10.in-addr.arpa`) under `base`.
    pub fn start(base: &Path, zones: &[&str]) -> Result<KnotServer, HarnessError> {
        let dir = base.join(format!("knot-{}-{}", std::process::id(), free_port()?));
        for sub in ["db", "zones"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| HarnessError::Io(format!("creating {}", dir.display()), e))?;
        }
        let mut s = KnotServer {
            dir,
            port: free_port()?,
            key_name: "pdc-key".into(),
            key_algorithm: "hmac-sha256".into(),
            key_secret: random_secret()?,
            zones: zones.iter().map(|z| z.trim_end_matches('.').to_string()).collect(),
            child: None,
        };
        for z in &s.zones {
            let zone = format!(
                "$ORIGIN {z}.\n$TTL 300\n@ SOA ns1.{z}. hostmaster.{z}. 1 3600 900 1209600 300\n@ NS ns1.{z}.\n",
            );
            let path = s.dir.join("zones").join(format!("{z}.zone"));
            std::fs::write(&path, zone).map_err(|e| HarnessError::Io(format!("writing {}", path.display()), e))?;
        }
        s.write_config("difference-no-serial")?;
        s.spawn()?;
        Ok(s)
    }

    /// `zonefile_load`: `difference-no-serial` on first start (the seeded zone file);
    /// `none` on a restart, so the zone comes from the journal alone (loading the zone
    /// file again would make the zone equal to it and drop every update).
    fn write_config(&self, zonefile_load: &str) -> Result<(), HarnessError> {
        let d = self.dir.display();
        let zones: String = self.zones.iter().map(|z| format!("  - domain: {z}\n")).collect();
        let conf = format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n    pidfile: {d}/knot.pid\n\
             log:\n  - target: stderr\n    any: warning\n\
             database:\n    storage: {d}/db\n\
             key:\n  - id: {key}\n    algorithm: {alg}\n    secret: {secret}\n\
             acl:\n  - id: pdc-update\n    key: {key}\n    action: [update, transfer]\n\
             template:\n  - id: default\n    storage: {d}/zones\n    file: \"%s.zone\"\n    dnssec-signing: on\n    acl: pdc-update\n    zonefile-sync: -1\n    zonefile-load: {zonefile_load}\n    journal-content: all\n\
             zone:\n{zones}",
            port = self.port,
            key = self.key_name,
            alg = self.key_algorithm,
            secret = self.key_secret,
        );
        let path = self.dir.join("knot.conf");
        std::fs::write(&path, conf).map_err(|e| HarnessError::Io(format!("writing {}", path.display()), e))
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let log = self.dir.join("knot.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| HarnessError::Io(format!("opening {}", log.display()), e))?;
        let err = out.try_clone().map_err(|e| HarnessError::Io("cloning the log".into(), e))?;
        let child = spawn_tied(Command::new("knotd").arg("-c").arg(self.dir.join("knot.conf")).stdin(Stdio::null()).stdout(out).stderr(err))
            .map_err(|e| HarnessError::Io("starting knotd (install it with `bash tests/setup.sh`)".into(), e))?;
        self.child = Some(child);
        // Ready when every zone answers its SOA, signed.
        let start = Instant::now();
        loop {
            let all = self.zones.iter().all(|z| self.dig(z, "SOA", true).is_ok_and(|o| o.contains("RRSIG")));
            if all {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(HarnessError::Exited("knotd".into(), status.to_string(), tail));
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(HarnessError::NotReady("knotd".into(), Duration::from_secs(20)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop knotd (SIGTERM, then wait).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c);
        }
    }

    /// Start it again with the same configuration, zones and journal.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        self.write_config("none")?;
        self.spawn()
    }

    /// `kdig` answer section for `name` `rtype` (with `+dnssec`, RRSIGs too).
    pub fn dig(&self, name: &str, rtype: &str, dnssec: bool) -> Result<String, HarnessError> {
        let mut cmd = Command::new("kdig");
        cmd.arg("@127.0.0.1").arg("-p").arg(self.port.to_string()).args(["+tcp", "+noall", "+answer", "+timeout=2", "+retry=0"]);
        if dnssec {
            cmd.arg("+dnssec");
        }
        run_command(cmd.arg(name).arg(rtype), None, "kdig")
    }

    /// The zone's SOA serial.
    pub fn serial(&self, zone: &str) -> Result<u32, HarnessError> {
        let out = self.dig(zone, "SOA", false)?;
        out.lines()
            .find(|l| l.contains("SOA"))
            .and_then(|l| l.split_whitespace().nth(6))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HarnessError::Other(format!("no SOA serial for {zone} in {out:?}")))
    }

    /// Send `commands` (knsupdate syntax, without server/key/send lines) signed with
    /// `secret` for this server's key name; the tool's output.
    pub fn update_with(&self, secret: &str, commands: &str) -> Result<String, HarnessError> {
        let script = format!(
            "server 127.0.0.1 {}\nkey {}:{}:{}\n{}\nsend\nanswer\n",
            self.port, self.key_algorithm, self.key_name, secret, commands
        );
        run_command(Command::new("knsupdate").args(["-t", "5"]), Some(&script), "knsupdate")
    }

    /// An out-of-band edit with the right key (what an engineer's `nsupdate` would do).
    pub fn update(&self, commands: &str) -> Result<String, HarnessError> {
        self.update_with(&self.key_secret, commands)
    }
}

impl Drop for KnotServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Secret (in the operator's namespace) and a DnsZone per zone of `knot`, so
/// the operator writes to it: `.arpa` zones are reverse zones. Returns the zone
/// objects' names.
pub async fn register_zones(client: &kube::Client, knot: &KnotServer, secret: &str) -> Result<Vec<String>, HarnessError> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams};
    let pp = PatchParams::apply("pdc-tests").force();
    let s = Secret {
        metadata: kube::api::ObjectMeta { name: Some(secret.into()), namespace: Some(crate::cluster::SYSTEM_NAMESPACE.into()), ..Default::default() },
        string_data: Some([("secret".to_string(), knot.key_secret.clone())].into()),
        ..Default::default()
    };
    kube::Api::<Secret>::namespaced(client.clone(), crate::cluster::SYSTEM_NAMESPACE).patch(secret, &pp, &Patch::Apply(&s)).await?;
    let mut names = Vec::new();
    for z in &knot.zones {
        let name = z.replace('.', "-");
        let kind = if z.ends_with(".arpa") { "Reverse" } else { "Forward" };
        let obj = serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "DnsZone", "metadata": {"name": name},
            "spec": {"zone": z, "kind": kind, "server": "127.0.0.1", "port": knot.port, "dnssec": true,
                     "tsig": {"secretName": secret, "name": knot.key_name, "algorithm": knot.key_algorithm}}
        });
        kube::Api::<pdc_api::DnsZone>::all(client.clone()).patch(&name, &pp, &Patch::Apply(&obj)).await?;
        names.push(name);
    }
    Ok(names)
}

/// A DnsRecord's `Programmed` condition (status, reason), when it speaks of the
/// record's current generation.
pub fn programmed(r: &pdc_api::DnsRecord) -> Option<(String, String)> {
    let c = pdc_api::conditions::find(&r.status.as_ref()?.conditions, "Programmed")?;
    (c.observed_generation == r.metadata.generation).then(|| (c.status.clone(), c.reason.clone()))
}

/// Wait (60 s at most) until the DnsRecord `name` is `Programmed=status` for `reason`.
pub async fn wait_programmed(api: &kube::Api<pdc_api::DnsRecord>, name: &str, status: &str, reason: &str) -> Result<pdc_api::DnsRecord, HarnessError> {
    let want = (status.to_string(), reason.to_string());
    crate::cluster::wait_for(api, name, Duration::from_secs(60), &format!("Programmed={status} ({reason})"), |r| programmed(r).as_ref() == Some(&want)).await
}

impl KnotServer {
    /// Poll `kdig` (with DNSSEC) until `ok` holds for the answer; `Err` after 60 s
    /// with the last answer.
    pub fn wait_dig(&self, name: &str, rtype: &str, what: &str, ok: impl Fn(&str) -> bool) -> Result<String, HarnessError> {
        let start = Instant::now();
        loop {
            let out = self.dig(name, rtype, true).unwrap_or_default();
            if ok(&out) {
                return Ok(out);
            }
            if start.elapsed() >= Duration::from_secs(60) {
                return Err(HarnessError::Other(format!("{name} {rtype}: {what} within 60 s; last answer: {out}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
