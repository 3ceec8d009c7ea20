//! Tolerances: what a probe's output must look like for the steady state to hold.
//!
//! A tolerance optionally selects a value inside the probe's JSON output with a path
//! (`ready_ratio`, `body.status`, `items[0].name`) and then checks it: `equals`, `one_of`,
//! numeric bounds (`min`, `max`, or `range: [lo, hi]`), or `regex`. Pure functions, no IO.
//!
//! Bounds on a list (a `prometheus` probe with `reduce: each`) hold when every element is a
//! number within them; an empty list, or any element that is not a number (`null` for NaN),
//! fails.

use serde_json::Value as Json;

#[derive(Debug, Clone)]
pub enum Check {
    /// Any output passes (the probe only has to succeed).
    Any,
    Equals(Json),
    OneOf(Vec<Json>),
    Bounds {
        min: Option<f64>,
        max: Option<f64>,
    },
    Regex(regex::Regex),
}

#[derive(Debug, Clone)]
pub struct Tolerance {
    pub path: Option<String>,
    pub check: Check,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            path: None,
            check: Check::Any,
        }
    }
}

/// A path segment: a key or an index.
#[derive(Debug, Clone, PartialEq)]
enum PathSeg {
    Key(String),
    Idx(usize),
}

/// Parse `a.b[0].c` (an optional leading `$.` is accepted).
fn parse_path(path: &str) -> Result<Vec<PathSeg>, String> {
    let p = path
        .strip_prefix("$.")
        .or_else(|| path.strip_prefix('$'))
        .unwrap_or(path);
    let mut out = Vec::new();
    for part in p.split('.').filter(|s| !s.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(PathSeg::Key(key.to_string()));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped
                .find(']')
                .ok_or_else(|| format!("unclosed `[` in path `{path}`"))?;
            let idx = stripped[..end].parse::<usize>().map_err(|_| {
                format!("`[{}]` in path `{path}` is not an index", &stripped[..end])
            })?;
            out.push(PathSeg::Idx(idx));
            rest = &stripped[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("unexpected `{rest}` in path `{path}`"));
        }
    }
    Ok(out)
}

/// Check a path's syntax (used by validation).
pub fn validate_path(path: &str) -> Result<(), String> {
    parse_path(path).map(|_| ())
}

/// Select the value at `path` in `value`.
pub fn select<'a>(value: &'a Json, path: Option<&str>) -> Result<&'a Json, String> {
    let Some(path) = path else { return Ok(value) };
    let mut cur = value;
    for seg in parse_path(path)? {
        cur = match (&seg, cur) {
            (PathSeg::Key(k), Json::Object(m)) => m
                .get(k)
                .ok_or_else(|| format!("no `{k}` in probe output (path `{path}`)"))?,
            (PathSeg::Idx(i), Json::Array(a)) => a
                .get(*i)
                .ok_or_else(|| format!("index {i} out of range in probe output (path `{path}`)"))?,
            (PathSeg::Key(k), _) => {
                return Err(format!("cannot take `{k}` of a non-object (path `{path}`)"));
            }
            (PathSeg::Idx(i), _) => {
                return Err(format!("cannot take [{i}] of a non-list (path `{path}`)"));
            }
        };
    }
    Ok(cur)
}

/// The numbers a value stands for, for abort conditions: a number (see [`as_number`]) or every
/// numeric element of a list (a `prometheus` probe with `reduce: each`).
pub fn numbers(v: &Json) -> Vec<f64> {
    match v {
        Json::Array(items) => items.iter().filter_map(as_number).collect(),
        other => as_number(other).into_iter().collect(),
    }
}

/// A JSON value as a number, if it is one (numbers, numeric strings, booleans as 0/1).
pub fn as_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn loosely_equal(a: &Json, b: &Json) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) if a.is_number() || b.is_number() => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

/// A number as people write it: at most 6 significant digits (no `0.19999999999999996`).
pub fn number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".into() } else { x.to_string() };
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let digits = 6 - (x.abs().log10().floor() as i32 + 1);
    let s = format!("{:.*}", digits.clamp(0, 12) as usize, x);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// A JSON value for people: numbers via [`number`], the rest as JSON.
pub fn show_value(v: &Json) -> String {
    match v {
        Json::Number(n) if !n.is_i64() && !n.is_u64() => {
            n.as_f64().map(number).unwrap_or_else(|| n.to_string())
        }
        other => other.to_string(),
    }
}

fn show(v: &Json) -> String {
    let s = show_value(v);
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// The outcome of checking one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub ok: bool,
    /// The selected value (what abort conditions compare).
    pub value: Json,
    pub message: String,
}

impl Tolerance {
    pub fn evaluate(&self, output: &Json) -> Verdict {
        let value = match select(output, self.path.as_deref()) {
            Ok(v) => v.clone(),
            Err(e) => {
                return Verdict {
                    ok: false,
                    value: Json::Null,
                    message: e,
                };
            }
        };
        let (ok, message) = match &self.check {
            Check::Any => (true, format!("= {}", show(&value))),
            Check::Equals(want) => {
                let ok = loosely_equal(&value, want);
                (
                    ok,
                    format!(
                        "{} {} {}",
                        show(&value),
                        if ok { "==" } else { "!=" },
                        show(want)
                    ),
                )
            }
            Check::OneOf(options) => {
                let ok = options.iter().any(|o| loosely_equal(&value, o));
                (
                    ok,
                    format!(
                        "{} {} one of {}",
                        show(&value),
                        if ok { "is" } else { "is not" },
                        show(&Json::Array(options.clone()))
                    ),
                )
            }
            Check::Bounds { min, max } => {
                let within = |x: f64| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m);
                let range = match (min, max) {
                    (Some(a), Some(b)) => format!("[{a}, {b}]"),
                    (Some(a), None) => format!(">= {a}"),
                    (None, Some(b)) => format!("<= {b}"),
                    (None, None) => "any".into(),
                };
                match &value {
                    Json::Array(items) if items.is_empty() => {
                        (false, "an empty list has no value to check".to_string())
                    }
                    Json::Array(items) => {
                        let bad: Vec<String> = items
                            .iter()
                            .enumerate()
                            .filter(|(_, v)| !as_number(v).is_some_and(within))
                            .map(|(i, v)| format!("[{i}] = {}", show(v)))
                            .collect();
                        if bad.is_empty() {
                            (true, format!("all {} values within {range}", items.len()))
                        } else {
                            (
                                false,
                                format!(
                                    "{} of {} values not within {range}: {}",
                                    bad.len(),
                                    items.len(),
                                    bad.join(", ")
                                ),
                            )
                        }
                    }
                    _ => match as_number(&value) {
                        None => (false, format!("{} is not a number", show(&value))),
                        Some(x) => {
                            let ok = within(x);
                            (
                                ok,
                                format!(
                                    "{} {} {range}",
                                    number(x),
                                    if ok { "within" } else { "outside" }
                                ),
                            )
                        }
                    },
                }
            }
            Check::Regex(re) => {
                let text = match &value {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let ok = re.is_match(&text);
                (
                    ok,
                    format!(
                        "{} {} /{}/",
                        show(&value),
                        if ok { "matches" } else { "does not match" },
                        re.as_str()
                    ),
                )
            }
        };
        Verdict { ok, value, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tol(path: Option<&str>, check: Check) -> Tolerance {
        Tolerance {
            path: path.map(str::to_string),
            check,
        }
    }

    #[test]
    fn paths_select_nested_values() {
        let v = json!({"body": {"items": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(select(&v, Some("body.items[1].name")).unwrap(), &json!("b"));
        assert_eq!(
            select(&v, Some("$.body.items[0].name")).unwrap(),
            &json!("a")
        );
        assert!(
            select(&v, Some("body.nope"))
                .unwrap_err()
                .contains("no `nope`")
        );
        assert!(
            select(&v, Some("body.items[5]"))
                .unwrap_err()
                .contains("out of range")
        );
        assert!(validate_path("a[x]").is_err());
        assert!(validate_path("a[0").is_err());
    }

    #[test]
    fn checks_each_kind() {
        let out = json!({"status": 200, "ratio": 0.97, "state": "firing", "writer": "db-2"});
        assert!(
            tol(Some("status"), Check::Equals(json!(200)))
                .evaluate(&out)
                .ok
        );
        assert!(
            tol(Some("status"), Check::Equals(json!(200.0)))
                .evaluate(&out)
                .ok
        );
        assert!(
            !tol(Some("status"), Check::Equals(json!(500)))
                .evaluate(&out)
                .ok
        );
        assert!(
            tol(
                Some("state"),
                Check::OneOf(vec![json!("pending"), json!("firing")])
            )
            .evaluate(&out)
            .ok
        );
        assert!(
            !tol(
                Some("ratio"),
                Check::Bounds {
                    min: Some(0.99),
                    max: None
                }
            )
            .evaluate(&out)
            .ok
        );
        assert!(
            tol(
                Some("ratio"),
                Check::Bounds {
                    min: Some(0.9),
                    max: Some(1.0)
                }
            )
            .evaluate(&out)
            .ok
        );
        assert!(
            !tol(
                Some("state"),
                Check::Bounds {
                    min: Some(0.0),
                    max: None
                }
            )
            .evaluate(&out)
            .ok
        );
        assert!(
            tol(
                Some("writer"),
                Check::Regex(regex::Regex::new("^db-[0-9]$").unwrap())
            )
            .evaluate(&out)
            .ok
        );
        assert!(
            !tol(
                Some("writer"),
                Check::Regex(regex::Regex::new("^db-1$").unwrap())
            )
            .evaluate(&out)
            .ok
        );
        let v = tol(
            Some("ratio"),
            Check::Bounds {
                min: Some(0.99),
                max: None,
            },
        )
        .evaluate(&out);
        assert_eq!(v.message, "0.97 outside >= 0.99");
        assert_eq!(v.value, json!(0.97));
    }

    /// A `prometheus` probe reports NaN and ±Inf as `value: null` (JSON has no NaN): a bounds
    /// check fails on it, alone or inside a `reduce: each` list; a list passes only when every
    /// element is within the bounds.
    #[test]
    fn bounds_fail_on_nan_and_hold_for_every_element_of_a_list() {
        let b = |min, max| Check::Bounds { min, max };
        let nan = json!({"value": null, "value_text": "NaN"});
        let v = tol(Some("value"), b(Some(0.0), None)).evaluate(&nan);
        assert!(!v.ok && v.message.contains("null is not a number"), "{v:?}");
        let each = json!({"value": [0.1, 0.2, 0.3]});
        assert!(tol(Some("value"), b(None, Some(0.5))).evaluate(&each).ok);
        let v = tol(Some("value"), b(None, Some(0.25))).evaluate(&each);
        assert!(!v.ok, "{v:?}");
        assert_eq!(v.message, "1 of 3 values not within <= 0.25: [2] = 0.3");
        let with_nan = json!({"value": [0.1, null]});
        assert!(
            !tol(Some("value"), b(None, Some(1.0)))
                .evaluate(&with_nan)
                .ok
        );
        assert!(
            !tol(Some("value"), b(None, Some(1.0)))
                .evaluate(&json!({"value": []}))
                .ok
        );
        assert_eq!(numbers(&json!([1, null, "2"])), vec![1.0, 2.0]);
        assert_eq!(numbers(&json!(3)), vec![3.0]);
    }
}
