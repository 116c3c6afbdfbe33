//! Compiles `proto/cluster/v1/*.proto` with a pure-Rust compiler (protox), so a
//! fresh machine builds with cargo alone — no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["cluster/v1/cluster.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
