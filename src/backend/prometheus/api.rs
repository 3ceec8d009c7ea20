//! One HTTP API server (Prometheus or Alertmanager), read with GET requests: the base URL, the bearer token, the
//! per-request timeout, and the mapping of every failure to a [`ProviderError`] whose message
//! names the server (`host:port`, never the token) and says what to do.

use crate::backend::ProviderError;
use serde_json::Value as Json;
use std::time::Duration;

/// A server the backend talks to.
#[derive(Debug, Clone)]
pub struct Server {
    /// `Prometheus` or `Alertmanager`, for messages.
    pub kind: &'static str,
    /// The environment section it comes from (`prometheus`, `alertmanager`).
    pub section: &'static str,
    /// `host:port`, for messages and outputs.
    pub label: String,
    base: url::Url,
    token: Option<String>,
    token_env: Option<String>,
    timeout: Duration,
    client: reqwest::Client,
}

/// Whether a token variable can be read: the value, or the message saying it is missing.
pub fn read_token(var: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Ok(_) => Err(format!("the environment variable `{var}` is empty")),
        Err(_) => Err(format!("the environment variable `{var}` is not set")),
    }
}

impl Server {
    /// A server from its settings; `token` is the bearer token already read from `token_env`.
    pub fn new(
        kind: &'static str,
        section: &'static str,
        s: &super::settings::ServerSettings,
        token: Option<String>,
    ) -> Result<Server, String> {
        crate::engine::generic::install_crypto_provider();
        let mut base = url::Url::parse(&s.url).map_err(|e| e.to_string())?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let label = match (base.host_str(), base.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => s.url.clone(),
        };
        let client = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Server {
            kind,
            section,
            label,
            base,
            token,
            token_env: s.bearer_token_env.clone(),
            timeout: s.timeout,
            client,
        })
    }

    /// `Prometheus at 127.0.0.1:9090`.
    pub fn name(&self) -> String {
        format!("{} at {}", self.kind, self.label)
    }

    /// GET `path` (relative to the base URL) with query parameters; the body as JSON.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Json, ProviderError> {
        let mut url = self.base.join(path.trim_start_matches('/')).map_err(|e| {
            ProviderError::invalid_input(format!("{}: bad path {path}: {e}", self.name()))
        })?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        self.send(self.client.get(url), path).await
    }

    async fn send(&self, req: reqwest::RequestBuilder, path: &str) -> Result<Json, ProviderError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(&e, path))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| self.transport_error(&e, path))?;
        let body: Option<Json> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return body.ok_or_else(|| {
                ProviderError::failed(format!(
                    "{}: {path} answered HTTP {status} with a body that is not JSON; is `{}.url` the {} server's base URL?",
                    self.name(),
                    self.section,
                    self.kind
                ))
            });
        }
        let api_error = body
            .as_ref()
            .and_then(|b| {
                let kind = b.get("errorType").and_then(Json::as_str);
                let msg = b.get("error").and_then(Json::as_str);
                match (kind, msg) {
                    (Some(k), Some(m)) => Some(format!("{k}: {m}")),
                    (None, Some(m)) => Some(m.to_string()),
                    _ => None,
                }
            })
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        let name = self.name();
        let section = self.section;
        Err(match status.as_u16() {
            401 | 403 => {
                let fix = match &self.token_env {
                    Some(v) => format!(
                        "check the token in the environment variable `{v}` (`{section}.bearer_token_env`)"
                    ),
                    None => format!(
                        "the server wants credentials: put a bearer token in an environment variable and name it in `{section}.bearer_token_env`"
                    ),
                };
                ProviderError::denied(format!("{name} refused the request (HTTP {status}): {fix}"))
            }
            404 => ProviderError::not_found(format!(
                "{name} has no {path} (HTTP 404); is `{section}.url` the {} server's base URL?",
                self.kind
            )),
            400 | 422 => {
                ProviderError::invalid_input(format!("{name} rejected the request: {api_error}"))
            }
            429 => ProviderError::throttled(format!(
                "{name} asks to slow down (HTTP 429): {api_error}"
            )),
            s if s >= 500 => {
                ProviderError::unavailable(format!("{name} answered HTTP {status}: {api_error}"))
            }
            _ => ProviderError::failed(format!("{name} answered HTTP {status}: {api_error}")),
        })
    }

    fn transport_error(&self, e: &reqwest::Error, path: &str) -> ProviderError {
        let name = self.name();
        if e.is_timeout() {
            ProviderError::timed_out(format!(
                "{name} did not answer {path} within {} (`{}.timeout`)",
                crate::lang::duration::format(self.timeout),
                self.section
            ))
        } else if e.is_connect() {
            ProviderError::unavailable(format!(
                "{name} cannot be reached ({}): check `{}.url` and that the server is up and reachable from here",
                root_cause(e),
                self.section
            ))
        } else {
            ProviderError::unavailable(format!("{name}: {}", root_cause(e)))
        }
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// The `data` of a Prometheus API answer (`{"status": "success", "data": ...}`).
pub fn prometheus_data(server: &Server, body: Json) -> Result<Json, ProviderError> {
    match body.get("status").and_then(Json::as_str) {
        Some("success") => Ok(body.get("data").cloned().unwrap_or(Json::Null)),
        _ => Err(ProviderError::failed(format!(
            "{} answered without `status: success`: {}; is `{}.url` a Prometheus server?",
            server.name(),
            body.to_string().chars().take(200).collect::<String>(),
            server.section
        ))),
    }
}
