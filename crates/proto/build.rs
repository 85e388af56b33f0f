//! Compiles the `.proto` files under the workspace's `proto/` directory into
//! Rust with prost, without a `protoc` binary: `protox` (a pure-Rust protobuf
//! compiler) parses the files into a `FileDescriptorSet` and
//! `prost_build::Config::compile_fds` generates the code from it.
//!
//! Adding a file (StoreAPI, raft messages): list it in `PROTOS`; each proto
//! package becomes one `$OUT_DIR/<package>.rs` that `src/lib.rs` includes.
//! When gRPC services arrive, generate them from the same descriptor set with
//! `tonic_prost_build::configure()...compile_fds(fds)` (tonic 0.14 moved the
//! prost glue into `tonic-prost-build`), keeping messages and services in one
//! pass so service types refer to these message types.

use std::path::PathBuf;

/// Proto files, relative to the workspace's `proto/` directory.
const PROTOS: &[&str] = &[
    "prometheus/types.proto",
    "prometheus/remote.proto",
    "io/prometheus/write/v2/types.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in PROTOS {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }

    let fds = protox::compile(PROTOS, [&proto_root])
        .map_err(|e| format!("compile protos under {}: {e:?}", proto_root.display()))?;

    prost_build::Config::new()
        // Chunk bytes are handed on to readers without copying.
        .bytes([".prometheus.Chunk.data"])
        .compile_fds(fds)
        .map_err(|e| format!("generate Rust from protos: {e}"))?;
    Ok(())
}
