//! `hearth-chaos` as CI runs it: a suite that could not run says so with
//! exit status 2 and writes no report, so it is never mistaken for a pass.

use std::process::Command;

fn chaos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hearth-chaos"))
}

#[test]
fn a_project_that_is_not_up_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let out = chaos()
        .args(["--project", "hearth-chaos-never-started", "--report-dir"])
        .arg(&report)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("hearth-chaos: "), "stderr:\n{stderr}");
    assert!(!report.join("report.md").exists());
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    let out = chaos()
        .args([
            "--duration",
            "five minutes",
            "--report-dir",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--duration"), "stderr:\n{stderr}");
    assert!(!std::path::Path::new("/nonexistent/x").exists());
}
