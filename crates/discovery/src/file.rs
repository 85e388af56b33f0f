//! `file_sd_configs`: target groups read from JSON and YAML files named by
//! paths or globs. Files are re-read every `refresh_interval` and whenever
//! the set of matching files or one of their modification times or sizes
//! changes; the files are polled for that every second (a portable stand-in
//! for Prometheus's directory watch).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hearth_config::discovery::{FileSdConfig, StaticConfig};
use tokio::time::{sleep, sleep_until, Instant};

use crate::static_config::group_from_static;
use crate::{Error, GroupSender, Result, TargetGroup};

/// The group label holding the file a group was read from.
pub const FILEPATH_LABEL: &str = "__meta_filepath";

/// How often the files' modification times are compared.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One `file_sd_configs` entry.
#[derive(Debug, Clone)]
pub struct FileDiscovery {
    patterns: Vec<String>,
    refresh_interval: Duration,
    poll_interval: Duration,
}

/// What identifies a version of a file: modification time and size.
type Stamp = Option<(SystemTime, u64)>;

impl FileDiscovery {
    pub fn new(config: &FileSdConfig) -> Self {
        FileDiscovery {
            patterns: config.files.clone(),
            refresh_interval: config.refresh_interval.as_std(),
            poll_interval: POLL_INTERVAL,
        }
    }

    /// Sends the groups of every matching file now, then on every refresh
    /// and every detected change.
    pub async fn run(self, updates: GroupSender) {
        // Groups sent per file, to clear the indices a file no longer has.
        let mut sent: BTreeMap<PathBuf, usize> = BTreeMap::new();
        let mut stamps = self.stamps();
        let mut next_refresh = Instant::now();
        loop {
            tokio::select! {
                _ = sleep_until(next_refresh) => {}
                _ = sleep(self.poll_interval) => {
                    let now = self.stamps();
                    if now == stamps {
                        continue;
                    }
                    stamps = now;
                }
            }
            next_refresh = Instant::now() + self.refresh_interval.max(Duration::from_millis(100));
            let groups = self.refresh(&mut sent);
            if updates.send(groups).is_err() {
                return;
            }
        }
    }

    /// The files the patterns match now, sorted and without duplicates.
    fn matching_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for pattern in &self.patterns {
            match glob::glob(pattern) {
                Ok(paths) => files.extend(paths.filter_map(|p| p.ok())),
                Err(e) => tracing::error!(pattern, error = %e, "file discovery: bad glob"),
            }
        }
        files.sort();
        files.dedup();
        files
    }

    fn stamps(&self) -> BTreeMap<PathBuf, Stamp> {
        self.matching_files()
            .into_iter()
            .map(|path| {
                let stamp = std::fs::metadata(&path)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                (path, stamp)
            })
            .collect()
    }

    /// Reads every matching file. A file that fails to read or parse is
    /// left out, so its previous groups stay; a file that vanished or lost
    /// groups gets empty groups for the sources it no longer has.
    fn refresh(&self, sent: &mut BTreeMap<PathBuf, usize>) -> Vec<TargetGroup> {
        let files = self.matching_files();
        let mut groups = Vec::new();
        for path in &files {
            match read_groups(path) {
                Ok(read) => {
                    let before = sent.insert(path.clone(), read.len()).unwrap_or(0);
                    let count = read.len();
                    groups.extend(read);
                    groups.extend((count..before).map(|i| empty_group(path, i)));
                }
                Err(e) => tracing::error!(error = %e, "file discovery: keeping previous targets"),
            }
        }
        let vanished: Vec<PathBuf> = sent
            .keys()
            .filter(|p| !files.contains(p))
            .cloned()
            .collect();
        for path in vanished {
            let before = sent.remove(&path).unwrap_or(0);
            groups.extend((0..before).map(|i| empty_group(&path, i)));
        }
        groups
    }
}

fn source(path: &Path, index: usize) -> String {
    format!("{}:{index}", path.display())
}

fn empty_group(path: &Path, index: usize) -> TargetGroup {
    TargetGroup::empty(source(path, index))
}

/// The groups of one file: a list of static configs, in JSON or YAML by
/// the extension; group `i` has source `<path>:<i>`.
pub(crate) fn read_groups(path: &Path) -> Result<Vec<TargetGroup>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let parse_error = |message: String| Error::Parse {
        path: path.to_path_buf(),
        message,
    };
    let configs: Vec<StaticConfig> = match extension.as_str() {
        "json" => serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?,
        "yml" | "yaml" => serde_saphyr::from_str::<Option<Vec<StaticConfig>>>(&text)
            .map_err(|e| parse_error(e.to_string()))?
            .unwrap_or_default(),
        _ => return Err(parse_error(format!("unknown file extension {extension:?}"))),
    };
    let filepath = path.display().to_string();
    Ok(configs
        .iter()
        .enumerate()
        .map(|(i, c)| group_from_static(c, source(path, i), Some((FILEPATH_LABEL, &filepath))))
        .collect())
}

#[cfg(test)]
mod tests;
