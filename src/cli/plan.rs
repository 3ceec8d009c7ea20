//! `firedrill plan`: show the step DAG as waves, the critical path and a Mermaid graph.

use super::{Failure, PlanArgs, load_experiment};
use crate::exit;

pub(super) fn plan(a: PlanArgs) -> Result<i32, Failure> {
    let exp = load_experiment(&a.experiment, &a.vars.vars)?;
    let p = crate::lang::plan::plan(&exp);
    let redactor = crate::lang::secrets::Redactor::new(&exp.secrets);
    print!("{}", redactor.redact(&crate::lang::plan::render(&exp, &p)));
    Ok(exit::PASS)
}
