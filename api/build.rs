//! Compiles the agent<->master protocol. Uses `$PROTOC` when set, otherwise the
//! protoc shipped by the `protoc-bin-vendored` crate, so no system package is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(p) => std::path::PathBuf::from(p),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/keel/v1/cluster.proto", "proto/keel/v1/raft.proto"],
        &["proto"],
    )?;
    Ok(())
}
