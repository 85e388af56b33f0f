//! Compiles the `.proto` files under the workspace's `proto/` directory into
//! Rust with prost and tonic, without a `protoc` binary: `protox` (a
//! pure-Rust protobuf compiler) parses the files into a `FileDescriptorSet`,
//! and `tonic_prost_build` generates the messages and the gRPC clients and
//! servers from it in one pass, so service types refer to these message types
//! (tonic 0.14 moved the prost glue into `tonic-prost-build`).
//!
//! Adding a file: list it in `PROTOS`; each proto package becomes one
//! `$OUT_DIR/<package>.rs` that `src/lib.rs` includes. Well-known types
//! (`google.protobuf.Any`, `google.protobuf.Timestamp`) come from
//! `prost-types`.

use std::path::PathBuf;

/// Proto files, relative to the workspace's `proto/` directory.
const PROTOS: &[&str] = &[
    "prometheus/types.proto",
    "prometheus/remote.proto",
    "io/prometheus/write/v2/types.proto",
    "io/prometheus/client/metrics.proto",
    "thanos/store/labelpb/types.proto",
    "thanos/store/storepb/types.proto",
    "thanos/store/storepb/rpc.proto",
    "thanos/info/infopb/rpc.proto",
];

/// Chunk bytes are handed on to readers and writers without copying.
const BYTES_FIELDS: &[&str] = &[".prometheus.Chunk.data", ".thanos.Chunk.data"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in PROTOS {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }

    let fds = protox::compile(PROTOS, [&proto_root])
        .map_err(|e| format!("compile protos under {}: {e:?}", proto_root.display()))?;

    let builder = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true);
    BYTES_FIELDS
        .iter()
        .fold(builder, |b, path| b.bytes(path))
        .compile_fds(fds)
        .map_err(|e| format!("generate Rust from protos: {e}"))?;
    Ok(())
}
