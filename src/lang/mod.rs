//! The pure front end: text in, a validated experiment (or every problem, located) out.
//!
//! Pipeline: [`yaml`] loads located nodes → [`spec`] expands `${var}` and decodes the experiment
//! (parameters checked against [`vocab`]) → [`check`] validates references and the step graph →
//! [`plan`] orders the steps into waves. [`environment`] does the same for `kind: Environment`.
//!
//! Invariant: nothing under `lang/` does IO, spawns, sleeps or talks to a network; it never
//! imports tokio, reqwest, hyper, kube or the AWS SDK (`tests/` checks this). Callers hand in
//! bytes and get values or diagnostics back.

pub mod action;
pub mod check;
pub mod compact;
pub mod decode;
pub mod diag;
pub mod duration;
pub mod environment;
pub mod fis_catalog;
pub mod fis_template;
pub mod kubernetes;
pub mod notify;
pub mod plan;
pub mod playbook;
pub mod postgres;
pub mod rules;
pub mod secrets;
pub mod spec;
pub mod tolerance;
pub mod vocab;
pub mod yaml;
