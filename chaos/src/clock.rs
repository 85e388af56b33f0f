//! The run's clock: every event the suite records (a write's attempts, a
//! probe, a fault) is placed by its offset from the start of the run, so
//! that the writers, the probes and the faults can be laid side by side.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Offsets from the start of the run.
#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    start: Instant,
    start_unix_ms: i64,
}

impl RunClock {
    /// A clock whose zero is now.
    pub fn start() -> RunClock {
        RunClock {
            start: Instant::now(),
            start_unix_ms: unix_ms(),
        }
    }

    /// Time since the start of the run.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The wall clock at the start, in Unix milliseconds.
    pub fn start_unix_ms(&self) -> i64 {
        self.start_unix_ms
    }
}

/// The wall clock in Unix milliseconds (sample timestamps).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
