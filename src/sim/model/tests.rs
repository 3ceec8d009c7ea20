//! Tests of the estate model.

use super::params::secs;
use super::*;
use std::collections::BTreeMap;
use std::time::Duration;

const REC: &str = "api.example.com";

fn t(v: f64) -> Duration {
    Duration::from_secs_f64(v)
}

fn sel(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), app.to_string())])
}

fn estate(p: SimParams) -> Estate {
    Estate::from_params(p).expect("valid params")
}

/// Step in 1s until `f` holds; returns the first such time.
fn first_time(
    e: &mut Estate,
    from: f64,
    limit: f64,
    mut f: impl FnMut(&mut Estate, Duration) -> bool,
) -> f64 {
    let mut x = from;
    while x <= limit {
        if f(e, t(x)) {
            return x;
        }
        x += 1.0;
    }
    panic!("condition never held between {from}s and {limit}s");
}

fn dns_flip_after_region_loss(ttl: u64) -> f64 {
    let mut p = SimParams::default();
    p.dns[0].ttl = secs(ttl);
    let mut e = estate(p);
    e.lose_region(t(600.0), "us-east-1").unwrap();
    assert_eq!(e.dns(t(600.0), REC).unwrap().answer, "us-east-1");
    let at = first_time(&mut e, 600.0, 4000.0, |e, x| {
        e.dns(x, REC).unwrap().answer == "us-west-2"
    });
    at - 600.0
}

#[test]
fn dns_failover_time_follows_interval_threshold_and_ttl() {
    let (interval, threshold) = (30.0, 3.0);
    let d60 = dns_flip_after_region_loss(60);
    // First failing check within one interval of the loss, then threshold-1 more, then TTL.
    let expected = interval * threshold + 60.0;
    assert!(
        d60 > expected - interval && d60 <= expected + 1.0,
        "flip after {d60}s"
    );
    let d300 = dns_flip_after_region_loss(300);
    assert_eq!(d300 - d60, 240.0);
}

#[test]
fn dns_flip_is_logged_in_plain_english() {
    let mut e = estate(SimParams::default());
    e.lose_region(t(600.0), "us-east-1").unwrap();
    e.advance_to(t(900.0));
    let log: Vec<String> = e
        .log()
        .iter()
        .map(|l| format!("{}: {}", l.component, l.message))
        .collect();
    assert!(log.iter().any(|l| l.contains(
        "route53 api.example.com: health check failed 3 times (interval 30s), primary marked unhealthy"
    )), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("resolvers now answer us-west-2 (TTL 1m expired)")),
        "{log:#?}"
    );
}

#[test]
fn dns_fails_back_after_threshold_successes_and_ttl() {
    let mut e = estate(SimParams::default());
    e.lose_region(t(600.0), "us-east-1").unwrap();
    e.restore_region(t(1000.0), "us-east-1").unwrap();
    assert_eq!(e.dns(t(1000.0), REC).unwrap().answer, "us-west-2");
    // Evicted east pods were Pending (no Ready node); they start again on restore.
    let ready = first_time(&mut e, 1000.0, 2000.0, |e, x| {
        e.pods(x, "prod-east", "web", &sel("api")).unwrap().ready > 0
    });
    let back = first_time(&mut e, ready, 3000.0, |e, x| {
        e.dns(x, REC).unwrap().answer == "us-east-1"
    });
    // threshold (3) consecutive passing checks, 30s apart, then TTL 60s.
    let d = back - ready;
    assert!(
        (120.0..=151.0).contains(&d),
        "failback {d}s after pods Ready"
    );
    assert!(
        e.log()
            .iter()
            .any(|l| l.message.contains("primary healthy again"))
    );
}

#[test]
fn manual_dns_failover_is_seen_after_ttl_and_reset_restores_health_checks() {
    let mut e = estate(SimParams::default());
    e.dns_failover(t(100.0), REC, DnsTarget::Secondary).unwrap();
    let v = e.dns(t(159.0), REC).unwrap();
    assert_eq!(
        (v.authoritative.as_str(), v.answer.as_str()),
        ("us-west-2", "us-east-1")
    );
    assert_eq!(e.dns(t(160.0), REC).unwrap().answer, "us-west-2");
    assert_eq!(
        e.service(t(160.0), "api").unwrap().serving_region,
        "us-west-2"
    );
    e.dns_reset(t(200.0), REC).unwrap();
    assert_eq!(e.dns(t(260.0), REC).unwrap().answer, "us-east-1");
}

#[test]
fn pod_kill_is_ready_again_after_reschedule_delay_plus_startup() {
    let mut e = estate(SimParams::default());
    let killed = e
        .kill_pods(t(100.0), "prod-east", "web", &sel("api"), KillMode::One)
        .unwrap();
    assert_eq!(killed.len(), 1);
    let v = e.pods(t(101.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!((v.ready, v.starting, v.restarts), (5, 0, 0));
    let v = e.pods(t(102.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!((v.ready, v.starting, v.restarts), (5, 1, 1));
    let back = first_time(&mut e, 102.0, 400.0, |e, x| {
        e.pods(x, "prod-east", "web", &sel("api")).unwrap().ready == 6
    });
    // reschedule_delay 2s + startup 30s ± 10s jitter
    assert!((122.0..=143.0).contains(&back), "ready again at {back}s");
    // The log states the exact start-up time.
    let line = e
        .log()
        .iter()
        .rev()
        .find(|l| l.message.contains("Ready on node"))
        .unwrap();
    let startup: f64 = line
        .message
        .rsplit("(startup ")
        .next()
        .unwrap()
        .trim_end_matches("s)")
        .parse()
        .unwrap();
    assert!(
        (back - (102.0 + startup)).abs() <= 1.0,
        "{line:?} vs {back}"
    );
}

#[test]
fn kill_modes_and_unmatched_selector() {
    let mut e = estate(SimParams::default());
    let all = e
        .kill_pods(t(10.0), "prod-east", "web", &sel("api"), KillMode::All)
        .unwrap();
    assert_eq!(all.len(), 6);
    let v = e.service(t(11.0), "api").unwrap();
    assert_eq!((v.availability, v.error_rate), (0.0, 1.0));
    let half = e
        .kill_pods(
            t(12.0),
            "prod-east",
            "web",
            &sel("worker"),
            KillMode::FixedPercent(crate::lang::kubernetes::Percent::new(50).unwrap()),
        )
        .unwrap();
    assert_eq!(half.len(), 2);
    let err = e
        .kill_pods(t(13.0), "prod-east", "web", &sel("nope"), KillMode::One)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("app=nope") && msg.contains("app=api"), "{msg}");
}

fn writable_again_after_writer_zone_loss(detection: u64, failover: u64) -> f64 {
    let mut p = SimParams::default();
    p.databases[0].failure_detection = secs(detection);
    p.databases[0].failover_time = secs(failover);
    let mut e = estate(p);
    assert!(e.db_cluster(t(99.0), "orders-db").unwrap().writable);
    e.lose_zone(t(100.0), "us-east-1a").unwrap();
    assert!(!e.db_cluster(t(100.0), "orders-db").unwrap().writable);
    assert!(!e.service(t(100.0), "api").unwrap().db_writable);
    let back = first_time(&mut e, 100.0, 1000.0, |e, x| {
        e.db_cluster(x, "orders-db").unwrap().writable
    });
    let v = e.db_cluster(t(back), "orders-db").unwrap();
    assert_eq!(v.writer.as_deref(), Some("orders-db-2"));
    assert_eq!(v.writer_zone.as_deref(), Some("us-east-1b"));
    back - 100.0
}

#[test]
fn zone_loss_with_writer_recovers_after_detection_plus_failover() {
    assert_eq!(writable_again_after_writer_zone_loss(15, 35), 50.0);
    assert_eq!(writable_again_after_writer_zone_loss(30, 60), 90.0);
    let mut e = estate(SimParams::default());
    e.lose_zone(t(100.0), "us-east-1a").unwrap();
    assert_eq!(
        e.db_cluster(t(120.0), "orders-db").unwrap().status,
        "failing-over"
    );
    // Shared storage: no data loss, writes resume.
    assert_eq!(
        e.latest_write(t(200.0), "orders-db").unwrap(),
        Some(t(200.0))
    );
    assert!(
        e.log()
            .iter()
            .any(|l| l.message == "orders-db-2 promoted to writer after 35s automatic failover")
    );
    // Restored zone: the old writer is back as a reader.
    e.restore_zone(t(300.0), "us-east-1a").unwrap();
    assert_eq!(
        e.db_cluster(t(301.0), "orders-db")
            .unwrap()
            .writer
            .as_deref(),
        Some("orders-db-2")
    );
}

#[test]
fn zone_loss_evicts_and_replaces_pods_after_detection_eviction_and_startup() {
    let mut e = estate(SimParams::default());
    e.lose_zone(t(100.0), "us-east-1b").unwrap();
    // The pods there stop serving at once, but the API shows them Ready until the node
    // controller notices (node_failure_detection 40s).
    assert!((e.service(t(101.0), "api").unwrap().p99_latency_seconds - 0.8).abs() < 1e-9);
    let v = e.pods(t(101.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!((v.ready, v.unreachable), (6, 0));
    let v = e.pods(t(140.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!((v.ready, v.unreachable), (4, 2));
    // Evicted at 100 + 40 + 60; ReplicaSet reacts 2s later; the evicted pods stay
    // Terminating while their node is down.
    let v = e.pods(t(199.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!((v.unreachable, v.restarts), (2, 0));
    let v = e.pods(t(202.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!(
        (
            v.ready,
            v.starting,
            v.unreachable,
            v.terminating,
            v.restarts
        ),
        (4, 2, 0, 2, 2)
    );
    let back = first_time(&mut e, 202.0, 1000.0, |e, x| {
        e.pods(x, "prod-east", "web", &sel("api")).unwrap().ready == 6
    });
    assert!((222.0..=243.0).contains(&back), "replaced at {back}s");
    let n = e.nodes(t(back), "prod-east", Some("us-east-1b")).unwrap();
    assert_eq!((n.ready, n.total), (0, 3));
}

#[test]
fn zone_loss_leaves_pods_pending_when_capacity_is_too_small() {
    let mut p = SimParams::default();
    p.kubernetes[0].pods_per_node = 1; // 9 slots for 6 api + 3 worker pods
    p.kubernetes[0].deployments.retain(|d| d.namespace == "web");
    let mut e = estate(p);
    e.lose_zone(t(100.0), "us-east-1a").unwrap();
    let v = e.pods(t(300.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!((v.ready, v.pending), (4, 2));
    assert!(e.log().iter().any(|l| l.message.contains("Pending")));
    e.restore_zone(t(400.0), "us-east-1a").unwrap();
    let v = e.pods(t(400.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!((v.pending, v.starting), (0, 2));
    assert_eq!(
        e.pods(t(441.0), "prod-east", "web", &sel("api"))
            .unwrap()
            .ready,
        6
    );
    // With the default capacity nothing is left Pending.
    let mut e = estate(SimParams::default());
    e.lose_zone(t(100.0), "us-east-1a").unwrap();
    assert_eq!(
        e.pods(t(300.0), "prod-east", "web", &sel("api"))
            .unwrap()
            .pending,
        0
    );
}

fn unplanned_loss(lag: u64) -> (f64, f64) {
    let mut p = SimParams::default();
    p.databases[0].global.as_mut().unwrap().replication_lag = secs(lag);
    let mut e = estate(p);
    e.lose_region(t(1000.0), "us-east-1").unwrap();
    let primary = e.latest_write(t(1100.0), "orders-db").unwrap().unwrap();
    e.global_failover(t(1100.0), "orders-global", "orders-db-dr", true)
        .unwrap();
    let dr = e.latest_write(t(1100.0), "orders-db-dr").unwrap().unwrap();
    assert_eq!(
        e.db_cluster(t(1219.0), "orders-db-dr").unwrap().status,
        "promoting"
    );
    let writable_at = first_time(&mut e, 1100.0, 2000.0, |e, x| {
        e.db_cluster(x, "orders-db-dr").unwrap().writable
    });
    let v = e.db_cluster(t(1300.0), "orders-db-dr").unwrap();
    assert_eq!(v.role, "primary");
    assert_eq!(
        v.latest_write_secs,
        Some(1300.0),
        "service writes to the new primary"
    );
    ((primary - dr).as_secs_f64(), writable_at - 1100.0)
}

#[test]
fn unplanned_global_failover_loses_about_replication_lag() {
    assert_eq!(unplanned_loss(1), (1.0, 120.0));
    assert_eq!(unplanned_loss(5), (5.0, 120.0));
}

#[test]
fn old_primary_comes_back_standalone_after_region_restore() {
    let mut e = estate(SimParams::default());
    e.lose_region(t(1000.0), "us-east-1").unwrap();
    e.global_failover(t(1100.0), "orders-global", "orders-db-dr", true)
        .unwrap();
    e.restore_region(t(2000.0), "us-east-1").unwrap();
    let v = e.db_cluster(t(2001.0), "orders-db").unwrap();
    assert_eq!(
        (v.role.as_str(), v.status.as_str()),
        ("standalone", "available")
    );
    assert_eq!(v.latest_write_secs, Some(1000.0));
    assert_eq!(
        e.service(t(2001.0), "api").unwrap().database,
        "orders-db-dr"
    );
}

#[test]
fn planned_switchover_loses_nothing_and_refuses_when_primary_is_down() {
    let mut e = estate(SimParams::default());
    e.global_failover(t(500.0), "orders-global", "orders-db-dr", false)
        .unwrap();
    assert!(
        !e.service(t(600.0), "api").unwrap().db_writable,
        "writes unavailable during switchover"
    );
    assert_eq!(
        e.latest_write(t(600.0), "orders-db-dr").unwrap(),
        Some(t(500.0))
    );
    assert_eq!(
        e.latest_write(t(600.0), "orders-db").unwrap(),
        Some(t(500.0))
    );
    assert!(!e.db_cluster(t(679.0), "orders-db-dr").unwrap().writable);
    let v = e.db_cluster(t(680.0), "orders-db-dr").unwrap();
    assert!(v.writable);
    assert_eq!(
        e.db_cluster(t(680.0), "orders-db").unwrap().role,
        "secondary"
    );

    let mut e = estate(SimParams::default());
    e.lose_region(t(100.0), "us-east-1").unwrap();
    let err = e
        .global_failover(t(200.0), "orders-global", "orders-db-dr", false)
        .unwrap_err();
    assert!(err.to_string().contains("allow_data_loss"), "{err}");
    let err = e
        .global_failover(t(200.0), "orders-global", "orders-db", true)
        .unwrap_err();
    assert!(err.to_string().contains("orders-db-dr"), "{err}");
}

#[test]
fn detach_and_promote_makes_a_standalone_writer() {
    let mut e = estate(SimParams::default());
    e.cluster_outage(t(1000.0), "orders-db").unwrap();
    e.detach_and_promote(t(1100.0), "orders-global", "orders-db-dr")
        .unwrap();
    assert_eq!(
        e.latest_write(t(1100.0), "orders-db-dr").unwrap(),
        Some(t(999.0))
    );
    assert!(!e.db_cluster(t(1159.0), "orders-db-dr").unwrap().writable);
    let v = e.db_cluster(t(1160.0), "orders-db-dr").unwrap();
    assert!(v.writable);
    assert_eq!(v.role, "standalone");
    assert!(e.service(t(1160.0), "api").unwrap().db_writable);
}

fn restore(size_gib: f64) -> (Estate, Duration) {
    let mut p = SimParams::default();
    p.databases[0].backups.size_gib = size_gib;
    let mut e = estate(p);
    e.cluster_outage(t(3000.0), "orders-db").unwrap();
    assert_eq!(
        e.db_cluster(t(3001.0), "orders-db").unwrap().status,
        "unavailable"
    );
    let point = e
        .pitr_restore(t(3600.0), "orders-db", "orders-restored", None, true)
        .unwrap();
    (e, point)
}

#[test]
fn pitr_restore_point_and_duration_follow_parameters() {
    let (mut e, point) = restore(50.0);
    assert_eq!(point, t(3300.0), "now - restorable_lag");
    // 8m + 50 GiB × 5s = 730s
    assert_eq!(
        e.db_cluster(t(4329.0), "orders-restored").unwrap().status,
        "creating"
    );
    assert!(!e.service(t(4329.0), "api").unwrap().db_writable);
    assert_eq!(
        e.latest_write(t(4329.0), "orders-restored").unwrap(),
        Some(t(3000.0))
    );
    let v = e.db_cluster(t(4330.0), "orders-restored").unwrap();
    assert_eq!(v.status, "available");
    let s = e.service(t(4330.0), "api").unwrap();
    assert!(s.db_writable);
    assert_eq!(s.database, "orders-restored");
    let (mut e, _) = restore(100.0);
    assert_eq!(
        e.db_cluster(t(4579.0), "orders-restored").unwrap().status,
        "creating"
    );
    assert_eq!(
        e.db_cluster(t(4580.0), "orders-restored").unwrap().status,
        "available"
    );
}

#[test]
fn pitr_restore_refuses_points_outside_the_window() {
    let mut e = estate(SimParams::default());
    let err = e
        .pitr_restore(t(100.0), "orders-db", "r1", None, false)
        .unwrap_err();
    assert!(err.to_string().contains("no restorable time yet"), "{err}");
    let err = e
        .pitr_restore(t(3600.0), "orders-db", "r1", Some(t(3500.0)), false)
        .unwrap_err();
    assert!(
        err.to_string().contains("outside the restorable window"),
        "{err}"
    );
    assert_eq!(
        e.pitr_restore(t(3600.0), "orders-db", "r1", Some(t(1800.5)), false)
            .unwrap(),
        t(1800.5)
    );
    assert_eq!(e.latest_write(t(3601.0), "r1").unwrap(), Some(t(1800.0)));
    let err = e
        .pitr_restore(t(3600.0), "orders-db", "r1", None, false)
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

fn alert_states(startup: u64) -> Vec<(f64, String, String)> {
    let mut p = SimParams::default();
    p.kubernetes[0].deployments[0].startup = secs(startup);
    p.kubernetes[0].deployments[0].startup_jitter = Duration::ZERO;
    let mut e = estate(p);
    e.kill_pods(t(100.0), "prod-east", "web", &sel("api"), KillMode::All)
        .unwrap();
    let mut out = Vec::new();
    for x in [100.0, 129.9, 130.0, 159.9, 160.0, 171.9, 172.0] {
        for name in ["ApiDown", "ApiHighErrorRate"] {
            out.push((x, name.to_string(), e.alert(t(x), name).unwrap().state));
        }
    }
    out
}

#[test]
fn alerts_fire_exactly_for_after_the_condition_starts() {
    let states = alert_states(70); // pods Ready again at 100 + 2 + 70 = 172
    let get = |x: f64, n: &str| {
        states
            .iter()
            .find(|s| s.0 == x && s.1 == n)
            .unwrap()
            .2
            .clone()
    };
    assert_eq!(get(100.0, "ApiDown"), "pending");
    assert_eq!(get(129.9, "ApiDown"), "pending");
    assert_eq!(get(130.0, "ApiDown"), "firing");
    assert_eq!(get(159.9, "ApiHighErrorRate"), "pending");
    assert_eq!(get(160.0, "ApiHighErrorRate"), "firing");
    assert_eq!(get(171.9, "ApiDown"), "firing");
    assert_eq!(get(172.0, "ApiDown"), "inactive");
    assert_eq!(get(172.0, "ApiHighErrorRate"), "inactive");
    // Faster start-up: the condition clears before `for` elapses, nothing fires.
    let states = alert_states(20);
    assert!(states.iter().all(|s| s.2 != "firing"), "{states:?}");
    let mut e = estate(SimParams::default());
    e.lose_zone(t(50.0), "us-east-1a").unwrap();
    let v = e.alert(t(80.0), "DatabaseWriterUnavailable").unwrap();
    assert_eq!((v.state.as_str(), v.since_secs), ("firing", Some(80.0)));
    assert_eq!(
        e.alert(t(100.0), "DatabaseWriterUnavailable")
            .unwrap()
            .state,
        "inactive"
    );
}

fn scenario_log(seed: u64) -> Vec<EstateEvent> {
    let mut e = Estate::new(SimParams::default(), seed).unwrap();
    e.kill_pods(
        t(100.0),
        "prod-east",
        "web",
        &sel("api"),
        KillMode::Fixed(std::num::NonZeroU32::new(3).unwrap()),
    )
    .unwrap();
    e.lose_region(t(300.0), "us-east-1").unwrap();
    e.global_failover(t(400.0), "orders-global", "orders-db-dr", true)
        .unwrap();
    e.scale(t(400.0), "prod-west", "web", "api", 6).unwrap();
    e.advance_to(t(2000.0));
    e.log().to_vec()
}

#[test]
fn same_seed_same_log_different_seed_different_jitter() {
    assert_eq!(scenario_log(7), scenario_log(7));
    let startups = |log: &[EstateEvent]| {
        log.iter()
            .filter(|l| l.message.contains("(startup "))
            .map(|l| l.message.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(startups(&scenario_log(7)), startups(&scenario_log(8)));
}

#[test]
fn validation_catches_bad_references_and_absurd_values() {
    assert_eq!(SimParams::default().validate(), Vec::<String>::new());
    let mut p = SimParams::default();
    p.kubernetes[0].region = "eu-west-1".into();
    p.kubernetes[1].name = "prod-east".into();
    p.kubernetes[1].nodes_per_zone = 0;
    p.kubernetes[0].deployments[1].replicas = Some(1_000_000);
    p.kubernetes[0].deployments[0].replicas = None;
    p.kubernetes[0].deployments[0].pdb = Some(PdbParams {
        max_unavailable: Some(1),
        min_available: Some(1),
    });
    p.kubernetes[0].deployments[3].replicas = Some(2);
    p.kubernetes[0].deployments[3].pdb = Some(PdbParams {
        max_unavailable: Some(1),
        min_available: None,
    });
    p.kubernetes[0].deployments[2].termination_grace = secs(7200);
    p.databases[0].instances[0].zone = "us-west-2a".into();
    p.databases[0].writer = "orders-db-9".into();
    p.dns[0].ttl = secs(2 * 86_400);
    p.services[0].rps = 0.0;
    p.alerts[0].above = None;
    let problems = p.validate();
    for path in [
        "kubernetes[0].region: unknown region `eu-west-1`; use one of: us-east-1, us-west-2",
        "kubernetes[1].name: duplicate cluster `prod-east`",
        "kubernetes[1].nodes_per_zone: zero nodes",
        "kubernetes[0].deployments[1].replicas",
        "kubernetes[0].deployments[0].replicas: a deployment needs `replicas`",
        "kubernetes[0].deployments[0].pdb: give exactly one of `max_unavailable` or `min_available`",
        "kubernetes[0].deployments[3].replicas: a daemonset runs one pod per node; remove `replicas`",
        "kubernetes[0].deployments[3].pdb: drains skip daemonset pods",
        "kubernetes[0].deployments[2].termination_grace: 2h is absurdly long",
        "databases[0].instances[0].zone: zone `us-west-2a` is not in the cluster's region us-east-1",
        "databases[0].writer: `orders-db-9` is not one of the cluster's instances",
        "dns[0].ttl: 48h is absurdly long",
        "services[0].rps: must be a positive number",
        "alerts[0]: give exactly one of",
    ] {
        assert!(
            problems.iter().any(|x| x.starts_with(path)),
            "missing {path:?} in {problems:#?}"
        );
    }
    match Estate::new(p, 1) {
        Err(SimError::InvalidParams(v)) => assert_eq!(v, problems),
        other => panic!("expected InvalidParams, got {other:?}"),
    }
}

#[test]
fn errors_name_the_thing_and_list_valid_choices() {
    let mut e = estate(SimParams::default());
    let err = e.lose_zone(t(1.0), "us-east-1d").unwrap_err().to_string();
    assert!(
        err.starts_with("no zone `us-east-1d` in the estate; zones: us-east-1a, us-east-1b"),
        "{err}"
    );
    let err = e
        .cordon_zone(t(1.0), "prod-east", "us-west-2a")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("its zones: us-east-1a, us-east-1b, us-east-1c"),
        "{err}"
    );
    let err = e
        .db_failover(t(1.0), "orders-db", Some("orders-db-1"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("eligible: orders-db-2, orders-db-3"), "{err}");
    let err = e
        .scale(t(1.0), "prod-east", "web", "nope", 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("web/api, web/worker"), "{err}");
    let err = e.alert(t(1.0), "Nope").unwrap_err().to_string();
    assert!(err.contains("ApiHighErrorRate, ApiDown"), "{err}");
}

#[test]
fn service_metrics_follow_capacity() {
    let mut e = estate(SimParams::default());
    let v = e.service(t(1.0), "api").unwrap();
    assert_eq!(
        (v.availability, v.serving_region.as_str()),
        (1.0, "us-east-1")
    );
    let u: f64 = 200.0 / 300.0;
    assert!((v.p99_latency_seconds - 0.08 * (1.0 + 9.0 * u.powi(3))).abs() < 1e-9);
    assert_eq!(e.scale(t(10.0), "prod-east", "web", "api", 2).unwrap(), 6);
    let v = e.service(t(10.0), "api").unwrap();
    assert_eq!((v.availability, v.p99_latency_seconds), (0.5, 30.0));
    // Memory: api 2 GiB, worker 1, db 2, node-exporter 0.25 per pod over 9 × 16 GiB; the 4
    // api pods scaled away hold theirs while Terminating (30s grace).
    let others = 3.0 * 1.0 + 3.0 * 2.0 + 9.0 * 0.25;
    let m = e.memory_utilization(t(10.0), "prod-east").unwrap();
    assert!(
        (m - (6.0 * 2.0 + others) / (9.0 * 16.0)).abs() < 1e-9,
        "{m}"
    );
    let m = e.memory_utilization(t(40.0), "prod-east").unwrap();
    assert!(
        (m - (2.0 * 2.0 + others) / (9.0 * 16.0)).abs() < 1e-9,
        "{m}"
    );
    assert_eq!(e.scale(t(50.0), "prod-east", "web", "api", 6).unwrap(), 2);
    assert_eq!(e.service(t(91.0), "api").unwrap().availability, 1.0);
    // Writes fail while the database is unwritable: only reads succeed.
    e.db_reboot(t(100.0), "orders-db-1", false).unwrap();
    assert!((e.service(t(101.0), "api").unwrap().availability - 0.8).abs() < 1e-9);
    assert_eq!(e.service(t(120.0), "api").unwrap().availability, 1.0);
}

#[test]
fn cordon_drain_and_uncordon() {
    let mut e = estate(SimParams::default());
    let nodes = e.cordon_zone(t(10.0), "prod-east", "us-east-1c").unwrap();
    assert_eq!(nodes, ["us-east-1c-1", "us-east-1c-2", "us-east-1c-3"]);
    let n = e.nodes(t(10.0), "prod-east", None).unwrap();
    assert_eq!((n.ready, n.total, n.schedulable), (9, 9, 6));
    // Zone a runs 2 api, 1 worker, 1 db and 3 node-exporter pods: the daemonset is skipped,
    // the api budget (max_unavailable 1) lets one api pod go, the db budget (min 2 of 3) one.
    let (evicted, refused) = e.drain_zone(t(20.0), "prod-east", "us-east-1a").unwrap();
    assert_eq!(
        (evicted.len(), refused.len()),
        (3, 1),
        "{evicted:?} {refused:?}"
    );
    assert!(refused[0].starts_with("api-"), "{refused:?}");
    let v = e.pods(t(200.0), "prod-east", "web", &sel("api")).unwrap();
    assert_eq!((v.ready, v.restarts), (6, 1));
    // Once the replacement is Ready the budget allows the second one.
    let (evicted, refused) = e.drain_zone(t(200.0), "prod-east", "us-east-1a").unwrap();
    assert_eq!((evicted.len(), refused.len()), (1, 0));
    e.uncordon_nodes(t(200.0), "prod-east", &nodes).unwrap();
    assert_eq!(
        e.nodes(t(200.0), "prod-east", None).unwrap().schedulable,
        9 - 3
    );
    let err = e
        .uncordon_nodes(t(200.0), "prod-east", &["x".to_string()])
        .unwrap_err();
    assert!(err.to_string().contains("us-east-1a-1"), "{err}");
}

#[test]
fn manual_db_failover_and_reboot() {
    let mut e = estate(SimParams::default());
    assert_eq!(
        e.db_failover(t(100.0), "orders-db", Some("orders-db-3"))
            .unwrap(),
        "orders-db-3"
    );
    assert_eq!(
        e.db_cluster(t(134.0), "orders-db").unwrap().status,
        "failing-over"
    );
    let v = e.db_cluster(t(135.0), "orders-db").unwrap();
    assert_eq!(
        (v.writer.as_deref(), v.writable),
        (Some("orders-db-3"), true)
    );
    e.db_reboot(t(200.0), "orders-db-3", true).unwrap();
    assert_eq!(
        e.db_cluster(t(235.0), "orders-db")
            .unwrap()
            .writer
            .as_deref(),
        Some("orders-db-1")
    );
    e.db_reboot(t(300.0), "orders-db-1", false).unwrap();
    assert!(!e.db_cluster(t(319.0), "orders-db").unwrap().writable);
    assert!(e.db_cluster(t(320.0), "orders-db").unwrap().writable);
}

#[test]
fn surviving_write_ignores_writes_after_the_point_asked() {
    let mut e = Estate::new(SimParams::default(), 42).unwrap();
    e.cluster_outage(t(1000.0), "orders-db").unwrap();
    let point = e
        .pitr_restore(t(1010.0), "orders-db", "r1", None, true)
        .unwrap();
    // Long after the restore the new cluster takes new writes; what survived from before
    // the fault is only what the restore point held.
    let after = t(1010.0 + 3600.0);
    let newest = e.latest_write(after, "r1").unwrap().unwrap();
    assert!(newest > t(1000.0), "new writes resumed: {newest:?}");
    let survived = e.surviving_write(after, "r1", t(1000.0)).unwrap().unwrap();
    assert_eq!(survived, point);
    assert_eq!(point, t(1010.0 - 300.0));
    // A cluster that never failed holds every write up to the fault.
    let mut e = Estate::new(SimParams::default(), 42).unwrap();
    e.db_failover(t(500.0), "orders-db", None).unwrap();
    assert_eq!(
        e.surviving_write(t(900.0), "orders-db", t(500.0)).unwrap(),
        Some(t(500.0))
    );
}

#[test]
fn advance_never_goes_backwards() {
    let mut e = estate(SimParams::default());
    e.advance_to(t(100.0));
    e.advance_to(t(50.0));
    assert_eq!(e.now(), t(100.0));
}

#[test]
fn params_round_trip_through_json() {
    let p = SimParams::default();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["databases"][0]["failover_time"], "35s");
    assert_eq!(json["alerts"][0]["for"], "1m");
    let back: SimParams = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, p);
    let mut bad = json;
    bad["dns"][0]["tll"] = "60s".into();
    assert!(
        serde_json::from_value::<SimParams>(bad).is_err(),
        "unknown fields are rejected"
    );
}
