//! The drill engine: typed events, the async executor, hypothesis and recovery monitors.

pub mod clock;
pub mod events;
pub mod executor;
pub mod generic;
