//! moto server for the AWS tests: its URL, a lock that serializes moto tests within a test
//! binary (cargo runs binaries one after another), a reset between tests, SDK clients over a
//! transport that does real HTTP in zero virtual time, and fixtures.
//!
//! **Virtual time with real IO.** The drills and waits run on tokio's paused clock, which jumps
//! to the next timer whenever the runtime is idle, including while a request is in flight, so
//! timeouts would fire spuriously. [`Bridge`] sends each request from a `spawn_blocking` task
//! (tokio does not auto-advance a paused clock while a blocking task runs) on a separate,
//! unpaused IO runtime, and hands back the fully read response. moto answers in milliseconds of
//! wall time; on the drill's clock each call takes no time at all.
//!
//! [`Bridge`] can also answer chosen requests itself (`fault`), e.g. a 403 AccessDenied for the
//! second Route 53 change, without moto ever seeing them: the SDK parses a real wire-format
//! error, so the error mapping is tested end to end. It can also leave chosen requests
//! unanswered (`hang`), so the SDK's attempt timeout ends them (on the paused clock, at once).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use firedrill::backend::aws::clients::{self, Clients};
use std::io::{Read, Write};
use std::sync::{Arc, LazyLock, Mutex};

/// Where `./scripts/test` tells the tests moto listens.
pub const MOTO_ENV: &str = "FIREDRILL_MOTO_URL";

/// moto's URL; a test without it fails (never skips).
pub fn moto_url() -> String {
    match std::env::var(MOTO_ENV) {
        Ok(u) if !u.is_empty() => u.trim_end_matches('/').to_string(),
        _ => panic!(
            "{MOTO_ENV} is not set: the AWS tests need a moto server. Run the tests with ./scripts/test, which installs moto into .venv, starts it and sets {MOTO_ENV}"
        ),
    }
}

/// Tests that measure real local servers on wall time (the PostgreSQL lab, the HTTP service lab)
/// run one at a time, so their timings do not compete for the CPU (CI has 2 cores): starting
/// PostgreSQL clusters next to a test that times a kill to within 300 ms made that test miss.
pub static WALL_LAB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One moto server serves every AWS test of the binary: whoever resets it holds this.
pub static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Exclusive use of moto for one test, from a clean state.
pub struct Moto {
    _guard: tokio::sync::MutexGuard<'static, ()>,
    pub url: String,
}

/// Take the moto lock and reset moto (`POST /moto-api/reset`).
pub async fn moto() -> Moto {
    let url = moto_url();
    let guard = LOCK.lock().await;
    let u = url.clone();
    tokio::task::spawn_blocking(move || post(&u, "/moto-api/reset", ""))
        .await
        .expect("reset task")
        .unwrap_or_else(|e| {
            panic!("cannot reset moto at {url}: {e} (is ./scripts/test's moto_server running?)")
        });
    Moto { _guard: guard, url }
}

/// A minimal blocking HTTP/1.1 POST (moto's own API), returning the body.
pub fn post(base: &str, path: &str, body: &str) -> Result<String, String> {
    let hostport = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut s = std::net::TcpStream::connect(&hostport).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    if !out.starts_with("HTTP/1.1 200") && !out.starts_with("HTTP/1.0 200") {
        return Err(out.lines().next().unwrap_or_default().to_string());
    }
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// The IO runtime the bridge sends requests on (never paused).
static IO: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("io runtime")
});

type Fault = Arc<dyn Fn(&HttpRequest) -> Option<HttpResponse> + Send + Sync>;
type Hang = Arc<dyn Fn(&HttpRequest) -> bool + Send + Sync>;

/// An HTTP client doing real IO in zero virtual time (see the module docs).
#[derive(Clone)]
pub struct Bridge {
    inner: SharedHttpClient,
    faults: Arc<Mutex<Vec<Fault>>>,
    hangs: Arc<Mutex<Vec<Hang>>>,
    /// Every request sent (method and URI), for assertions.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge::new()
    }
}

impl Bridge {
    pub fn new() -> Bridge {
        Bridge {
            inner: clients::https_client(),
            faults: Arc::default(),
            hangs: Arc::default(),
            log: Arc::default(),
        }
    }

    /// Answer requests for which `f` returns a response instead of sending them.
    pub fn fault(&self, f: impl Fn(&HttpRequest) -> Option<HttpResponse> + Send + Sync + 'static) {
        self.faults.lock().unwrap().push(Arc::new(f));
    }

    /// Never answer requests for which `f` returns true (the request was sent, the answer is
    /// lost): the SDK's attempt timeout ends the call, as with a real network.
    pub fn hang(&self, f: impl Fn(&HttpRequest) -> bool + Send + Sync + 'static) {
        self.hangs.lock().unwrap().push(Arc::new(f));
    }

    pub fn shared(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }
}

impl HttpClient for Bridge {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(BridgeConnector {
            inner: self.inner.http_connector(settings, components),
            faults: self.faults.clone(),
            hangs: self.hangs.clone(),
            log: self.log.clone(),
        })
    }
}

#[derive(Clone)]
struct BridgeConnector {
    inner: SharedHttpConnector,
    faults: Arc<Mutex<Vec<Fault>>>,
    hangs: Arc<Mutex<Vec<Hang>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for BridgeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BridgeConnector")
    }
}

impl HttpConnector for BridgeConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).to_string())
            .unwrap_or_default();
        let action = body
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .map(|a| format!(" {a}"))
            .unwrap_or_default();
        self.log
            .lock()
            .unwrap()
            .push(format!("{} {}{action}", request.method(), request.uri()));
        let hangs: Vec<Hang> = self.hangs.lock().unwrap().clone();
        if hangs.iter().any(|h| h(&request)) {
            return HttpConnectorFuture::new(std::future::pending());
        }
        let faults: Vec<Fault> = self.faults.lock().unwrap().clone();
        for f in faults {
            if let Some(resp) = f(&request) {
                return HttpConnectorFuture::ready(Ok(resp));
            }
        }
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            tokio::task::spawn_blocking(move || {
                IO.block_on(async move {
                    let resp = inner.call(request).await?;
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let bytes = ByteStream::new(resp.into_body())
                        .collect()
                        .await
                        .map_err(|e| ConnectorError::io(e.into()))?
                        .into_bytes();
                    let mut out = HttpResponse::new(status, SdkBody::from(bytes));
                    *out.headers_mut() = headers;
                    Ok(out)
                })
            })
            .await
            .map_err(|e| ConnectorError::other(e.into(), None))?
        })
    }
}

/// A canned AWS query-protocol (RDS, STS) error response.
pub fn query_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>firedrill-test</RequestId></ErrorResponse>"
    );
    HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body))
}

/// A canned Route 53 (REST-XML) error response.
pub fn route53_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>firedrill-test</RequestId></ErrorResponse>"
    );
    HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body))
}

/// SDK clients on moto through a bridge.
pub fn clients(m: &Moto, bridge: &Bridge, region: &str, dr: Option<&str>) -> Clients {
    Clients::for_endpoint_with(&m.url, region, dr, bridge.shared())
}

// ----- fixtures (created through the SDK, like a user's estate) ----------------------------------

pub async fn global_cluster(c: &Clients, name: &str) {
    c.rds
        .create_global_cluster()
        .global_cluster_identifier(name)
        .engine("aurora-postgresql")
        .send()
        .await
        .expect("create global cluster");
}

/// An Aurora PostgreSQL cluster with instances `(name, zone)`; the first is the writer. A
/// global database's secondary (`secondary`) has no master user of its own.
pub async fn aurora(
    rds: &aws_sdk_rds::Client,
    name: &str,
    instances: &[(&str, &str)],
    global: Option<&str>,
    secondary: bool,
) {
    let mut b = rds
        .create_db_cluster()
        .db_cluster_identifier(name)
        .engine("aurora-postgresql")
        .set_global_cluster_identifier(global.map(str::to_string));
    if !secondary {
        b = b
            .master_username("orders")
            .master_user_password("not-a-secret-1");
    }
    b.send().await.expect("create cluster");
    for (i, zone) in instances {
        rds.create_db_instance()
            .db_instance_identifier(*i)
            .db_cluster_identifier(name)
            .engine("aurora-postgresql")
            .db_instance_class("db.r6g.large")
            .availability_zone(*zone)
            .send()
            .await
            .expect("create instance");
    }
}

/// The sim's database estate in moto: `orders-global` with `orders-db` (us-east-1, three
/// instances) and `orders-db-dr` (us-west-2, one instance).
pub async fn orders_estate(c: &Clients) {
    global_cluster(c, "orders-global").await;
    aurora(
        &c.rds,
        "orders-db",
        &[
            ("orders-db-1", "us-east-1a"),
            ("orders-db-2", "us-east-1b"),
            ("orders-db-3", "us-east-1c"),
        ],
        Some("orders-global"),
        false,
    )
    .await;
    aurora(
        &c.rds_dr,
        "orders-db-dr",
        &[("orders-db-dr-1", "us-west-2a")],
        Some("orders-global"),
        true,
    )
    .await;
}

/// A hosted zone `example.com` with failover records for `record`: PRIMARY `us-east-1` (with a
/// health check when `health_check`) and SECONDARY `us-west-2`. Returns (zone id, health check id).
pub async fn failover_record(
    c: &Clients,
    record: &str,
    health_check: bool,
) -> (String, Option<String>) {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
        ResourceRecordSet, ResourceRecordSetFailover, RrType,
    };
    let zone = c
        .route53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference(format!("firedrill-{record}"))
        .send()
        .await
        .expect("create zone");
    let zone_id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let hc = if health_check {
        let out = c
            .route53
            .create_health_check()
            .caller_reference(format!("hc-{record}"))
            .health_check_config(
                HealthCheckConfig::builder()
                    .r#type(HealthCheckType::Https)
                    .fully_qualified_domain_name("east.example.com")
                    .port(443)
                    .resource_path("/health")
                    .request_interval(30)
                    .failure_threshold(3)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create health check");
        Some(out.health_check().unwrap().id().to_string())
    } else {
        None
    };
    let rr = |set: &str, role: ResourceRecordSetFailover, ip: &str, hc: Option<String>| {
        ResourceRecordSet::builder()
            .name(record)
            .r#type(RrType::A)
            .set_identifier(set)
            .failover(role)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value(ip).build().unwrap())
            .set_health_check_id(hc)
            .build()
            .unwrap()
    };
    let changes = vec![
        Change::builder()
            .action(ChangeAction::Create)
            .resource_record_set(rr(
                "us-east-1",
                ResourceRecordSetFailover::Primary,
                "10.0.0.10",
                hc.clone(),
            ))
            .build()
            .unwrap(),
        Change::builder()
            .action(ChangeAction::Create)
            .resource_record_set(rr(
                "us-west-2",
                ResourceRecordSetFailover::Secondary,
                "10.1.0.10",
                None,
            ))
            .build()
            .unwrap(),
    ];
    c.route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(
            ChangeBatch::builder()
                .set_changes(Some(changes))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create records");
    (zone_id, hc)
}

// ----- what moto cannot do: global switchover and failover (aws-smithy-mocks) ---------------------

use aws_sdk_rds::types::{GlobalCluster, GlobalClusterMember};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};

/// An RDS client on moto whose calls matching `rules` are answered by aws-smithy-mocks; every
/// other call passes through to moto (`allow_passthrough`).
pub fn rds_with_rules(m: &Moto, b: &Bridge, region: &str, rules: &[&Rule]) -> aws_sdk_rds::Client {
    let cfg = clients::test_config(&m.url, region, b.shared());
    let mut i = MockResponseInterceptor::new()
        .rule_mode(RuleMode::MatchAny)
        .allow_passthrough();
    for r in rules {
        i = i.with_rule(r);
    }
    aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&cfg)
            .interceptor(i)
            .build(),
    )
}

/// moto 5.2.5 implements neither FailoverGlobalCluster nor SwitchoverGlobalCluster (it answers
/// HTML 500). These rules answer them with AWS's documented output, and from then on answer
/// DescribeGlobalClusters with the topology after the change: the fixture's members, the target
/// now the writer. Everything else (the clusters, their instances) is moto's own state.
pub struct GlobalMock {
    pub failover: Rule,
    pub switchover: Rule,
    pub describe: Rule,
    /// The ARN the last failover or switchover targeted.
    pub moved_to: Arc<Mutex<Option<String>>>,
    /// AllowDataLoss of each FailoverGlobalCluster call.
    pub allow_data_loss: Arc<Mutex<Vec<Option<bool>>>>,
}

pub fn global_mock(global: &str, members: &[&str]) -> GlobalMock {
    let moved_to: Arc<Mutex<Option<String>>> = Arc::default();
    let allow: Arc<Mutex<Vec<Option<bool>>>> = Arc::default();
    let members: Vec<String> = members.iter().map(|s| s.to_string()).collect();
    let topology = {
        let (global, members, moved_to) = (global.to_string(), members.clone(), moved_to.clone());
        move || {
            let writer = moved_to.lock().unwrap().clone();
            let mut g = GlobalCluster::builder()
                .global_cluster_identifier(&global)
                .global_cluster_arn(format!("arn:aws:rds::123456789012:global-cluster:{global}"))
                .status("available")
                .engine("aurora-postgresql");
            for m in &members {
                g = g.global_cluster_members(
                    GlobalClusterMember::builder()
                        .db_cluster_arn(m)
                        .is_writer(Some(m) == writer.as_ref())
                        .build(),
                );
            }
            g.build()
        }
    };
    let failover = {
        let (t, moved_to, allow) = (topology.clone(), moved_to.clone(), allow.clone());
        mock!(aws_sdk_rds::Client::failover_global_cluster).then_compute_output(move |input| {
            *moved_to.lock().unwrap() = input.target_db_cluster_identifier().map(str::to_string);
            allow.lock().unwrap().push(input.allow_data_loss());
            aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput::builder()
                .global_cluster(t())
                .build()
        })
    };
    let switchover = {
        let (t, moved_to) = (topology.clone(), moved_to.clone());
        mock!(aws_sdk_rds::Client::switchover_global_cluster).then_compute_output(move |input| {
            *moved_to.lock().unwrap() = input.target_db_cluster_identifier().map(str::to_string);
            aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterOutput::builder()
                .global_cluster(t())
                .build()
        })
    };
    let describe = {
        let (t, moved) = (topology.clone(), moved_to.clone());
        mock!(aws_sdk_rds::Client::describe_global_clusters)
            .match_requests(move |_| moved.lock().unwrap().is_some())
            .then_compute_output(move |_| {
                aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput::builder()
                    .global_clusters(t())
                    .build()
            })
    };
    GlobalMock {
        failover,
        switchover,
        describe,
        moved_to,
        allow_data_loss: allow,
    }
}

impl GlobalMock {
    /// Put the rules on both regions' RDS clients.
    pub fn install(&self, m: &Moto, b: &Bridge, c: &mut Clients) {
        let rules = [&self.failover, &self.switchover, &self.describe];
        c.rds = rds_with_rules(m, b, &c.region, &rules);
        if let Some(dr) = c.dr_region.clone() {
            c.rds_dr = rds_with_rules(m, b, &dr, &rules);
        }
    }
}

pub const ORDERS_DB_ARN: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-db";
pub const ORDERS_DB_DR_ARN: &str = "arn:aws:rds:us-west-2:123456789012:cluster:orders-db-dr";
