//! pdcctl: the command line of pdc, also installed as `kubectl-pdc` so that
//! `kubectl pdc ...` works (its help and usage then say `kubectl pdc`). Tables by
//! default, `-o wide|name|json|yaml` and `--no-headers` as in kubectl; the cluster,
//! context and namespace chosen as kubectl chooses them ([`connect`]); exit codes in
//! [`exit`].

// No function longer than 80 lines (clippy.toml sets the threshold): a long body is
// split into named steps.
#![warn(clippy::too_many_lines)]

mod confirm;
pub mod connect;
mod console;
mod department;
mod dns;
mod dr;
pub mod exit;
mod install;
mod import;
mod ip;
mod output;
mod pages;
mod reorg;
mod report;
mod slug;
mod vm;
mod volume;
pub mod wait;
mod zone;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
pub(crate) use connect::client;

pub use output::Format;
use output::Output;

/// The name of the binary when kubectl runs it as the plugin `kubectl pdc`.
const PLUGIN_FILE: &str = "kubectl-pdc";

#[derive(Parser, Debug)]
#[command(name = "pdcctl", version, about = "Self-service private cloud for a province's departments and communes", after_help = exit::help())]
pub struct Cli {
    /// Path of the kubeconfig (default: the files in $KUBECONFIG merged as kubectl
    /// merges them, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, global = true)]
    context: Option<String>,
    /// How long to wait for each answer from the API server before giving up: 0
    /// (no limit, the default), a number of seconds, or a duration such as 30s or 1m.
    #[arg(long, global = true, value_name = "DURATION", value_parser = wait::parse_duration)]
    request_timeout: Option<Duration>,
    /// Output: table (default), wide, name, json, yaml; csv for `ip export`, `zone rules` and `report`.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print tables without their header line.
    #[arg(long, global = true)]
    no_headers: bool,
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
    /// Tenant VMs: list, show, create (waits, with progress), start, stop, restart, resize, delete, sizes, console, vnc.
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
    /// Reports per unit: inventory, IPv6 readiness, zones' IPv4 phase, domains and DNSSEC (table, -o csv|json|yaml).
    #[command(subcommand)]
    Report(report::Cmd),
    /// Suggest slugs (namespace names, subdomain labels) for Vietnamese unit names.
    Slug(slug::Args),
    /// Install pdc in a cluster: crds creates or upgrades pdc's CRDs (before helm upgrade).
    #[command(subcommand)]
    Install(install::Cmd),
    /// Print a shell completion script to stdout, e.g. `source <(... completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
}

impl Cli {
    /// The output the global `-o` and `--no-headers` ask for.
    pub(crate) fn output(&self) -> Output {
        Output { format: self.format, headers: !self.no_headers }
    }
}

/// Errors a command reports before exiting non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the cluster: {0}")]
    Connect(String),
    /// An API error, worded by [`connect::describe`].
    #[error("{}", connect::describe(.0))]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Usage(String),
    /// Something the command needs is not there (KubeVirt's console API, a running VM).
    #[error("{0}")]
    Unavailable(String),
    /// A failover, relocation or deletion without `--yes` or a typed yes.
    #[error("{0}")]
    NotConfirmed(String),
    /// A wait ran out (`--timeout`).
    #[error("{0}")]
    TimedOut(String),
    /// The cluster refused what the command needs (the user's rights, an invalid
    /// change), said with what was done before.
    #[error("{0}")]
    Refused(String),
    /// A flag this command does not take (e.g. an `-o` it does not offer): a usage
    /// error clap cannot see, so it exits 2 like clap's.
    #[error("{0}")]
    Flag(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Format(String),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Flag(_) => ExitCode::from(exit::USAGE),
            CliError::TimedOut(_) => ExitCode::from(exit::TIMED_OUT),
            _ => ExitCode::from(exit::FAILED),
        }
    }
}

/// How the binary was invoked: `kubectl pdc` when its file is the kubectl plugin
/// (`kubectl-pdc`, whatever the directory or extension), else `pdcctl`.
pub fn invoked_as(argv0: Option<&OsStr>) -> &'static str {
    match argv0.map(Path::new).and_then(Path::file_stem) {
        Some(stem) if stem == PLUGIN_FILE => "kubectl pdc",
        _ => "pdcctl",
    }
}

/// The command line as `invoked_as` names it in help, usage and errors.
pub fn command(invoked_as: &str) -> clap::Command {
    let cmd = Cli::command();
    if invoked_as == "pdcctl" { cmd.bin_name("pdcctl") } else { cmd.name(PLUGIN_FILE).bin_name(invoked_as) }
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let invoked = invoked_as(std::env::args_os().next().as_deref());
    // A usage error or --help ends here, with clap's exit code (2, or 0 for help).
    let matches = command(invoked).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::FAILED);
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
            Command::Report(cmd) => report::run(&cli, cmd).await,
            Command::Slug(args) => slug::run(&cli, args),
            Command::Install(cmd) => install::run(&cli, cmd).await,
            Command::Completion { shell } => completion(*shell, invoked),
            Command::Man => man(invoked),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// The completion script for `shell`, for the file the shell runs (`pdcctl` or
/// `kubectl-pdc`).
pub fn completion_script(shell: clap_complete::Shell, invoked_as: &str) -> String {
    let file = if invoked_as == "pdcctl" { "pdcctl" } else { PLUGIN_FILE };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(invoked_as), file, &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

fn completion(shell: clap_complete::Shell, invoked_as: &str) -> Result<ExitCode, CliError> {
    output::out(completion_script(shell, invoked_as).trim_end());
    Ok(ExitCode::SUCCESS)
}

/// The man page (roff) of the whole command line: options, subcommands and an EXIT
/// STATUS section (in place of the plain after-help text).
pub fn man_page(invoked_as: &str) -> Result<String, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command(invoked_as).after_help(None::<&str>)).render(&mut page)?;
    Ok(format!("{}{}", String::from_utf8_lossy(&page), exit::man_section()))
}

fn man(invoked_as: &str) -> Result<ExitCode, CliError> {
    output::out(man_page(invoked_as)?.trim_end());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the top-level commands, from the parser itself.
    fn commands() -> Vec<String> {
        command("pdcctl").get_subcommands().map(|c| c.get_name().to_string()).filter(|n| n != "help").collect()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        command("pdcctl").debug_assert();
        command("kubectl pdc").debug_assert();
    }

    #[test]
    fn the_plugin_file_is_invoked_as_kubectl_pdc_wherever_it_lies() {
        for argv0 in ["kubectl-pdc", "/usr/local/bin/kubectl-pdc", "C:\\bin/kubectl-pdc.exe"] {
            assert_eq!(invoked_as(Some(OsStr::new(argv0))), "kubectl pdc", "{argv0}");
        }
        for argv0 in ["pdcctl", "/usr/bin/pdcctl", "kubectl-pdcx"] {
            assert_eq!(invoked_as(Some(OsStr::new(argv0))), "pdcctl", "{argv0}");
        }
        assert_eq!(invoked_as(None), "pdcctl");
    }

    #[test]
    fn usage_and_help_name_kubectl_pdc_when_run_as_the_plugin() {
        let mut cmd = command("kubectl pdc");
        assert_eq!(cmd.render_usage().to_string(), "Usage: kubectl pdc [OPTIONS] <COMMAND>");
        let help = cmd.render_long_help().to_string();
        assert!(!help.contains("pdcctl"), "{help}");
        let err = command("kubectl pdc").try_get_matches_from(["kubectl-pdc", "vm", "list", "--bogus"]).unwrap_err();
        assert!(err.to_string().contains("Usage: kubectl pdc vm list [OPTIONS]"), "{err}");
        assert_eq!(err.exit_code(), i32::from(exit::USAGE));
    }

    #[test]
    fn help_ends_with_the_exit_codes() {
        let help = command("pdcctl").render_help().to_string();
        assert!(help.trim_end().ends_with(&exit::help()), "{help}");
    }

    #[test]
    fn bash_completion_offers_every_command() {
        let script = completion_script(clap_complete::Shell::Bash, "pdcctl");
        assert!(script.contains("complete -F _pdcctl"), "{script}");
        for c in commands() {
            assert!(script.contains(&format!("pdcctl,{c})")), "{c} missing from the bash completion");
        }
        let plugin = completion_script(clap_complete::Shell::Bash, "kubectl pdc");
        assert!(plugin.trim_end().ends_with("kubectl-pdc\nfi"), "completes the plugin's file: {plugin}");
    }

    #[test]
    fn zsh_and_fish_completions_offer_the_commands_too() {
        let zsh = completion_script(clap_complete::Shell::Zsh, "pdcctl");
        let fish = completion_script(clap_complete::Shell::Fish, "pdcctl");
        assert!(zsh.starts_with("#compdef pdcctl"), "{zsh}");
        for c in commands() {
            assert!(zsh.contains(&format!("'{c}:")), "{c} missing from the zsh completion");
            assert!(fish.contains(&format!("-a \"{c}\"")), "{c} missing from the fish completion");
        }
    }

    #[test]
    fn the_man_page_names_every_command_and_the_exit_codes() {
        let page = man_page("pdcctl").unwrap();
        assert!(page.contains(".TH pdcctl 1"), "{page}");
        for section in ["NAME", "SYNOPSIS", "OPTIONS", "SUBCOMMANDS", "\"EXIT STATUS\""] {
            assert_eq!(page.matches(&format!("\n.SH {section}\n")).count(), 1, "{section}: {page}");
        }
        for c in commands() {
            assert!(page.contains(&format!("pdcctl\\-{}(1)", c.replace('-', "\\-"))), "{c} missing from the man page");
        }
        assert!(page.contains("\\-\\-no\\-headers"), "{page}");
        assert!(!page.contains(".SH EXTRA"), "the exit codes have their own section: {page}");
    }
}
