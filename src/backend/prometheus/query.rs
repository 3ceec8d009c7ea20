//! The pure part of the Prometheus probes: an instant query's result folded into the probe's
//! output (`reduce`, `on_empty`, NaN and ±Inf), the alerts of `/api/v1/alerts` and Alertmanager
//! folded into one state, and the firing moment read from the `ALERTS` series' raw samples.
//! No IO: unit-tested on the API's JSON shapes.

use crate::backend::ErrorKind;
use crate::lang::action::{AlertQuery, OnEmpty, PromQuery, Reduce};
use serde_json::{Map, Value as Json, json};

/// Most series an output lists (the value is computed over all of them).
pub const MAX_SERIES: usize = 100;

/// A problem with a result: its kind and a message (the caller names the server).
pub type Problem = (ErrorKind, String);

/// A sample value (`"1.5"`, `"NaN"`, `"+Inf"`) as a number.
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// A `[timestamp, "value"]` pair.
pub fn parse_sample(v: &Json) -> Option<(f64, f64)> {
    let a = v.as_array()?;
    let ts = a.first()?.as_f64()?;
    let val = parse_value(a.get(1)?.as_str()?)?;
    Some((ts, val))
}

/// A number as JSON: finite numbers as numbers; NaN and ±Inf (which JSON cannot hold) as `null`
/// with their text, so a numeric tolerance fails on them.
fn number(x: f64) -> (Json, Option<&'static str>) {
    if x.is_nan() {
        (Json::Null, Some("NaN"))
    } else if x == f64::INFINITY {
        (Json::Null, Some("+Inf"))
    } else if x == f64::NEG_INFINITY {
        (Json::Null, Some("-Inf"))
    } else {
        (json!(x), None)
    }
}

fn put_number(out: &mut Map<String, Json>, x: f64) {
    let (v, text) = number(x);
    out.insert("value".into(), v);
    if let Some(t) = text {
        out.insert("value_text".into(), json!(t));
    }
}

/// Fold a reduction; any NaN makes the result NaN (a broken series never hides behind a healthy
/// one: the tolerance fails).
fn fold(r: Reduce, xs: &[f64]) -> f64 {
    if r == Reduce::Count {
        return xs.len() as f64;
    }
    if xs.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    match r {
        Reduce::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Reduce::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
        Reduce::Sum => xs.iter().sum(),
        Reduce::Avg => xs.iter().sum::<f64>() / xs.len() as f64,
        Reduce::Count | Reduce::Each => unreachable!("handled by the caller"),
    }
}

fn labels_text(l: &Json) -> String {
    match l.as_object() {
        Some(m) if !m.is_empty() => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}={}", v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "{}".into(),
    }
}

/// The probe's output from an instant query's `data` (`{resultType, result}`).
pub fn instant_output(q: &PromQuery, data: &Json, server: &str) -> Result<Json, Problem> {
    let rtype = data
        .get("resultType")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let result = data.get("result").cloned().unwrap_or(Json::Null);
    // (labels, value) per series.
    let series: Vec<(Json, f64)> = match rtype {
        "vector" => result
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        let (_, v) = parse_sample(s.get("value")?)?;
                        Some((s.get("metric").cloned().unwrap_or(json!({})), v))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        "scalar" => match parse_sample(&result) {
            Some((_, v)) => vec![(json!({}), v)],
            None => Vec::new(),
        },
        "string" => {
            let s = result.get(1).and_then(Json::as_str).unwrap_or_default();
            return Err((
                ErrorKind::InvalidInput,
                format!(
                    "the query `{}` returns a string (`{s}`), not a number; a prometheus probe needs an expression with a numeric value",
                    q.query
                ),
            ));
        }
        "matrix" => {
            return Err((
                ErrorKind::InvalidInput,
                format!(
                    "the query `{}` returns a range vector; a probe needs one value per series: wrap it in a function (e.g. `max_over_time(...)`, `rate(...)`) or drop the `[range]`",
                    q.query
                ),
            ));
        }
        other => {
            return Err((
                ErrorKind::Failed,
                format!(
                    "the query `{}` gave an unknown result type `{other}`",
                    q.query
                ),
            ));
        }
    };
    let mut out = Map::new();
    if series.is_empty() {
        match q.on_empty {
            OnEmpty::Fail => {
                return Err((
                    ErrorKind::Failed,
                    format!(
                        "the query `{}` returned no series (`on_empty: fail`; write `on_empty: zero` if no series means 0)",
                        q.query
                    ),
                ));
            }
            OnEmpty::Zero => {
                if q.reduce == Some(Reduce::Each) {
                    out.insert("value".into(), json!([0.0]));
                } else {
                    out.insert("value".into(), json!(0.0));
                }
            }
        }
    } else {
        let xs: Vec<f64> = series.iter().map(|(_, v)| *v).collect();
        match q.reduce {
            None if series.len() > 1 => {
                return Err((
                    ErrorKind::InvalidInput,
                    format!(
                        "the query `{}` returned {} series ({}, ...) and the probe has no `reduce`: add `reduce: max`, `min`, `sum`, `avg`, `count` or `each`, or aggregate in PromQL",
                        q.query,
                        series.len(),
                        labels_text(&series[0].0)
                    ),
                ));
            }
            None => put_number(&mut out, xs[0]),
            Some(Reduce::Each) => {
                out.insert(
                    "value".into(),
                    Json::Array(xs.iter().map(|x| number(*x).0).collect()),
                );
            }
            Some(r) => put_number(&mut out, fold(r, &xs)),
        }
    }
    let listed: Vec<Json> = series
        .iter()
        .take(MAX_SERIES)
        .map(|(labels, v)| {
            let mut s = Map::new();
            s.insert("labels".into(), labels.clone());
            put_number(&mut s, *v);
            Json::Object(s)
        })
        .collect();
    out.insert("series".into(), Json::Array(listed));
    out.insert("series_count".into(), json!(series.len()));
    if series.len() > MAX_SERIES {
        out.insert("series_truncated".into(), json!(true));
    }
    out.insert("result_type".into(), json!(rtype));
    out.insert(
        "reduce".into(),
        q.reduce.map(|r| json!(r.as_str())).unwrap_or(Json::Null),
    );
    out.insert("server".into(), json!(server));
    Ok(Json::Object(out))
}

/// Whether an alert's labels carry the probe's name and matchers.
pub fn matches(q: &AlertQuery, labels: &Json) -> bool {
    labels.get("alertname").and_then(Json::as_str) == Some(q.alertname.as_str())
        && q.matchers
            .iter()
            .all(|(k, v)| labels.get(k).and_then(Json::as_str) == Some(v.as_str()))
}

/// A PromQL selector for the probe's `ALERTS` series in a state (`firing`).
pub fn alerts_selector(q: &AlertQuery, state: &str) -> String {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut parts = vec![
        format!("alertname=\"{}\"", esc(&q.alertname)),
        format!("alertstate=\"{state}\""),
    ];
    parts.extend(
        q.matchers
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v))),
    );
    format!("ALERTS{{{}}}", parts.join(","))
}

/// The state of the matching alerts of `/api/v1/alerts` (`data.alerts`): (state, number of
/// matching alerts, earliest `activeAt`).
pub fn prometheus_state(q: &AlertQuery, alerts: &Json) -> (&'static str, usize, Option<String>) {
    let mine: Vec<&Json> = alerts
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x.get("labels").is_some_and(|l| matches(q, l)))
                .collect()
        })
        .unwrap_or_default();
    let state_of = |s: &str| {
        mine.iter()
            .any(|a| a.get("state").and_then(Json::as_str) == Some(s))
    };
    let state = if state_of("firing") {
        "firing"
    } else if state_of("pending") {
        "pending"
    } else {
        "inactive"
    };
    let active_at = mine
        .iter()
        .filter_map(|a| a.get("activeAt").and_then(Json::as_str))
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .min()
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
    (state, mine.len(), active_at)
}

/// The firing alerts of Alertmanager's `/api/v2/alerts` that match: (count, earliest `startsAt`).
pub fn alertmanager_state(
    q: &AlertQuery,
    alerts: &Json,
) -> (usize, Option<chrono::DateTime<chrono::Utc>>) {
    let mine: Vec<&Json> = alerts
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x.get("labels").is_some_and(|l| matches(q, l)))
                .collect()
        })
        .unwrap_or_default();
    let starts = mine
        .iter()
        .filter_map(|a| a.get("startsAt").and_then(Json::as_str))
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .min();
    (mine.len(), starts)
}

/// Sample timestamps (seconds) of each series of a range-vector answer (`data.result` of
/// `ALERTS{...}[window]`), sorted.
pub fn series_timestamps(result: &Json) -> Vec<Vec<f64>> {
    result
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let mut ts: Vec<f64> = s
                        .get("values")
                        .and_then(Json::as_array)
                        .map(|v| {
                            v.iter()
                                .filter_map(|x| parse_sample(x).map(|p| p.0))
                                .collect()
                        })
                        .unwrap_or_default();
                    ts.sort_by(f64::total_cmp);
                    ts
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first firing sample at or after `since` (seconds) over every series: the alert's first
/// firing moment since then, even if it resolved again.
pub fn first_since(series: &[Vec<f64>], since: f64) -> Option<f64> {
    series
        .iter()
        .filter_map(|ts| ts.iter().copied().find(|t| *t >= since))
        .min_by(f64::total_cmp)
}

/// When the current firing episode began: per series, walk back from the newest sample while
/// samples are at most `gap` seconds apart; the earliest such start over the series whose newest
/// sample is within `gap` of `now`.
pub fn episode_start(series: &[Vec<f64>], now: f64, gap: f64) -> Option<f64> {
    series
        .iter()
        .filter(|ts| ts.last().is_some_and(|l| now - l <= gap))
        .filter_map(|ts| {
            let mut start = *ts.last()?;
            for w in ts.windows(2).rev() {
                if w[1] - w[0] > gap {
                    break;
                }
                start = w[0];
            }
            Some(start)
        })
        .min_by(f64::total_cmp)
}

/// Seconds since the epoch as an RFC 3339 time (milliseconds).
pub fn rfc3339(secs: f64) -> Option<String> {
    let ms = (secs * 1000.0).round() as i64;
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(reduce: Option<Reduce>, on_empty: OnEmpty) -> PromQuery {
        PromQuery {
            query: "x".into(),
            reduce,
            on_empty,
        }
    }

    fn vector(values: &[&str]) -> Json {
        json!({"resultType": "vector", "result": values.iter().enumerate().map(|(i, v)| json!({"metric": {"instance": format!("i{i}")}, "value": [1700000000.5, v]})).collect::<Vec<_>>()})
    }

    #[test]
    fn one_series_gives_its_value_and_several_need_a_reduce() {
        let out = instant_output(&q(None, OnEmpty::Fail), &vector(&["0.25"]), "h:9090").unwrap();
        assert_eq!(out["value"], json!(0.25));
        assert_eq!(out["series"][0]["labels"]["instance"], json!("i0"));
        assert_eq!(out["series_count"], json!(1));
        let (kind, msg) =
            instant_output(&q(None, OnEmpty::Fail), &vector(&["1", "2"]), "h").unwrap_err();
        assert_eq!(kind, ErrorKind::InvalidInput);
        assert!(
            msg.contains("returned 2 series") && msg.contains("add `reduce"),
            "{msg}"
        );
    }

    #[test]
    fn reductions() {
        let v = vector(&["1", "4", "2"]);
        let val = |r| instant_output(&q(Some(r), OnEmpty::Fail), &v, "h").unwrap()["value"].clone();
        assert_eq!(val(Reduce::Max), json!(4.0));
        assert_eq!(val(Reduce::Min), json!(1.0));
        assert_eq!(val(Reduce::Sum), json!(7.0));
        assert_eq!(val(Reduce::Avg), json!(7.0 / 3.0));
        assert_eq!(val(Reduce::Count), json!(3.0));
        assert_eq!(val(Reduce::Each), json!([1.0, 4.0, 2.0]));
    }

    #[test]
    fn nan_and_infinities_are_null_with_their_text() {
        let out = instant_output(&q(None, OnEmpty::Fail), &vector(&["NaN"]), "h").unwrap();
        assert_eq!(
            (out["value"].clone(), out["value_text"].clone()),
            (Json::Null, json!("NaN"))
        );
        let out = instant_output(&q(None, OnEmpty::Fail), &vector(&["+Inf"]), "h").unwrap();
        assert_eq!(out["value_text"], json!("+Inf"));
        let out = instant_output(&q(None, OnEmpty::Fail), &vector(&["-Inf"]), "h").unwrap();
        assert_eq!(out["value_text"], json!("-Inf"));
        // Any NaN poisons a reduction (max would otherwise skip it); count still counts.
        let v = vector(&["1", "NaN"]);
        let out = instant_output(&q(Some(Reduce::Max), OnEmpty::Fail), &v, "h").unwrap();
        assert_eq!(out["value"], Json::Null);
        assert_eq!(out["series"][1]["value_text"], json!("NaN"));
        let out = instant_output(&q(Some(Reduce::Count), OnEmpty::Fail), &v, "h").unwrap();
        assert_eq!(out["value"], json!(2.0));
        let out = instant_output(&q(Some(Reduce::Each), OnEmpty::Fail), &v, "h").unwrap();
        assert_eq!(out["value"], json!([1.0, null]));
        // And the tolerance fails on it.
        let t = crate::lang::tolerance::Tolerance {
            path: Some("value".into()),
            check: crate::lang::tolerance::Check::Bounds {
                min: None,
                max: Some(10.0),
            },
        };
        assert!(!t.evaluate(&out).ok);
        let inf = instant_output(&q(None, OnEmpty::Fail), &vector(&["+Inf"]), "h").unwrap();
        assert!(!t.evaluate(&inf).ok);
    }

    #[test]
    fn empty_results_fail_unless_zero_is_chosen() {
        let empty = json!({"resultType": "vector", "result": []});
        let (kind, msg) = instant_output(&q(None, OnEmpty::Fail), &empty, "h").unwrap_err();
        assert_eq!(kind, ErrorKind::Failed);
        assert!(msg.contains("returned no series"), "{msg}");
        let out = instant_output(&q(None, OnEmpty::Zero), &empty, "h").unwrap();
        assert_eq!(out["value"], json!(0.0));
        assert_eq!(out["series_count"], json!(0));
    }

    #[test]
    fn scalars_count_as_one_series_strings_and_ranges_do_not() {
        let s = json!({"resultType": "scalar", "result": [1700000000.0, "3"]});
        assert_eq!(
            instant_output(&q(None, OnEmpty::Fail), &s, "h").unwrap()["value"],
            json!(3.0)
        );
        let s = json!({"resultType": "string", "result": [1700000000.0, "hello"]});
        let (kind, msg) = instant_output(&q(None, OnEmpty::Fail), &s, "h").unwrap_err();
        assert_eq!(kind, ErrorKind::InvalidInput);
        assert!(msg.contains("returns a string (`hello`)"), "{msg}");
        let m = json!({"resultType": "matrix", "result": []});
        let (_, msg) = instant_output(&q(None, OnEmpty::Fail), &m, "h").unwrap_err();
        assert!(msg.contains("range vector"), "{msg}");
    }

    fn alert(name: &str) -> AlertQuery {
        AlertQuery {
            alertname: name.into(),
            matchers: [("job".to_string(), "api".to_string())].into(),
            source: Default::default(),
            since: None,
        }
    }

    #[test]
    fn alerts_fold_into_one_state() {
        let alerts = json!([
            {"labels": {"alertname": "Down", "job": "api"}, "state": "pending", "activeAt": "2026-12-01T10:00:05Z"},
            {"labels": {"alertname": "Down", "job": "api", "instance": "b"}, "state": "firing", "activeAt": "2026-12-01T10:00:01.5Z"},
            {"labels": {"alertname": "Down", "job": "db"}, "state": "firing", "activeAt": "2026-12-01T09:00:00Z"},
            {"labels": {"alertname": "Other", "job": "api"}, "state": "firing", "activeAt": "2026-12-01T09:00:00Z"}
        ]);
        let (state, n, at) = prometheus_state(&alert("Down"), &alerts);
        assert_eq!((state, n), ("firing", 2));
        assert_eq!(at.as_deref(), Some("2026-12-01T10:00:01.500Z"));
        assert_eq!(prometheus_state(&alert("Nope"), &alerts).0, "inactive");
        assert_eq!(
            alerts_selector(&alert("Do\"wn"), "firing"),
            r#"ALERTS{alertname="Do\"wn",alertstate="firing",job="api"}"#
        );
    }

    #[test]
    fn firing_moments_from_raw_samples() {
        // Two episodes: 100..103 then 200..202 (1 s evaluations).
        let series = vec![vec![100.0, 101.0, 102.0, 103.0, 200.0, 201.0, 202.0]];
        assert_eq!(first_since(&series, 150.0), Some(200.0));
        assert_eq!(first_since(&series, 90.0), Some(100.0));
        assert_eq!(first_since(&series, 300.0), None);
        assert_eq!(episode_start(&series, 202.5, 3.0), Some(200.0));
        assert_eq!(
            episode_start(&series, 260.0, 3.0),
            None,
            "resolved long ago"
        );
        assert_eq!(rfc3339(200.25).as_deref(), Some("1970-01-01T00:03:20.250Z"));
        let answer = json!([{"metric": {}, "values": [[101.0, "1"], [100.0, "1"]]}]);
        assert_eq!(series_timestamps(&answer), vec![vec![100.0, 101.0]]);
    }
}
