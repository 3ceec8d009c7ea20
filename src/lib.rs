pub mod decode;
pub mod diag;
pub mod duration;
pub mod engine;
pub mod journal;
pub mod report;
pub mod yaml;
