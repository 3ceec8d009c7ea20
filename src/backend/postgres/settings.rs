//! The optional `postgres:` section of an environment: the timeouts every PostgreSQL connection
//! and statement gets. Servers and credentials are not settings: each probe and canary names
//! its server by DSN.

use crate::lang::environment::{Backend, Environment};
use serde::Deserialize;
use std::time::Duration;

pub const HELP: &str =
    "fix this setting; the README's \"PostgreSQL\" section documents the `postgres:` section";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PgSettings {
    /// How long to wait for a connection (TCP, TLS and authentication) when the DSN has no
    /// `connect_timeout` (default 5s).
    #[serde(
        default = "default_timeout",
        with = "crate::lang::duration::serde_human"
    )]
    pub connect_timeout: Duration,
    /// How long one statement may run (sent as `statement_timeout`, and enforced on our side
    /// too; default 5s).
    #[serde(
        default = "default_timeout",
        with = "crate::lang::duration::serde_human"
    )]
    pub statement_timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            connect_timeout: default_timeout(),
            statement_timeout: default_timeout(),
        }
    }
}

impl PgSettings {
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (k, d) in [
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
        ] {
            if d < Duration::from_millis(100) || d > Duration::from_secs(600) {
                out.push((
                    k,
                    format!(
                        "`{k}: {}` is out of range: give 100ms to 10m",
                        crate::lang::duration::format(d)
                    ),
                ));
            }
        }
        out
    }
}

/// Decode and check the `postgres:` section (all defaults when absent); every problem located.
pub fn decode(env: &Environment) -> Result<PgSettings, Vec<crate::lang::diag::Diagnostic>> {
    env.decode_checked(Backend::Postgres, HELP, PgSettings::problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(section: &str) -> Environment {
        let src = format!(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {{name: t}}\nbackend: sim\n{section}"
        );
        crate::lang::environment::parse_environment("env.yaml", src.as_bytes(), &[]).unwrap()
    }

    #[test]
    fn absent_means_defaults_and_a_section_overrides() {
        assert_eq!(decode(&env("")).unwrap(), PgSettings::default());
        let s = decode(&env(
            "postgres:\n  connect_timeout: 2s\n  statement_timeout: 500ms\n",
        ))
        .unwrap();
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.statement_timeout, Duration::from_millis(500));
    }

    #[test]
    fn bad_settings_are_located() {
        let e = decode(&env("postgres:\n  connect_timeot: 2s\n")).unwrap_err();
        assert_eq!(e[0].path, "postgres.connect_timeot");
        assert_eq!(e[0].loc.map(|l| l.line), Some(6), "{e:?}");
        assert!(e[0].message.contains("unknown field"), "{e:?}");
        let e = decode(&env("postgres:\n  statement_timeout: 1h\n")).unwrap_err();
        assert_eq!(e[0].path, "postgres.statement_timeout");
        assert!(e[0].message.contains("out of range"), "{e:?}");
    }
}
