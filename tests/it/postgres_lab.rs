//! Against real PostgreSQL 15 servers (Debian's `postgresql-15`), on wall time: the fidelity lab
//! (a primary and an async streaming standby; replication cut at a known moment; the primary
//! lost; the standby promoted) measured by the data-loss canary against the truth, the
//! `postgres` probe's typed values and failures, and the preflight problems of bad input through
//! the real binary. Servers come from `scripts/lab/postgres-pair` (the same script a person
//! uses by hand), in temporary directories, stopped on drop.
//!
//! The tests hold `support::WALL_LAB` (one wall-clock lab test at a time). Each test prints what
//! it measured against the truth: `cargo test --test it postgres_lab --
//! --nocapture`.

use firedrill::backend::{ErrorKind, Provider};
use firedrill::engine::drill::Drill;
use firedrill::engine::events::{Event, Record};
use firedrill::engine::executor::MemorySink;
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const PGBIN: &str = "/usr/lib/postgresql/15/bin";

fn script() -> PathBuf {
    Path::new(MANIFEST).join("scripts/lab/postgres-pair")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A primary (and a standby, for `pair`) in a temporary directory; stopped on drop.
struct Lab {
    dir: tempfile::TempDir,
    primary: u16,
    standby: u16,
}

impl Lab {
    fn need_postgres() {
        assert!(
            Path::new(PGBIN).join("initdb").exists(),
            "{PGBIN}/initdb is missing: the PostgreSQL tests need Debian's postgresql-15. Run the tests with ./scripts/test, which installs it"
        );
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(script())
            .args(args)
            .output()
            .expect("run scripts/lab/postgres-pair");
        assert!(
            out.status.success(),
            "postgres-pair {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pair() -> Lab {
        Lab::need_postgres();
        let lab = Lab {
            dir: tempfile::tempdir().expect("temp dir"),
            primary: free_port(),
            standby: free_port(),
        };
        lab.run(&[
            "start",
            lab.path(),
            &lab.primary.to_string(),
            &lab.standby.to_string(),
        ]);
        lab
    }

    fn single(password: Option<&str>) -> Lab {
        Lab::need_postgres();
        let lab = Lab {
            dir: tempfile::tempdir().expect("temp dir"),
            primary: free_port(),
            standby: 0,
        };
        let port = lab.primary.to_string();
        let mut args = vec!["single", lab.path(), &port];
        if let Some(p) = password {
            args.push(p);
        }
        lab.run(&args);
        lab
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 temp path")
    }

    fn dsn(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable")
    }

    /// Seconds since the epoch that the script wrote to `DIR/<name>`.
    fn time_file(&self, name: &str) -> chrono::DateTime<chrono::Utc> {
        let s = std::fs::read_to_string(self.dir.path().join(name)).expect(name);
        let secs: f64 = s.trim().parse().expect("epoch seconds");
        chrono::DateTime::from_timestamp_micros((secs * 1e6) as i64).expect("a time")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", self.path()]).output();
    }
}

async fn sql(port: u16, user: &str, q: &str) -> Vec<tokio_postgres::Row> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname=postgres connect_timeout=5"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port} as {user}: {e}"));
    tokio::spawn(conn);
    c.query(q, &[]).await.unwrap_or_else(|e| panic!("{q}: {e}"))
}

async fn exec(port: u16, q: &str) {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    tokio::spawn(conn);
    c.batch_execute(q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"));
}

fn experiment(yaml: &str) -> firedrill::lang::spec::Experiment {
    firedrill::lang::spec::parse_experiment("lab.yaml", yaml.as_bytes(), &[])
        .unwrap_or_else(|d| panic!("{}", firedrill::lang::diag::render_all(&d, Some(yaml))))
}

async fn router() -> Arc<dyn Provider> {
    let env = firedrill::lang::environment::builtin(&[]).expect("built-in environment");
    let r = firedrill::backend::router::connect(&env, &Default::default())
        .await
        .expect("connect");
    Arc::new(r)
}

fn run_id(what: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{what}-{n}")
}

fn ranges(s: &str) -> Vec<u64> {
    s.split(", ")
        .filter(|p| !p.is_empty())
        .flat_map(|p| match p.split_once('-') {
            Some((a, b)) => (a.parse::<u64>().unwrap()..=b.parse().unwrap()).collect::<Vec<_>>(),
            None => vec![p.parse().unwrap()],
        })
        .collect()
}

/// The fidelity lab. The canary writes every 200 ms into the primary from the start of the
/// method; a step cuts replication (SIGSTOP of the walsender, the moment recorded), the primary
/// goes on acknowledging writes for 2 s, the fault step kills it (`pg_ctl stop -m immediate`),
/// the next step promotes the standby, and the recovery probe waits until the standby accepts
/// writes. Truth, from the test's own records: the old primary, started again afterwards, holds
/// every row it committed with its commit time; RPO = fault time − the last row committed
/// before the cut, and the lost writes are those committed after the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_measures_the_rpo_of_a_lost_primary_against_the_truth() {
    let _lab = crate::support::WALL_LAB.lock().await;
    let lab = Lab::pair();
    let (p, s) = (Lab::dsn(lab.primary), Lab::dsn(lab.standby));
    let sc = script().display().to_string();
    let dir = lab.path();
    let yaml = format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: pg-lab}}
objectives: {{rto: 60s, rpo: 30s}}
steady_state:
  probes:
    - name: primary-up
      type: postgres
      with: {{dsn: "{p}", query: "select 1"}}
      tolerance: {{path: value, equals: 1}}
    - name: standby-writable
      type: postgres
      with: {{dsn: "{s}", query: "select not pg_is_in_recovery()"}}
      tolerance: {{path: value, equals: true}}
  before: [primary-up]
steps:
  - id: warm
    action: wait
    with: {{duration: 1s}}
  - id: cut
    action: command
    after: [warm]
    with: {{run: ["{sc}", cut, "{dir}"]}}
  - id: lag
    action: wait
    after: [cut]
    with: {{duration: 2s}}
  - id: lose-primary
    action: command
    after: [lag]
    with: {{run: ["{sc}", kill-primary, "{dir}"]}}
  - id: promote
    action: command
    after: [lose-primary]
    with: {{run: ["{sc}", promote, "{dir}"]}}
recovery:
  fault: lose-primary
  probes: [standby-writable]
  interval: 200ms
  data_loss:
    canary: {{type: postgres, write_dsn: "{p}", read_dsn: "{s}", interval: 200ms, keep: true}}
"#
    );
    let exp = experiment(&yaml);
    let id = run_id("pg-lab");
    let memory = MemorySink::default();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        Drill::new(exp, router().await)
            .run_id(id.clone())
            .clock_kind("wall")
            .sink(memory.clone())
            .run(),
    )
    .await
    .expect("the drill finishes within 60s");
    let records: Vec<Record> = memory.0.lock().unwrap().clone();
    let rpo = outcome
        .measurements
        .iter()
        .find(|m| m.name == "rpo")
        .unwrap_or_else(|| panic!("an RPO measurement: {outcome:?}"));
    let c = rpo
        .canary
        .as_ref()
        .unwrap_or_else(|| panic!("canary figures: {}", rpo.detail));

    // The truth: the old primary's own rows, and the recorded cut.
    let cut = lab.time_file("cut_at");
    let fault = records
        .iter()
        .find(|r| matches!(r.event, Event::FaultInjected { .. }))
        .expect("fault injected")
        .at;
    lab.run(&["revive-primary", dir]);
    let rows = sql(
        lab.primary,
        "postgres",
        &format!(
            "select seq, committed_at from firedrill_canary where run_id = '{id}' order by seq"
        ),
    )
    .await;
    let committed: Vec<(u64, chrono::DateTime<chrono::Utc>)> = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
        .collect();
    let before_cut = committed
        .iter()
        .filter(|(_, t)| *t < cut)
        .max_by_key(|(_, t)| *t)
        .expect("canaries committed before the cut");
    let after_cut: Vec<u64> = committed
        .iter()
        .filter(|(_, t)| *t > cut)
        .map(|(s, _)| *s)
        .collect();
    let truth_rpo = (fault - before_cut.1).num_milliseconds();
    let measured = c.rpo_ms.expect("an RPO") as i64;
    let lost = ranges(&c.lost_ranges);
    println!(
        "pg lab: RPO measured {measured} ms, truth {truth_rpo} ms (difference {} ms, interval {} ms); newest surviving #{:?}, truth #{}; lost acknowledged #{} ({}), truth: committed after the cut #{:?}; {} acknowledged, {} failed; skew {} ms",
        measured - truth_rpo,
        c.interval_ms,
        c.newest_surviving_seq,
        before_cut.0,
        c.lost_ranges,
        lost.len(),
        after_cut,
        c.acknowledged,
        c.failed,
        c.skew_ms,
    );
    assert!(
        (measured - truth_rpo).abs() <= c.interval_ms as i64,
        "RPO {measured} ms vs truth {truth_rpo} ms: more than one interval apart; {}",
        rpo.detail
    );
    // Lost acknowledged writes are exactly those committed after the cut; the one write in
    // flight when the primary died may have committed without its acknowledgement arriving
    // (the canary counted it as failed, so it is not an acknowledged loss).
    let exact = lost == after_cut;
    let in_flight = !after_cut.is_empty() && lost == after_cut[..after_cut.len() - 1];
    assert!(
        exact || in_flight,
        "lost {lost:?} != committed after the cut {after_cut:?}"
    );
    assert!(
        lost.len() >= 5,
        "2 s of writes every 200 ms were lost: {lost:?}"
    );
    assert_eq!(c.newest_surviving_seq, Some(before_cut.0));
    assert!(c.failed > 0, "writes to the dead primary fail");
    assert!(!c.outage_ended, "the write DSN is the dead primary");
    assert!(rpo.met, "{}", rpo.detail);
    let rto = outcome
        .measurements
        .iter()
        .find(|m| m.name == "rto")
        .unwrap();
    assert!(rto.measured_ms.is_some(), "{}", rto.detail);
    assert_eq!(outcome.exit_code, 0, "{:?}", outcome.reasons);
}

/// The probe's values are typed; no rows is a null value; a failing or slow query is an error
/// with a kind and the server's message, never a panic or a hang; a failing probe during a run
/// is a failing check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_probes_give_typed_values_and_fail_as_checks() {
    let _lab = crate::support::WALL_LAB.lock().await;
    let lab = Lab::single(None);
    let dsn = Lab::dsn(lab.primary);
    let server = format!("127.0.0.1:{}/postgres", lab.primary);
    let provider = router().await;
    let observe = |q: &str| {
        let p = firedrill::backend::decode_probe("postgres", &json!({"dsn": dsn, "query": q}))
            .expect("decodes");
        let provider = provider.clone();
        async move { provider.observe(&p).await }
    };
    let out = observe(
        "select 42::int4 as i, 9000000000::int8 as big, 1.5::float8 as f, 12.345::numeric as n, \
         true as b, 'x'::text as t, '2026-12-02 10:00:00+00'::timestamptz as ts, null::int as nothing, \
         '{\"a\": 1}'::jsonb as j, 'on'::name as nm from generate_series(1, 150)",
    )
    .await
    .expect("the query runs");
    assert_eq!(out["value"], json!(42));
    assert_eq!(out["row_count"], json!(150));
    assert_eq!(
        out["rows"].as_array().unwrap().len(),
        100,
        "rows are capped"
    );
    let row = &out["rows"][0];
    let want = json!({"i": 42, "big": 9000000000i64, "f": 1.5, "n": 12.345, "b": true, "t": "x",
        "ts": "2026-12-02T10:00:00Z", "nothing": null, "j": {"a": 1}, "nm": "on"});
    println!("pg probe: measured {row}, expected {want}");
    assert_eq!(row, &want);
    let none = observe("select 1 where false").await.unwrap();
    assert_eq!(
        (none["value"].clone(), none["row_count"].clone()),
        (Json::Null, json!(0))
    );

    let e = observe("select * from no_such_table").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(
        e.message.contains(&server) && e.message.contains("SQLSTATE 42P01"),
        "{e}"
    );
    let e = observe("insert into pg_class default values")
        .await
        .unwrap_err();
    assert!(
        e.message.contains("SQLSTATE 25006"),
        "read-only transaction: {e}"
    );
    let e = observe("select ctid from pg_class limit 1")
        .await
        .unwrap_err();
    assert!(e.message.contains("cast it in the query"), "{e}");

    // A statement longer than the statement timeout: cancelled by the server, within bounds.
    let slow = firedrill::backend::postgres::PgProvider::new(
        firedrill::backend::postgres::settings::PgSettings {
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_millis(300),
        },
    );
    let p = firedrill::backend::decode_probe(
        "postgres",
        &json!({"dsn": dsn, "query": "select pg_sleep(30)"}),
    )
    .unwrap();
    let t = std::time::Instant::now();
    let e = slow.observe(&p).await.unwrap_err();
    println!(
        "pg probe: pg_sleep(30) under a 300ms statement timeout failed after {:?}: {e}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(e.kind, ErrorKind::TimedOut, "{e}");

    // Nobody listening: unavailable, fast.
    let closed = free_port();
    let p = firedrill::backend::decode_probe(
        "postgres",
        &json!({"dsn": Lab::dsn(closed), "query": "select 1"}),
    )
    .unwrap();
    let e = provider.observe(&p).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains(&format!("127.0.0.1:{closed}/postgres")),
        "{e}"
    );

    // During a run: the after-check's query fails; the run ends with a failing check.
    let yaml = format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: pg-probe}}
steady_state:
  probes:
    - name: up
      type: postgres
      with: {{dsn: "{dsn}", query: "select count(*) > 0 from pg_database"}}
      tolerance: {{path: value, equals: true}}
    - name: orders
      type: postgres
      with: {{dsn: "{dsn}", query: "select count(*) from orders"}}
      tolerance: {{path: value, min: 1}}
  before: [up]
  after: [up, orders]
steps:
  - id: pause
    action: wait
    with: {{duration: 100ms}}
"#
    );
    let memory = MemorySink::default();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        Drill::new(experiment(&yaml), provider.clone())
            .run_id(run_id("pg-probe"))
            .clock_kind("wall")
            .sink(memory.clone())
            .run(),
    )
    .await
    .expect("the drill finishes");
    assert_eq!(outcome.exit_code, 4, "{:?}", outcome.reasons);
    let records = memory.0.lock().unwrap().clone();
    let failed = records
        .iter()
        .find_map(|r| match &r.event {
            Event::ProbeChecked {
                probe,
                ok: false,
                message,
                ..
            } if probe == "orders" => Some(message.clone()),
            _ => None,
        })
        .expect("the failing check is journaled");
    println!("pg probe during a run: {failed}");
    assert!(
        failed.contains("42P01") && failed.contains(&server),
        "{failed}"
    );
}

/// Run the real binary on an experiment; (exit code, stderr).
fn firedrill_run(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("drill.yaml");
    std::fs::write(&file, yaml).expect("write the experiment");
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .arg("run")
        .arg(&file)
        .arg("--runs-dir")
        .arg(dir.path().join("runs"))
        .arg("--lessons-dir")
        .arg(dir.path().join("lessons"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run firedrill");
    assert!(
        !dir.path().join("runs").exists()
            || std::fs::read_dir(dir.path().join("runs"))
                .unwrap()
                .next()
                .is_none(),
        "a preflight failure writes no run directory"
    );
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn canary_drill(probe_dsn: &str, write_dsn: &str) -> String {
    format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: pg-bad}}
objectives: {{rto: 1m, rpo: 10s}}
steady_state:
  probes:
    - name: up
      type: postgres
      with: {{dsn: "{probe_dsn}", query: "select 1"}}
      tolerance: {{path: value, equals: 1}}
  before: [up]
steps:
  - id: fault
    action: command
    with: {{run: ["true"]}}
recovery:
  fault: fault
  probes: [up]
  interval: 1s
  data_loss:
    canary: {{type: postgres, write_dsn: "{write_dsn}"}}
"#
    )
}

/// Unreachable server, wrong password, a canary without permission: preflight problems (exit
/// 7) naming the server and what to do; nothing runs, no password printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_servers_and_credentials_are_preflight_problems() {
    let _lab = crate::support::WALL_LAB.lock().await;
    let locked = Lab::single(Some("right-horse"));
    let open = Lab::single(None);
    let closed = free_port();

    let unreachable = Lab::dsn(closed);
    let (code, _, err) = firedrill_run(&canary_drill(&unreachable, &unreachable));
    println!("pg preflight, unreachable: exit {code}\n{err}");
    assert_eq!(code, 7, "{err}");
    let server = format!("127.0.0.1:{closed}/postgres");
    assert!(
        err.contains(&format!("probe `up`: {server}: cannot connect")),
        "{err}"
    );
    assert!(
        err.contains(&format!("canary write server: {server}")),
        "{err}"
    );
    assert!(err.contains("check that the server is up"), "{err}");

    let wrong = format!(
        "postgres://postgres:wrong-horse@127.0.0.1:{}/postgres?sslmode=disable",
        locked.primary
    );
    let (code, out, err) = firedrill_run(&canary_drill(&wrong, &wrong));
    println!("pg preflight, wrong password: exit {code}\n{err}");
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}/postgres", locked.primary))
            && err.contains("SQLSTATE 28P01")
            && err.contains("check the DSN's user and password"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-horse") && !out.contains("wrong-horse"),
        "{err}"
    );

    // A role that may neither create the canary table nor (once it exists) insert into it.
    exec(open.primary, "create role nopriv login").await;
    let nopriv = format!(
        "postgres://nopriv@127.0.0.1:{}/postgres?sslmode=disable",
        open.primary
    );
    let (code, _, err) = firedrill_run(&canary_drill(&nopriv, &nopriv));
    println!("pg preflight, canary without CREATE: exit {code}\n{err}");
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("the data-loss canary")
            && err.contains("does not exist and user `nopriv` may not create it")
            && err.contains(&format!("127.0.0.1:{}/postgres", open.primary)),
        "{err}"
    );
    exec(
        open.primary,
        "create table firedrill_canary (run_id text, seq bigint, committed_at timestamptz, primary key (run_id, seq)); grant select on firedrill_canary to nopriv",
    )
    .await;
    let (code, _, err) = firedrill_run(&canary_drill(&nopriv, &nopriv));
    println!("pg preflight, canary without INSERT: exit {code}\n{err}");
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("user `nopriv` may not INSERT on the canary table `firedrill_canary`")
            && err.contains("may not DELETE"),
        "{err}"
    );
    let rows = sql(
        open.primary,
        "postgres",
        "select count(*) from firedrill_canary",
    )
    .await;
    assert_eq!(rows[0].get::<_, i64>(0), 0, "preflight wrote nothing");

    // A canary pointed at a standby: it could never write there.
    let pair = Lab::pair();
    let (code, _, err) = firedrill_run(&canary_drill(
        &Lab::dsn(pair.primary),
        &Lab::dsn(pair.standby),
    ));
    println!("pg preflight, canary on a standby: exit {code}\n{err}");
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains(&format!(
            "127.0.0.1:{}/postgres: is a standby (in recovery)",
            pair.standby
        )),
        "{err}"
    );
}

/// TLS goes through rustls on ring: a server with a self-signed certificate is refused under
/// `require` and `prefer` (the certificate does not verify against the system's roots), with a
/// message that says so; `disable` still connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_verified() {
    let _lab = crate::support::WALL_LAB.lock().await;
    let lab = Lab::single(None);
    let dir = lab.dir.path();
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl (installed with postgresql-15) makes a certificate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = Command::new("id").arg("-u").output().expect("id -u").stdout == b"0\n";
    if root {
        let st = Command::new("chown")
            .args(["postgres:"])
            .arg(&crt)
            .arg(&key)
            .status()
            .expect("chown");
        assert!(st.success());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    // ALTER SYSTEM refuses to run in a transaction block: one statement at a time.
    for q in [
        format!("alter system set ssl_cert_file = '{}'", crt.display()),
        format!("alter system set ssl_key_file = '{}'", key.display()),
        "alter system set ssl = on".to_string(),
    ] {
        exec(lab.primary, &q).await;
    }
    let rows = sql(lab.primary, "postgres", "select pg_reload_conf()").await;
    assert!(rows[0].get::<_, bool>(0));
    // New connections see `ssl = on` once the postmaster has read the file again.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let on = sql(lab.primary, "postgres", "show ssl").await[0].get::<_, String>(0) == "on";
        if on {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "ssl did not turn on within 10s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let provider = router().await;
    for mode in ["require", "prefer"] {
        let dsn = format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode={mode}",
            lab.primary
        );
        let p =
            firedrill::backend::decode_probe("postgres", &json!({"dsn": dsn, "query": "select 1"}))
                .unwrap();
        let e = provider.observe(&p).await.unwrap_err();
        println!("pg tls, sslmode={mode} against a self-signed certificate: {e}");
        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
        assert!(
            e.message.contains("certificate") && e.message.contains("sslmode=disable"),
            "{e}"
        );
    }
    let p = firedrill::backend::decode_probe(
        "postgres",
        &json!({"dsn": Lab::dsn(lab.primary), "query": "select ssl from pg_stat_ssl where pid = pg_backend_pid()"}),
    )
    .unwrap();
    let out = provider
        .observe(&p)
        .await
        .expect("sslmode=disable connects");
    assert_eq!(out["value"], json!(false), "a plain connection");
}

/// One server, crashed and started again (`pg_ctl stop -m immediate`, then start), run by the
/// real binary: no acknowledged write is lost, the canary sees the write outage end, RPO is at
/// most one interval (plus a write's latency), the figures are in summary.json and report.md,
/// and the run's rows are removed afterwards (no `keep`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_and_restart_loses_no_acknowledged_write_and_the_outage_ends() {
    let _lab = crate::support::WALL_LAB.lock().await;
    let lab = Lab::single(None);
    let p = Lab::dsn(lab.primary);
    let sc = script().display().to_string();
    let dir = lab.path();
    let yaml = format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: pg-restart}}
objectives: {{rto: 60s, rpo: 5s}}
steady_state:
  probes:
    - name: up
      type: postgres
      with: {{dsn: "{p}", query: "select 1"}}
      tolerance: {{path: value, equals: 1}}
  before: [up]
steps:
  - id: warm
    action: wait
    with: {{duration: 1s}}
  - id: crash
    action: command
    after: [warm]
    with: {{run: ["{sc}", kill-primary, "{dir}"]}}
  - id: down
    action: wait
    after: [crash]
    with: {{duration: 1s}}
  - id: restart
    action: command
    after: [down]
    with: {{run: ["{sc}", revive-primary, "{dir}"]}}
  - id: settle
    action: wait
    after: [restart]
    with: {{duration: 1s}}
recovery:
  fault: crash
  probes: [up]
  interval: 200ms
  data_loss:
    canary: {{type: postgres, write_dsn: "{p}", interval: 200ms}}
"#
    );
    // Through the real binary: the clock (wall, chosen because the drill talks to PostgreSQL),
    // preflight against the live server, and the figures in summary.json and report.md.
    let work = tempfile::tempdir().expect("temp dir");
    let file = work.path().join("restart.yaml");
    std::fs::write(&file, &yaml).expect("write the experiment");
    let firedrill = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .arg("run")
            .arg(&file)
            .args(extra)
            .arg("--runs-dir")
            .arg(work.path().join("runs"))
            .arg("--lessons-dir")
            .arg(work.path().join("lessons"))
            .env_remove("RUST_LOG")
            .output()
            .expect("run firedrill")
    };
    let dry = firedrill(&["--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{dry_out}");
    assert!(
        dry_out.contains(&format!(
            "(data-loss canary)       from the first step until RPO is measured: a row every 200ms into `firedrill_canary` on 127.0.0.1:{}/postgres",
            lab.primary
        )),
        "{dry_out}"
    );
    let refused = firedrill(&["--clock", "virtual"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a PostgreSQL drill needs real time"
    );
    let out = firedrill(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let run_dir = std::fs::read_dir(work.path().join("runs"))
        .expect("a run directory")
        .map(|e| e.unwrap().path())
        .find(|p| p.join("summary.json").exists())
        .expect("a run directory (with summary.json; runs/ also holds locks/)");
    let summary: Json = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("summary.json")).expect("summary.json"),
    )
    .expect("summary JSON");
    assert!(
        stdout.contains("wall clock") || stderr.contains("wall clock"),
        "{stdout}{stderr}"
    );
    let id = summary["run_id"].as_str().expect("run_id").to_string();
    let rpo: firedrill::engine::events::Measurement = serde_json::from_value(
        summary["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "rpo")
            .expect("RPO in summary.json")
            .clone(),
    )
    .expect("a measurement");
    let report = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(
        report.contains("Data-loss canary: written to `firedrill_canary`")
            && report.contains("| Acknowledged but lost | 0 |"),
        "{report}"
    );
    let c = rpo
        .canary
        .as_ref()
        .unwrap_or_else(|| panic!("{}", rpo.detail));
    println!(
        "pg restart: RPO measured {:?} ms (truth: at most one interval, {} ms, plus a write's latency); lost acknowledged {} (truth 0); outage {:?} ms from +{:?} ms, ended {}; {} acknowledged, {} failed",
        c.rpo_ms,
        c.interval_ms,
        c.lost_acknowledged,
        c.outage_ms,
        c.outage_from_ms,
        c.outage_ended,
        c.acknowledged,
        c.failed
    );
    assert_eq!(c.lost_acknowledged, 0, "{}", rpo.detail);
    assert!(
        c.rpo_ms.is_some_and(|r| r <= c.interval_ms + 100),
        "{}",
        rpo.detail
    );
    assert!(c.failed >= 1 && c.outage_ended, "{}", rpo.detail);
    // The server was down for the 1 s wait at least.
    assert!(c.outage_ms.is_some_and(|o| o >= 1000), "{}", rpo.detail);
    let left = sql(
        lab.primary,
        "postgres",
        &format!("select count(*) from firedrill_canary where run_id = '{id}'"),
    )
    .await;
    assert_eq!(
        left[0].get::<_, i64>(0),
        0,
        "the run's canary rows are removed"
    );
}

/// A password from the environment (`secrets:`) in both DSN forms reaches the server (the drill
/// passes against a scram-protected server) and no artefact or output of the run: journal,
/// summary, report, lessons, stdout, stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsn_password_from_a_secret_reaches_the_server_and_no_artefact() {
    let _lab = crate::support::WALL_LAB.lock().await;
    const PASSWORD: &str = "s3cret/horse@battery";
    let lab = Lab::single(Some(PASSWORD));
    let port = lab.primary;
    let yaml = format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: pg-secret}}
objectives: {{rto: 1m, rpo: 10s}}
secrets:
  pg: {{env: FIREDRILL_TEST_PG_PASSWORD}}
steady_state:
  probes:
    - name: up
      type: postgres
      with: {{dsn: "host=127.0.0.1 port={port} dbname=postgres user=postgres password='${{pg}}' sslmode=disable", query: "select current_user"}}
      tolerance: {{path: value, equals: postgres}}
  before: [up]
steps:
  - id: fault
    action: command
    with: {{run: ["true"]}}
  - id: settle
    action: wait
    after: [fault]
    with: {{duration: 600ms}}
recovery:
  fault: fault
  probes: [up]
  interval: 200ms
  data_loss:
    canary: {{type: postgres, write_dsn: "postgres://postgres:${{env:FIREDRILL_TEST_PG_PASSWORD_URL}}@127.0.0.1:{port}/postgres?sslmode=disable", interval: 200ms}}
"#
    );
    let work = tempfile::tempdir().expect("temp dir");
    let file = work.path().join("secret.yaml");
    std::fs::write(&file, &yaml).expect("write the experiment");
    let encoded: String = url::form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .arg("run")
        .arg(&file)
        .arg("--runs-dir")
        .arg(work.path().join("runs"))
        .arg("--lessons-dir")
        .arg(work.path().join("lessons"))
        .env("FIREDRILL_TEST_PG_PASSWORD", PASSWORD)
        .env("FIREDRILL_TEST_PG_PASSWORD_URL", &encoded)
        .env_remove("RUST_LOG")
        .output()
        .expect("run firedrill");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("pg secret: exit {:?}\n{stdout}{stderr}", out.status.code());
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let mut texts = vec![
        ("stdout".to_string(), stdout),
        ("stderr".to_string(), stderr),
    ];
    let mut stack = vec![work.path().join("runs"), work.path().join("lessons")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                texts.push((p.display().to_string(), t));
            }
        }
    }
    assert!(
        texts.len() >= 5,
        "journal, summary, report, lessons: {:?}",
        texts.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for (name, t) in &texts {
        assert!(
            !t.contains(PASSWORD) && !t.contains(&encoded) && !t.contains("s3cret"),
            "{name} contains the password"
        );
    }
}
