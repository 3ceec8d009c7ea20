//! The retry policy and the error messages, on SDK clients whose responses come from
//! aws-smithy-mocks (no network): throttling retried then successful, throttling past the
//! bound, 5xx retried, access denied naming the IAM action and ARN, bad names and ARNs.
//! Waiting and backoff run on tokio's paused clock.

use super::clients::Clients;
use super::{AwsProvider, AwsSettings};
use crate::backend::{Call, ErrorKind, Provider, ProviderExt};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_rds::operation::describe_db_clusters::{
    DescribeDBClustersError, DescribeDbClustersOutput,
};
use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::operation::failover_db_cluster::{
    FailoverDBClusterError, FailoverDbClusterOutput,
};
use aws_sdk_rds::types::{DbCluster, DbClusterMember, DbInstance};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::json;
use std::time::Duration;

const ARN: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-db";

fn config(region: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(SharedCredentialsProvider::new(
            aws_credential_types::Credentials::for_tests(),
        ))
        .http_client(create_mock_http_client())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    let mut i = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for r in rules {
        i = i.with_rule(r);
    }
    i
}

/// A provider whose RDS and STS calls are answered by `rules` (both regions share them).
fn provider(rules: &[&Rule]) -> AwsProvider {
    let mut c = Clients::from_configs(&config("us-east-1"), Some(&config("us-west-2")));
    let rds = |region: &str| {
        aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&config(region))
                .interceptor(interceptor(rules))
                .build(),
        )
    };
    c.rds = rds("us-east-1");
    c.rds_dr = rds("us-west-2");
    c.sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config("us-east-1"))
            .interceptor(interceptor(rules))
            .build(),
    );
    let mut s = AwsSettings::for_region("us-east-1");
    s.dr_region = Some("us-west-2".into());
    AwsProvider::from_clients(s, c)
}

fn cluster() -> DbCluster {
    DbCluster::builder()
        .db_cluster_identifier("orders-db")
        .db_cluster_arn(ARN)
        .status("available")
        .db_cluster_members(
            DbClusterMember::builder()
                .db_instance_identifier("orders-db-1")
                .is_cluster_writer(true)
                .build(),
        )
        .db_cluster_members(
            DbClusterMember::builder()
                .db_instance_identifier("orders-db-2")
                .is_cluster_writer(false)
                .build(),
        )
        .build()
}

fn clusters_ok() -> DescribeDbClustersOutput {
    DescribeDbClustersOutput::builder()
        .db_clusters(cluster())
        .build()
}

fn instances_rule() -> Rule {
    mock!(aws_sdk_rds::Client::describe_db_instances).then_output(|| {
        DescribeDbInstancesOutput::builder()
            .db_instances(
                DbInstance::builder()
                    .db_instance_identifier("orders-db-1")
                    .db_cluster_identifier("orders-db")
                    .db_instance_status("available")
                    .availability_zone("us-east-1a")
                    .build(),
            )
            .build()
    })
}

fn throttled() -> DescribeDBClustersError {
    DescribeDBClustersError::generic(
        ErrorMetadata::builder()
            .code("Throttling")
            .message("Rate exceeded")
            .build(),
    )
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_with_backoff_then_succeeds() {
    let describe = mock!(aws_sdk_rds::Client::describe_db_clusters)
        .sequence()
        .error(throttled)
        .times(2)
        .output(clusters_ok)
        .build();
    let instances = instances_rule();
    let p = provider(&[&describe, &instances]);
    let t0 = tokio::time::Instant::now();
    let v = p
        .observe_json("db.cluster", &json!({"cluster": "orders-db"}))
        .await
        .expect("retried until it succeeded");
    assert_eq!(v["writer"], "orders-db-1");
    assert_eq!(v["writable"], true);
    assert_eq!(
        describe.num_calls(),
        3,
        "two throttled attempts, then success"
    );
    // Backoff 1s then 2s, on the tokio clock.
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    let notes: Vec<String> = p.drain_events().into_iter().map(|e| e.message).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("attempt 1 of 4") && notes[0].contains("retrying in 1s"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains("attempt 2 of 4") && notes[1].contains("retrying in 2s"),
        "{notes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_past_the_bound_is_a_clear_error() {
    let describe = mock!(aws_sdk_rds::Client::describe_db_clusters).then_error(throttled);
    let p = provider(&[&describe]);
    let t0 = tokio::time::Instant::now();
    let e = p
        .observe_json("db.cluster", &json!({"cluster": "orders-db"}))
        .await
        .unwrap_err();
    assert_eq!(describe.num_calls(), 4, "aws.retries (4) attempts in all");
    assert_eq!(t0.elapsed(), Duration::from_secs(1 + 2 + 4));
    let (ErrorKind::Throttled, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(m.contains("`rds:DescribeDBClusters`"), "{m}");
    assert!(
        m.contains("throttled by AWS (Throttling: Rate exceeded)"),
        "{m}"
    );
    assert!(m.contains("gave up after 4 attempts over 7s"), "{m}");
    assert!(m.contains("raise `aws.retries`"), "{m}");
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried() {
    let describe = mock!(aws_sdk_rds::Client::describe_db_clusters)
        .sequence()
        .http_status(503, None)
        .output(clusters_ok)
        .build();
    let instances = instances_rule();
    let p = provider(&[&describe, &instances]);
    let v = p
        .observe_json("db.cluster", &json!({"cluster": "orders-db"}))
        .await
        .expect("503 retried");
    assert_eq!(v["status"], "available");
    assert_eq!(describe.num_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn access_denied_names_the_iam_action_and_the_cluster_arn() {
    let describe = mock!(aws_sdk_rds::Client::describe_db_clusters).then_output(clusters_ok);
    let failover = mock!(aws_sdk_rds::Client::failover_db_cluster).then_error(|| {
        FailoverDBClusterError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User: arn:aws:sts::123456789012:assumed-role/drills/firedrill-x is not authorized to perform: rds:FailoverDBCluster")
                .build(),
        )
    });
    let p = provider(&[&describe, &failover]);
    let e = p
        .inject_json("db.cluster_failover", &json!({"cluster": "orders-db"}))
        .await
        .unwrap_err();
    assert_eq!(failover.num_calls(), 1, "a denial is not retried");
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(m.contains("may not `rds:FailoverDBCluster` on `arn:aws:rds:us-east-1:123456789012:cluster:orders-db`"), "{m}");
    assert!(m.contains("grant `rds:FailoverDBCluster`"), "{m}");
}

#[tokio::test(start_paused = true)]
async fn a_denied_read_in_preflight_names_the_read_action() {
    let sts = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
        aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
            .account("123456789012")
            .build()
    });
    let describe = mock!(aws_sdk_rds::Client::describe_db_clusters).then_error(|| {
        DescribeDBClustersError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("no")
                .build(),
        )
    });
    let p = provider(&[&sts, &describe]);
    let calls = vec![
        Call::new(
            "step `failover` (steps[0])".into(),
            "db.cluster_failover",
            json!({"cluster": "orders-db"}),
            true,
        )
        .unwrap(),
    ];
    let problems = p.preflight(&calls).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].owner, "step `failover` (steps[0])");
    let m = problems[0].error.to_string();
    assert!((problems[0].error).kind == ErrorKind::Denied, "{m}");
    // The account learned from STS completes the ARN.
    assert!(
        m.contains(
            "`rds:DescribeDBClusters` on `arn:aws:rds:us-east-1:123456789012:cluster:orders-db`"
        ),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failover_returns_once_the_writer_moved() {
    // The writer moves on the third describe after the call: the wait polls every 10s.
    let moved = || {
        let mut c = cluster();
        c.db_cluster_members = Some(vec![
            DbClusterMember::builder()
                .db_instance_identifier("orders-db-1")
                .is_cluster_writer(false)
                .build(),
            DbClusterMember::builder()
                .db_instance_identifier("orders-db-2")
                .is_cluster_writer(true)
                .build(),
        ]);
        DescribeDbClustersOutput::builder().db_clusters(c).build()
    };
    let failing_over = || {
        let mut c = cluster();
        c.status = Some("failing-over".into());
        DescribeDbClustersOutput::builder().db_clusters(c).build()
    };
    let describe = mock!(aws_sdk_rds::Client::describe_db_clusters)
        .sequence()
        .output(clusters_ok)
        .output(failing_over)
        .times(2)
        .output(moved)
        .repeatedly()
        .build();
    let failover = mock!(aws_sdk_rds::Client::failover_db_cluster)
        .then_output(|| FailoverDbClusterOutput::builder().build());
    let instances = mock!(aws_sdk_rds::Client::describe_db_instances).then_output(|| {
        DescribeDbInstancesOutput::builder()
            .db_instances(
                DbInstance::builder()
                    .db_instance_identifier("orders-db-2")
                    .db_cluster_identifier("orders-db")
                    .db_instance_status("available")
                    .availability_zone("us-east-1b")
                    .build(),
            )
            .build()
    });
    let p = provider(&[&describe, &failover, &instances]);
    let t0 = tokio::time::Instant::now();
    let out = p
        .inject_json("db.cluster_failover", &json!({"cluster": "orders-db"}))
        .await
        .unwrap();
    assert_eq!(out["previous_writer"], "orders-db-1");
    assert_eq!(out["new_writer"], "orders-db-2");
    assert_eq!(out["new_writer_zone"], "us-east-1b");
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(20),
        "two polls saw failing-over"
    );
    let notes: Vec<String> = p.drain_events().into_iter().map(|e| e.message).collect();
    assert!(
        notes.iter().any(|n| n.contains("failing-over")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("available (writer orders-db-2)")),
        "{notes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn bad_names_and_arns_fail_before_any_call() {
    let p = provider(&[]);
    for (name, want) in [
        ("orders_db", "not a valid RDS cluster identifier"),
        (
            "arn:aws:rds:us-east-1:123456789012:db:orders-db",
            "is not an RDS cluster ARN",
        ),
        (
            "arn:aws:rds:eu-west-1:123456789012:cluster:orders-db",
            "is in eu-west-1, which is neither `aws.region` (us-east-1) nor `aws.dr_region` (us-west-2)",
        ),
    ] {
        let e = p
            .observe_json("db.cluster", &json!({"cluster": name}))
            .await
            .unwrap_err();
        assert!((e).kind == ErrorKind::NotFound, "{e:?}");
        assert!(e.to_string().contains(want), "{name}: {e}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_unknown_cluster_is_looked_for_in_both_regions() {
    let describe = mock!(aws_sdk_rds::Client::describe_db_clusters).then_error(|| {
        DescribeDBClustersError::generic(
            ErrorMetadata::builder()
                .code("DBClusterNotFoundFault")
                .message("DBCluster orders-dbx not found.")
                .build(),
        )
    });
    let p = provider(&[&describe]);
    let e = p
        .observe_json("db.cluster", &json!({"cluster": "orders-dbx"}))
        .await
        .unwrap_err();
    assert_eq!(describe.num_calls(), 2, "primary, then DR region");
    let m = e.to_string();
    assert!((e).kind == ErrorKind::NotFound, "{m}");
    assert!(
        m.contains("cluster `orders-dbx` does not exist in us-east-1 or us-west-2"),
        "{m}"
    );
}

#[tokio::test]
async fn the_sts_session_is_named_after_the_run() {
    let p = AwsProvider::from_configs(
        AwsSettings::for_region("us-east-1"),
        config("us-east-1"),
        None,
    );
    assert_eq!(p.session_name(), "firedrill-preflight");
    p.start(&crate::backend::RunContext {
        clock: crate::engine::clock::RunClock::start_now(),
        run_id: "20261122T101500Z-db-failover-00af".into(),
        experiment: "db-failover".into(),
    });
    assert_eq!(
        p.session_name(),
        "firedrill-20261122T101500Z-db-failover-00af"
    );
}

/// The AWS backend speaks the sim's vocabulary: every name it implements is in `vocab`, and the
/// simulated estate serves the same names (including the probes added for AWS).
#[tokio::test(start_paused = true)]
async fn the_aws_vocabulary_is_the_sims() {
    use super::provider::{ACTIONS, PROBES};
    for a in ACTIONS {
        assert!(
            crate::lang::vocab::action(a).is_some(),
            "{a} is not in vocab"
        );
    }
    for p in PROBES {
        assert!(
            crate::lang::vocab::probe(p).is_some(),
            "{p} is not in vocab"
        );
    }
    let env = crate::lang::environment::builtin(&[]).unwrap();
    let sim = crate::backend::sim::SimProvider::new(&env, None).unwrap();
    let samples = [
        ("db.cluster_failover", json!({"cluster": "orders-db"})),
        (
            "db.instance_reboot",
            json!({"instance": "orders-db-2", "force_failover": false}),
        ),
        (
            "db.global_switchover",
            json!({"global_cluster": "orders-global", "target_cluster": "orders-db-dr"}),
        ),
        (
            "db.global_failover",
            json!({"global_cluster": "orders-global", "target_cluster": "orders-db-dr", "allow_data_loss": true}),
        ),
        (
            "db.detach_and_promote",
            json!({"global_cluster": "orders-global", "cluster": "orders-db-dr"}),
        ),
        (
            "db.point_in_time_restore",
            json!({"source_cluster": "orders-db", "target_cluster": "orders-db-restored"}),
        ),
        ("db.cluster_outage", json!({"cluster": "orders-db"})),
        (
            "dns.failover",
            json!({"record": "api.example.com", "to": "secondary"}),
        ),
    ];
    // `fis.experiment` takes a whole template; `sim::fis` tests it on the estate.
    assert_eq!(
        samples.len(),
        ACTIONS.iter().filter(|a| !a.starts_with("fis.")).count()
    );
    for (a, p) in &samples {
        sim.describe_json(a, p)
            .await
            .unwrap_or_else(|e| panic!("the sim does not serve {a}: {e}"));
    }
    let i = sim
        .observe_json("db.instance", &json!({"instance": "orders-db-1"}))
        .await
        .unwrap();
    assert_eq!(i["status"], "available");
    assert_eq!(i["is_writer"], true);
    assert_eq!(i["zone"], "us-east-1a");
    let r = sim
        .observe_json("db.instance", &json!({"instance": "orders-db-dr-1"}))
        .await
        .unwrap();
    assert_eq!(r["is_writer"], false, "a global secondary has no writer");
    let h = sim
        .observe_json("dns.health_check", &json!({"record": "api.example.com"}))
        .await
        .unwrap();
    assert_eq!(h["healthy"], true);
    let e = sim
        .observe_json("dns.health_check", &json!({"health_check_id": "abc"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("use `record`"), "{e}");
    // Losing the writer's zone shows on the instance.
    sim.inject_json("az.power_interruption", &json!({"zone": "us-east-1a"}))
        .await
        .unwrap();
    let i = sim
        .observe_json("db.instance", &json!({"instance": "orders-db-1"}))
        .await
        .unwrap();
    assert_eq!(i["status"], "unavailable");
    assert_eq!(i["available"], false);
}
