//! firedrill: chaos-engineering and disaster-recovery drills that measure recovery (RTO, RPO,
//! MTTD) as a first-class verdict. See ARCHITECTURE.md for the code map and invariants.

pub mod aws;
pub mod backends;
pub mod check;
pub mod cli;
pub mod decode;
pub mod diag;
pub mod duration;
pub mod engine;
pub mod environment;
pub mod exit;
pub mod fis_catalog;
pub mod fis_template;
pub mod journal;
pub mod k8s;
pub mod plan;
pub mod provider;
pub mod report;
pub mod sim;
pub mod spec;
pub mod tolerance;
pub mod vocab;
pub mod yaml;
