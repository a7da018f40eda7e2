//! Durations as kubectl writes them (`--request-timeout`, `--timeout`), and the
//! deadline of a command that waits for something.

use std::time::{Duration, Instant};

use crate::CliError;

/// A duration as kubectl reads `--request-timeout`: a whole number of seconds
/// (`30`), or Go's duration syntax (`30s`, `1m`, `1h30m`, `1.5s`, `500ms`). `0` is
/// zero, whatever the caller makes of it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: write a whole number of seconds or a number with a unit, e.g. 0, 30s, 1m, 1h30m, 500ms");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// How a duration reads in a message: `90s`, `2m`, `1h30m`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// How long a command waits (`--timeout`); zero waits without a limit.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    limit: Option<Duration>,
}

impl Deadline {
    pub fn start(limit: Duration) -> Self {
        Deadline { start: Instant::now(), limit: (!limit.is_zero()).then_some(limit) }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// An error (exit code [`crate::exit::TIMED_OUT`]) once the time is up, saying
    /// what was not reached and what to do.
    pub fn check(&self, what: impl FnOnce() -> String) -> Result<(), CliError> {
        match self.limit {
            Some(limit) if self.start.elapsed() >= limit => Err(CliError::TimedOut(format!("timed out after {} (--timeout): {}", format_duration(limit), what()))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubectl_reads_them() {
        for (text, secs) in [("0", 0.0), ("30", 30.0), ("30s", 30.0), ("1m", 60.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("500ms", 0.5), ("2m3s", 123.0), ("0s", 0.0)] {
            assert_eq!(parse_duration(text).unwrap(), Duration::from_secs_f64(secs), "{text}");
        }
        for text in ["", "-1", "-5s", "1x", "s", "1m-2s", "ten", "1 m", "1.2.3s"] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.contains("is not a duration") && e.contains("30s"), "{text}: {e}");
        }
    }

    #[test]
    fn durations_print_short() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn a_deadline_of_zero_never_expires_and_another_expires_with_the_exit_code() {
        assert!(Deadline::start(Duration::ZERO).check(|| "x".into()).is_ok());
        let d = Deadline::start(Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(2));
        let e = d.check(|| "vm web-1 not Ready".into()).unwrap_err();
        assert!(matches!(&e, CliError::TimedOut(m) if m.contains("timed out after") && m.contains("vm web-1 not Ready")), "{e}");
        assert_eq!(e.exit_code(), std::process::ExitCode::from(crate::exit::TIMED_OUT));
    }
}
