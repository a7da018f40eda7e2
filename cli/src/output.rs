//! Tables for people, JSON and YAML for scripts.

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use crate::CliError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
    /// Comma-separated values (`pdcctl ip export`, `pdcctl zone rules`).
    Csv,
    /// An nftables ruleset (`pdcctl zone rules` only).
    Nftables,
}

/// Print a line to stdout. A closed pipe (`pdcctl ... | head`) ends the process
/// quietly, as other command-line tools do.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if writeln!(o, "{line}").is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
        std::process::exit(0);
    }
}

/// `println!` through [`out`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::out(format!($($arg)*)) };
}

/// A kubectl-style table: no borders, upper-case headers.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled).set_header(headers.to_vec());
    for r in rows {
        t.add_row(r);
    }
    // comfy-table pads the first column with one space; kubectl does not.
    t.to_string().lines().map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end()).collect::<Vec<_>>().join("\n")
}

/// Print `value` as JSON or YAML.
pub fn print_data<T: Serialize>(format: Format, value: &T) -> Result<(), CliError> {
    match format {
        Format::Json => out(serde_json::to_string_pretty(value).map_err(|e| CliError::Format(e.to_string()))?),
        Format::Yaml | Format::Table => out(serde_yaml::to_string(value).map_err(|e| CliError::Format(e.to_string()))?.trim_end()),
        Format::Csv | Format::Nftables => {
            return Err(CliError::Usage("-o csv is offered by `pdcctl ip export` and `pdcctl zone rules`, -o nftables by the latter; use -o json or -o yaml here".into()));
        }
    }
    Ok(())
}

/// How long ago `t` was, the way kubectl prints ages (`45s`, `12m`, `3h`, `5d`).
pub fn age(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    let Some(t) = t else { return "-".into() };
    let secs = k8s_openapi::jiff::Timestamp::now().duration_since(t.0).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_is_kubectl_like() {
        let t = super::table(&["NAME", "CODE"], vec![vec!["so-y-te".into(), "H15.23".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME"), "{t}");
        assert!(lines[1].starts_with("so-y-te"), "{t}");
    }
}
