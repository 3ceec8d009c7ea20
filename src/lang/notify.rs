//! Notification sinks (`notify:` in an environment or a playbook): Slack incoming webhooks,
//! PagerDuty Events API v2, and generic webhooks signed as Standard Webhooks (HMAC-SHA256). A
//! sink names the environment variables holding its secrets (the webhook URL, the routing key,
//! the signing secret), never the secrets themselves; the CLI reads them before anything runs.
//!
//! ```yaml
//! notify:
//!   - slack: {webhook_url_env: SLACK_WEBHOOK_URL}
//!     events: [aborted, rollback_failed, objective_missed, finished]
//!   - pagerduty: {routing_key_env: PD_ROUTING_KEY}
//!   - webhook: {url: "https://hooks.example.com/firedrill", secret_env: FIREDRILL_WEBHOOK_SECRET}
//! ```

use crate::lang::decode::{Cx, Spanned, choice};
use crate::lang::yaml::{Loc, Node, NodeKind};

/// What is notified.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    GamedayStarted,
    GamedayFinished,
    Started,
    FaultInjected,
    Detected,
    Recovered,
    ObjectiveMissed,
    Aborted,
    RollbackFailed,
    Finished,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::GamedayStarted,
        EventKind::GamedayFinished,
        EventKind::Started,
        EventKind::FaultInjected,
        EventKind::Detected,
        EventKind::Recovered,
        EventKind::ObjectiveMissed,
        EventKind::Aborted,
        EventKind::RollbackFailed,
        EventKind::Finished,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::GamedayStarted => "gameday_started",
            EventKind::GamedayFinished => "gameday_finished",
            EventKind::Started => "started",
            EventKind::FaultInjected => "fault_injected",
            EventKind::Detected => "detected",
            EventKind::Recovered => "recovered",
            EventKind::ObjectiveMissed => "objective_missed",
            EventKind::Aborted => "aborted",
            EventKind::RollbackFailed => "rollback_failed",
            EventKind::Finished => "finished",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    /// A Slack incoming webhook; its URL (a secret) is read from the variable.
    Slack { webhook_url_env: String },
    /// PagerDuty Events API v2: change events for starts and ends, an alert (deduplicated per
    /// run) on an abort or a failed rollback, resolved once the drill is rolled back.
    PagerDuty {
        routing_key_env: String,
        /// `https://events.pagerduty.com` (default) or the EU service region's
        /// `https://events.eu.pagerduty.com`.
        events_url: String,
    },
    /// Any HTTPS endpoint, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature: v1,<base64 HMAC-SHA256>`) when a secret is named.
    Webhook {
        url: String,
        secret_env: Option<String>,
    },
}

impl SinkKind {
    pub fn name(&self) -> &'static str {
        match self {
            SinkKind::Slack { .. } => "slack",
            SinkKind::PagerDuty { .. } => "pagerduty",
            SinkKind::Webhook { .. } => "webhook",
        }
    }

    /// The environment variables this sink reads.
    pub fn variables(&self) -> Vec<&str> {
        match self {
            SinkKind::Slack { webhook_url_env } => vec![webhook_url_env],
            SinkKind::PagerDuty {
                routing_key_env, ..
            } => vec![routing_key_env],
            SinkKind::Webhook { secret_env, .. } => secret_env.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotifySink {
    pub kind: SinkKind,
    /// The events it receives (all when not listed).
    pub events: Vec<EventKind>,
    pub loc: Loc,
}

impl NotifySink {
    pub fn wants(&self, e: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&e)
    }
}

pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com";

fn env_name(cx: &mut Cx, n: &Spanned<String>) -> Option<String> {
    let ok = !n.value.is_empty()
        && n.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.value.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Some(n.value.clone())
    } else {
        cx.error(
            n.loc,
            format!("`{}` is not an environment variable name", n.value),
            "name the variable that holds the secret (letters, digits and `_`), e.g. `SLACK_WEBHOOK_URL`; never the secret itself",
        );
        None
    }
}

fn http_url(cx: &mut Cx, n: &Spanned<String>, what: &str) -> Option<String> {
    match url::Url::parse(&n.value) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {
            Some(n.value.trim_end_matches('/').to_string())
        }
        _ => {
            cx.error(
                n.loc,
                format!("`{}` is not an http(s) URL for {what}", n.value),
                "write e.g. `https://hooks.example.com/firedrill`",
            );
            None
        }
    }
}

/// Decode a `notify:` list.
pub fn decode_sinks(cx: &mut Cx, node: &Node) -> Option<Vec<NotifySink>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(node.loc, format!("expected a list of notification sinks, found {}", node.describe()), "write one `- slack: {webhook_url_env: SLACK_WEBHOOK_URL}` (or pagerduty, webhook) per sink");
        return None;
    };
    let events: Vec<(&'static str, EventKind)> =
        EventKind::ALL.iter().map(|e| (e.name(), *e)).collect();
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let sink = cx.idx(i, |cx| {
            let mut m = cx.map(item, "a notification sink")?;
            let kinds = ["slack", "pagerduty", "webhook"]
                .iter()
                .filter(|k| m.has(k))
                .count();
            if kinds != 1 {
                cx.error(
                    item.loc,
                    "a sink names exactly one of `slack`, `pagerduty`, `webhook`",
                    "write one sink per list entry",
                );
            }
            let slack = m.node("slack");
            let pd = m.node("pagerduty");
            let hook = m.node("webhook");
            let evs = match m.node("events") {
                Some(n) => cx.key("events", |cx| match &n.kind {
                    NodeKind::Seq(list) => {
                        let mut v = Vec::new();
                        for (j, e) in list.iter().enumerate() {
                            v.push(cx.idx(j, |cx| choice(cx, e, "event", &events))?);
                        }
                        Some(v)
                    }
                    _ => {
                        cx.error(
                            n.loc,
                            "`events` must be a list",
                            "write e.g. `events: [aborted, finished]`",
                        );
                        None
                    }
                }),
                None => Some(Vec::new()),
            };
            m.finish(cx);
            let kind = if let Some(n) = slack {
                cx.key("slack", |cx| {
                    let mut s = cx.map(n, "the slack sink")?;
                    let v = s.req::<Spanned<String>>(cx, "webhook_url_env");
                    s.finish(cx);
                    let v = cx.key("webhook_url_env", |cx| v.and_then(|v| env_name(cx, &v)))?;
                    Some(SinkKind::Slack { webhook_url_env: v })
                })
            } else if let Some(n) = pd {
                cx.key("pagerduty", |cx| {
                    let mut s = cx.map(n, "the pagerduty sink")?;
                    let k = s.req::<Spanned<String>>(cx, "routing_key_env");
                    let u = s.opt::<Spanned<String>>(cx, "events_url");
                    s.finish(cx);
                    let k = cx.key("routing_key_env", |cx| k.and_then(|k| env_name(cx, &k)));
                    let u = match u {
                        Some(u) => cx.key("events_url", |cx| {
                            http_url(cx, &u, "the PagerDuty events API")
                        }),
                        None => Some(PAGERDUTY_EVENTS_URL.to_string()),
                    };
                    Some(SinkKind::PagerDuty {
                        routing_key_env: k?,
                        events_url: u?,
                    })
                })
            } else if let Some(n) = hook {
                cx.key("webhook", |cx| {
                    let mut s = cx.map(n, "the webhook sink")?;
                    let u = s.req::<Spanned<String>>(cx, "url");
                    let secret = s.opt::<Spanned<String>>(cx, "secret_env");
                    s.finish(cx);
                    let u = cx.key("url", |cx| u.and_then(|u| http_url(cx, &u, "the webhook")));
                    let secret = match secret {
                        Some(v) => Some(cx.key("secret_env", |cx| env_name(cx, &v))?),
                        None => None,
                    };
                    Some(SinkKind::Webhook {
                        url: u?,
                        secret_env: secret,
                    })
                })
            } else {
                None
            }?;
            Some(NotifySink {
                kind,
                events: evs?,
                loc: item.loc,
            })
        });
        match sink {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Vec<NotifySink>, Vec<String>> {
        let node = crate::lang::yaml::load(text, &crate::lang::yaml::Limits::default()).unwrap();
        let mut cx = Cx::new("n.yaml");
        let out = decode_sinks(&mut cx, &node);
        if cx.diags.is_empty() {
            Ok(out.unwrap())
        } else {
            Err(cx
                .diags
                .into_iter()
                .map(|d| format!("{}:{} {}", d.loc.unwrap().line, d.path, d.message))
                .collect())
        }
    }

    #[test]
    fn sinks_name_their_variables_and_bad_ones_are_located() {
        let s = decode("- slack: {webhook_url_env: SLACK_URL}\n  events: [aborted, finished]\n- pagerduty: {routing_key_env: PD_KEY}\n- webhook: {url: \"https://h.example/x\", secret_env: WH}\n").unwrap();
        assert_eq!(
            s[0].kind,
            SinkKind::Slack {
                webhook_url_env: "SLACK_URL".into()
            }
        );
        assert!(s[0].wants(EventKind::Aborted) && !s[0].wants(EventKind::Detected));
        assert_eq!(
            s[1].kind,
            SinkKind::PagerDuty {
                routing_key_env: "PD_KEY".into(),
                events_url: PAGERDUTY_EVENTS_URL.into()
            }
        );
        assert!(s[1].wants(EventKind::Detected));
        assert_eq!(s[2].kind.variables(), ["WH"]);
        let e = decode("- slack: {webhook_url_env: \"https://hooks.slack.com/services/T/B/x\"}\n- webhook: {url: ftp://x}\n  events: [abortd]\n- {slack: {webhook_url_env: A}, webhook: {url: \"https://x\"}}\n").unwrap_err();
        assert!(
            e[0].starts_with("1:[0].slack.webhook_url_env")
                && e[0].contains("not an environment variable name"),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("3:[1].events[0]") && m.contains("abortd")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("2:[1].webhook.url")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("4:[2]") && m.contains("exactly one")),
            "{e:?}"
        );
    }
}
