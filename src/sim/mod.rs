//! Embedded simulated estate (placeholder docs, expanded below).

pub mod model;
