//! The drill engine: typed events, the async executor, hypothesis and recovery monitors, and
//! [`drill::Drill`], the one way to run an experiment.

pub mod clock;
pub mod drill;
pub mod events;
pub mod executor;
pub mod generic;
