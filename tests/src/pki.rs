//! The test control plane's PKI, made in-process: one CA that signs the API server's
//! serving certificate and every client certificate (admin, department users), plus
//! the service-account signing key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::HarnessError;

/// Files of a control plane's PKI, all PEM.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
}

fn err(what: &str) -> impl Fn(rcgen::Error) -> HarnessError + '_ {
    move |e| HarnessError::Pki(format!("{what}: {e}"))
}

fn write(dir: &Path, name: &str, data: &str) -> Result<(), HarnessError> {
    std::fs::write(dir.join(name), data).map_err(|e| HarnessError::Io(format!("writing {name}"), e))
}

impl Pki {
    /// Create a CA, a serving certificate for 127.0.0.1/localhost, an admin client
    /// certificate (group `system:masters`) and a service-account key pair in `dir`.
    pub fn create(dir: &Path) -> Result<Self, HarnessError> {
        std::fs::create_dir_all(dir).map_err(|e| HarnessError::Io(format!("creating {}", dir.display()), e))?;
        let ca_key = KeyPair::generate().map_err(err("CA key"))?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name = dn("pdc-test-ca", None);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).map_err(err("CA certificate"))?;
        write(dir, "ca.crt", &ca_cert.pem())?;
        write(dir, "ca.key", &ca_key.serialize_pem())?;
        let pki = Pki { dir: dir.to_path_buf() };

        let issuer = pki.issuer()?;
        let key = KeyPair::generate().map_err(err("serving key"))?;
        let mut p = CertificateParams::new(vec!["localhost".to_string(), "kubernetes.default.svc".to_string()])
            .map_err(err("serving certificate"))?;
        p.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        p.distinguished_name = dn("kube-apiserver", None);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &issuer).map_err(err("serving certificate"))?;
        write(dir, "apiserver.crt", &cert.pem())?;
        write(dir, "apiserver.key", &key.serialize_pem())?;

        pki.issue_client("admin", "pdc-test-admin", &["system:masters"])?;

        let sa = KeyPair::generate().map_err(err("service-account key"))?;
        write(dir, "sa.key", &sa.serialize_pem())?;
        write(dir, "sa.pub", &sa.public_key_pem())?;
        Ok(pki)
    }

    /// Open an existing PKI directory.
    pub fn open(dir: &Path) -> Self {
        Pki { dir: dir.to_path_buf() }
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, HarnessError> {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).map_err(|e| HarnessError::Io(format!("reading {n}"), e));
        let key = KeyPair::from_pem(&read("ca.key")?).map_err(err("CA key"))?;
        Issuer::from_ca_cert_pem(&read("ca.crt")?, key).map_err(err("CA certificate"))
    }

    /// Issue a client certificate for `user` in `groups`; files `<file>.crt`/`<file>.key`.
    pub fn issue_client(&self, file: &str, user: &str, groups: &[&str]) -> Result<(PathBuf, PathBuf), HarnessError> {
        let issuer = self.issuer()?;
        let key = KeyPair::generate().map_err(err("client key"))?;
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(user, Some(groups));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &issuer).map_err(err("client certificate"))?;
        let (crt, k) = (format!("{file}.crt"), format!("{file}.key"));
        write(&self.dir, &crt, &cert.pem())?;
        write(&self.dir, &k, &key.serialize_pem())?;
        Ok((self.dir.join(crt), self.dir.join(k)))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn dn(cn: &str, groups: Option<&[&str]>) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    for g in groups.unwrap_or_default() {
        d.push(DnType::OrganizationName, *g);
    }
    d.push(DnType::CommonName, cn);
    d
}
