//! Starts the province's DNS server for local use (the demo): Knot DNS on loopback,
//! zones signed with DNSSEC, updates and transfers only with a TSIG key; registers
//! the key as a Secret and each zone as a DnsZone in the cluster of $KUBECONFIG, and
//! keeps running until killed (knotd stops with it).
//!
//!     pdc-dns-server --env-file FILE daklak.gov.vn 15.10.in-addr.arpa ...
//!
//! writes `PDC_DNS_PORT=...` to the env file once the zones are registered.

use std::path::PathBuf;
use std::process::ExitCode;

use pdc_tests::dns::{KnotServer, register_zones};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut env_file: Option<PathBuf> = None;
    let mut zones = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--env-file" => env_file = args.next().map(PathBuf::from),
            z if !z.starts_with('-') => zones.push(z.to_string()),
            _ => {
                eprintln!("usage: pdc-dns-server [--env-file FILE] ZONE...");
                return ExitCode::from(2);
            }
        }
    }
    let base = std::env::temp_dir().join("pdc-dns-server");
    let refs: Vec<&str> = zones.iter().map(String::as_str).collect();
    let started = std::fs::create_dir_all(&base).map_err(|e| e.to_string()).and_then(|()| KnotServer::start(&base, &refs).map_err(|e| e.to_string()));
    let knot = match started {
        Ok(k) => k,
        Err(e) => {
            eprintln!("pdc-dns-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let registered = async {
        let client = kube::Client::try_default().await.map_err(|e| e.to_string())?;
        register_zones(&client, &knot, "province-dns-tsig").await.map_err(|e| e.to_string())
    };
    match registered.await {
        Ok(names) => eprintln!("Knot DNS on 127.0.0.1:{} serving {} (DnsZones {})", knot.port, zones.join(", "), names.join(", ")),
        Err(e) => {
            eprintln!("pdc-dns-server: registering the zones: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(f) = env_file
        && let Err(e) = std::fs::write(&f, format!("PDC_DNS_PORT={}\n", knot.port))
    {
        eprintln!("pdc-dns-server: writing {}: {e}", f.display());
        return ExitCode::FAILURE;
    }
    let _ = tokio::signal::ctrl_c().await;
    drop(knot);
    ExitCode::SUCCESS
}
