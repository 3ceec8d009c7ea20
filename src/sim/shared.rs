//! The estate as the running drill sees it: one [`Estate`], its run clock and the FIS
//! experiments started on it, shared by the simulated backend and the other views of the same
//! estate (the Kubernetes API `firedrill sim serve` and the tests serve from it).

use crate::engine::clock::RunClock;
use crate::sim::model::Estate;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long the estate has been running when a drill starts: write history and restorable
/// backups exist, as in a real estate.
pub const WARM_UP: Duration = Duration::from_secs(3600);

/// An estate and its clock, shareable between the provider and other views of the same estate
/// (the Kubernetes API that `firedrill sim serve` and the tests serve from it). Estate time is
/// [`WARM_UP`] + the clock's elapsed time; the first clock set wins. Before one is set (a
/// preflight, a test without a drill) a provisional clock stands in, so the drill's own clock
/// becomes the estate's anchor when it starts: one anchor for the run's and the estate's times.
#[derive(Clone)]
pub struct SharedEstate {
    estate: Arc<Mutex<Estate>>,
    /// The FIS experiments started on this estate (`sim::fis`).
    fis: Arc<Mutex<crate::sim::fis::Registry>>,
    clock: Arc<OnceLock<RunClock>>,
    /// Used until `start` sets `clock`.
    provisional: Arc<OnceLock<RunClock>>,
    changed: Arc<tokio::sync::Notify>,
}

impl SharedEstate {
    pub fn new(estate: Estate) -> SharedEstate {
        SharedEstate {
            estate: Arc::new(Mutex::new(estate)),
            fis: Arc::default(),
            clock: Arc::new(OnceLock::new()),
            provisional: Arc::new(OnceLock::new()),
            changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Tell every view waiting on the estate (watches) that something acted on it.
    pub fn notify_changed(&self) {
        self.changed.notify_waiters();
    }

    /// What [`SharedEstate::notify_changed`] wakes.
    pub fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Wall-clock milliseconds of estate time zero (estate time runs [`WARM_UP`] ahead of the
    /// run clock).
    pub fn epoch_ms(&self) -> i64 {
        self.clock().start_wall.timestamp_millis() - WARM_UP.as_millis() as i64
    }

    /// Anchor estate time to a clock (ignored if one is already set).
    pub fn start(&self, clock: RunClock) {
        let _ = self.clock.set(clock);
    }

    pub fn clock(&self) -> RunClock {
        match self.clock.get() {
            Some(c) => *c,
            None => *self.provisional.get_or_init(RunClock::start_now),
        }
    }

    /// Estate time now (clock + warm-up).
    pub fn now(&self) -> Duration {
        WARM_UP + self.clock().elapsed()
    }

    /// The FIS experiments started on this estate.
    pub(crate) fn fis(&self) -> MutexGuard<'_, crate::sim::fis::Registry> {
        self.fis.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lock the estate (callers advance it to [`SharedEstate::now`] before reading).
    pub fn lock(&self) -> MutexGuard<'_, Estate> {
        self.estate.lock().expect("estate poisoned")
    }
}
