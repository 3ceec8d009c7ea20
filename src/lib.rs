pub mod duration;
pub mod sim;
