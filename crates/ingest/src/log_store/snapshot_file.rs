//! The snapshot file of a log store: the raft `SnapshotMetadata` and the
//! state machine's opaque bytes, each with a CRC, written to a temporary
//! file, fsynced and renamed over the previous one, so a crash leaves either
//! the old snapshot or the new one, never a mix.
//!
//! Layout: `HRTHSNP1`, `[u32 LE meta length][u32 LE crc32c][meta]`,
//! `[u64 LE data length][u32 LE crc32c][data]`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{Snapshot, SnapshotMetadata};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"HRTHSNP1";
pub(crate) const FILE_NAME: &str = "snapshot";
const TEMP_FILE_NAME: &str = "snapshot.tmp";

/// Reads the snapshot in `dir`, or an empty one when there is none. A stale
/// temporary file (a crash mid-write) is removed.
pub(crate) fn load(dir: &Path) -> Result<Snapshot> {
    let temp = dir.join(TEMP_FILE_NAME);
    if temp.exists() {
        fs::remove_file(&temp).map_err(Error::io("remove stale snapshot", &temp))?;
    }
    let path = dir.join(FILE_NAME);
    let data = match fs::read(&path) {
        Ok(data) => Bytes::from(data),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Snapshot::default()),
        Err(e) => return Err(Error::io("read snapshot", &path)(e)),
    };
    decode(&path, &data)
}

/// Writes `snapshot` as the snapshot of `dir`, durably.
pub(crate) fn store(dir: &Path, snapshot: &Snapshot) -> Result<()> {
    let temp = dir.join(TEMP_FILE_NAME);
    let path = dir.join(FILE_NAME);
    let meta = snapshot
        .get_metadata()
        .write_to_bytes()
        .map_err(Error::codec("encode snapshot metadata"))?;
    let meta_len = u32::try_from(meta.len())
        .map_err(|_| Error::InvalidArgument("snapshot metadata over 4 GiB".to_string()))?;

    let mut header = Vec::with_capacity(MAGIC.len() + 8 + meta.len() + 12);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&meta_len.to_le_bytes());
    header.extend_from_slice(&crc32c::crc32c(&meta).to_le_bytes());
    header.extend_from_slice(&meta);
    header.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32c::crc32c(&snapshot.data).to_le_bytes());

    let write = |file: &mut File| -> std::io::Result<()> {
        file.write_all(&header)?;
        file.write_all(&snapshot.data)?;
        file.sync_all()
    };
    let mut file = File::create(&temp).map_err(Error::io("create snapshot", &temp))?;
    write(&mut file).map_err(Error::io("write snapshot", &temp))?;
    drop(file);
    fs::rename(&temp, &path).map_err(Error::io("rename snapshot", &path))?;
    sync_dir(dir)
}

/// Makes the creation, removal or renaming of files in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync directory", dir))
}

fn decode(path: &Path, data: &Bytes) -> Result<Snapshot> {
    let corrupt = |offset: usize, reason: &str| Error::Corrupt {
        path: PathBuf::from(path),
        offset: offset as u64,
        reason: reason.to_string(),
    };
    if data.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(corrupt(0, "not a snapshot file"));
    }
    let mut pos = MAGIC.len();
    let meta_len = read_u32(data, pos).ok_or_else(|| corrupt(pos, "truncated header"))? as usize;
    let meta_crc = read_u32(data, pos + 4).ok_or_else(|| corrupt(pos, "truncated header"))?;
    pos += 8;
    let meta = data
        .get(pos..pos + meta_len)
        .ok_or_else(|| corrupt(pos, "truncated metadata"))?;
    if crc32c::crc32c(meta) != meta_crc {
        return Err(corrupt(pos, "metadata checksum mismatch"));
    }
    let metadata = SnapshotMetadata::parse_from_bytes(meta)
        .map_err(Error::codec("decode snapshot metadata"))?;
    pos += meta_len;
    let data_len = data
        .get(pos..pos + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| corrupt(pos, "truncated data header"))?;
    let data_crc = read_u32(data, pos + 8).ok_or_else(|| corrupt(pos, "truncated data header"))?;
    pos += 12;
    let end = usize::try_from(data_len)
        .ok()
        .and_then(|len| pos.checked_add(len))
        .filter(|end| *end == data.len())
        .ok_or_else(|| corrupt(pos, "data length does not match the file"))?;
    let body = data.slice(pos..end);
    if crc32c::crc32c(&body) != data_crc {
        return Err(corrupt(pos, "data checksum mismatch"));
    }
    let mut snapshot = Snapshot {
        data: body,
        ..Default::default()
    };
    snapshot.set_metadata(metadata);
    Ok(snapshot)
}

fn read_u32(data: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(pos..pos + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(index: u64, term: u64, data: &'static [u8]) -> Snapshot {
        let mut snapshot = Snapshot {
            data: Bytes::from_static(data),
            ..Default::default()
        };
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = term;
        snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snapshot
    }

    #[test]
    fn stores_and_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).expect("load").is_empty());
        store(dir.path(), &snapshot(5, 2, b"state")).expect("store");
        store(dir.path(), &snapshot(9, 3, b"newer state")).expect("store");
        let loaded = load(dir.path()).expect("load");
        assert_eq!(loaded, snapshot(9, 3, b"newer state"));
    }

    #[test]
    fn detects_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        store(dir.path(), &snapshot(5, 2, b"state")).expect("store");
        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(load(dir.path()), Err(Error::Corrupt { .. })));
        fs::write(&path, &bytes[..bytes.len() - 2]).expect("write");
        assert!(matches!(load(dir.path()), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn removes_a_stale_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(TEMP_FILE_NAME), b"half written").expect("write");
        assert!(load(dir.path()).expect("load").is_empty());
        assert!(!dir.path().join(TEMP_FILE_NAME).exists());
    }
}
