pub mod decode;
pub mod diag;
pub mod duration;
pub mod engine;
pub mod yaml;
