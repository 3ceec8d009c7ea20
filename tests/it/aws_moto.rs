//! Every AWS action and probe against moto over HTTP (started by `./scripts/test`; these tests
//! fail, never skip, without it). Fixtures are created through the SDK like a user's estate.
//! Time is tokio's paused clock; requests are real HTTP sent in zero virtual time (see
//! `support`). moto's changes are instant, so these tests prove the calls, the waiting logic
//! and the outputs, not AWS's timing.
//!
//! What moto 5.2.5 cannot do and how it is handled here:
//! - FailoverGlobalCluster / SwitchoverGlobalCluster are not implemented: answered by
//!   aws-smithy-mocks rules (`support::global_mock`), other calls pass through to moto.
//! - RemoveFromGlobalCluster only finds clusters in us-east-1 (moto keeps global clusters
//!   there): the detach test puts the secondary in us-east-1.
//! - A point-in-time restore of a global member joins the copy to the global cluster (AWS
//!   restores a standalone cluster): restore tests use a standalone source.
//! - Health checks always report success; Route 53 changes are INSYNC at once.

use crate::support::*;
use firedrill::backend::aws::{AwsProvider, AwsSettings};
use firedrill::backend::{Call, ErrorKind, Provider, ProviderExt, RunContext};
use firedrill::engine::clock::RunClock;
use serde_json::{Value as Json, json};
use std::time::Duration;

fn settings(m: &Moto, region: &str, dr: Option<&str>) -> AwsSettings {
    let mut s = AwsSettings::for_region(region);
    s.dr_region = dr.map(str::to_string);
    s.endpoint_url = Some(m.url.clone());
    s
}

fn provider(m: &Moto, b: &Bridge, region: &str, dr: Option<&str>) -> AwsProvider {
    AwsProvider::from_clients(settings(m, region, dr), clients(m, b, region, dr))
}

fn start(p: &AwsProvider, run: &str) {
    p.start(&RunContext {
        clock: RunClock::start_now(),
        run_id: run.into(),
        experiment: "test".into(),
    });
}

/// The orders estate (global database across two regions) and a provider on it.
async fn orders(m: &Moto, b: &Bridge) -> AwsProvider {
    let c = clients(m, b, "us-east-1", Some("us-west-2"));
    orders_estate(&c).await;
    provider(m, b, "us-east-1", Some("us-west-2"))
}

async fn probe(p: &AwsProvider, name: &str, params: Json) -> Json {
    p.observe_json(name, &params)
        .await
        .unwrap_or_else(|e| panic!("{name} {params}: {e}"))
}

fn notes(p: &AwsProvider) -> Vec<String> {
    p.drain_events().into_iter().map(|e| e.message).collect()
}

#[tokio::test(start_paused = true)]
async fn db_cluster_reports_status_role_writer_and_restorable_time() {
    let m = moto().await;
    let b = Bridge::new();
    let p = orders(&m, &b).await;
    let v = probe(&p, "db.cluster", json!({"cluster": "orders-db"})).await;
    assert_eq!(v["status"], "available");
    assert_eq!(v["role"], "primary");
    assert_eq!(v["global_cluster"], "orders-global");
    assert_eq!(v["writer"], "orders-db-1");
    assert_eq!(v["writer_zone"], "us-east-1a");
    assert_eq!(v["writable"], true);
    assert_eq!(v["region"], "us-east-1");
    let lrt = v["latest_restorable_time"]
        .as_str()
        .expect("a restorable time");
    assert_eq!(v["latest_write"], lrt, "without as_of, the restorable time");
    assert_eq!(v["latest_write_source"], "latest_restorable_time");

    // The secondary lives in the DR region and takes no writes.
    let dr = probe(&p, "db.cluster", json!({"cluster": "orders-db-dr"})).await;
    assert_eq!(dr["region"], "us-west-2");
    assert_eq!(dr["role"], "secondary");
    assert_eq!(dr["writable"], false);
    assert_eq!(dr["writer"], Json::Null);

    // as_of caps latest_write (the data-loss measurement passes the fault time).
    let old = "2020-01-01T00:00:00+00:00";
    let v = probe(
        &p,
        "db.cluster",
        json!({"cluster": "orders-db", "as_of": old}),
    )
    .await;
    assert_eq!(v["latest_write"], old);

    // By ARN too.
    let v = probe(&p, "db.cluster", json!({"cluster": ORDERS_DB_DR_ARN})).await;
    assert_eq!(v["cluster"], "orders-db-dr");
}

#[tokio::test(start_paused = true)]
async fn unknown_names_are_invalid_targets_naming_the_resource() {
    let m = moto().await;
    let b = Bridge::new();
    let p = orders(&m, &b).await;
    let e = p
        .observe_json("db.cluster", &json!({"cluster": "orders-dbx"}))
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::NotFound, "{e:?}");
    assert!(
        e.to_string()
            .contains("cluster `orders-dbx` does not exist in us-east-1 or us-west-2"),
        "{e}"
    );
    let e = p
        .observe_json("db.instance", &json!({"instance": "orders-db-9"}))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("instance `orders-db-9` does not exist"),
        "{e}"
    );
    let e = p
        .inject_json("db.global_failover",
            &json!({"global_cluster": "nope-global", "target_cluster": "orders-db-dr", "allow_data_loss": true}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("global database `nope-global` does not exist"),
        "{e}"
    );
    let e = p
        .observe_json(
            "db.cluster",
            &json!({"cluster": "arn:aws:rds:us-east-1:123456789012:orders-db"}),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not an RDS cluster ARN"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn db_instance_reports_status_and_writer() {
    let m = moto().await;
    let b = Bridge::new();
    let p = orders(&m, &b).await;
    let w = probe(&p, "db.instance", json!({"instance": "orders-db-1"})).await;
    assert_eq!(w["status"], "available");
    assert_eq!(w["available"], true);
    assert_eq!(w["is_writer"], true);
    assert_eq!(w["cluster"], "orders-db");
    assert_eq!(w["zone"], "us-east-1a");
    let r = probe(&p, "db.instance", json!({"instance": "orders-db-3"})).await;
    assert_eq!(r["is_writer"], false);
    let dr = probe(&p, "db.instance", json!({"instance": "orders-db-dr-1"})).await;
    assert_eq!(dr["region"], "us-west-2");
}

#[tokio::test(start_paused = true)]
async fn cluster_failover_moves_the_writer_and_waits_for_it() {
    let m = moto().await;
    let b = Bridge::new();
    let p = orders(&m, &b).await;
    let out = p
        .inject_json("db.cluster_failover", &json!({"cluster": "orders-db"}))
        .await
        .unwrap();
    assert_eq!(out["previous_writer"], "orders-db-1");
    assert_eq!(
        out["new_writer"], "orders-db-2",
        "moto promotes the first reader"
    );
    assert_eq!(out["new_writer_zone"], "us-east-1b");
    let v = probe(&p, "db.cluster", json!({"cluster": "orders-db"})).await;
    assert_eq!(v["writer"], "orders-db-2");

    // To a named instance.
    let out = p
        .inject_json(
            "db.cluster_failover",
            &json!({"cluster": "orders-db", "target_instance": "orders-db-3"}),
        )
        .await
        .unwrap();
    assert_eq!(out["new_writer"], "orders-db-3");
    assert!(
        b.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("FailoverDBCluster"))
    );

    let e = p
        .inject_json(
            "db.cluster_failover",
            &json!({"cluster": "orders-db", "target_instance": "orders-db-7"}),
        )
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::NotFound, "{e:?}");
    assert!(
        e.to_string()
            .contains("its instances: orders-db-1, orders-db-2, orders-db-3"),
        "{e}"
    );
    let e = p
        .inject_json(
            "db.cluster_failover",
            &json!({"cluster": "orders-db", "target_instance": "orders-db-3"}),
        )
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::InvalidState, "{e:?}");
    // A single-instance cluster has no reader: moto (like RDS) refuses, mapped to InvalidState.
    let e = p
        .inject_json("db.cluster_failover", &json!({"cluster": "orders-db-dr"}))
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::InvalidState, "{e:?}");
    assert!(e.to_string().contains("InvalidDBClusterStateFault"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn instance_reboot_waits_until_the_instance_is_available() {
    let m = moto().await;
    let b = Bridge::new();
    let p = orders(&m, &b).await;
    let t0 = tokio::time::Instant::now();
    let out = p
        .inject_json(
            "db.instance_reboot",
            &json!({"instance": "orders-db-2", "force_failover": false}),
        )
        .await
        .unwrap();
    assert_eq!(out["instance"], "orders-db-2");
    assert_eq!(out["cluster"], "orders-db");
    assert_eq!(out["writer_before"], "orders-db-1");
    assert_eq!(out["writer_after"], "orders-db-1");
    // It looks one poll interval after the call (the status turns `rebooting` shortly after).
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    assert!(
        b.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("RebootDBInstance"))
    );
}

#[tokio::test(start_paused = true)]
async fn cluster_outage_stops_the_cluster_and_its_revert_starts_it() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", None);
    aurora(
        &c.rds,
        "orders-db",
        &[("orders-db-1", "us-east-1a"), ("orders-db-2", "us-east-1b")],
        None,
        false,
    )
    .await;
    let p = provider(&m, &b, "us-east-1", None);
    let params = json!({"cluster": "orders-db"});
    let out = p.inject_json("db.cluster_outage", &params).await.unwrap();
    assert_eq!(out["previous_status"], "available");
    let v = probe(&p, "db.cluster", params.clone()).await;
    assert_eq!(v["status"], "stopped");
    assert_eq!(v["writable"], false);
    let e = p
        .inject_json("db.cluster_outage", &params)
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::InvalidState, "{e:?}");
    let r = p
        .revert_json("db.cluster_outage", &params, &out)
        .await
        .unwrap();
    assert_eq!(r["started"], true);
    let v = probe(&p, "db.cluster", params.clone()).await;
    assert_eq!(v["status"], "available");
    assert_eq!(v["writable"], true);
    // Reverting again (already available) is a no-op.
    let r = p
        .revert_json("db.cluster_outage", &params, &Json::Null)
        .await
        .unwrap();
    assert_eq!(r["started"], false);
}

#[tokio::test(start_paused = true)]
async fn point_in_time_restore_creates_a_cluster_and_an_instance_and_journals_them() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", None);
    aurora(
        &c.rds,
        "orders-db",
        &[("orders-db-1", "us-east-1a"), ("orders-db-2", "us-east-1b")],
        None,
        false,
    )
    .await;
    let p = provider(&m, &b, "us-east-1", None);
    start(&p, "run-1");
    let source = probe(&p, "db.cluster", json!({"cluster": "orders-db"})).await;
    let out = p
        .inject_json("db.point_in_time_restore",
            &json!({"source_cluster": "orders-db", "target_cluster": "orders-db-restored", "restore_time": "latest", "serve": true}),
        )
        .await
        .unwrap();
    assert_eq!(out["target_cluster"], "orders-db-restored");
    assert_eq!(out["instance"], "orders-db-restored-1");
    assert_eq!(out["instance_class"], "db.r6g.large");
    assert_eq!(out["restore_type"], "latest");
    assert!(
        out["restore_point"].as_str().unwrap()
            >= source["latest_restorable_time"].as_str().unwrap()
    );
    assert_eq!(out["created"].as_array().unwrap().len(), 2);
    assert!(out["cleanup"][1].as_str().unwrap().contains(
        "delete-db-cluster --region us-east-1 --db-cluster-identifier orders-db-restored"
    ));
    assert!(out["serve"].as_str().unwrap().contains("not performed"));

    // Both exist in moto, tagged with the run.
    let restored = c
        .rds
        .describe_db_clusters()
        .db_cluster_identifier("orders-db-restored")
        .send()
        .await
        .unwrap();
    let tags: Vec<(String, String)> = restored.db_clusters()[0]
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert!(
        tags.contains(&("firedrill:run".into(), "run-1".into())),
        "{tags:?}"
    );
    let v = probe(&p, "db.cluster", json!({"cluster": "orders-db-restored"})).await;
    assert_eq!(v["status"], "available");
    assert_eq!(v["writable"], true);
    assert_eq!(v["writer"], "orders-db-restored-1");
    assert_eq!(v["latest_write_source"], "restore_point");
    assert_eq!(v["latest_write"], out["restore_point"]);

    // Every created resource is journaled with its cleanup, and the provider lists them.
    let events = p.drain_events();
    let created: Vec<&Json> = events
        .iter()
        .filter_map(|e| e.detail.as_ref())
        .filter(|d| d["kind"] == "aws_resource_created")
        .collect();
    assert_eq!(created.len(), 2, "{events:?}");
    assert_eq!(created[0]["name"], "orders-db-restored");
    assert_eq!(created[1]["name"], "orders-db-restored-1");
    assert_eq!(p.created_resources().len(), 2);
    assert!(events.iter().any(|e| {
        e.message
            .contains("serve: true is not done by the aws backend")
    }));

    // The target exists now: a second restore to it is refused before anything is created.
    let e = p
        .inject_json(
            "db.point_in_time_restore",
            &json!({"source_cluster": "orders-db", "target_cluster": "orders-db-restored"}),
        )
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::InvalidState, "{e:?}");
    assert!(e.to_string().contains("already exists"), "{e}");

    // A time outside the restorable window is refused with the window.
    let e = p
        .inject_json("db.point_in_time_restore",
            &json!({"source_cluster": "orders-db", "target_cluster": "orders-db-old", "restore_time": "2001-01-01T00:00:00Z"}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("outside the restorable window of `orders-db`"),
        "{e}"
    );

    // A time inside it, without waiting.
    let t = source["latest_restorable_time"].as_str().unwrap();
    let out = p
        .inject_json("db.point_in_time_restore",
            &json!({"source_cluster": "orders-db", "target_cluster": "orders-db-at", "restore_time": t, "wait": false}),
        )
        .await
        .unwrap();
    assert_eq!(out["restore_type"], "time");
    assert_eq!(out["waited"], false);
    assert!(
        b.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("RestoreDBClusterToPointInTime"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_half_done_restore_says_what_exists_and_what_cleanup_is_owed() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", None);
    aurora(
        &c.rds,
        "orders-db",
        &[("orders-db-1", "us-east-1a")],
        None,
        false,
    )
    .await;
    // An instance already holds the name the restore's instance would get: moto (like RDS)
    // refuses CreateDBInstance after the cluster was restored.
    c.rds
        .create_db_instance()
        .db_instance_identifier("orders-db-restored-1")
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("x")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .unwrap();
    let p = provider(&m, &b, "us-east-1", None);
    let e = p
        .inject_json(
            "db.point_in_time_restore",
            &json!({"source_cluster": "orders-db", "target_cluster": "orders-db-restored"}),
        )
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("point-in-time restore half done: cluster `orders-db-restored` (arn:aws:rds:us-east-1:123456789012:cluster:orders-db-restored) was created and still exists"), "{msg}");
    assert!(msg.contains("rollback owed: delete the cluster (`aws rds delete-db-cluster --region us-east-1 --db-cluster-identifier orders-db-restored --skip-final-snapshot`)"), "{msg}");
    assert!(msg.contains("already exists"), "the cause: {msg}");
    let events = p.drain_events();
    let owed: Vec<&Json> = events
        .iter()
        .filter_map(|e| e.detail.as_ref())
        .filter(|d| d["kind"] == "aws_rollback_owed")
        .collect();
    assert_eq!(owed.len(), 1, "{events:?}");
    assert_eq!(
        owed[0]["exists"][0],
        "arn:aws:rds:us-east-1:123456789012:cluster:orders-db-restored"
    );
    // The cluster really exists in moto.
    let v = probe(&p, "db.cluster", json!({"cluster": "orders-db-restored"})).await;
    assert_eq!(v["writable"], false, "no instance, no writer");
}

#[tokio::test(start_paused = true)]
async fn detach_and_promote_makes_a_standalone_writer() {
    let m = moto().await;
    let b = Bridge::new();
    // moto's RemoveFromGlobalCluster only finds clusters in us-east-1 (where it keeps global
    // clusters), so here the primary region is us-west-2 and the secondary is in us-east-1.
    let c = clients(&m, &b, "us-west-2", Some("us-east-1"));
    global_cluster(&c, "orders-global").await;
    aurora(
        &c.rds,
        "orders-db",
        &[("orders-db-1", "us-west-2a"), ("orders-db-2", "us-west-2b")],
        Some("orders-global"),
        false,
    )
    .await;
    aurora(
        &c.rds_dr,
        "orders-db-dr",
        &[("orders-db-dr-1", "us-east-1a")],
        Some("orders-global"),
        true,
    )
    .await;
    let p = provider(&m, &b, "us-west-2", Some("us-east-1"));
    let before = probe(&p, "db.cluster", json!({"cluster": "orders-db-dr"})).await;
    assert_eq!(before["role"], "secondary");
    let params = json!({"global_cluster": "orders-global", "cluster": "orders-db-dr"});
    let out = p
        .inject_json("db.detach_and_promote", &params)
        .await
        .unwrap();
    assert_eq!(out["detached_from"], "orders-global");
    assert_eq!(out["writer"], "orders-db-dr-1");
    let after = probe(&p, "db.cluster", json!({"cluster": "orders-db-dr"})).await;
    assert_eq!(after["role"], "standalone");
    assert_eq!(after["writable"], true);
    // The primary can't be detached this way.
    let e = p
        .inject_json(
            "db.detach_and_promote",
            &json!({"global_cluster": "orders-global", "cluster": "orders-db"}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("is the primary of global database `orders-global`"),
        "{e}"
    );
    let e = p
        .inject_json("db.detach_and_promote", &params)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("is not a member of global database `orders-global` (members: orders-db)"),
        "{e}"
    );
}

/// FailoverGlobalCluster and SwitchoverGlobalCluster are not implemented by moto: they are
/// answered by aws-smithy-mocks rules (and DescribeGlobalClusters after them, with the target
/// now the writer); every other call, including the clusters and instances the wait checks,
/// is moto's.
#[tokio::test(start_paused = true)]
async fn global_switchover_and_failover_via_aws_smithy_mocks() {
    let m = moto().await;
    let b = Bridge::new();
    let mut c = clients(&m, &b, "us-east-1", Some("us-west-2"));
    orders_estate(&c).await;
    let mock = global_mock("orders-global", &[ORDERS_DB_ARN, ORDERS_DB_DR_ARN]);
    mock.install(&m, &b, &mut c);
    let p = AwsProvider::from_clients(settings(&m, "us-east-1", Some("us-west-2")), c);

    // Planned switchover.
    let out = p
        .inject_json(
            "db.global_switchover",
            &json!({"global_cluster": "orders-global", "target_cluster": "orders-db-dr"}),
        )
        .await
        .unwrap();
    assert_eq!(out["operation"], "switchover");
    assert_eq!(out["from"], "orders-db");
    assert_eq!(out["to"], "orders-db-dr");
    assert_eq!(mock.switchover.num_calls(), 1);
    assert_eq!(mock.failover.num_calls(), 0);
    assert_eq!(
        mock.moved_to.lock().unwrap().as_deref(),
        Some(ORDERS_DB_DR_ARN),
        "by ARN"
    );
    // The request was sent to the target's region (it passed through to moto, which answered 500).
    assert!(
        b.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("SwitchoverGlobalCluster"))
    );
    let dr = probe(&p, "db.cluster", json!({"cluster": "orders-db-dr"})).await;
    assert_eq!(dr["role"], "primary");
    assert_eq!(dr["writable"], true);
    let old = probe(&p, "db.cluster", json!({"cluster": "orders-db"})).await;
    assert_eq!(old["role"], "secondary");
    assert_eq!(old["writable"], false);

    // A switchover to the current primary is refused.
    let e = p
        .inject_json(
            "db.global_switchover",
            &json!({"global_cluster": "orders-global", "target_cluster": "orders-db-dr"}),
        )
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::InvalidState, "{e:?}");

    // Unplanned failover back, accepting data loss.
    let out = p
        .inject_json("db.global_failover",
            &json!({"global_cluster": "orders-global", "target_cluster": "orders-db", "allow_data_loss": true}),
        )
        .await
        .unwrap();
    assert_eq!(out["operation"], "failover");
    assert_eq!(out["allow_data_loss"], true);
    assert_eq!(mock.failover.num_calls(), 1);
    assert_eq!(*mock.allow_data_loss.lock().unwrap(), vec![Some(true)]);
    let primary = probe(&p, "db.cluster", json!({"cluster": "orders-db"})).await;
    assert_eq!(primary["role"], "primary");

    // Without allow_data_loss, db.global_failover is a switchover.
    let out = p
        .inject_json(
            "db.global_failover",
            &json!({"global_cluster": "orders-global", "target_cluster": "orders-db-dr"}),
        )
        .await
        .unwrap();
    assert_eq!(out["operation"], "switchover");
    assert_eq!(mock.switchover.num_calls(), 2);
    assert_eq!(mock.failover.num_calls(), 1);
    let n = notes(&p);
    assert!(n.iter().any(|x| x.contains("FailoverGlobalCluster (AllowDataLoss) of global database orders-global from orders-db-dr to orders-db")), "{n:?}");
}

#[tokio::test(start_paused = true)]
async fn dns_failover_forces_the_answer_and_its_revert_restores_the_records() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", None);
    let (zone, hc) = failover_record(&c, "api.example.com", true).await;
    let p = provider(&m, &b, "us-east-1", None);
    start(&p, "run-dns");
    let original = c
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap()
        .resource_record_sets()
        .to_vec();

    let r = json!({"record": "api.example.com"});
    let v = probe(&p, "dns.record", r.clone()).await;
    assert_eq!(v["authoritative"], "us-east-1");
    assert_eq!(v["answer"], "us-east-1");
    assert_eq!(v["primary_healthy"], true);
    assert_eq!(v["ttl_seconds"], 60.0);
    assert_eq!(v["values"], json!(["10.0.0.10"]));
    assert_eq!(v["zone_id"], zone.as_str());

    let params = json!({"record": "api.example.com", "to": "secondary"});
    let out = p.inject_json("dns.failover", &params).await.unwrap();
    assert_eq!(out["answers"], "us-west-2");
    assert_eq!(out["status"], "INSYNC");
    assert_eq!(
        out["previous"].as_array().unwrap().len(),
        1,
        "only the PRIMARY changes"
    );
    // Route 53 answers the secondary at once; resolvers keep the old answer for up to the TTL.
    let v = probe(&p, "dns.record", r.clone()).await;
    assert_eq!(v["authoritative"], "us-west-2");
    assert_eq!(v["answer"], "us-east-1");
    assert!(v["resolvers_may_be_stale_until"].is_string());
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(
        probe(&p, "dns.record", r.clone()).await["answer"],
        "us-east-1"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    let v = probe(&p, "dns.record", r.clone()).await;
    assert_eq!(v["answer"], "us-west-2");
    assert_eq!(v["resolvers_may_be_stale_until"], Json::Null);

    // The forced record in moto: the PRIMARY (us-east-1) answers with the secondary's address
    // and no health check; the roles are unchanged.
    let now = c
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap()
        .resource_record_sets()
        .to_vec();
    let east = now
        .iter()
        .find(|r| r.set_identifier() == Some("us-east-1"))
        .unwrap();
    assert_eq!(east.failover().map(|f| f.as_str()), Some("PRIMARY"));
    assert_eq!(east.health_check_id(), None);
    assert_eq!(east.resource_records()[0].value(), "10.1.0.10");
    // Forcing again (e.g. a later drill while this one's rollback is owed) changes nothing.
    let again = p.inject_json("dns.failover", &params).await.unwrap();
    assert_eq!(again["status"], "unchanged");
    assert_eq!(again["answers"], "us-west-2");

    let back = p.revert_json("dns.failover", &params, &out).await.unwrap();
    assert_eq!(back["restored"], true);
    let restored = c
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap()
        .resource_record_sets()
        .to_vec();
    assert_eq!(restored, original, "the records as they were");
    let v = probe(&p, "dns.record", r.clone()).await;
    assert_eq!(v["authoritative"], "us-east-1");
    assert_eq!(
        v["answer"], "us-west-2",
        "resolvers may still hold the forced answer"
    );

    // The revert from the output alone (a provider that did not make the change).
    let p2 = provider(&m, &b, "us-east-1", None);
    let out = p.inject_json("dns.failover", &params).await.unwrap();
    p2.revert_json("dns.failover", &params, &out).await.unwrap();
    let again = c
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap()
        .resource_record_sets()
        .to_vec();
    assert_eq!(again, original);
    // A revert with nothing recorded changes nothing.
    let none = p2
        .revert_json("dns.failover", &params, &Json::Null)
        .await
        .unwrap();
    assert_eq!(none["restored"], false);

    // Forcing the primary drops its health check and keeps the roles.
    let out = p
        .inject_json(
            "dns.failover",
            &json!({"record": "api.example.com", "to": "primary"}),
        )
        .await
        .unwrap();
    assert_eq!(out["answers"], "us-east-1");
    let h = probe(
        &p,
        "dns.health_check",
        json!({"health_check_id": hc.clone().unwrap()}),
    )
    .await;
    assert_eq!(h["healthy"], true);
}

#[tokio::test(start_paused = true)]
async fn dns_health_check_by_record_or_id() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", None);
    let (_, hc) = failover_record(&c, "api.example.com", true).await;
    let p = provider(&m, &b, "us-east-1", None);
    let v = probe(&p, "dns.health_check", json!({"record": "api.example.com"})).await;
    assert_eq!(v["healthy"], true, "moto's health checks always succeed");
    assert_eq!(v["health_check_id"], hc.clone().unwrap().as_str());
    assert!(v["checkers"].as_u64().unwrap() >= 1);
    assert!(v["status"].as_str().unwrap().starts_with("Success"));
    let e = p
        .observe_json(
            "dns.health_check",
            &json!({"health_check_id": "no-such-check"}),
        )
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::NotFound, "{e:?}");
    assert!(
        e.to_string()
            .contains("health check `no-such-check` does not exist"),
        "{e}"
    );
    let e = p
        .observe_json("dns.record", &json!({"record": "www.example.com"}))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("`www.example.com` has no failover records"),
        "{e}"
    );
    let e = p
        .observe_json("dns.record", &json!({"record": "api.example.org"}))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no hosted zone of this account holds `api.example.org`"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn preflight_checks_every_named_resource_but_not_the_ones_the_drill_creates() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", Some("us-west-2"));
    orders_estate(&c).await;
    failover_record(&c, "api.example.com", false).await;
    let p = provider(&m, &b, "us-east-1", Some("us-west-2"));
    let call = |owner: &str, name: &str, params: Json| {
        let is_action = !matches!(
            name,
            "db.cluster" | "db.instance" | "dns.record" | "dns.health_check"
        );
        Call::new(owner.into(), name, params, is_action).unwrap()
    };
    let calls = vec![
        call(
            "step `a`",
            "db.cluster_failover",
            json!({"cluster": "orders-db"}),
        ),
        call(
            "step `b`",
            "db.cluster_failover",
            json!({"cluster": "orders-db", "target_instance": "orders-db-9"}),
        ),
        call(
            "step `c`",
            "db.global_failover",
            json!({"global_cluster": "orders-global", "target_cluster": "orders-db-dr"}),
        ),
        call(
            "step `d`",
            "db.global_switchover",
            json!({"global_cluster": "orders-global", "target_cluster": "orders-db"}),
        ),
        call(
            "step `e`",
            "db.point_in_time_restore",
            json!({"source_cluster": "orders-db", "target_cluster": "orders-db-restored"}),
        ),
        call(
            "probe `restored`",
            "db.cluster",
            json!({"cluster": "orders-db-restored"}),
        ),
        call(
            "probe `missing`",
            "db.cluster",
            json!({"cluster": "orders-db-gone"}),
        ),
        call(
            "step `f`",
            "dns.failover",
            json!({"record": "api.example.com", "to": "secondary"}),
        ),
        call(
            "probe `dns`",
            "dns.record",
            json!({"record": "api.example.com"}),
        ),
        call(
            "probe `hc`",
            "dns.health_check",
            json!({"record": "api.example.com"}),
        ),
        call(
            "probe `other`",
            "dns.record",
            json!({"record": "www.example.com"}),
        ),
        call(
            "step `g`",
            "db.instance_reboot",
            json!({"instance": "orders-db-2"}),
        ),
    ];
    let problems = p.preflight(&calls).await;
    let got: Vec<(String, String)> = problems
        .iter()
        .map(|p| (p.owner.clone(), p.error.to_string()))
        .collect();
    let owners: Vec<&str> = got.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        owners,
        vec![
            "step `b`",
            "step `d`",
            "probe `missing`",
            "probe `hc`",
            "probe `other`"
        ],
        "{got:#?}"
    );
    assert!(
        got[0]
            .1
            .contains("`orders-db-9` is not an instance of cluster `orders-db`")
    );
    assert!(
        got[1]
            .1
            .contains("already the primary of global database `orders-global`")
    );
    assert!(got[2].1.contains("cluster `orders-db-gone` does not exist"));
    assert!(got[3].1.contains("has no health check"));
    assert!(
        got[4]
            .1
            .contains("`www.example.com` has no failover records")
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_endpoint_is_one_preflight_problem() {
    let b = Bridge::new();
    // Nothing listens on port 9 of loopback.
    let url = "http://127.0.0.1:9";
    let c = firedrill::backend::aws::clients::Clients::for_endpoint_with(
        url,
        "us-east-1",
        None,
        b.shared(),
    );
    let mut s = AwsSettings::for_region("us-east-1");
    s.endpoint_url = Some(url.into());
    let p = AwsProvider::from_clients(s, c);
    let calls: Vec<Call> = (0..5)
        .map(|i| {
            Call::new(
                format!("probe `p{i}`"),
                "db.cluster",
                json!({"cluster": format!("c{i}")}),
                false,
            )
            .unwrap()
        })
        .collect();
    let t0 = tokio::time::Instant::now();
    let problems = p.preflight(&calls).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].owner, "environment section `aws`");
    let (ErrorKind::Unavailable, m) = (problems[0].error.kind, &problems[0].error.message) else {
        panic!("{:?}", problems[0].error)
    };
    assert!(
        m.contains("cannot reach the AWS API for `sts:GetCallerIdentity` in us-east-1"),
        "{m}"
    );
    assert!(m.contains("gave up after 4 attempts over 7s"), "{m}");
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(7),
        "retried with backoff on the tokio clock"
    );
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_names_targets_and_iam_actions() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", Some("us-west-2"));
    orders_estate(&c).await;
    failover_record(&c, "api.example.com", true).await;
    let p = provider(&m, &b, "us-east-1", Some("us-west-2"));
    let before = b.log.lock().unwrap().len();
    let d = p
        .describe_json("db.cluster_failover", &json!({"cluster": "orders-db"}))
        .await
        .unwrap();
    assert!(d.contains("FailoverDBCluster orders-db (us-east-1): writer orders-db-1 -> a reader chosen by RDS (orders-db-2, orders-db-3)"), "{d}");
    assert!(
        d.contains("[IAM: rds:FailoverDBCluster, rds:DescribeDBClusters, rds:DescribeDBInstances]"),
        "{d}"
    );
    let d = p
        .describe_json("db.global_failover", &json!({"global_cluster": "orders-global", "target_cluster": "orders-db-dr", "allow_data_loss": true}))
        .await
        .unwrap();
    assert!(d.contains("FailoverGlobalCluster --allow-data-loss orders-global: primary orders-db -> orders-db-dr (us-west-2)"), "{d}");
    let d = p
        .describe_json(
            "db.point_in_time_restore",
            &json!({"source_cluster": "orders-db", "target_cluster": "x-restored", "serve": true}),
        )
        .await
        .unwrap();
    assert!(
        d.contains("creates resources firedrill does not delete"),
        "{d}"
    );
    assert!(
        d.contains("rds:RestoreDBClusterToPointInTime, rds:CreateDBInstance"),
        "{d}"
    );
    let d = p
        .describe_json(
            "dns.failover",
            &json!({"record": "api.example.com", "to": "secondary"}),
        )
        .await
        .unwrap();
    assert!(d.contains("us-west-2 answers regardless of health"), "{d}");
    assert!(d.contains("route53:ChangeResourceRecordSets"), "{d}");
    let d = p
        .describe_json("db.cluster_outage", &json!({"cluster": "orders-db"}))
        .await
        .unwrap();
    assert!(d.contains("StopDBCluster orders-db"), "{d}");
    // Only reads were sent.
    let log = b.log.lock().unwrap();
    let sent: Vec<&String> = log[before..]
        .iter()
        .filter(|l| l.starts_with("POST"))
        .collect();
    // RDS calls are POSTs naming their action; Route 53 reads are GETs.
    assert!(sent.iter().all(|l| l.contains(" Describe")), "{sent:?}");
    assert!(
        !log[before..]
            .iter()
            .any(|l| l.contains("Failover") || l.contains("Restore") || l.contains("Stop")),
        "{log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_assumed_role_session_is_named_after_the_run() {
    let m = moto().await;
    let b = Bridge::new();
    let mut s = settings(&m, "us-east-1", None);
    s.role_arn = Some("arn:aws:iam::123456789012:role/firedrill-drills".into());
    // Static base credentials; the role's come from STS (moto's AssumeRole).
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&m.url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .http_client(b.shared())
        .load()
        .await;
    let p = AwsProvider::from_configs(s, base, None);
    let who = |c: std::sync::Arc<firedrill::backend::aws::clients::Clients>| async move {
        c.sts
            .get_caller_identity()
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_string()
    };
    let before = who(p.clients().await).await;
    assert!(
        before.ends_with(":assumed-role/firedrill-drills/firedrill-preflight"),
        "{before}"
    );
    start(&p, "20261122T101500Z-db-failover-00af");
    let during = who(p.clients().await).await;
    assert!(
        during.ends_with(
            ":assumed-role/firedrill-drills/firedrill-20261122T101500Z-db-failover-00af"
        ),
        "{during}"
    );
    assert!(
        b.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("AssumeRole"))
    );
}

/// During a primary-region outage the DR region's clusters and the global database are still
/// found through the DR endpoint (here the primary endpoint is a closed port).
#[tokio::test(start_paused = true)]
async fn the_dr_region_answers_when_the_primary_endpoint_is_down() {
    let m = moto().await;
    let b = Bridge::new();
    orders_estate(&clients(&m, &b, "us-east-1", Some("us-west-2"))).await;
    let down = firedrill::backend::aws::clients::test_config(
        "http://127.0.0.1:9",
        "us-east-1",
        b.shared(),
    );
    let dr = firedrill::backend::aws::clients::test_config(&m.url, "us-west-2", b.shared());
    let c = firedrill::backend::aws::clients::Clients::from_configs(&down, Some(&dr));
    let p = AwsProvider::from_clients(settings(&m, "us-east-1", Some("us-west-2")), c);
    let v = probe(&p, "db.cluster", json!({"cluster": "orders-db-dr"})).await;
    assert_eq!(v["region"], "us-west-2");
    assert_eq!(
        v["role"], "secondary",
        "the global database was read through us-west-2"
    );
    let n = notes(&p);
    assert!(
        n.iter()
            .any(|x| x
                .contains("cannot reach the AWS API for `rds:DescribeDBClusters` in us-east-1")),
        "{n:?}"
    );
    // A cluster only the primary region has is reported as unreachable, not as missing.
    let e = p
        .observe_json("db.cluster", &json!({"cluster": "orders-db"}))
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::Unavailable, "{e:?}");
}
