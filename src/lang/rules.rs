//! The rules between an action's or probe's parameters that their types alone do not carry:
//! exclusive parameters, counts that must be positive, URLs that must parse, values that
//! contradict each other. [`check`] runs in the same pass as the rest of validation, so a step
//! that could only fail halfway through a drill is refused before anything runs, with the
//! parameter's location. The `k8s.*` rules live in the Kubernetes types' decoders
//! ([`super::kubernetes`]), which [`super::action`] calls directly.
//!
//! Invariant: pure; every rule a backend would otherwise re-check at run time is here.

use super::kubernetes::{self, ParamProblem};
use serde_json::Value as Json;

fn duration(p: &Json, k: &str) -> Option<std::time::Duration> {
    p.get(k)
        .and_then(Json::as_str)
        .and_then(|s| super::duration::parse(s).ok())
}

fn positive(out: &mut Vec<ParamProblem>, p: &Json, k: &'static str, default: &str) {
    if duration(p, k).is_some_and(|d| d.is_zero()) {
        out.push(kubernetes::zero_duration(k, default));
    }
}

/// Check an `http` URL: absolute, `http` or `https`, with a host.
pub fn check_url(s: &str) -> Result<(), String> {
    match url::Url::parse(s) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Err(format!(
            "`{s}` is a `{}` URL; an http step speaks http or https",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Err(format!("`{s}` has no host")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("`{s}` is not a URL ({e})")),
    }
}

/// What to write instead of a DSN that does not parse.
pub const DSN_HELP: &str = "write `postgres://user@host:5432/dbname` (add `?sslmode=require` for TLS) or `host=... port=... dbname=... user=...`";

/// Every rule `name`'s parameters break (`p` is the type-checked `with:` block).
pub fn check(name: &str, p: &Json) -> Vec<ParamProblem> {
    let mut out = Vec::new();
    match name {
        "http" => {
            if let Some(u) = p.get("url").and_then(Json::as_str)
                && let Err(e) = check_url(u)
            {
                out.push(ParamProblem::at(
                    "url",
                    e,
                    "write an absolute URL, e.g. `url: https://api.example.com/healthz`",
                ));
            }
            if let Some(s) = p.get("expect_status").and_then(Json::as_u64)
                && !(100..=599).contains(&s)
            {
                out.push(ParamProblem::at(
                    "expect_status",
                    format!("`expect_status: {s}` is not an HTTP status"),
                    "give a status from 100 to 599, e.g. `expect_status: 200`",
                ));
            }
            positive(&mut out, p, "timeout", "10s");
        }
        "postgres" => {
            if let Some(d) = p.get("dsn").and_then(Json::as_str)
                && let Err(e) = super::postgres::Dsn::parse(d)
            {
                out.push(ParamProblem::at("dsn", e, DSN_HELP));
            }
            if p.get("query")
                .and_then(Json::as_str)
                .is_some_and(|q| q.trim().trim_end_matches(';').trim().is_empty())
            {
                out.push(ParamProblem::at(
                    "query",
                    "the query is empty",
                    "write the SQL whose first column is the value, e.g. `query: select not pg_is_in_recovery()`",
                ));
            }
        }
        "command" => {
            let argv: Vec<&str> = p
                .get("run")
                .and_then(Json::as_array)
                .map(|a| a.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            match argv.first() {
                None => out.push(ParamProblem::at(
                    "run",
                    "`run` is empty: there is no program to run",
                    "give the program and its arguments, e.g. `run: [curl, -sf, http://x]`",
                )),
                Some(prog) if prog.trim().is_empty() => out.push(ParamProblem::at(
                    "run",
                    "the program (first item of `run`) is empty",
                    "name the program, e.g. `run: [systemctl, stop, api]`",
                )),
                Some(_) => {}
            }
            if let Some(c) = p.get("expect_exit").and_then(Json::as_u64)
                && c > 255
            {
                out.push(ParamProblem::at(
                    "expect_exit",
                    format!("`expect_exit: {c}` is not an exit code a process can return"),
                    "give an exit code from 0 to 255",
                ));
            }
            positive(&mut out, p, "timeout", "60s");
        }
        "wait_until" => {
            positive(&mut out, p, "deadline", "none");
            positive(&mut out, p, "interval", "10s");
            if let (Some(i), Some(d)) = (duration(p, "interval"), duration(p, "deadline"))
                && i > d
            {
                out.push(ParamProblem::at(
                    "interval",
                    format!(
                        "`interval` ({}) is longer than `deadline` ({}): the probe would be checked once at most",
                        super::duration::format(i),
                        super::duration::format(d)
                    ),
                    "make `interval` shorter than `deadline`",
                ));
            }
        }
        "db.point_in_time_restore" => {
            let src = p.get("source_cluster").and_then(Json::as_str);
            if src.is_some() && src == p.get("target_cluster").and_then(Json::as_str) {
                out.push(ParamProblem::at(
                    "target_cluster",
                    "`target_cluster` is the source cluster: a restore creates a new cluster",
                    "name a new cluster, e.g. `target_cluster: orders-db-restored`",
                ));
            }
            if p.get("serve") == Some(&Json::Bool(true))
                && p.get("wait") == Some(&Json::Bool(false))
            {
                out.push(ParamProblem::at(
                    "wait",
                    "`serve: true` switches writes to the restored cluster once it is available, which needs `wait`",
                    "drop `wait: false`, or `serve: true`",
                ));
            }
        }
        "db.global_switchover" | "db.global_failover" | "db.detach_and_promote" => {
            let g = p.get("global_cluster").and_then(Json::as_str);
            let c = p
                .get("target_cluster")
                .or_else(|| p.get("cluster"))
                .and_then(Json::as_str);
            if g.is_some() && g == c {
                out.push(ParamProblem::whole(
                    "the target cluster is named like the global database",
                    "name the secondary (regional) cluster to promote",
                ));
            }
        }
        "dns.health_check" => match (p.get("record"), p.get("health_check_id")) {
            (Some(_), Some(_)) => out.push(ParamProblem::at(
                "health_check_id",
                "give `record` or `health_check_id`, not both",
                "keep one",
            )),
            (None, None) => out.push(ParamProblem::whole(
                "dns.health_check needs `record` or `health_check_id`",
                "add `record: <failover record name>`",
            )),
            _ => {}
        },
        "prometheus"
            if p.get("query")
                .and_then(Json::as_str)
                .is_some_and(|q| q.trim().is_empty()) =>
        {
            out.push(ParamProblem::at(
                "query",
                "the query is empty",
                "write a PromQL expression, e.g. `query: up{job=\"api\"}`",
            ));
        }
        "prometheus.alert" => {
            if let Some(a) = p.get("alertname").and_then(Json::as_str)
                && a.trim().is_empty()
            {
                out.push(ParamProblem::at(
                    "alertname",
                    "the alert name is empty",
                    "name the alerting rule, e.g. `alertname: ApiDown`",
                ));
            }
            if let Some(m) = p.get("matchers").and_then(Json::as_object) {
                for k in m.keys() {
                    if !is_label_name(k) {
                        out.push(ParamProblem::at(
                            "matchers",
                            format!("`{k}` is not a Prometheus label name"),
                            "label names are letters, digits and `_`, not starting with a digit",
                        ));
                    } else if k == "alertname" || k == "alertstate" {
                        out.push(ParamProblem::at(
                            "matchers",
                            format!("`{k}` cannot be a matcher: the probe sets it"),
                            if k == "alertname" {
                                "give the name as the `alertname` parameter"
                            } else {
                                "the state is the probe's output (`state`, `firing`); match on it with a tolerance"
                            },
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(name: &str, p: Json) -> Vec<String> {
        check(name, &p).into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn prometheus_probes_refuse_empty_queries_and_bad_matchers() {
        assert!(messages("prometheus", json!({"query": "  "}))[0].contains("empty"));
        assert!(messages("prometheus", json!({"query": "up"})).is_empty());
        assert!(messages("prometheus.alert", json!({"alertname": ""}))[0].contains("empty"));
        let m = messages(
            "prometheus.alert",
            json!({"alertname": "A", "matchers": {"9x": "a", "alertstate": "firing", "ok_1": "v"}}),
        );
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m.iter()
                .any(|x| x.contains("`9x` is not a Prometheus label name"))
        );
        assert!(
            m.iter()
                .any(|x| x.contains("`alertstate` cannot be a matcher"))
        );
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(check_url("http://127.0.0.1:8080/health").is_ok());
        assert!(check_url("https://api.example.com").is_ok());
        assert!(check_url("not a url").unwrap_err().contains("is not a URL"));
        assert!(check_url("ftp://x/y").unwrap_err().contains("`ftp` URL"));
        assert!(messages("http", json!({"url": "not a url"}))[0].contains("not a URL"));
    }

    #[test]
    fn commands_need_a_program() {
        assert!(messages("command", json!({"run": []}))[0].contains("`run` is empty"));
        assert!(messages("command", json!({"run": [""]}))[0].contains("program"));
        assert!(
            messages("command", json!({"run": ["true"], "expect_exit": 300}))[0].contains("300")
        );
        assert!(messages("command", json!({"run": ["true"]})).is_empty());
    }

    #[test]
    fn contradictions_are_refused() {
        assert!(
            !messages(
                "db.point_in_time_restore",
                json!({"source_cluster": "a", "target_cluster": "a"})
            )
            .is_empty()
        );
        assert!(
            !messages(
                "wait_until",
                json!({"probe": "p", "deadline": "10s", "interval": "1m"})
            )
            .is_empty()
        );
        assert!(!messages("dns.health_check", json!({})).is_empty());
    }
}
