//! `pdcctl zone`: the province's network zones and their reachability matrix, the
//! same one the operator turns into NetworkPolicies (pods) and MultiNetworkPolicies
//! (VM NICs), for the firewall pairs at the zone boundaries.

use std::process::ExitCode;

use clap::Subcommand;
use kube::Api;
use kube::api::ListParams;
use pdc_api::NetworkZone;
use pdc_core::zonerules;

use crate::output::{Format, Listing, Row, out};
use crate::{Cli, CliError, client};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// The reachability matrix: zone → zone, prefixes of both families, ports.
    /// `-o csv` or `-o nftables` for the physical firewalls; `-o json|yaml` for scripts.
    Rules,
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    match cmd {
        Cmd::Rules => {
            let zones = Api::<NetworkZone>::all(client(cli).await?).list(&ListParams::default()).await?.items;
            let flows = pdc_api::zone_flows(&zones);
            match cli.format {
                Format::Csv => out(zonerules::csv(&flows).trim_end()),
                Format::Nftables => out(zonerules::nftables(&flows).trim_end()),
                _ => {
                    let ports = |f: &zonerules::Flow| {
                        if f.ports.is_empty() { "any".to_string() } else { f.ports.iter().map(zonerules::Port::label).collect::<Vec<_>>().join(",") }
                    };
                    let rows = flows.iter().map(|f| Row::new(vec![f.from.clone(), f.to.clone(), f.from_prefixes.join(" "), f.to_prefixes.join(" "), ports(f)]));
                    cli.output().list(&Listing::values(&["FROM", "TO", "FROM PREFIXES", "TO PREFIXES", "PORTS"]).rows(rows), &flows)?;
                    if flows.is_empty() && cli.format.for_people() && !cli.no_headers {
                        out("(no zone admits another: every zone is closed to the others)");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
