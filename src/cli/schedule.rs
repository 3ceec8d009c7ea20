//! `firedrill schedule next <playbook>`: the playbook's next scheduled game days, in UTC and in
//! the schedule's time zone, each marked when a blackout or the allowed windows skip it.

use super::gameday::load_playbook;
use super::{Failure, ScheduleNextArgs};
use crate::exit;
use chrono::{DateTime, Utc};

pub(super) fn next(a: ScheduleNextArgs) -> Result<i32, Failure> {
    let pb = load_playbook(&a.playbook)?;
    let Some(s) = &pb.schedule else {
        return Err(Failure {
            code: exit::INVALID_INPUT,
            message: format!(
                "error: {}: the playbook has no `schedule:`\n  = help: add e.g. `schedule: {{cron: \"0 14 * * TUE#1\", timezone: UTC}}`",
                a.playbook.display()
            ),
        });
    };
    let after = match &a.after {
        None => Utc::now(),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| Failure {
                code: exit::INVALID_INPUT,
                message: format!("error: --after `{t}`: {e}\n  = help: write an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"),
            })?,
    };
    println!(
        "{}: `{}` in {} (concurrency {}, starting deadline {})",
        pb.metadata.name,
        s.cron,
        s.timezone.name(),
        s.concurrency.name(),
        crate::lang::duration::format(s.starting_deadline)
    );
    let times = s.upcoming(after, a.count as usize);
    if times.is_empty() {
        println!("  no occurrence found");
    }
    for (t, skip) in times {
        let local = t.with_timezone(&s.timezone);
        println!(
            "  {}  ({}){}",
            t.format("%Y-%m-%d %H:%M UTC"),
            local.format("%a %Y-%m-%d %H:%M %Z"),
            skip.map(|w| format!("  skipped: {w}")).unwrap_or_default()
        );
    }
    Ok(exit::PASS)
}
