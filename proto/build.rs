//! Compiles `proto/cluster/v1/*.proto` with a pure-Rust compiler (protox), so a
//! fresh machine builds with cargo alone — no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["cluster/v1/cluster.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // Shared between sessions without a copy.
        .bytes(".cluster.v1.HostsChunk.hosts_encoded")
        // Writes a chunk's lines encoded once (see `codec`).
        .codec_path("crate::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
