//! Connections and queries: a [`Dsn`] to a tokio-postgres connection (TLS by rustls on ring),
//! every connect and statement bounded by a timeout, server errors mapped to [`ProviderError`]
//! with the server's message and SQLSTATE, and result values typed as JSON.

use super::settings::PgSettings;
use crate::backend::{ErrorKind, ProviderError};
use crate::lang::postgres::{Dsn, SslMode};
use futures::StreamExt;
use serde_json::{Map, Value as Json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_postgres::types::{FromSql, Type};

/// The most rows a probe's output carries (`row_count` counts them all).
pub const MAX_ROWS: usize = 100;

/// rustls on ring with the system's roots, built once.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, ProviderError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let cfg = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for c in found.certs {
            let _ = roots.add(c);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| e.to_string())
    });
    match cfg {
        Ok(c) => Ok(tokio_postgres_rustls::MakeRustlsConnect::new((**c).clone())),
        Err(e) => Err(ProviderError::failed(format!(
            "cannot set up TLS for PostgreSQL: {e}"
        ))),
    }
}

/// The driver's configuration for a DSN.
fn config(dsn: &Dsn, s: &PgSettings) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(&dsn.host)
        .port(dsn.port)
        .dbname(&dsn.dbname)
        .user(&dsn.user)
        .connect_timeout(connect_timeout(dsn, s))
        .ssl_mode(match dsn.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require => tokio_postgres::config::SslMode::Require,
        })
        .application_name(dsn.application_name.as_deref().unwrap_or("firedrill"))
        .options(format!(
            "-c statement_timeout={}",
            s.statement_timeout.as_millis()
        ));
    if let Some(pw) = &dsn.password {
        c.password(pw);
    }
    c
}

pub fn connect_timeout(dsn: &Dsn, s: &PgSettings) -> Duration {
    dsn.connect_timeout.unwrap_or(s.connect_timeout)
}

/// Our own bound on one statement: the server's `statement_timeout` plus a margin for the
/// round trip (a server that stops answering cannot hang a drill).
pub fn statement_bound(s: &PgSettings) -> Duration {
    s.statement_timeout + Duration::from_secs(1)
}

/// Connect (TCP, TLS, authentication) within the connect timeout; the connection's IO runs on
/// its own task until the client is dropped.
pub async fn connect(dsn: &Dsn, s: &PgSettings) -> Result<tokio_postgres::Client, ProviderError> {
    let server = dsn.server();
    let limit = connect_timeout(dsn, s);
    let tls = tls()?;
    let cfg = config(dsn, s);
    match tokio::time::timeout(limit, cfg.connect(tls)).await {
        Err(_) => Err(ProviderError::timed_out(format!(
            "{server}: no connection within {} (connect_timeout); check that the server is up and reachable from here",
            crate::lang::duration::format(limit)
        ))),
        Ok(Err(e)) => Err(error(&server, "cannot connect", &e)),
        Ok(Ok((client, conn))) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
    }
}

/// Run `f` within the statement bound.
pub async fn bounded<T>(
    server: &str,
    what: &str,
    s: &PgSettings,
    f: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, ProviderError> {
    let limit = statement_bound(s);
    match tokio::time::timeout(limit, f).await {
        Err(_) => Err(ProviderError::timed_out(format!(
            "{server}: {what}: no answer within {}",
            crate::lang::duration::format(limit)
        ))),
        Ok(r) => r.map_err(|e| error(server, what, &e)),
    }
}

/// A driver error as a provider error: the server's message and SQLSTATE when the server
/// answered, the transport's cause otherwise; never the password.
pub fn error(server: &str, what: &str, e: &tokio_postgres::Error) -> ProviderError {
    use tokio_postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let (kind, todo) = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            (
                ErrorKind::Denied,
                "check the DSN's user and password, and the server's pg_hba.conf",
            )
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            (
                ErrorKind::Denied,
                "grant the DSN's user the privilege, or use a user that has it",
            )
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            (
                ErrorKind::NotFound,
                "check the DSN's dbname: the database does not exist",
            )
        } else if *code == SqlState::UNDEFINED_TABLE
            || *code == SqlState::UNDEFINED_COLUMN
            || *code == SqlState::UNDEFINED_FUNCTION
        {
            (ErrorKind::NotFound, "check the query against the database")
        } else if *code == SqlState::QUERY_CANCELED {
            (
                ErrorKind::TimedOut,
                "the statement ran longer than `postgres.statement_timeout`",
            )
        } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            (
                ErrorKind::InvalidState,
                "the server is read-only (a standby, or a READ ONLY transaction)",
            )
        } else if *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || code.code().starts_with("08")
        {
            (ErrorKind::Unavailable, "the server is not accepting work")
        } else if code.code().starts_with("42") || code.code().starts_with("22") {
            (ErrorKind::InvalidInput, "fix the query")
        } else {
            (ErrorKind::Failed, "see the server's log")
        };
        let hint = db
            .hint()
            .map(|h| format!(" (hint: {h})"))
            .unwrap_or_default();
        return ProviderError::new(
            kind,
            format!(
                "{server}: {what}: {} (SQLSTATE {}){hint}; {todo}",
                db.message(),
                code.code()
            ),
        );
    }
    let mut cause = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !cause.contains(&t) {
            cause = format!("{cause}: {t}");
        }
        src = s.source();
    }
    let todo = if cause.contains("certificate") || cause.contains("TLS") {
        "the server's TLS certificate must verify against this machine's root certificates for the DSN's host name (even under sslmode=prefer); use such a certificate, or `sslmode=disable` on a network you trust"
    } else {
        "check that the server is up and reachable from here, and the DSN's host, port and sslmode"
    };
    ProviderError::unavailable(format!("{server}: {what}: {cause}; {todo}"))
}

/// Run a probe's query in a READ ONLY transaction: `{value, rows, row_count}`.
pub async fn read_only_query(
    dsn: &Dsn,
    query: &str,
    s: &PgSettings,
) -> Result<Json, ProviderError> {
    let server = dsn.server();
    let mut client = connect(dsn, s).await?;
    let run = async {
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| error(&server, "cannot start a read-only transaction", &e))?;
        let stream = tx
            .query_raw(query, std::iter::empty::<i32>())
            .await
            .map_err(|e| error(&server, "query failed", &e))?;
        futures::pin_mut!(stream);
        let mut rows = Vec::new();
        let mut count = 0u64;
        while let Some(r) = stream.next().await {
            let r = r.map_err(|e| error(&server, "query failed", &e))?;
            count += 1;
            if rows.len() < MAX_ROWS {
                rows.push(row_json(&server, &r)?);
            }
        }
        let _ = tx.rollback().await;
        Ok::<_, ProviderError>((rows, count))
    };
    let limit = statement_bound(s);
    let (rows, count) = match tokio::time::timeout(limit, run).await {
        Err(_) => {
            return Err(ProviderError::timed_out(format!(
                "{server}: the query did not finish within {}",
                crate::lang::duration::format(limit)
            )));
        }
        Ok(r) => r?,
    };
    let value = rows
        .first()
        .and_then(|r: &(Vec<String>, Map<String, Json>)| {
            r.0.first().and_then(|c| r.1.get(c)).cloned()
        })
        .unwrap_or(Json::Null);
    Ok(serde_json::json!({
        "value": value,
        "rows": rows.into_iter().map(|(_, m)| Json::Object(m)).collect::<Vec<_>>(),
        "row_count": count,
    }))
}

/// One row as (column order, column: value).
fn row_json(
    server: &str,
    r: &tokio_postgres::Row,
) -> Result<(Vec<String>, Map<String, Json>), ProviderError> {
    let mut names = Vec::new();
    let mut m = Map::new();
    for (i, c) in r.columns().iter().enumerate() {
        let v = value(r, i, c.type_()).map_err(|why| {
            ProviderError::invalid_input(format!("{server}: column `{}`: {why}", c.name()))
        })?;
        names.push(c.name().to_string());
        m.insert(c.name().to_string(), v);
    }
    Ok((names, m))
}

fn get<'a, T: FromSql<'a>>(r: &'a tokio_postgres::Row, i: usize) -> Result<Option<T>, String> {
    r.try_get::<_, Option<T>>(i).map_err(|e| e.to_string())
}

fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f)
        .map(Json::Number)
        .unwrap_or_else(|| Json::String(f.to_string()))
}

/// A column's value as typed JSON.
fn value(r: &tokio_postgres::Row, i: usize, ty: &Type) -> Result<Json, String> {
    let v = match *ty {
        Type::BOOL => get::<bool>(r, i)?.map(Json::Bool),
        Type::INT2 => get::<i16>(r, i)?.map(Json::from),
        Type::INT4 => get::<i32>(r, i)?.map(Json::from),
        Type::INT8 => get::<i64>(r, i)?.map(Json::from),
        Type::OID => get::<u32>(r, i)?.map(Json::from),
        Type::FLOAT4 => get::<f32>(r, i)?.map(|f| float(f as f64)),
        Type::FLOAT8 => get::<f64>(r, i)?.map(float),
        Type::NUMERIC => get::<Numeric>(r, i)?.map(|n| n.to_json()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            get::<String>(r, i)?.map(Json::String)
        }
        Type::TIMESTAMPTZ => get::<chrono::DateTime<chrono::Utc>>(r, i)?
            .map(|t| Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
        Type::TIMESTAMP => get::<chrono::NaiveDateTime>(r, i)?
            .map(|t| Json::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        Type::DATE => get::<chrono::NaiveDate>(r, i)?.map(|d| Json::String(d.to_string())),
        Type::JSON | Type::JSONB => get::<Json>(r, i)?,
        ref other => {
            return Err(format!(
                "type `{}` is not one firedrill decodes (integers, floats, numeric, bool, text, json, timestamps, dates); cast it in the query, e.g. `{}::text`",
                other.name(),
                r.columns()[i].name()
            ));
        }
    };
    Ok(v.unwrap_or(Json::Null))
}

/// A NUMERIC in PostgreSQL's binary form, as its decimal text.
struct Numeric(String);

impl Numeric {
    /// A JSON number when it is one exactly enough (integers that fit i64, decimals as f64),
    /// else the decimal text (NaN, infinities, very long values).
    fn to_json(&self) -> Json {
        if !self.0.contains('.')
            && let Ok(i) = self.0.parse::<i64>()
        {
            return Json::from(i);
        }
        match self.0.parse::<f64>() {
            Ok(f) if f.is_finite() && self.0.len() <= 17 => float(f),
            _ => Json::String(self.0.clone()),
        }
    }
}

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        numeric_text(raw)
            .map(Numeric)
            .ok_or_else(|| "malformed numeric".into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// Decode the binary NUMERIC: ndigits, weight, sign, dscale (16 bits each), then base-10000
/// digits.
fn numeric_text(raw: &[u8]) -> Option<String> {
    let u16_at =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*raw.get(i)?, *raw.get(i + 1)?])) };
    let ndigits = u16_at(0)? as usize;
    let weight = u16_at(2)? as i16 as i64;
    let sign = u16_at(4)?;
    let dscale = u16_at(6)? as usize;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|k| u16_at(8 + 2 * k))
        .collect::<Option<_>>()?;
    let digit = |w: i64| -> u16 {
        let idx = weight - w;
        if idx >= 0 && (idx as usize) < digits.len() {
            digits[idx as usize]
        } else {
            0
        }
    };
    let mut int = String::new();
    if weight >= 0 {
        for w in (0..=weight).rev() {
            if int.is_empty() {
                int = digit(w).to_string();
            } else {
                int.push_str(&format!("{:04}", digit(w)));
            }
        }
    } else {
        int.push('0');
    }
    let mut frac = String::new();
    let groups = dscale.div_ceil(4) as i64;
    for w in 1..=groups {
        frac.push_str(&format!("{:04}", digit(-w)));
    }
    frac.truncate(dscale);
    let negative = sign == 0x4000 && (int != "0" || frac.chars().any(|c| c != '0'));
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&int);
    if dscale > 0 {
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [ndigits, weight as u16, sign, dscale] {
            v.extend(x.to_be_bytes());
        }
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode_to_their_decimal_text() {
        // 12345.678 = [1, 2345, 6780], weight 1, dscale 3
        assert_eq!(
            numeric_text(&raw(3, 1, 0, 3, &[1, 2345, 6780])).unwrap(),
            "12345.678"
        );
        // -0.0012 = [12], weight -1, dscale 4
        assert_eq!(
            numeric_text(&raw(1, -1, 0x4000, 4, &[12])).unwrap(),
            "-0.0012"
        );
        // 0.00000005 = [5], weight -2, dscale 8; 0.00005 = [5000], weight -2, dscale 5
        assert_eq!(numeric_text(&raw(1, -2, 0, 8, &[5])).unwrap(), "0.00000005");
        assert_eq!(numeric_text(&raw(1, -2, 0, 5, &[5000])).unwrap(), "0.00005");
        // 100000000 = [1], weight 2, dscale 0
        assert_eq!(numeric_text(&raw(1, 2, 0, 0, &[1])).unwrap(), "100000000");
        assert_eq!(numeric_text(&raw(0, 0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(numeric_text(&raw(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(numeric_text(&[0, 1]).is_none());
        assert_eq!(Numeric("42".into()).to_json(), Json::from(42));
        assert_eq!(Numeric("1.5".into()).to_json(), serde_json::json!(1.5));
        assert_eq!(Numeric("NaN".into()).to_json(), Json::from("NaN"));
    }
}
