//! The Prometheus backend: the `prometheus` probe (a PromQL instant query) and the
//! `prometheus.alert` probe (an alert's state from Prometheus or Alertmanager), against the
//! servers of the environment's `prometheus:` and `alertmanager:` sections. Probes only: it
//! injects nothing.
//!
//! Every request has the section's timeout; every failure is a [`ProviderError`] naming the
//! server (`host:port`, never the token). Preflight runs each query once (PromQL errors come back
//! with the server's message and position), checks each alert's rule exists, and measures the
//! server's clock against ours: the skew the MTTD of a `prometheus.alert` detection probe is
//! corrected by ([`PrometheusProvider::skew`]).

pub mod api;
pub mod query;
pub mod settings;

use crate::backend::router::ConnectOptions;
use crate::backend::{
    Action, BoxFuture, Call, ErrorKind, PreflightProblem, Probe, Provider, ProviderError, Typed,
};
use crate::lang::action::{AlertQuery, AlertSource, PromQuery};
use crate::lang::diag::Diagnostic;
use crate::lang::environment::{Backend, Environment};
use api::Server;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::Mutex;

/// The names this backend serves.
pub const PROBES: &[&str] = &["prometheus", "prometheus.alert"];

/// How far back a `prometheus.alert` poll looks in the `ALERTS` series for the start of the
/// current firing episode.
const EPISODE_LOOKBACK_S: u64 = 3600;

/// Check the sections without connecting (for `validate`).
pub fn check_settings(env: &Environment) -> Result<(), Vec<Diagnostic>> {
    settings::decode(env).map(|_| ())
}

/// Build the provider: reads the settings and the bearer tokens' variables; contacts nothing (an
/// unreachable server is a preflight problem).
pub async fn connect(
    env: &Environment,
    _opts: &ConnectOptions,
) -> Result<PrometheusProvider, Vec<Diagnostic>> {
    let s = settings::decode(env)?;
    let mut diags = Vec::new();
    let mut server = |kind, section: &'static str, ss: &settings::ServerSettings| {
        let token = match &ss.bearer_token_env {
            Some(var) => match api::read_token(var) {
                Ok(t) => Some(t),
                Err(m) => {
                    let msg = format!(
                        "{m}: `{section}.bearer_token_env` names it as the bearer token of {kind} at `{}`",
                        ss.url
                    );
                    let help = format!(
                        "export {var}=<token> before running, or remove `bearer_token_env` if the server needs no token"
                    );
                    diags.push(if section == "prometheus" {
                        env.settings_error(Backend::Prometheus, "bearer_token_env", msg, help)
                    } else {
                        env.aux_settings_error(section, "bearer_token_env", msg, help)
                    });
                    return None;
                }
            },
            None => None,
        };
        match Server::new(kind, section, ss, token) {
            Ok(s) => Some(s),
            Err(m) => {
                diags.push(if section == "prometheus" {
                    env.settings_error(Backend::Prometheus, "url", m, settings::HELP.into())
                } else {
                    env.aux_settings_error(section, "url", m, settings::HELP.into())
                });
                None
            }
        }
    };
    let prom = server("Prometheus", "prometheus", &s.prometheus);
    let am = s
        .alertmanager
        .as_ref()
        .map(|a| server("Alertmanager", "alertmanager", a));
    match (prom, am) {
        (Some(prom), None) if diags.is_empty() => Ok(PrometheusProvider::new(prom, None)),
        (Some(prom), Some(Some(am))) if diags.is_empty() => {
            Ok(PrometheusProvider::new(prom, Some(am)))
        }
        _ => Err(diags),
    }
}

/// The server's clock against ours, measured with `time()` at the request's midpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Skew {
    /// Server time minus firedrill's, in milliseconds.
    pub ms: i64,
    /// Half the request's round trip plus the server's millisecond rounding.
    pub uncertainty_ms: u64,
}

pub struct PrometheusProvider {
    prom: Server,
    am: Option<Server>,
    skew: tokio::sync::Mutex<Option<Skew>>,
    /// Evaluation interval (seconds) of each alert's rule group, by alert name.
    intervals: Mutex<HashMap<String, Option<f64>>>,
}

impl PrometheusProvider {
    pub fn new(prom: Server, am: Option<Server>) -> PrometheusProvider {
        PrometheusProvider {
            prom,
            am,
            skew: tokio::sync::Mutex::new(None),
            intervals: Mutex::new(HashMap::new()),
        }
    }

    /// The Prometheus server.
    pub fn server(&self) -> &Server {
        &self.prom
    }

    /// `/api/v1/{path}`'s `data`.
    async fn api(&self, path: &str, query: &[(&str, String)]) -> Result<Json, ProviderError> {
        let body = self.prom.get(&format!("api/v1/{path}"), query).await?;
        api::prometheus_data(&self.prom, body)
    }

    /// An instant query's `data`, at `time` (server seconds) or now.
    async fn instant(&self, query: &str, time: Option<f64>) -> Result<Json, ProviderError> {
        let mut params = vec![("query", query.to_string())];
        if let Some(t) = time {
            params.push(("time", format!("{t:.3}")));
        }
        self.api("query", &params)
            .await
            .map_err(|e| e.map_message(|m| format!("{m} (query `{query}`)")))
    }

    /// The clock skew, measured once (the first time it is needed: preflight, or the run's first
    /// probe) and kept for the run.
    pub async fn skew(&self) -> Result<Skew, ProviderError> {
        let mut cached = self.skew.lock().await;
        if let Some(s) = *cached {
            return Ok(s);
        }
        let t0 = chrono::Utc::now();
        let data = self.instant("time()", None).await?;
        let t1 = chrono::Utc::now();
        let (server_s, _) = query::parse_sample(data.get("result").unwrap_or(&Json::Null))
            .ok_or_else(|| {
                ProviderError::failed(format!(
                    "{}: `time()` gave no scalar; is `prometheus.url` a Prometheus server?",
                    self.prom.name()
                ))
            })?;
        let rtt_ms = (t1 - t0).num_milliseconds().max(0);
        let mid_ms = t0.timestamp_millis() + rtt_ms / 2;
        let skew = Skew {
            ms: (server_s * 1000.0).round() as i64 - mid_ms,
            uncertainty_ms: (rtt_ms as u64).div_ceil(2) + 1,
        };
        *cached = Some(skew);
        Ok(skew)
    }

    /// The evaluation interval (seconds) of the rule group holding alerting rule `name`;
    /// `Ok(None)` when no such rule exists.
    async fn rule_interval(&self, name: &str) -> Result<Option<f64>, ProviderError> {
        if let Some(i) = self.intervals.lock().expect("poisoned").get(name) {
            return Ok(*i);
        }
        let data = self.api("rules", &[("type", "alert".to_string())]).await?;
        let found = data
            .get("groups")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .find_map(|g| {
                let has = g.get("rules").and_then(Json::as_array).is_some_and(|rs| {
                    rs.iter().any(|r| {
                        r.get("name").and_then(Json::as_str) == Some(name)
                            && r.get("type").and_then(Json::as_str) == Some("alerting")
                    })
                });
                has.then(|| g.get("interval").and_then(Json::as_f64).unwrap_or(60.0))
            });
        self.intervals
            .lock()
            .expect("poisoned")
            .insert(name.to_string(), found);
        Ok(found)
    }

    async fn prometheus(&self, q: &PromQuery) -> Result<Json, ProviderError> {
        let data = self.instant(&q.query, None).await?;
        query::instant_output(q, &data, &self.prom.label)
            .map_err(|(kind, m)| ProviderError::new(kind, format!("{}: {m}", self.prom.name())))
    }

    async fn alert(&self, q: &AlertQuery) -> Result<Json, ProviderError> {
        let skew = self.skew().await?;
        match q.source {
            AlertSource::Prometheus => self.alert_from_prometheus(q, skew).await,
            AlertSource::Alertmanager => self.alert_from_alertmanager(q, skew).await,
        }
    }

    async fn alert_from_prometheus(
        &self,
        q: &AlertQuery,
        skew: Skew,
    ) -> Result<Json, ProviderError> {
        let interval = self.rule_interval(&q.alertname).await?.ok_or_else(|| {
            ProviderError::not_found(format!(
                "{} has no alerting rule `{}`; check the name against its rules (`/api/v1/rules`)",
                self.prom.name(),
                q.alertname
            ))
        })?;
        let alerts = self.api("alerts", &[]).await?;
        let (state, count, active_at) =
            query::prometheus_state(q, alerts.get("alerts").unwrap_or(&Json::Null));
        // The raw ALERTS samples, evaluated at the server's now.
        let now_s = (chrono::Utc::now().timestamp_millis() + skew.ms) as f64 / 1000.0;
        let window_s = match q.since {
            Some(since) => {
                let since_s = (since.timestamp_millis() + skew.ms) as f64 / 1000.0;
                ((now_s - since_s).max(0.0) + 2.0 * interval + 1.0).ceil() as u64
            }
            None => EPISODE_LOOKBACK_S,
        };
        let sel = format!("{}[{window_s}s]", query::alerts_selector(q, "firing"));
        let data = self.instant(&sel, Some(now_s)).await?;
        let series = query::series_timestamps(data.get("result").unwrap_or(&Json::Null));
        let gap = (3.0 * interval).max(2.0);
        let fired_at = if state == "firing" {
            query::episode_start(&series, now_s, gap).and_then(query::rfc3339)
        } else {
            None
        };
        let mut out = json!({
            "alertname": q.alertname,
            "state": state,
            "firing": state == "firing",
            "active_at": active_at,
            "fired_at": fired_at,
            "alerts": count,
            "source": "prometheus",
            "server": self.prom.label,
            "eval_interval_ms": (interval * 1000.0).round() as u64,
            "skew_ms": skew.ms,
            "skew_uncertainty_ms": skew.uncertainty_ms,
        });
        if let Some(since) = q.since {
            let since_s = (since.timestamp_millis() + skew.ms) as f64 / 1000.0;
            out["fired_since"] =
                json!(query::first_since(&series, since_s).and_then(query::rfc3339));
        }
        Ok(out)
    }

    async fn alert_from_alertmanager(
        &self,
        q: &AlertQuery,
        skew: Skew,
    ) -> Result<Json, ProviderError> {
        let am = self.am.as_ref().ok_or_else(no_alertmanager)?;
        let mut filters: Vec<(&str, String)> = vec![(
            "filter",
            format!("alertname=\"{}\"", q.alertname.replace('"', "\\\"")),
        )];
        for (k, v) in &q.matchers {
            filters.push(("filter", format!("{k}=\"{}\"", v.replace('"', "\\\""))));
        }
        let alerts = am.get("api/v2/alerts", &filters).await?;
        let (count, starts) = query::alertmanager_state(q, &alerts);
        let starts_s = starts.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let mut out = json!({
            "alertname": q.alertname,
            "state": if count > 0 { "firing" } else { "inactive" },
            "firing": count > 0,
            "active_at": starts_s,
            "fired_at": starts_s,
            "alerts": count,
            "source": "alertmanager",
            "server": am.label,
            "skew_ms": skew.ms,
            "skew_uncertainty_ms": skew.uncertainty_ms,
        });
        if let Some(since) = q.since {
            let since_server = since + chrono::Duration::milliseconds(skew.ms);
            out["fired_since"] = json!(
                starts
                    .filter(|t| *t >= since_server)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            );
        }
        Ok(out)
    }

    async fn preflight_call(&self, typed: &Typed) -> Result<(), ProviderError> {
        match typed {
            Typed::Probe(Probe::Prometheus(q)) => {
                self.prometheus(q).await.map(|_| ()).or_else(|e| {
                    // A state (no series yet) is not a configuration problem; everything else is.
                    if e.kind == ErrorKind::Failed && e.message.contains("returned no series") {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
            }
            Typed::Probe(Probe::PrometheusAlert(q)) => {
                self.skew().await?;
                match q.source {
                    AlertSource::Prometheus => match self.rule_interval(&q.alertname).await? {
                        Some(_) => Ok(()),
                        None => Err(ProviderError::not_found(format!(
                            "{} has no alerting rule `{}`; check the name against its rules (`/api/v1/rules`)",
                            self.prom.name(),
                            q.alertname
                        ))),
                    },
                    AlertSource::Alertmanager => {
                        let am = self.am.as_ref().ok_or_else(no_alertmanager)?;
                        am.get("api/v2/status", &[]).await.map(|_| ())
                    }
                }
            }
            other => Err(unsupported(match other {
                Typed::Action(a) => a.name(),
                Typed::Probe(p) => p.name(),
                Typed::Canary(_) => "canary",
            })),
        }
    }
}

fn no_alertmanager() -> ProviderError {
    ProviderError::not_found(
        "`source: alertmanager` needs the environment's `alertmanager:` section: add `alertmanager: {url: http://<host>:9093}`".into(),
    )
}

fn unsupported(name: &str) -> ProviderError {
    ProviderError::unsupported("prometheus", name)
}

impl Provider for PrometheusProvider {
    fn backend(&self) -> &'static str {
        "prometheus"
    }

    fn supports(&self, name: &str) -> bool {
        PROBES.contains(&name)
    }

    fn preflight<'a>(&'a self, calls: &'a [Call]) -> BoxFuture<'a, Vec<PreflightProblem>> {
        Box::pin(async move {
            let mut problems = Vec::new();
            for c in calls {
                if let Err(error) = self.preflight_call(&c.typed).await {
                    problems.push(PreflightProblem {
                        owner: c.owner.clone(),
                        error,
                    });
                }
            }
            problems
        })
    }

    fn inject<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move { Err(unsupported(action.name())) })
    }

    fn revert<'a>(
        &'a self,
        action: &'a Action,
        _output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move { Err(unsupported(action.name())) })
    }

    fn observe<'a>(&'a self, probe: &'a Probe) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            match probe {
                Probe::Prometheus(q) => self.prometheus(q).await,
                Probe::PrometheusAlert(q) => self.alert(q).await,
                other => Err(unsupported(other.name())),
            }
        })
    }

    fn describe<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move { Err(unsupported(action.name())) })
    }
}
