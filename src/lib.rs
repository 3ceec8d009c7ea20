pub mod duration;
pub mod engine;
