//! Secrets: values an experiment takes from environment variables at run time (`secrets:` and
//! `${env:NAME}`), and the [`Redactor`] that keeps them out of every artefact.
//!
//! The front end stays pure: the caller hands in the environment lookup
//! ([`super::spec::parse_experiment_with_env`]); a variable that is not set leaves the secret
//! without a value ([`Secret::value`] is `None`), which `validate` warns about and `run` refuses
//! at preflight. Values are substituted like variables (always as strings), so the typed actions
//! and probes carry them; everything a run writes (journal, summary, report, lessons, progress,
//! printed problems) passes through the run's [`Redactor`] first.

use crate::lang::yaml::Loc;
use serde_json::Value as Json;
use std::borrow::Cow;

/// A secret's value. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(v: impl Into<String>) -> SecretValue {
        SecretValue(v.into())
    }
    /// The value itself, for substitution and redaction only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// One secret an experiment uses.
#[derive(Debug, Clone)]
pub struct Secret {
    /// Its name: the key under `secrets:`, or `env:NAME` for an inline `${env:NAME}`.
    pub name: String,
    /// The environment variable it is read from.
    pub env: String,
    /// `None` when the variable is not set (or empty) where the experiment was loaded.
    pub value: Option<SecretValue>,
    /// Where it is declared (or first referenced).
    pub loc: Loc,
}

impl Secret {
    /// What the value is replaced with in every artefact.
    pub fn label(&self) -> String {
        format!("[REDACTED:{}]", self.name)
    }
}

/// The value substituted for a secret whose variable is not set, so that validation can go on;
/// `run` refuses to start while any secret is unset.
pub const UNSET_PLACEHOLDER: &str = "unset-secret";

/// Values shorter than this are still redacted, but `validate` and `run` warn: masking a short
/// string also masks unrelated text that happens to contain it.
pub const SHORT_SECRET: usize = 6;

/// Replaces every secret value (and its percent-encoded form) with its label.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (needle, label), longest needle first so a secret containing another is masked whole.
    needles: Vec<(String, String)>,
}

impl Redactor {
    pub fn new(secrets: &[Secret]) -> Redactor {
        let mut needles: Vec<(String, String)> = Vec::new();
        for s in secrets {
            let Some(v) = &s.value else { continue };
            let v = v.expose();
            if v.is_empty() {
                continue;
            }
            let label = s.label();
            needles.push((v.to_string(), label.clone()));
            let enc = percent_encode(v);
            if enc != v {
                needles.push((enc.clone(), label.clone()));
                // Lower-case hex digits, as some encoders write them.
                let lower = percent_encode_lower(v);
                if lower != enc {
                    needles.push((lower, label.clone()));
                }
            }
            // Form encoding writes spaces as `+`; URL parsers encode only what a URL part
            // cannot hold (in a path: spaces and a few others, but `@`, `/`, `&` stay).
            if v.contains(' ') {
                needles.push((enc.replace("%20", "+"), label.clone()));
                needles.push((v.replace(' ', "%20"), label.clone()));
                needles.push((v.replace(' ', "+"), label.clone()));
            }
            let url_part = encode_url_part(v);
            if url_part != v {
                needles.push((url_part, label));
            }
        }
        needles.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        needles.dedup_by(|a, b| a.0 == b.0);
        Redactor { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `s` with every secret replaced by its label.
    pub fn redact<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if !self.needles.iter().any(|(n, _)| s.contains(n.as_str())) {
            return Cow::Borrowed(s);
        }
        let mut out = s.to_string();
        for (needle, label) in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), label);
            }
        }
        Cow::Owned(out)
    }

    /// Redact a string in place.
    pub fn redact_string(&self, s: &mut String) {
        if let Cow::Owned(r) = self.redact(s) {
            *s = r;
        }
    }

    /// Redact every string (and object key) in a JSON value, in place.
    pub fn redact_json(&self, v: &mut Json) {
        if self.is_empty() {
            return;
        }
        match v {
            Json::String(s) => self.redact_string(s),
            Json::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            Json::Object(map) => {
                let needs_key = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                if needs_key {
                    let old = std::mem::take(map);
                    for (k, mut val) in old {
                        self.redact_json(&mut val);
                        map.insert(self.redact(&k).into_owned(), val);
                    }
                } else {
                    map.values_mut().for_each(|i| self.redact_json(i));
                }
            }
            _ => {}
        }
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (upper-case hex).
fn percent_encode(s: &str) -> String {
    encode_with(s, b"0123456789ABCDEF")
}

fn percent_encode_lower(s: &str) -> String {
    encode_with(s, b"0123456789abcdef")
}

fn encode_with(s: &str, hex: &[u8; 16]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(hex[(b >> 4) as usize] as char);
            out.push(hex[(b & 15) as usize] as char);
        }
    }
    out
}

/// What a URL parser does to a value in a path or query: spaces, quotes, `#`, `<`, `>`, `` ` ``,
/// braces and non-ASCII bytes become `%XX`; everything else stays.
fn encode_url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'"' | b'#' | b'<' | b'>' | b'`' | b'{' | b'}') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `name` is a usable environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, v: &str) -> Secret {
        Secret {
            name: name.into(),
            env: name.to_uppercase(),
            value: Some(SecretValue::new(v)),
            loc: Loc {
                line: 1,
                col: 1,
                len: 1,
            },
        }
    }

    #[test]
    fn values_and_their_url_forms_are_masked() {
        let r = Redactor::new(&[secret("token", "a b/c&d")]);
        assert_eq!(r.redact("x=a b/c&d;"), "x=[REDACTED:token];");
        assert_eq!(r.redact("?t=a%20b%2Fc%26d"), "?t=[REDACTED:token]");
        assert_eq!(r.redact("?t=a%20b%2fc%26d"), "?t=[REDACTED:token]");
        assert_eq!(r.redact("?t=a+b%2Fc%26d"), "?t=[REDACTED:token]");
        assert_eq!(r.redact("/p/a%20b/c&d"), "/p/[REDACTED:token]");
        assert_eq!(r.redact("q=a+b/c&d"), "q=[REDACTED:token]");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_longer_secret_wins_when_one_contains_another() {
        let r = Redactor::new(&[
            secret("short", "hunter2"),
            secret("long", "hunter2-and-more"),
        ]);
        assert_eq!(r.redact("hunter2-and-more"), "[REDACTED:long]");
        assert_eq!(r.redact("pw hunter2"), "pw [REDACTED:short]");
    }

    #[test]
    fn json_strings_and_keys_are_masked_and_debug_never_shows_values() {
        let r = Redactor::new(&[secret("token", "s3cr3t-value")]);
        let mut v = serde_json::json!({"url": "http://h/?t=s3cr3t-value", "s3cr3t-value": [1, "s3cr3t-value"]});
        r.redact_json(&mut v);
        let text = v.to_string();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(text.contains("[REDACTED:token]"));
        let dbg = format!("{:?}", secret("token", "s3cr3t-value"));
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
    }

    #[test]
    fn unset_and_empty_secrets_redact_nothing() {
        let mut s = secret("token", "");
        assert!(Redactor::new(std::slice::from_ref(&s)).is_empty());
        s.value = None;
        assert!(Redactor::new(&[s]).is_empty());
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("PGPASSWORD"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
    }
}
