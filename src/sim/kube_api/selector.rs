//! Kubernetes label and field selectors, parsed as the API server parses them.
//!
//! Label selectors: comma-separated requirements `key`, `!key`, `key=value`, `key==value`,
//! `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`. Field selectors:
//! `field=value`, `field==value`, `field!=value`, on the fields each resource supports.

use std::collections::BTreeMap;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector (every requirement must hold; empty matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    /// Parse the `labelSelector` syntax. Errors read like the API server's.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut out = Vec::new();
        for part in split_top(s)? {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            out.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(out))
    }

    /// Equality selector from a label map (`{app: api}`).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> LabelSelector {
        LabelSelector(
            labels
                .iter()
                .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
                .collect(),
        )
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Gt(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::Lt(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Exists(k) => k.clone(),
                Requirement::NotExists(k) => format!("!{k}"),
                Requirement::In(k, v) if v.len() == 1 => format!("{k}={}", v[0]),
                Requirement::In(k, v) => format!("{k} in ({})", v.join(",")),
                Requirement::NotIn(k, v) if v.len() == 1 => format!("{k}!={}", v[0]),
                Requirement::NotIn(k, v) => format!("{k} notin ({})", v.join(",")),
                Requirement::Gt(k, n) => format!("{k}>{n}"),
                Requirement::Lt(k, n) => format!("{k}<{n}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Split on commas outside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "unable to parse requirement: unexpected `)` in {s:?}"
                    ));
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: unclosed `(` in {s:?}"
        ));
    }
    out.push(&s[start..]);
    Ok(out)
}

/// Label keys: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters
/// of alphanumerics, `-`, `_`, `.`, beginning and ending alphanumeric.
fn check_key(k: &str) -> Result<(), String> {
    let name = match k.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty()
                || prefix.len() > 253
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            {
                return Err(format!(
                    "unable to parse requirement: invalid label key {k:?}: prefix part must be a DNS subdomain"
                ));
            }
            name
        }
        None => k,
    };
    check_name(name)
        .map_err(|e| format!("unable to parse requirement: invalid label key {k:?}: {e}"))
}

fn check_name(v: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    if v.is_empty() || v.len() > 63 {
        return Err("name part must be 1 to 63 characters".into());
    }
    if !v.chars().all(ok_char)
        || !v.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !v.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into(),
        );
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    check_name(v)
        .map_err(|e| format!("unable to parse requirement: invalid label value {v:?}: {e}"))
}

fn values(list: &str) -> Result<Vec<String>, String> {
    let inner = list
        .trim()
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| {
            format!(
                "unable to parse requirement: expected a parenthesized list of values, got {list:?}"
            )
        })?;
    let vs: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &vs {
        check_value(v)?;
    }
    Ok(vs)
}

fn parse_requirement(p: &str) -> Result<Requirement, String> {
    if let Some(k) = p.strip_prefix('!') {
        let k = k.trim();
        check_key(k)?;
        return Ok(Requirement::NotExists(k.to_string()));
    }
    for (op, neg) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = p.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k)?;
            check_value(v)?;
            return Ok(if neg {
                Requirement::NotIn(k.into(), vec![v.into()])
            } else {
                Requirement::In(k.into(), vec![v.into()])
            });
        }
    }
    for (op, gt) in [(">", true), ("<", false)] {
        if let Some((k, v)) = p.split_once(op) {
            let k = k.trim();
            check_key(k)?;
            let n: i64 = v.trim().parse().map_err(|_| {
                format!("unable to parse requirement: for 'gt', 'lt' operators, the value must be an integer, got {:?}", v.trim())
            })?;
            return Ok(if gt {
                Requirement::Gt(k.into(), n)
            } else {
                Requirement::Lt(k.into(), n)
            });
        }
    }
    let mut words = p.splitn(2, char::is_whitespace);
    let k = words.next().unwrap_or_default().trim();
    let rest = words.next().unwrap_or_default().trim();
    check_key(k)?;
    if rest.is_empty() {
        return Ok(Requirement::Exists(k.to_string()));
    }
    if let Some(list) = rest.strip_prefix("notin") {
        return Ok(Requirement::NotIn(k.into(), values(list)?));
    }
    if let Some(list) = rest.strip_prefix("in") {
        return Ok(Requirement::In(k.into(), values(list)?));
    }
    Err(format!(
        "unable to parse requirement: found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
    ))
}

/// A parsed field selector: (field, value, equal?) terms, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, String, bool)>);

impl FieldSelector {
    /// Parse `field=value,field!=value`, checking each field is one of `supported`.
    pub fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (f, v, eq) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let f = f.trim();
            if !supported.contains(&f) {
                return Err(format!(
                    "field label not supported: {f} (supported: {})",
                    supported.join(", ")
                ));
            }
            out.push((f.to_string(), v.trim().to_string(), eq));
        }
        Ok(FieldSelector(out))
    }

    /// Whether the fields (looked up with `get`) match.
    pub fn matches(&self, get: impl Fn(&str) -> String) -> bool {
        self.0.iter().all(|(f, v, eq)| (get(f) == *v) == *eq)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Fields pods can be selected by.
pub const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
];

/// Fields nodes can be selected by.
pub const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];

/// Fields every other resource can be selected by.
pub const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_operators() {
        let l = labels(&[("app", "api"), ("tier", "web"), ("n", "5")]);
        for (sel, want) in [
            ("app=api", true),
            ("app==api", true),
            ("app!=api", false),
            ("app!=db", true),
            ("app in (db, api)", true),
            ("app notin (db,api)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=api,tier=web", true),
            ("app=api,tier in (x)", false),
            ("n>4", true),
            ("n<5", false),
            ("topology.kubernetes.io/zone=us-east-1a", false),
            ("", true),
        ] {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for sel in ["app in (a", "a b c", "-bad=x", "app=bad value", "n>x"] {
            let e = LabelSelector::parse(sel).unwrap_err();
            assert!(e.starts_with("unable to parse requirement"), "{sel}: {e}");
        }
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("spec.nodeName=n1,status.phase!=Pending", POD_FIELDS).unwrap();
        assert!(f.matches(|k| if k == "spec.nodeName" {
            "n1".into()
        } else {
            "Running".into()
        }));
        assert!(!f.matches(|k| if k == "spec.nodeName" {
            "n2".into()
        } else {
            "Running".into()
        }));
        let e = FieldSelector::parse("spec.foo=1", POD_FIELDS).unwrap_err();
        assert!(e.contains("field label not supported: spec.foo"), "{e}");
    }
}
