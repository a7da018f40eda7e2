//! pdcctl's exit codes, the same for every command (`pdcctl --help` and `pdcctl man`
//! print [`CODES`]):
//!
//! - `0`: success. A closed pipe (`pdcctl ... | head`) also ends with 0.
//! - `1`: an operation failed or was refused: the cluster could not be reached or
//!   answered with an error; a reorganization act, DNS manifest or slug list was
//!   refused; a Department, VM or DR action did not get to where it was asked to
//!   go; an address lies outside the plan (`ip find`); a failover, relocation or
//!   deletion was not confirmed (no `--yes` and no terminal to ask on); no answer
//!   came within `--request-timeout`.
//! - `2`: a usage error: clap's (an unknown command or flag, a missing or bad
//!   argument), or an `-o` this command does not offer. Nothing else exits 2.
//! - `3`: `dns check`: the server answers something other than what pdc declares.
//! - `4`: a wait ran out (`--timeout`): what was asked for (a Ready Department or
//!   VM, the end of a DR action, a running VM for its console) did not come in time;
//!   an action already asked for goes on.

use std::process::ExitCode;

/// An operation failed or was refused.
pub const FAILED: u8 = 1;
/// A usage error; also clap's own code for one.
pub const USAGE: u8 = 2;
/// `dns check`: the server's answer differs from what pdc declares.
pub const DNS_DIFFERS: u8 = 3;
/// A wait ran out (`--timeout`).
pub const TIMED_OUT: u8 = 4;

/// Every exit code and what it means, for `--help` and the man page.
pub const CODES: [(u8, &str); 5] = [
    (0, "success"),
    (FAILED, "an operation failed or was refused (a refused plan, an API error, no --yes, no answer within --request-timeout)"),
    (USAGE, "usage error (unknown command or flag, bad argument, an -o the command does not offer)"),
    (DNS_DIFFERS, "dns check: the server answers something other than what pdc declares"),
    (TIMED_OUT, "a wait ran out (--timeout); an action already asked for goes on"),
];

/// The exit codes, for the end of `--help`.
pub fn help() -> String {
    let lines: Vec<String> = CODES.iter().map(|(code, meaning)| format!("  {code}  {meaning}")).collect();
    format!("Exit codes:\n{}", lines.join("\n"))
}

/// The EXIT STATUS section of the man page (roff).
pub fn man_section() -> String {
    let items: String = CODES.iter().map(|(code, meaning)| format!(".TP\n{code}\n{}\n", meaning.replace('\\', "\\\\").replace('-', "\\-"))).collect();
    format!(".SH \"EXIT STATUS\"\n{items}")
}

/// Success, or the code when `ok` is false.
pub fn unless(ok: bool, code: u8) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_man_page_list_every_code_once() {
        let help = help();
        let man = man_section();
        for code in [0, FAILED, USAGE, DNS_DIFFERS, TIMED_OUT] {
            assert_eq!(help.lines().filter(|l| l.trim_start().starts_with(&format!("{code} "))).count(), 1, "{help}");
            assert_eq!(man.lines().filter(|l| *l == code.to_string()).count(), 1, "{man}");
        }
        assert!(man.contains("an \\-o the command"), "roff escapes the dash: {man}");
    }
}
