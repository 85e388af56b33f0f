//! Runs every promqltest script of `../shared/promqltest` against the
//! engine and prints the summary.
//!
//! Ratchet: the number of passing evals that do not involve native
//! histograms must stay at or above [`MIN_PASSING`]. When the engine gets
//! better, raise the floor to the new count (printed by this test) so that
//! a regression fails it; never lower it to make a change pass.

use std::path::PathBuf;

/// Passing non-native-histogram evals when the floor was last raised.
const MIN_PASSING: usize = 483;

#[test]
fn promqltest_scripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/promqltest");
    let dir = dir.canonicalize().unwrap_or(dir);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the promqltest scripts are expected in {} (the shared checkout): {e}",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test scripts in {}", dir.display());
    let summary = hearth_promqltest::run_files(&files);
    println!("{summary}");
    let floats = summary.float_counts();
    let native = summary.native_histogram_counts();
    println!(
        "without native histograms: {} passed, {} failed; with: {} passed, {} failed",
        floats.passed, floats.failed, native.passed, native.failed
    );
    // Informational: only the query itself checked (no @-modifier
    // variants, no range-mode cross-check).
    let lenient = hearth_promqltest::run_files_with(
        &files,
        hearth_promqltest::RunOptions {
            at_modifier_variants: false,
            range_cross_check: false,
        },
    );
    let l = lenient.counts();
    println!(
        "query only, without variants or range-mode check: {} passed, {} failed",
        l.passed, l.failed
    );
    assert!(
        floats.passed >= MIN_PASSING,
        "{} non-native-histogram evals pass, below the floor MIN_PASSING = {MIN_PASSING}",
        floats.passed
    );
}
