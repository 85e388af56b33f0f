use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::testing::{addresses, labels, next_update, no_update};

fn discovery(patterns: Vec<String>) -> FileDiscovery {
    FileDiscovery {
        patterns,
        refresh_interval: Duration::from_secs(600),
        poll_interval: Duration::from_millis(50),
    }
}

fn by_source<'a>(groups: &'a [TargetGroup], source: &str) -> &'a TargetGroup {
    groups
        .iter()
        .find(|g| g.source == source)
        .unwrap_or_else(|| panic!("no group {source} in {groups:?}"))
}

#[tokio::test]
async fn json_and_yaml_groups_with_filepath_and_sources() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.json");
    let yaml = dir.path().join("b.yml");
    std::fs::write(
        &json,
        r#"[{"targets": ["10.0.0.1:9100", "10.0.0.2:9100"], "labels": {"env": "prod"}},
            {"targets": ["db1:9187"]}]"#,
    )
    .unwrap();
    std::fs::write(&yaml, "- targets: ['y:1']\n  labels:\n    team: infra\n").unwrap();
    let pattern = dir.path().join("*").display().to_string();
    let pattern_json = format!("{pattern}.json");
    let pattern_yaml = format!("{pattern}.yml");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery(vec![pattern_json, pattern_yaml]).run(tx));
    let groups = next_update(&mut rx).await;
    assert_eq!(groups.len(), 3);
    let json_path = json.display().to_string();
    let yaml_path = yaml.display().to_string();
    let first = by_source(&groups, &format!("{json_path}:0"));
    assert_eq!(addresses(first), ["10.0.0.1:9100", "10.0.0.2:9100"]);
    assert_eq!(
        first.labels,
        labels(&[("env", "prod"), ("__meta_filepath", &json_path)])
    );
    let second = by_source(&groups, &format!("{json_path}:1"));
    assert_eq!(addresses(second), ["db1:9187"]);
    assert_eq!(second.labels, labels(&[("__meta_filepath", &json_path)]));
    let third = by_source(&groups, &format!("{yaml_path}:0"));
    assert_eq!(addresses(third), ["y:1"]);
    assert_eq!(
        third.labels,
        labels(&[("team", "infra"), ("__meta_filepath", &yaml_path)])
    );
    // Nothing changed: no update before the (long) refresh interval.
    no_update(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn change_bad_file_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, "- targets: ['a:1']\n- targets: ['b:2']\n").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery(vec![path.display().to_string()]).run(tx));
    let p = path.display().to_string();
    let groups = next_update(&mut rx).await;
    assert_eq!(groups.len(), 2);

    // A change is seen by polling; the vanished index gets an empty group.
    std::fs::write(&path, "- targets: ['c:3', 'd:4']\n").unwrap();
    let groups = next_update(&mut rx).await;
    assert_eq!(groups.len(), 2);
    assert_eq!(
        addresses(by_source(&groups, &format!("{p}:0"))),
        ["c:3", "d:4"]
    );
    assert!(by_source(&groups, &format!("{p}:1")).targets.is_empty());

    // A file that does not parse sends nothing for it: previous groups stay.
    std::fs::write(&path, "- targets: ['e:5']\n  unknown_key: 1\n").unwrap();
    let groups = next_update(&mut rx).await;
    assert!(groups.is_empty(), "{groups:?}");
    assert!(read_groups(&path).is_err());

    // Deleting the file removes its last good groups.
    std::fs::remove_file(&path).unwrap();
    let groups = next_update(&mut rx).await;
    assert_eq!(groups, vec![TargetGroup::empty(format!("{p}:0"))]);
}

#[tokio::test]
async fn refresh_interval_rereads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    std::fs::write(&path, r#"[{"targets": ["a:1"]}]"#).unwrap();
    let discovery = FileDiscovery {
        patterns: vec![path.display().to_string()],
        refresh_interval: Duration::from_millis(200),
        poll_interval: Duration::from_secs(600),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery.run(tx));
    assert_eq!(next_update(&mut rx).await.len(), 1);
    assert_eq!(next_update(&mut rx).await.len(), 1);
}

#[test]
fn json_rejects_unknown_keys_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    std::fs::write(&path, r#"[{"targets": ["a:1"], "x": 1}]"#).unwrap();
    assert!(read_groups(&path).is_err());
    std::fs::write(&path, r#"[null]"#).unwrap();
    assert!(read_groups(&path).is_err());
}
