//! firedrill: chaos-engineering and disaster-recovery drills that measure recovery (RTO, RPO,
//! MTTD) as a first-class verdict. See ARCHITECTURE.md for the code map and invariants.

pub mod aws;
pub mod backends;
pub mod cli;
pub mod engine;
pub mod exit;
pub mod journal;
pub mod k8s;
pub mod lang;
pub mod provider;
pub mod report;
pub mod sim;
