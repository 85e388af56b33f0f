//! Compiles `proto/hearth/raft.proto` (the raft transport between
//! ingesters) and `proto/hearth/ingest.proto` (shard commands, snapshots,
//! write forwarding) into Rust with prost and tonic, without a `protoc` binary, the
//! way `crates/proto/build.rs` does: `protox` parses the file into a
//! `FileDescriptorSet` and `tonic_prost_build` generates the messages, the
//! client and the server. It lives here rather than in `hearth-proto`
//! because only the ingesters speak it.

use std::path::PathBuf;

/// Proto files, relative to the workspace's `proto/` directory.
const PROTOS: &[&str] = &["hearth/raft.proto", "hearth/ingest.proto"];

/// Raft messages are handed to the codec without copying.
const BYTES_FIELDS: &[&str] = &[
    ".hearth.raft.RaftEnvelope.message",
    ".hearth.ingest.ForwardRequest.command",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
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
