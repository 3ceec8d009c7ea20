//! The PostgreSQL backend (tokio-postgres, TLS by rustls on ring): the `postgres` probe, its
//! preflight, and the data-loss canary's IO ([`CanaryIo`], driven by `engine::canary`).
//!
//! Every call names its server by DSN, so the backend serves every environment (no section
//! needed; the optional `postgres:` section sets the timeouts). Connecting builds nothing and
//! contacts nothing; probes connect per call, the canary writer keeps one connection and
//! reconnects after an error. Every connect and statement is bounded (`client`), and messages
//! name servers as `host:port/dbname`, never with a password.

pub mod client;
pub mod settings;

use crate::backend::{
    Action, BoxFuture, Call, CanaryIo, PreflightProblem, Probe, Provider, ProviderError, Typed,
};
use crate::lang::diag::Diagnostic;
use crate::lang::environment::Environment;
use crate::lang::postgres::{Dsn, PgCanary};
use client::bounded;
use serde_json::Value as Json;
use settings::PgSettings;
use std::sync::Arc;

/// Check the `postgres:` section without connecting (for `validate`).
pub fn check_settings(env: &Environment) -> Result<(), Vec<Diagnostic>> {
    settings::decode(env).map(|_| ())
}

/// The provider for an environment (reads the section; contacts nothing).
pub fn connect(env: &Environment) -> Result<PgProvider, Vec<Diagnostic>> {
    Ok(PgProvider {
        settings: settings::decode(env)?,
    })
}

pub struct PgProvider {
    settings: PgSettings,
}

impl PgProvider {
    pub fn new(settings: PgSettings) -> PgProvider {
        PgProvider { settings }
    }
}

fn unsupported(name: &str) -> ProviderError {
    ProviderError::unsupported("postgres", name)
}

impl Provider for PgProvider {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn supports(&self, name: &str) -> bool {
        name == "postgres"
    }

    fn preflight<'a>(&'a self, calls: &'a [Call]) -> BoxFuture<'a, Vec<PreflightProblem>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for c in calls {
                let errors = match &c.typed {
                    Typed::Probe(Probe::Postgres(q)) => {
                        client::read_only_query(&q.dsn, &q.query, &self.settings)
                            .await
                            .err()
                            .map(|e| {
                                vec![e.map_message(|m| {
                                    format!("{m} (preflight ran the query once, read-only)")
                                })]
                            })
                            .unwrap_or_default()
                    }
                    Typed::Canary(spec) => canary_preflight(spec, &self.settings).await,
                    Typed::Probe(p) => vec![unsupported(p.name())],
                    Typed::Action(a) => vec![unsupported(a.name())],
                };
                out.extend(errors.into_iter().map(|error| PreflightProblem {
                    owner: c.owner.clone(),
                    error,
                }));
            }
            out
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
                Probe::Postgres(q) => {
                    client::read_only_query(&q.dsn, &q.query, &self.settings).await
                }
                other => Err(unsupported(other.name())),
            }
        })
    }

    fn describe<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move { Err(unsupported(action.name())) })
    }

    fn canary(&self, spec: &PgCanary, run_id: &str) -> Result<Arc<dyn CanaryIo>, ProviderError> {
        Ok(Arc::new(PgCanaryIo {
            spec: spec.clone(),
            run_id: run_id.to_string(),
            settings: self.settings.clone(),
            writer: tokio::sync::Mutex::new(None),
        }))
    }
}

/// The canary table's schema: the given one or the write user's `current_schema()`.
fn schema_sql(spec: &PgCanary) -> String {
    match &spec.table.schema {
        Some(s) => format!("'{s}'"),
        None => "current_schema()".into(),
    }
}

/// May the canary connect to the write server, and create (when missing), insert, read and
/// (unless `keep`) delete its rows there? Is the write server a primary? Can the read server
/// be reached? Read-only: privileges are asked, nothing is written.
async fn canary_preflight(spec: &PgCanary, s: &PgSettings) -> Vec<ProviderError> {
    let mut out = Vec::new();
    let server = spec.write.server();
    let table = spec.table.display();
    let check = async {
        let c = client::connect(&spec.write, s).await?;
        let q = format!(
            "select pg_is_in_recovery(), {schema}, to_regclass('{t}') is not null, \
             coalesce(has_schema_privilege({schema}, 'USAGE'), false), \
             coalesce(has_schema_privilege({schema}, 'CREATE'), false)",
            schema = schema_sql(spec),
            t = spec.table.quoted(),
        );
        let row = bounded(
            &server,
            "cannot check the canary's privileges",
            s,
            c.query_one(&q, &[]),
        )
        .await?;
        let (standby, schema, exists, usage, create): (bool, Option<String>, bool, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let schema = schema.unwrap_or_else(|| "(no schema: the search_path is empty)".into());
        let user = &spec.write.user;
        let mut problems = Vec::new();
        if standby {
            problems.push(ProviderError::invalid_state(format!(
                "{server}: is a standby (in recovery); `write_dsn` must name the primary the application writes to"
            )));
        }
        if !usage {
            problems.push(ProviderError::denied(format!(
                "{server}: user `{user}` has no USAGE on schema `{schema}` for the canary table `{table}`; grant it (`grant usage on schema {schema} to {user}`) or name another `table`"
            )));
        } else if exists {
            let mut need = vec!["INSERT", "SELECT"];
            if !spec.keep {
                need.push("DELETE");
            }
            for p in need {
                let q = format!(
                    "select has_table_privilege('{}', '{p}')",
                    spec.table.quoted()
                );
                let row = bounded(
                    &server,
                    "cannot check the canary's privileges",
                    s,
                    c.query_one(&q, &[]),
                )
                .await?;
                if !row.get::<_, bool>(0) {
                    problems.push(ProviderError::denied(format!(
                        "{server}: user `{user}` may not {p} on the canary table `{table}`; grant it (`grant {} on {table} to {user}`){}",
                        p.to_lowercase(),
                        if p == "DELETE" { " or set `keep: true`" } else { "" }
                    )));
                }
            }
        } else if !create {
            problems.push(ProviderError::denied(format!(
                "{server}: the canary table `{table}` does not exist and user `{user}` may not create it in schema `{schema}`; create it (`create table {table} (run_id text, seq bigint, committed_at timestamptz, primary key (run_id, seq))`, then grant insert, select, delete), or grant CREATE on the schema"
            )));
        }
        Ok::<_, ProviderError>(problems)
    };
    match check.await {
        Ok(p) => out.extend(p),
        Err(e) => out.push(e.map_message(|m| format!("canary write server: {m}"))),
    }
    if spec.read != spec.write {
        let read = async {
            let c = client::connect(&spec.read, s).await?;
            bounded(
                &spec.read.server(),
                "does not answer",
                s,
                c.query_one("select 1", &[]),
            )
            .await
            .map(|_| ())
        };
        if let Err(e) = read.await {
            out.push(e.map_message(|m| format!("canary read server: {m}")));
        }
    }
    out
}

/// One run's canary on PostgreSQL.
struct PgCanaryIo {
    spec: PgCanary,
    run_id: String,
    settings: PgSettings,
    /// The write connection, kept between writes; dropped after an error (the next write
    /// reconnects).
    writer: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl PgCanaryIo {
    /// Run `f` on the write connection (connecting first when there is none); any error drops
    /// the connection.
    async fn on_writer<T>(
        &self,
        what: &str,
        f: impl for<'c> FnOnce(
            &'c tokio_postgres::Client,
        ) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
    ) -> Result<T, ProviderError> {
        let mut guard = self.writer.lock().await;
        if guard.is_none() {
            *guard = Some(client::connect(&self.spec.write, &self.settings).await?);
        }
        let c = guard.as_ref().expect("connected above");
        let r = bounded(&self.spec.write.server(), what, &self.settings, f(c)).await;
        if r.is_err() {
            *guard = None;
        }
        r
    }

    async fn delete_on(&self, dsn: &Dsn) -> Result<u64, ProviderError> {
        let c = client::connect(dsn, &self.settings).await?;
        let q = format!("delete from {} where run_id = $1", self.spec.table.quoted());
        bounded(
            &dsn.server(),
            "cannot remove the canary rows",
            &self.settings,
            c.execute(&q, &[&self.run_id]),
        )
        .await
    }
}

impl CanaryIo for PgCanaryIo {
    fn write_server(&self) -> String {
        self.spec.write.server()
    }

    fn read_server(&self) -> String {
        self.spec.read.server()
    }

    fn server_time(&self) -> BoxFuture<'_, Result<chrono::DateTime<chrono::Utc>, ProviderError>> {
        Box::pin(async move {
            let row = self
                .on_writer("cannot read the server's clock", |c| {
                    Box::pin(c.query_one("select clock_timestamp()", &[]))
                })
                .await?;
            Ok(row.get(0))
        })
    }

    fn prepare(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let q = format!(
                "create table if not exists {} (run_id text not null, seq bigint not null, committed_at timestamptz not null, primary key (run_id, seq))",
                self.spec.table.quoted()
            );
            self.on_writer("cannot create the canary table", move |c| {
                Box::pin(async move { c.batch_execute(&q).await })
            })
            .await
        })
    }

    fn write(
        &self,
        seq: u64,
    ) -> BoxFuture<'_, Result<chrono::DateTime<chrono::Utc>, ProviderError>> {
        Box::pin(async move {
            let q = format!(
                "insert into {} (run_id, seq, committed_at) values ($1, $2, clock_timestamp()) returning committed_at",
                self.spec.table.quoted()
            );
            let run_id = self.run_id.clone();
            let seq = seq as i64;
            let row = self
                .on_writer("canary write failed", move |c| {
                    Box::pin(async move { c.query_one(&q, &[&run_id, &seq]).await })
                })
                .await?;
            Ok(row.get(0))
        })
    }

    fn surviving(&self) -> BoxFuture<'_, Result<Vec<u64>, ProviderError>> {
        Box::pin(async move {
            let dsn = &self.spec.read;
            let c = client::connect(dsn, &self.settings).await?;
            let q = format!(
                "select seq from {} where run_id = $1 order by seq",
                self.spec.table.quoted()
            );
            let rows = bounded(
                &dsn.server(),
                "cannot read the canary rows",
                &self.settings,
                c.query(&q, &[&self.run_id]),
            )
            .await?;
            Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
        })
    }

    fn remove(&self) -> BoxFuture<'_, Result<String, ProviderError>> {
        Box::pin(async move {
            // The writer's connection is no longer needed.
            *self.writer.lock().await = None;
            let n = self.delete_on(&self.spec.read).await?;
            let mut said = format!("{n} canary rows removed on {}", self.spec.read.server());
            if self.spec.write != self.spec.read {
                match self.delete_on(&self.spec.write).await {
                    Ok(m) => said.push_str(&format!(", {m} on {}", self.spec.write.server())),
                    Err(e) => said.push_str(&format!("; not removed on the write server ({e})")),
                }
            }
            Ok(said)
        })
    }
}
