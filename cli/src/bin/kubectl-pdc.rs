//! `kubectl pdc ...`: kubectl finds plugins by the `kubectl-` prefix on PATH.
fn main() -> std::process::ExitCode {
    pdcctl::main()
}
