//! `firedrill validate`: check experiment, environment and playbook files (a playbook with every
//! experiment and environment it names); report every problem with file:line:col.

use super::{Failure, ValidateArgs, read_file};
use crate::exit;
use crate::lang::diag::render_all;
use crate::lang::{environment, spec};

pub(super) fn validate(a: ValidateArgs) -> Result<i32, Failure> {
    let mut all = String::new();
    let mut bad = 0;
    for f in &a.files {
        let bytes = match read_file(f) {
            Ok(b) => b,
            Err(e) => {
                all.push_str(&e.message);
                all.push('\n');
                bad += 1;
                continue;
            }
        };
        let name = f.display().to_string();
        let kind_is = |k: &str| {
            std::str::from_utf8(&bytes)
                .is_ok_and(|t| t.lines().any(|l| l.trim() == format!("kind: {k}")))
        };
        if kind_is("Playbook") {
            // The playbook, then every drill's experiment and environment with its overrides.
            match super::gameday::load_playbook(f)
                .and_then(|(pb, source)| super::gameday::load_drills(&pb, &source).map(|d| (pb, d)))
            {
                Ok((pb, drills)) => println!(
                    "ok: {name} (playbook: {} drills, {} controls{})",
                    drills.len(),
                    pb.controls.len(),
                    pb.schedule
                        .as_ref()
                        .map(|s| format!(", schedule `{}` in {}", s.cron, s.timezone.name()))
                        .unwrap_or_default()
                ),
                Err(e) => {
                    bad += 1;
                    all.push_str(&e.message);
                    all.push('\n');
                }
            }
            continue;
        }
        let is_env = kind_is("Environment");
        let res = if is_env {
            environment::parse_environment(&name, &bytes, &[])
                .and_then(|env| crate::backend::router::check_settings(&env))
                .map(|_| format!("ok: {name} (environment)"))
        } else {
            spec::parse_experiment_with_env(&name, &bytes, &a.vars.vars, &|k| std::env::var(k).ok())
                .map(|e| {
                    for w in &e.warnings {
                        eprint!("{}", w.render_warning(std::str::from_utf8(&bytes).ok()));
                    }
                    format!(
                        "ok: {name} ({} steps, {} probes)",
                        e.steps.len(),
                        e.probes.len()
                    )
                })
        };
        match res {
            Ok(line) => println!("{line}"),
            Err(d) => {
                bad += 1;
                all.push_str(&render_all(&d, std::str::from_utf8(&bytes).ok()));
            }
        }
    }
    if bad > 0 {
        return Err(Failure {
            code: exit::INVALID_INPUT,
            message: all,
        });
    }
    Ok(exit::PASS)
}
