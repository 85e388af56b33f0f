//! Typed object names of Thanos's bucket layout (specs/tsdb-blocks.md §8.1):
//! `<ULID>/meta.json`, `<ULID>/index`, `<ULID>/chunks/000001`, the marker
//! files and `debug/...`. Object names always use `/`.

use object_store::path::Path;
use ulid::Ulid;

/// Name of a block's metadata file, the one uploaded last.
pub const META_FILENAME: &str = "meta.json";
/// Name of a block's index file.
pub const INDEX_FILENAME: &str = "index";
/// Name of a block's directory of chunk segment files.
pub const CHUNKS_DIRNAME: &str = "chunks";
/// Marker of a block scheduled for deletion.
pub const DELETION_MARK_FILENAME: &str = "deletion-mark.json";
/// Marker of a block excluded from compaction.
pub const NO_COMPACT_MARK_FILENAME: &str = "no-compact-mark.json";
/// Marker of a block excluded from downsampling.
pub const NO_DOWNSAMPLE_MARK_FILENAME: &str = "no-downsample-mark.json";
/// Top-level prefix for debug objects; never a block.
pub const DEBUG_DIRNAME: &str = "debug";

/// The prefix of every object of a block: `<ULID>/`.
pub fn block_dir(id: Ulid) -> Path {
    Path::from(id.to_string())
}

/// `<ULID>/meta.json`.
pub fn meta(id: Ulid) -> Path {
    block_file(id, META_FILENAME)
}

/// `<ULID>/index`.
pub fn index(id: Ulid) -> Path {
    block_file(id, INDEX_FILENAME)
}

/// `<ULID>/chunks/`.
pub fn chunks_dir(id: Ulid) -> Path {
    block_file(id, CHUNKS_DIRNAME)
}

/// `<ULID>/chunks/<NNNNNN>` for segment file `seq` (1-based, six digits).
pub fn chunk_segment(id: Ulid, seq: u32) -> Path {
    block_file(id, &format!("{CHUNKS_DIRNAME}/{seq:06}"))
}

/// `<ULID>/deletion-mark.json`.
pub fn deletion_mark(id: Ulid) -> Path {
    block_file(id, DELETION_MARK_FILENAME)
}

/// `<ULID>/no-compact-mark.json`.
pub fn no_compact_mark(id: Ulid) -> Path {
    block_file(id, NO_COMPACT_MARK_FILENAME)
}

/// `<ULID>/no-downsample-mark.json`.
pub fn no_downsample_mark(id: Ulid) -> Path {
    block_file(id, NO_DOWNSAMPLE_MARK_FILENAME)
}

/// `<ULID>/<rel_path>` for a path relative to the block directory with `/`
/// separators (`chunks/000001`, `index`).
pub fn block_file(id: Ulid, rel_path: &str) -> Path {
    Path::from(format!("{id}/{rel_path}"))
}

/// `debug/<rel_path>`, e.g. `debug/metas/<ULID>.json`.
pub fn debug(rel_path: &str) -> Path {
    Path::from(format!("{DEBUG_DIRNAME}/{rel_path}"))
}

/// Parses a top-level prefix as a block ID: exactly 26 characters of
/// Crockford base32 in upper case, as Go's `ulid.ParseStrict` after
/// Thanos's length check. `debug` and anything else is not a block.
pub fn parse_block_id(name: &str) -> Option<Ulid> {
    let name = name.trim_end_matches('/');
    let crockford = |b: u8| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b));
    if name.len() != 26 || name.as_bytes()[0] > b'7' || !name.bytes().all(crockford) {
        return None;
    }
    Ulid::from_string(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_paths_follow_thanos_layout() {
        let id = Ulid::from_string("01HK1FDPTK4TFF59TDWH9EDD1R").unwrap();
        assert_eq!(meta(id).as_ref(), "01HK1FDPTK4TFF59TDWH9EDD1R/meta.json");
        assert_eq!(index(id).as_ref(), "01HK1FDPTK4TFF59TDWH9EDD1R/index");
        assert_eq!(
            chunk_segment(id, 1).as_ref(),
            "01HK1FDPTK4TFF59TDWH9EDD1R/chunks/000001"
        );
        assert_eq!(
            deletion_mark(id).as_ref(),
            "01HK1FDPTK4TFF59TDWH9EDD1R/deletion-mark.json"
        );
        assert_eq!(
            no_compact_mark(id).as_ref(),
            "01HK1FDPTK4TFF59TDWH9EDD1R/no-compact-mark.json"
        );
        assert_eq!(debug("metas/x.json").as_ref(), "debug/metas/x.json");
    }

    #[test]
    fn only_strict_ulids_are_blocks() {
        assert!(parse_block_id("01HK1FDPTK4TFF59TDWH9EDD1R").is_some());
        assert!(parse_block_id("01HK1FDPTK4TFF59TDWH9EDD1R/").is_some());
        assert!(parse_block_id("debug").is_none());
        assert!(parse_block_id("01hk1fdptk4tff59tdwh9edd1r").is_none());
        assert!(parse_block_id("01HK1FDPTK4TFF59TDWH9EDD1R.tmp-for-creation").is_none());
        assert!(parse_block_id("81HK1FDPTK4TFF59TDWH9EDD1R").is_none());
    }
}
