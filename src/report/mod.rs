//! Outputs rendered from a run's event stream: the [`summary::RunSummary`] (JSON), the markdown
//! post-drill report, and the structured lessons-learned record.

pub mod evidence;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod gameday;
pub mod journal;
pub mod junit;
pub mod lessons;
pub mod lock;
pub mod markdown;
pub mod summary;
pub mod trend;

pub use lessons::{ActionItem, ActionStatus, LessonsRecord, OpenActionItem};
pub use markdown::render_markdown;
pub use summary::RunSummary;
