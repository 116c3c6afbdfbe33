//! `clusterctl`: hands the command line to `cluster_cli::run` and exits with
//! the code it returns.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let env = cluster_cli::Env::from_process();
    let code = cluster_cli::run(
        std::env::args_os(),
        &env,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await;
    std::process::ExitCode::from(code)
}
