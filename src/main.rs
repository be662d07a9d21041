fn main() -> std::process::ExitCode {
    vmpath::cli::main()
}
