//! Asking before a failover, a relocation or a deletion: `--yes`, or an answer typed
//! at the terminal. Without a terminal and without `--yes`, nothing is done.

use std::io::{BufRead, IsTerminal, Write};

use crate::CliError;

/// Go on when `yes` (`--yes`) was given, or the person at the terminal answers yes
/// to `question`; refuse otherwise (exit 1), changing nothing.
pub fn confirm(question: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::NotConfirmed(format!("{question}: not confirmed, so nothing was done. Standard input is not a terminal to ask on: pass --yes to go ahead")));
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{question}? [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if accepts(&line) { Ok(()) } else { Err(CliError::NotConfirmed("not confirmed: nothing was done".into())) }
}

/// Whether a typed answer says yes (`y` or `yes`, any case).
fn accepts(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y_or_yes_goes_ahead() {
        for a in ["y\n", "Y", "yes\n", " YES \r\n"] {
            assert!(accepts(a), "{a:?}");
        }
        for a in ["", "\n", "n", "no", "yep", "ja", "có"] {
            assert!(!accepts(a), "{a:?}");
        }
    }

    #[test]
    fn yes_goes_ahead_without_asking() {
        assert!(confirm("Delete tenantvm so-y-te/web-1", true).is_ok());
    }
}
