//! The drill engine: typed events, the async executor, hypothesis and recovery monitors, and
//! [`drill::Drill`], the one way to run an experiment.
//!
//! [`executor::execute`] runs the phases, each in its own module: `hypothesis` (before/after),
//! `schedule` (the step DAG), `monitor` (during-hypothesis and recovery), `measure` (RTO, MTTD,
//! RPO), `rollback`, `verdict`.

pub mod canary;
pub mod clock;
pub mod drill;
pub mod events;
pub mod executor;
pub mod generic;
mod hypothesis;
mod measure;
mod monitor;
pub mod notify;
pub mod recover;
mod rollback;
mod schedule;
pub mod timetable;
mod verdict;
