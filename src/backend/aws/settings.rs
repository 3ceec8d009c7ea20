//! The `aws:` section of an environment: which regions, which credentials, which endpoint.
//!
//! Credentials are never settings: they come from the SDK's standard chain (environment,
//! `profile` in the shared files, SSO, process, web identity, container or instance role), and
//! `role_arn` only names a role to assume on top of them.

use crate::lang::environment::{Backend, Environment};
use serde::Deserialize;
use std::time::Duration;

/// What the help of every settings error says.
pub const HELP: &str = "fix this setting; the README's \"AWS backend\" section documents every one";

/// Bounds of `retries` (attempts per API call, the first included).
pub const MAX_ATTEMPTS: u32 = 10;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// The primary region (RDS clusters, Route 53 and STS calls go here).
    pub region: String,
    /// The disaster-recovery region: global database secondaries live there; global failovers,
    /// switchovers and detaches of its clusters are sent to its endpoint.
    #[serde(default)]
    pub dr_region: Option<String>,
    /// Profile of the shared config/credentials files (default: the chain's own choice).
    #[serde(default)]
    pub profile: Option<String>,
    /// Role to assume with STS; the session is named `firedrill-<run id>`.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Endpoint override for emulators (moto, LocalStack), e.g. `http://127.0.0.1:5000`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Attempts per API call, the first included (throttling, 5xx and transport errors are
    /// retried with exponential backoff): 1 to 10, default 4.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// How often to poll while waiting for a change (a failover, a restore) to complete.
    #[serde(
        default = "default_poll_interval",
        with = "crate::lang::duration::serde_human"
    )]
    pub poll_interval: Duration,
    /// Give up waiting for a change after this long even if the step has no timeout.
    #[serde(
        default = "default_max_wait",
        with = "crate::lang::duration::serde_human"
    )]
    pub max_wait: Duration,
    /// Hosted zone of the `dns.*` records (default: the longest public zone whose name ends the
    /// record's, found with ListHostedZones).
    #[serde(default)]
    pub hosted_zone_id: Option<String>,
}

fn default_retries() -> u32 {
    4
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_max_wait() -> Duration {
    Duration::from_secs(3600)
}

impl AwsSettings {
    /// Settings for a region with every default (tests, docs).
    pub fn for_region(region: &str) -> AwsSettings {
        AwsSettings {
            region: region.to_string(),
            dr_region: None,
            profile: None,
            role_arn: None,
            endpoint_url: None,
            retries: default_retries(),
            poll_interval: default_poll_interval(),
            max_wait: default_max_wait(),
            hosted_zone_id: None,
        }
    }

    /// Every problem with the decoded values, as (path, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !is_region(&self.region) {
            out.push((
                "region",
                format!(
                    "`{}` is not an AWS region name (like `us-east-1`)",
                    self.region
                ),
            ));
        }
        if let Some(dr) = &self.dr_region {
            if !is_region(dr) {
                out.push((
                    "dr_region",
                    format!("`{dr}` is not an AWS region name (like `us-west-2`)"),
                ));
            } else if *dr == self.region {
                out.push((
                    "dr_region",
                    format!("`dr_region` is the primary region `{dr}`; name the other region or leave it out"),
                ));
            }
        }
        if let Some(p) = &self.profile
            && p.trim().is_empty()
        {
            out.push(("profile", "the profile name is empty".into()));
        }
        if let Some(r) = &self.role_arn
            && !is_role_arn(r)
        {
            out.push((
                "role_arn",
                format!(
                    "`{r}` is not an IAM role ARN (like `arn:aws:iam::123456789012:role/firedrill`)"
                ),
            ));
        }
        if let Some(u) = &self.endpoint_url {
            let ok = u.parse::<http::Uri>().ok().is_some_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
            });
            if !ok {
                out.push((
                    "endpoint_url",
                    format!("`{u}` is not an http(s) URL (like `http://127.0.0.1:5000`)"),
                ));
            }
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.retries) {
            out.push((
                "retries",
                format!(
                    "`retries` is the number of attempts per call, from 1 (no retry) to {MAX_ATTEMPTS}; got {}",
                    self.retries
                ),
            ));
        }
        if self.poll_interval < Duration::from_millis(100)
            || self.poll_interval > Duration::from_secs(300)
        {
            out.push((
                "poll_interval",
                format!(
                    "`poll_interval` must be between 100ms and 5m; got {}",
                    crate::lang::duration::format(self.poll_interval)
                ),
            ));
        }
        if self.max_wait < self.poll_interval {
            out.push((
                "max_wait",
                "`max_wait` must be at least `poll_interval`".to_string(),
            ));
        }
        if let Some(z) = &self.hosted_zone_id
            && (z.is_empty()
                || !z
                    .trim_start_matches("/hostedzone/")
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric()))
        {
            out.push((
                "hosted_zone_id",
                format!("`{z}` is not a hosted zone id (like `Z0123456789ABCDEFGHIJ`)"),
            ));
        }
        out
    }

    /// The regions a name may live in: the primary, then the DR region.
    pub fn regions(&self) -> Vec<&str> {
        let mut v = vec![self.region.as_str()];
        if let Some(d) = &self.dr_region {
            v.push(d);
        }
        v
    }
}

fn is_region(s: &str) -> bool {
    // Partition prefixes (us, eu, ap, cn, us-gov, ...), a direction, a number.
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len()
}

/// Decode and check the `aws:` section; every problem located in the file.
pub fn decode(env: &Environment) -> Result<AwsSettings, Vec<crate::lang::diag::Diagnostic>> {
    env.decode_checked(Backend::Aws, HELP, AwsSettings::problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(aws: &str) -> Environment {
        let src = format!(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {{name: t}}\nbackend: sim\naws:\n{aws}"
        );
        crate::lang::environment::parse_environment("env.yaml", src.as_bytes(), &[]).unwrap()
    }

    #[test]
    fn a_full_section_decodes() {
        let s = decode(&env(
            "  region: us-east-1\n  dr_region: us-west-2\n  profile: drills\n  role_arn: arn:aws:iam::123456789012:role/firedrill\n  endpoint_url: http://127.0.0.1:5000\n  retries: 3\n  poll_interval: 5s\n  max_wait: 30m\n  hosted_zone_id: Z123ABC\n",
        ))
        .unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.dr_region.as_deref(), Some("us-west-2"));
        assert_eq!(s.retries, 3);
        assert_eq!(s.poll_interval, Duration::from_secs(5));
        assert_eq!(s.max_wait, Duration::from_secs(1800));
        assert_eq!(s.regions(), vec!["us-east-1", "us-west-2"]);
    }

    #[test]
    fn defaults_apply() {
        let s = decode(&env("  region: eu-central-1\n")).unwrap();
        assert_eq!(s, AwsSettings::for_region("eu-central-1"));
    }

    #[test]
    fn unknown_keys_are_located_errors() {
        let d = decode(&env("  region: us-east-1\n  retires: 3\n")).unwrap_err();
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("retires"), "{}", d[0].message);
        assert_eq!(d[0].loc.map(|l| l.line), Some(7), "{:?}", d[0].loc);
    }

    #[test]
    fn a_missing_region_is_an_error() {
        let d = decode(&env("  dr_region: us-west-2\n")).unwrap_err();
        assert!(d[0].message.contains("region"), "{}", d[0].message);
    }

    #[test]
    fn every_bad_value_is_reported_at_its_line() {
        let d = decode(&env(
            "  region: us-east-1\n  dr_region: us-east-1\n  role_arn: arn:aws:iam::12:user/x\n  endpoint_url: localhost:5000\n  retries: 0\n  poll_interval: 10m\n",
        ))
        .unwrap_err();
        let paths: Vec<&str> = d.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "aws.dr_region",
                "aws.role_arn",
                "aws.endpoint_url",
                "aws.retries",
                "aws.poll_interval"
            ]
        );
        let lines: Vec<u32> = d.iter().filter_map(|x| x.loc.map(|l| l.line)).collect();
        assert_eq!(lines, vec![7, 8, 9, 10, 11]);
        assert!(d.iter().all(|x| x.help == HELP));
    }

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "eu-central-2",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us_east_1",
            "east-1",
            "us-east-1a",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
