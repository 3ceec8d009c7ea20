//! `firedrill vocab`: print every action and probe with its parameters (the format reference,
//! as markdown).

use super::Failure;
use crate::exit;

pub(super) fn vocab() -> Result<i32, Failure> {
    print!("{}", crate::lang::vocab::markdown());
    Ok(exit::PASS)
}
