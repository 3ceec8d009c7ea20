//! The `prometheus:` section of an environment (and the optional `alertmanager:` section, read by
//! the same backend): the server's URL, where its bearer token comes from, the per-request
//! timeout.
//!
//! The token itself is never a setting: `bearer_token_env` names the environment variable that
//! holds it, read when the backend connects (a missing variable is an error then), and it goes
//! nowhere but the `Authorization` header.

use crate::lang::diag::Diagnostic;
use crate::lang::environment::{Backend, Environment};
use serde::Deserialize;
use std::time::Duration;

/// What the help of every settings error says.
pub const HELP: &str =
    "fix this setting; the README's \"Prometheus probes\" section documents every one";

/// One HTTP server's settings: the `prometheus:` or the `alertmanager:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` (a path prefix is kept:
    /// `https://example.com/prometheus`).
    pub url: String,
    /// Name of the environment variable holding a bearer token (sent as `Authorization: Bearer`).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Per-request timeout (default 10s, from 100ms to 5m).
    #[serde(
        default = "default_timeout",
        with = "crate::lang::duration::serde_human"
    )]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl ServerSettings {
    /// Every problem with the decoded values, as (path, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match url::Url::parse(&self.url) {
            Ok(u) if !matches!(u.scheme(), "http" | "https") => out.push((
                "url",
                format!(
                    "`{}` is a `{}` URL; the server speaks http or https",
                    self.url,
                    u.scheme()
                ),
            )),
            Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                out.push(("url", format!("`{}` has no host", self.url)))
            }
            Ok(u) if u.query().is_some() || u.fragment().is_some() => out.push((
                "url",
                format!(
                    "`{}` has a query or fragment; give the server's base URL",
                    self.url
                ),
            )),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => out.push((
                "url",
                "the URL carries credentials; put a token in an environment variable and name it in `bearer_token_env`".to_string(),
            )),
            Ok(_) => {}
            Err(e) => out.push((
                "url",
                format!(
                    "`{}` is not a URL ({e}); write e.g. `http://127.0.0.1:9090`",
                    self.url
                ),
            )),
        }
        if let Some(v) = &self.bearer_token_env
            && (v.is_empty()
                || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || v.starts_with(|c: char| c.is_ascii_digit()))
        {
            out.push((
                "bearer_token_env",
                format!("`{v}` is not an environment variable name (like `PROMETHEUS_TOKEN`)"),
            ));
        }
        if self.timeout < Duration::from_millis(100) || self.timeout > Duration::from_secs(300) {
            out.push((
                "timeout",
                format!(
                    "`timeout` must be between 100ms and 5m; got {}",
                    crate::lang::duration::format(self.timeout)
                ),
            ));
        }
        out
    }
}

/// The Prometheus backend's settings: the server, and Alertmanager when the environment has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub prometheus: ServerSettings,
    pub alertmanager: Option<ServerSettings>,
}

/// Decode and check the `prometheus:` and `alertmanager:` sections; every problem located.
pub fn decode(env: &Environment) -> Result<Settings, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let prometheus = match env.decode_checked(Backend::Prometheus, HELP, ServerSettings::problems) {
        Ok(s) => Some(s),
        Err(d) => {
            diags.extend(d);
            None
        }
    };
    let alertmanager = match env.decode_aux::<ServerSettings>("alertmanager", HELP) {
        Ok(s) => {
            for (path, msg) in s.iter().flat_map(ServerSettings::problems) {
                diags.push(env.aux_settings_error("alertmanager", path, msg, HELP.into()));
            }
            s
        }
        Err(d) => {
            diags.extend(d);
            None
        }
    };
    match prometheus {
        Some(prometheus) if diags.is_empty() => Ok(Settings {
            prometheus,
            alertmanager,
        }),
        _ => Err(diags),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(sections: &str) -> Result<Environment, Vec<Diagnostic>> {
        let src = format!(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {{name: t}}\nbackend: sim\n{sections}"
        );
        crate::lang::environment::parse_environment("env.yaml", src.as_bytes(), &[])
    }

    #[test]
    fn a_full_section_decodes_with_defaults() {
        let s = decode(
            &env("prometheus:\n  url: http://127.0.0.1:9090\n  bearer_token_env: PROM_TOKEN\n  timeout: 3s\nalertmanager:\n  url: http://127.0.0.1:9093/\n").unwrap(),
        )
        .unwrap();
        assert_eq!(s.prometheus.url, "http://127.0.0.1:9090");
        assert_eq!(s.prometheus.bearer_token_env.as_deref(), Some("PROM_TOKEN"));
        assert_eq!(s.prometheus.timeout, Duration::from_secs(3));
        let am = s.alertmanager.unwrap();
        assert_eq!(am.timeout, Duration::from_secs(10));
        assert_eq!(am.bearer_token_env, None);
    }

    #[test]
    fn bad_values_are_located_errors() {
        let d = decode(
            &env("prometheus:\n  url: ftp://x\n  bearer_token_env: 'my token'\n  timeout: 10m\n  tiemout: 1s\n").unwrap(),
        )
        .unwrap_err();
        // serde stops at the unknown key: one located error.
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("tiemout"), "{}", d[0].message);
        assert_eq!(d[0].loc.map(|l| l.line), Some(9), "{:?}", d[0].loc);
        let d = decode(
            &env("prometheus:\n  url: ftp://x\n  bearer_token_env: 'my token'\n  timeout: 10m\n")
                .unwrap(),
        )
        .unwrap_err();
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "prometheus.url",
                "prometheus.bearer_token_env",
                "prometheus.timeout"
            ],
            "{d:?}"
        );
        assert_eq!(d[0].loc.map(|l| l.line), Some(6));
        let d = decode(&env("prometheus: {url: 'http://u:p@h:9090'}\n").unwrap()).unwrap_err();
        assert!(d[0].message.contains("credentials"), "{}", d[0].message);
        let d = decode(&env("prometheus: {}\n").unwrap()).unwrap_err();
        assert!(
            d[0].message.contains("missing field `url`"),
            "{}",
            d[0].message
        );
        let d = decode(
            &env("prometheus: {url: 'http://h:9090'}\nalertmanager: {url: 'nope'}\n").unwrap(),
        )
        .unwrap_err();
        assert_eq!(d[0].path, "alertmanager.url", "{d:?}");
        assert_eq!(d[0].loc.map(|l| l.line), Some(6));
    }

    #[test]
    fn an_alertmanager_section_needs_a_prometheus_section() {
        let d = env("alertmanager: {url: 'http://h:9093'}\n").unwrap_err();
        assert!(d[0].message.contains("no `prometheus:` section"), "{d:?}");
        assert!(
            d[0].help
                .contains("add a `prometheus:` section with its url")
        );
    }

    #[test]
    fn prometheus_is_not_a_primary_backend() {
        let src = "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {name: t}\nbackend: prometheus\nprometheus: {url: 'http://h:9090'}\n";
        assert!(
            crate::lang::environment::parse_environment("env.yaml", src.as_bytes(), &[]).is_err()
        );
    }
}
