//! pdcctl: the command line of pdc, also installed as `kubectl-pdc` so that
//! `kubectl pdc ...` works. Tables by default, `-o json|yaml` for scripts.

// No function longer than 80 lines (clippy.toml sets the threshold): a long body is
// split into named steps.
#![warn(clippy::too_many_lines)]

mod department;
mod dns;
mod dr;
mod ip;
mod output;
mod reorg;
mod slug;
mod vm;
mod volume;
mod zone;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use output::Format;

#[derive(Parser, Debug)]
#[command(name = "pdcctl", version, about = "Self-service private cloud for a province's departments and communes")]
pub struct Cli {
    /// Path of the kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, env = "KUBECONFIG")]
    kubeconfig: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Output: table (default), json, yaml; csv for `ip export`.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Departments, communes and agencies: the province's tenants.
    #[command(visible_alias = "dept", subcommand)]
    Department(department::Cmd),
    /// The dual-stack address plan: plan, usage, find, export.
    #[command(subcommand)]
    Ip(ip::Cmd),
    /// DNS under the province domain: records, zones, plan a manifest, check a name.
    #[command(subcommand)]
    Dns(dns::Cmd),
    /// Tenant VMs: list, show, create (waits, with progress), start, stop, restart, resize, delete, sizes.
    #[command(subcommand)]
    Vm(vm::Cmd),
    /// Disaster recovery: status, show, failover, relocate, drill (with --dry-run).
    #[command(subcommand)]
    Dr(dr::Cmd),
    /// Tenant volumes: create, list, expand, snapshot.
    #[command(subcommand)]
    Volume(volume::Cmd),
    /// Network zones: the reachability matrix for the zone firewalls (rules).
    #[command(subcommand)]
    Zone(zone::Cmd),
    /// Reorganization acts: plan one (offline or against the cluster), show one.
    #[command(subcommand)]
    Reorg(reorg::Cmd),
    /// Suggest slugs (namespace names, subdomain labels) for Vietnamese unit names.
    Slug(slug::Args),
}

/// Errors a command reports before exiting non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the cluster: {0}")]
    Connect(String),
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Format(String),
}

pub(crate) async fn client(cli: &Cli) -> Result<Client, CliError> {
    let opts = KubeConfigOptions { context: cli.context.clone(), ..Default::default() };
    let config = match &cli.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path.split(':').next().unwrap_or(path)).map_err(|e| CliError::Connect(format!("{path}: {e}")))?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|e| CliError::Connect(e.to_string()))?
        }
        None => kube::Config::from_kubeconfig(&opts).await.map_err(|e| CliError::Connect(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| CliError::Connect(e.to_string()))
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match &cli.command {
            Command::Department(cmd) => department::run(&cli, cmd).await,
            Command::Ip(cmd) => ip::run(&cli, cmd).await,
            Command::Dns(cmd) => dns::run(&cli, cmd).await,
            Command::Vm(cmd) => vm::run(&cli, cmd).await,
            Command::Volume(cmd) => volume::run(&cli, cmd).await,
            Command::Dr(cmd) => dr::run(&cli, cmd).await,
            Command::Zone(cmd) => zone::run(&cli, cmd).await,
            Command::Reorg(cmd) => reorg::run(&cli, cmd).await,
            Command::Slug(args) => slug::run(&cli, args),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
