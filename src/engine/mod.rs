//! The drill engine: typed events, the async executor, hypothesis and recovery monitors.

pub mod events;
