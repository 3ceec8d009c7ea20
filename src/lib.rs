//! firedrill: chaos-engineering and disaster-recovery drills that measure recovery (RTO, RPO,
//! MTTD) as a first-class verdict. See ARCHITECTURE.md for the code map and invariants.

pub mod backend;
pub mod cli;
pub mod engine;
pub mod exit;
pub mod lang;
pub mod report;
pub mod sim;
