fn main() -> std::process::ExitCode {
    shoal::cli::main()
}
