//! The run clock: tokio time (paused, virtual time on the simulated estate; real time otherwise)
//! anchored to a wall-clock start, so journal timestamps and durations agree.

use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    pub start: Instant,
    pub start_wall: DateTime<Utc>,
}

impl RunClock {
    pub fn start_now() -> RunClock {
        RunClock {
            start: Instant::now(),
            start_wall: Utc::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed().as_millis() as u64
    }

    /// Run-clock time of an offset from the start.
    pub fn at(&self, offset: Duration) -> DateTime<Utc> {
        self.start_wall + chrono::Duration::from_std(offset).unwrap_or_default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.at(self.elapsed())
    }

    /// Offset of a run-clock time (negative times clamp to zero).
    pub fn offset_of(&self, t: DateTime<Utc>) -> Duration {
        (t - self.start_wall).to_std().unwrap_or_default()
    }
}
