//! Runs Prometheus's promqltest `.test` scripts against Hearth's PromQL
//! engine (see `../shared/promqltest/FORMAT.md` for the language).
//!
//! [`script`] parses a script into `load`/`clear`/`eval` commands with
//! their expectations ([`series`] holds the series notation, [`lex`] the
//! lexical pieces), [`storage`] keeps the loaded samples behind
//! [`hearth_storage_api::Queryable`], [`compare`] holds the comparison
//! rules, and [`runner`] runs scripts and sums up the outcomes.

pub mod at_variants;
pub mod compare;
pub mod error;
pub mod lex;
pub mod runner;
pub mod script;
pub mod series;
pub mod storage;

pub use error::{Error, Result};
pub use runner::{
    main_with_args, main_with_options, run_file, run_file_with, run_files, run_files_with,
    run_script, run_script_with, Counts, EvalOutcome, FileReport, PromqlEngine, QueryEngine,
    RunOptions, Summary,
};
