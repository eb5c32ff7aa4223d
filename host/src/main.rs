//! The `cairn` binary: parse the command line, run the verb.

fn main() -> std::process::ExitCode {
    // The command line, with `--config FILE` (or CAIRN_CONFIG) applied.
    let cli = cairn::cli::config::parse_or_exit();
    cairn::cli::init_logging(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cairn::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{e}`, not `{e:#}`: every error's message already ends with
            // its cause, so printing the chain would repeat it.
            eprintln!("error: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
