fn main() -> std::process::ExitCode {
    pdcctl::main()
}
