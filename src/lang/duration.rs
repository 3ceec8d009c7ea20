//! Human durations: `250ms`, `90s`, `15m`, `1h30m`, `2d`. Parsing, formatting and serde glue.
//!
//! Invariant: formatting then parsing a duration gives it back (to the millisecond).

use std::time::Duration;

/// Why a duration string was rejected. The message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write a number with a unit, e.g. `90s`, `15m`, `1h`")]
    Empty,
    #[error("`{0}` is negative; durations must be positive, e.g. `90s`")]
    Negative(String),
    #[error("`{0}` has no unit; write e.g. `{0}s` or `{0}m` (units: ms, s, m, h, d)")]
    NoUnit(String),
    #[error(
        "`{0}` is not a duration; write a number with a unit, e.g. `90s`, `15m`, `1h30m` (units: ms, s, m, h, d)"
    )]
    Invalid(String),
    #[error(
        "`{0}` is longer than the 30-day limit; a drill step or objective that long is almost certainly a typo"
    )]
    TooLong(String),
    #[error("`{0}` is longer than the {1}-day limit")]
    TooLongFor(String, u64),
}

/// Longest duration accepted anywhere in a document.
pub const MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parse a human duration. A bare `0` is accepted as zero.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    parse_up_to(input, MAX)
}

/// Longest age of evidence or schedule deadline accepted (`max_age: 365d` for a yearly control).
pub const MAX_AGE: Duration = Duration::from_secs(2 * 366 * 24 * 3600);

/// Parse a human duration no longer than `limit` (evidence ages run to months).
pub fn parse_up_to(input: &str, limit: Duration) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(s.to_string()));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(DurationError::NoUnit(s.to_string()));
    }
    let invalid = || DurationError::Invalid(s.to_string());
    let mut total_ms: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if num_len == 0 {
            return Err(invalid());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor = match unit {
            "ms" => 1.0,
            "s" | "sec" | "secs" => 1_000.0,
            "m" | "min" | "mins" => 60_000.0,
            "h" | "hr" | "hrs" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return Err(invalid()),
        };
        total_ms += value * factor;
        if !total_ms.is_finite() || total_ms > limit.as_millis() as f64 {
            return Err(if limit == MAX {
                DurationError::TooLong(s.to_string())
            } else {
                DurationError::TooLongFor(s.to_string(), limit.as_secs() / 86_400)
            });
        }
    }
    Ok(Duration::from_millis(total_ms.round() as u64))
}

/// A measured figure with no more digits than its resolution: to the second when the
/// resolution is a second or more (`30.006s` at ±15s reads `30s`), else to its tenth or
/// hundredth of a second.
pub fn format_at(ms: u64, resolution_ms: u64) -> String {
    let unit = match resolution_ms {
        r if r >= 1000 => 1000,
        r if r >= 100 => 100,
        r if r >= 10 => 10,
        _ => 1,
    };
    let rounded = (ms + unit / 2) / unit * unit;
    format(Duration::from_millis(rounded))
}

/// [`format`] of a count of milliseconds (how journals and summaries hold durations).
pub fn format_ms(ms: u64) -> String {
    format(Duration::from_millis(ms))
}

/// A signed run offset: `+30s`, `-1s` (before the run started), `+0s`.
pub fn format_offset(ms: i64) -> String {
    let d = format(Duration::from_millis(ms.unsigned_abs()));
    if ms < 0 {
        format!("-{d}")
    } else {
        format!("+{d}")
    }
}

/// Format compactly: `4m10s`, `1h`, `250ms`, `0s`. Sub-second parts are kept only below a minute.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let total_s = ms / 1000;
    let (h, m, s) = (total_s / 3600, (total_s % 3600) / 60, total_s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        let frac = ms % 1000;
        if h == 0 && m == 0 && frac != 0 {
            out.push_str(format!("{s}.{:03}", frac).trim_end_matches('0'));
            out.push('s');
        } else {
            out.push_str(&format!("{s}s"));
        }
    }
    out
}

/// Format a signed difference (`-1m5s`, `4m10s`).
pub fn format_signed(ms: i64) -> String {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms < 0 {
        format!("-{}", format(d))
    } else {
        format(d)
    }
}

/// serde glue: `#[serde(with = "crate::lang::duration::serde_human")]` on a `Duration` field.
pub mod serde_human {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// serde glue for `Option<Duration>`.
pub mod serde_human_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_input_with_advice() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(parse("-5m"), Err(DurationError::Negative(_))));
        assert!(matches!(parse("15"), Err(DurationError::NoUnit(_))));
        assert!(matches!(
            parse("15 minutes"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(parse("m"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("99999d"), Err(DurationError::TooLong(_))));
        assert!(parse("15").unwrap_err().to_string().contains("15s"));
    }

    #[test]
    fn formats_compactly_and_round_trips() {
        for (d, s) in [
            (Duration::from_secs(250), "4m10s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::ZERO, "0s"),
            (Duration::from_secs(3661), "1h1m1s"),
        ] {
            assert_eq!(format(d), s);
            assert_eq!(parse(s), Ok(d));
        }
        assert_eq!(format_signed(-65_000), "-1m5s");
    }
}

#[cfg(test)]
mod readable_tests {
    #[test]
    fn figures_keep_the_digits_of_their_resolution_and_offsets_their_sign() {
        assert_eq!(super::format_at(30_006, 15_000), "30s");
        assert_eq!(super::format_at(150_499, 10_000), "2m30s");
        assert_eq!(super::format_at(1_234, 250), "1.2s");
        assert_eq!(super::format_offset(-1_000), "-1s");
        assert_eq!(super::format_offset(0), "+0s");
        assert_eq!(crate::lang::tolerance::number(0.19999999999999996), "0.2");
        assert_eq!(crate::lang::tolerance::number(1.0), "1");
        assert_eq!(crate::lang::tolerance::number(0.012345678), "0.0123457");
        assert_eq!(crate::lang::tolerance::number(-2.5), "-2.5");
    }
}
