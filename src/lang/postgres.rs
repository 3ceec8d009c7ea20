//! PostgreSQL semantics the front end owns: the connection string (DSN) parsed into typed
//! settings, table identifiers, the `postgres` probe's parameters and the data-loss canary's
//! specification. The backend (`backend::postgres`) builds its driver configuration from these
//! values; it never parses a DSN itself.
//!
//! Invariant: pure (no driver, no IO). Passwords are kept only in [`Dsn::password`], which
//! `Debug` redacts; every message names a server as `host:port/dbname`.

use std::time::Duration;

/// `sslmode`, as libpq spells it (the subset firedrill implements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise (libpq's default). Unlike libpq, the
    /// certificate is verified when TLS is used: one that does not verify fails the connection.
    #[default]
    Prefer,
    /// TLS or nothing; the certificate chain is verified against the system's roots and the
    /// host name against the certificate (stricter than libpq's `require`, which verifies
    /// nothing without a root file).
    Require,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
        }
    }
}

/// A parsed connection string: `postgres://user:password@host:port/dbname?sslmode=require` or
/// libpq's `host=... port=... dbname=... user=...` form.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn {
    /// Host name, IP address, or (starting with `/`) a Unix socket directory.
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: Option<String>,
    pub sslmode: SslMode,
    /// `connect_timeout` (seconds in the DSN); `None`: the environment's default.
    pub connect_timeout: Option<Duration>,
    pub application_name: Option<String>,
}

impl std::fmt::Debug for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dsn")
            .field("server", &self.server())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sslmode", &self.sslmode)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

const KEYS: &[&str] = &[
    "host",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "connect_timeout",
    "application_name",
];

impl Dsn {
    /// How messages name the server: `host:port/dbname` (never the user's password).
    pub fn server(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.dbname)
    }

    /// Parse a DSN in URL or key=value form. The error says what is wrong and never repeats a
    /// password.
    pub fn parse(s: &str) -> Result<Dsn, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the DSN is empty".into());
        }
        let pairs = if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            url_pairs(s)?
        } else if s.contains("://") {
            let scheme = s.split("://").next().unwrap_or_default();
            return Err(format!(
                "a `{scheme}://` URL is not a PostgreSQL DSN (use postgres:// or postgresql://)"
            ));
        } else {
            keyword_pairs(s)?
        };
        let mut d = Dsn {
            host: String::new(),
            port: 5432,
            dbname: String::new(),
            user: String::new(),
            password: None,
            sslmode: SslMode::default(),
            connect_timeout: None,
            application_name: None,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "host" => d.host = v,
                "port" => {
                    d.port = match v.parse::<u16>() {
                        Ok(p) if p > 0 => p,
                        _ => return Err(format!("port `{v}` is not a TCP port (1 to 65535)")),
                    }
                }
                "dbname" => d.dbname = v,
                "user" => d.user = v,
                "password" => d.password = Some(v),
                "sslmode" => {
                    d.sslmode = match v.as_str() {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "allow" | "verify-ca" | "verify-full" => {
                            return Err(format!(
                                "`sslmode={v}` is not supported; use `require` (TLS with the certificate and host name verified against the system's roots), `prefer` or `disable`"
                            ));
                        }
                        other => {
                            return Err(format!(
                                "`sslmode={other}` is not an sslmode (disable, prefer or require)"
                            ));
                        }
                    }
                }
                "connect_timeout" => {
                    d.connect_timeout = match v.parse::<u64>() {
                        Ok(n) if (1..=3600).contains(&n) => Some(Duration::from_secs(n)),
                        _ => {
                            return Err(format!(
                                "`connect_timeout={v}` must be whole seconds from 1 to 3600"
                            ));
                        }
                    }
                }
                "application_name" => d.application_name = Some(v),
                other => {
                    return Err(format!(
                        "`{other}` is not a connection setting firedrill knows ({})",
                        KEYS.join(", ")
                    ));
                }
            }
        }
        if d.host.is_empty() {
            return Err("the DSN names no host".into());
        }
        if d.host.contains(',') {
            return Err("the DSN names several hosts; give one server per DSN".into());
        }
        if d.user.is_empty() {
            return Err(format!("the DSN for {} names no user", d.server_or_host()));
        }
        if d.dbname.is_empty() {
            // libpq's default: the database named like the user.
            d.dbname = d.user.clone();
        }
        Ok(d)
    }

    fn server_or_host(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn url_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    // Parsed as `http` so the URL parser knows the authority; the scheme is ours.
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let u = url::Url::parse(&format!("http://{rest}"))
        .map_err(|e| format!("the DSN is not a valid URL ({e})"))?;
    let pct =
        |x: &str| percent_decode(x).ok_or_else(|| "the DSN has a broken %-escape".to_string());
    let mut out = Vec::new();
    if let Some(h) = u.host_str()
        && !h.is_empty()
    {
        out.push((
            "host".to_string(),
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
        ));
    }
    if let Some(p) = u.port() {
        out.push(("port".into(), p.to_string()));
    }
    if !u.username().is_empty() {
        out.push(("user".into(), pct(u.username())?));
    }
    if let Some(pw) = u.password() {
        out.push(("password".into(), pct(pw)?));
    }
    let path = u.path().trim_start_matches('/');
    if !path.is_empty() {
        out.push(("dbname".into(), pct(path)?));
    }
    for (k, v) in u.query_pairs() {
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// libpq's `key=value key='quoted value'` form.
fn keyword_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!(
                "`{key}` has no value: write `key=value` pairs, e.g. `host=db1 port=5432 dbname=app user=drill`, or a postgres:// URL"
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("the quoted value of `{key}` is not closed"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
    Ok(out)
}

/// A table name: `name` or `schema.name`, each part a plain lower-case SQL identifier (letters,
/// digits, `_`; not starting with a digit; at most 63 bytes), so it can be quoted safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn parse(s: &str) -> Result<TableName, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 63
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        };
        match parts.as_slice() {
            [n] if ok(n) => Ok(TableName {
                schema: None,
                name: n.to_string(),
            }),
            [sc, n] if ok(sc) && ok(n) => Ok(TableName {
                schema: Some(sc.to_string()),
                name: n.to_string(),
            }),
            _ => Err(format!(
                "`{s}` is not a plain table name (lower-case letters, digits and `_`, optionally `schema.table`)"
            )),
        }
    }

    /// The name quoted for SQL: `"schema"."name"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{}\"", self.name),
            None => format!("\"{}\"", self.name),
        }
    }

    /// As written (`schema.name`).
    pub fn display(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// `type: postgres`: a query whose first row's first column is the probe's `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct PgQuery {
    pub dsn: Dsn,
    pub query: String,
}

/// The default canary table.
pub const CANARY_TABLE: &str = "firedrill_canary";
/// The default and the lowest canary interval.
pub const CANARY_INTERVAL: Duration = Duration::from_secs(1);
pub const CANARY_MIN_INTERVAL: Duration = Duration::from_millis(100);

/// `recovery.data_loss.canary` with `type: postgres`: a row written every `interval` into
/// `write` from before the fault, read back on `read` after recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct PgCanary {
    pub write: Dsn,
    /// Where the newest surviving canary is read (default: `write`).
    pub read: Dsn,
    pub interval: Duration,
    pub table: TableName,
    /// Keep this run's canary rows after the run (default: removed).
    pub keep: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_and_keyword_forms_parse_alike() {
        let a = Dsn::parse(
            "postgres://drill:s%40cret@127.0.0.1:5433/app?sslmode=disable&connect_timeout=3",
        )
        .unwrap();
        let b = Dsn::parse("host=127.0.0.1 port=5433 dbname=app user=drill password='s@cret' sslmode=disable connect_timeout=3").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.server(), "127.0.0.1:5433/app");
        assert_eq!(a.password.as_deref(), Some("s@cret"));
        assert_eq!(a.connect_timeout, Some(Duration::from_secs(3)));
        assert!(!format!("{a:?}").contains("s@cret"), "Debug redacts");
        let d = Dsn::parse("postgresql://u@db.example.com").unwrap();
        assert_eq!(
            (d.port, d.dbname.as_str(), d.sslmode),
            (5432, "u", SslMode::Prefer)
        );
    }

    #[test]
    fn bad_dsns_say_what_is_wrong_without_the_password() {
        for (dsn, want) in [
            ("", "empty"),
            ("mysql://u@h/db", "not a PostgreSQL DSN"),
            ("postgres://u:pw@h:99999/db", "not a valid URL"),
            ("host=h port=0 user=u", "not a TCP port"),
            ("postgres://h/db", "names no user"),
            ("postgres://u@/db", "host"),
            ("host=h user=u sslmode=verify-full", "not supported"),
            ("host=h user=u sslmode=yes", "not an sslmode"),
            ("host=h user=u connect_timeout=0", "whole seconds"),
            (
                "host=h user=u target_session_attrs=any",
                "not a connection setting",
            ),
            ("host=h user", "has no value"),
            ("host=h user=u password='topsecret", "not closed"),
            ("host=a,b user=u", "several hosts"),
        ] {
            let e = Dsn::parse(dsn).unwrap_err();
            assert!(e.contains(want), "{dsn}: {e}");
            assert!(!e.contains("pw") && !e.contains("topsecret"), "{e}");
        }
    }

    #[test]
    fn table_names() {
        assert_eq!(
            TableName::parse("firedrill_canary").unwrap().quoted(),
            "\"firedrill_canary\""
        );
        assert_eq!(
            TableName::parse("ops.canary2").unwrap().quoted(),
            "\"ops\".\"canary2\""
        );
        for bad in ["", "Canary", "a.b.c", "1x", "x;drop", "a-b", "x\""] {
            assert!(TableName::parse(bad).is_err(), "{bad}");
        }
    }
}
