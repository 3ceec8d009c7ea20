//! The Kubernetes backend's error paths and "refuse before touching" guarantees, through kube-rs
//! against the simulated estate served as a Kubernetes API (`KubeApi::client`: real HTTP/1.1
//! over an in-memory duplex, on a paused clock). The API's test controls make it misbehave as a
//! real control plane can — injected faults (401, 403, 409, 429, 500, a server that never
//! answers), RBAC rules answered by its SelfSubjectAccessReview or switched off, another writer
//! racing firedrill on a node — and its request log shows what was (and was not) sent.
//!
//! The estate: three zones of two nodes (`zone-a-1` ... `zone-c-2`, 16 GiB each), `api` (6
//! replicas, one per node) and `worker` (2, on `zone-a-1` and `zone-b-1`) in `web`, an `agent`
//! DaemonSet in `kube-system`; every pod requests 2 GiB and starts in 30s, no budgets.

use firedrill::backend::k8s::{KubeProvider, KubernetesSettings, from_client};
use firedrill::backend::sim::SharedEstate;
use firedrill::backend::{Call, ErrorKind, Provider, ProviderExt, RunContext};
use firedrill::engine::clock::RunClock;
use firedrill::sim::kube_api::{Fault, KubeApi, RecordedRequest};
use firedrill::sim::model::{
    ClusterParams, DEFAULT_TERMINATION_GRACE, DeploymentParams, Estate, NodeObj, Obj, ObjKind,
    PodObj, RegionParams, RegionRole, SimParams, Taint, TaintEffect, WorkloadKind, WorkloadObj,
};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;

const CLUSTER: &str = "prod";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn workload(name: &str, ns: &str, kind: WorkloadKind, replicas: Option<u32>) -> DeploymentParams {
    DeploymentParams {
        name: name.into(),
        kind,
        namespace: ns.into(),
        labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        replicas,
        startup: secs(30),
        startup_jitter: Duration::ZERO,
        memory_gib: 2.0,
        termination_grace: DEFAULT_TERMINATION_GRACE,
        pdb: None,
    }
}

/// The estate of the module docs, with `extra` Deployments scheduled before the others.
fn params_with(extra: Vec<DeploymentParams>) -> SimParams {
    let mut deployments = extra;
    deployments.extend([
        workload("api", "web", WorkloadKind::Deployment, Some(6)),
        workload("worker", "web", WorkloadKind::Deployment, Some(2)),
        workload("agent", "kube-system", WorkloadKind::DaemonSet, None),
    ]);
    SimParams {
        seed: 7,
        regions: vec![RegionParams {
            name: "lab-1".into(),
            role: RegionRole::Primary,
            zones: vec!["zone-a".into(), "zone-b".into(), "zone-c".into()],
        }],
        kubernetes: vec![ClusterParams {
            name: CLUSTER.into(),
            region: "lab-1".into(),
            nodes_per_zone: 2,
            pods_per_node: 8,
            node_memory_gib: 16.0,
            node_failure_detection: secs(40),
            pod_eviction_timeout: secs(60),
            reschedule_delay: secs(2),
            deployments,
        }],
        databases: vec![],
        dns: vec![],
        services: vec![],
        alerts: vec![],
    }
}

fn settings() -> KubernetesSettings {
    KubernetesSettings {
        cluster: Some(CLUSTER.into()),
        server: Some("https://k8s.example:6443".into()),
        ..Default::default()
    }
}

/// One served estate and a provider over it.
struct Rig {
    shared: SharedEstate,
    api: KubeApi,
    k: KubeProvider,
    clock: RunClock,
}

fn rig_with(params: SimParams, s: KubernetesSettings) -> Rig {
    let shared = SharedEstate::new(Estate::from_params(params).unwrap());
    let clock = RunClock::start_now();
    shared.start(clock);
    let api = KubeApi::new(shared.clone(), CLUSTER).unwrap();
    let k = from_client(api.client(), s).with_seed(7);
    Rig {
        shared,
        api,
        k,
        clock,
    }
}

fn rig() -> Rig {
    rig_with(params_with(vec![]), settings())
}

impl Rig {
    /// Act on the estate directly, as its controllers or another client would.
    fn model<T>(&self, f: impl FnOnce(&mut Estate, Duration) -> T) -> T {
        let now = self.shared.now();
        let out = f(&mut self.shared.lock(), now);
        self.shared.notify_changed();
        out
    }

    fn objects(&self, kind: ObjKind) -> Vec<(u64, Obj)> {
        let now = self.shared.now();
        self.shared.lock().objects(now, CLUSTER, kind).unwrap()
    }

    fn node(&self, name: &str) -> NodeObj {
        self.objects(ObjKind::Node)
            .into_iter()
            .find_map(|(_, o)| match o {
                Obj::Node(n) if n.name == name => Some(n),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn node_rv(&self, name: &str) -> String {
        self.objects(ObjKind::Node)
            .into_iter()
            .find(|(_, o)| o.name() == name)
            .map(|(rv, _)| rv.to_string())
            .unwrap()
    }

    fn all_pods(&self) -> Vec<PodObj> {
        self.objects(ObjKind::Pod)
            .into_iter()
            .filter_map(|(_, o)| match o {
                Obj::Pod(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// Pods of a workload that are not Terminating.
    fn live(&self, app: &str) -> Vec<PodObj> {
        self.all_pods()
            .into_iter()
            .filter(|p| p.workload == app && p.deletion.is_none())
            .collect()
    }

    /// `namespace/name` of the live pod of `app` on `node`.
    fn pod_on(&self, node: &str, app: &str) -> String {
        let p = self
            .live(app)
            .into_iter()
            .find(|p| p.node.as_deref() == Some(node))
            .unwrap_or_else(|| panic!("no {app} pod on {node}"));
        format!("{}/{}", p.namespace, p.name)
    }

    /// `namespace/name` of every live pod on the nodes, node by node (in namespace and name
    /// order there), split into (not DaemonSet, DaemonSet): what a drain evicts and skips.
    fn on_nodes(&self, nodes: &[&str]) -> (Vec<String>, Vec<String>) {
        let (mut evict, mut skip) = (Vec::new(), Vec::new());
        for n in nodes {
            for p in self
                .all_pods()
                .into_iter()
                .filter(|p| p.node.as_deref() == Some(*n) && p.deletion.is_none())
            {
                let r = format!("{}/{}", p.namespace, p.name);
                if p.workload_kind == WorkloadKind::DaemonSet {
                    skip.push(r);
                } else {
                    evict.push(r);
                }
            }
        }
        (evict, skip)
    }

    fn deployment(&self, name: &str) -> WorkloadObj {
        self.objects(ObjKind::Deployment)
            .into_iter()
            .find_map(|(_, o)| match o {
                Obj::Workload(w) if w.name == name => Some(w),
                _ => None,
            })
            .unwrap()
    }

    fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

fn kill(extra: Json) -> Json {
    let mut p = json!({"namespace": "web", "selector": {"app": "api"}});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn taint(key: &str, effect: TaintEffect) -> Taint {
    Taint {
        key: key.into(),
        value: None,
        effect,
        added: None,
    }
}

fn name_of(pod_ref: &str) -> &str {
    pod_ref.rsplit('/').next().unwrap()
}

/// The fixture is what the tests below assume.
#[tokio::test(start_paused = true)]
async fn the_estate_is_laid_out_as_the_tests_assume() {
    let r = rig();
    let nodes: Vec<String> = r
        .objects(ObjKind::Node)
        .into_iter()
        .map(|(_, o)| o.name().to_string())
        .collect();
    assert_eq!(
        nodes,
        [
            "zone-a-1", "zone-a-2", "zone-b-1", "zone-b-2", "zone-c-1", "zone-c-2"
        ]
    );
    for n in &nodes {
        r.pod_on(n, "api");
        r.pod_on(n, "agent");
    }
    let mut workers: Vec<Option<String>> = r.live("worker").into_iter().map(|p| p.node).collect();
    workers.sort();
    assert_eq!(
        workers,
        [Some("zone-a-1".to_string()), Some("zone-b-1".to_string())]
    );
    assert_eq!(r.all_pods().len(), 14);
}

// ---- errors ------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn unauthorized_is_denied_and_names_the_server() {
    let r = rig();
    r.api
        .inject(Fault::status("GET", "/pods", 401, "Unauthorized").always());
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({})))
            .await
            .unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("https://k8s.example:6443 rejected the credentials (401 Unauthorized)"),
        "{m}"
    );
    assert_eq!(r.api.request_count("DELETE"), 0);
}

#[tokio::test(start_paused = true)]
async fn forbidden_names_the_verb_resource_and_namespace() {
    // The access review allows it; the delete itself is refused, by a user of another name.
    let r = rig();
    r.api.inject(
        Fault::status(
            "DELETE",
            "/pods/",
            403,
            "pods \"api-0\" is forbidden: User \"drill-bot\" cannot delete resource \"pods\" in API group \"\" in the namespace \"web\"",
        )
        .always(),
    );
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({})))
            .await
            .unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("RBAC denies `delete` on `pods` in namespace `web`; grant it in a Role bound to user `drill-bot`"),
        "{m}"
    );
    assert!(r.api.request_count("DELETE") > 0, "the delete was sent");
    let alive = r.all_pods().iter().filter(|p| p.deletion.is_none()).count();
    assert_eq!(alive, 14, "nothing deleted");
}

#[tokio::test(start_paused = true)]
async fn an_access_review_denial_refuses_before_any_delete() {
    let r = rig();
    r.api.deny("delete", "pods");
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({"mode": "all"})))
            .await
            .unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("RBAC denies `delete` on `pods` in namespace `web`"),
        "{m}"
    );
    assert!(m.contains("no RBAC policy matched"), "{m}");
    assert_eq!(r.api.mutations(), Vec::<String>::new());
    assert!(
        r.api.requests().iter().any(|q| q.is_access_review()),
        "asked"
    );
    // Preflight reports it too, per call: the kill needs neither evictions nor node patches.
    let r = rig();
    r.api.deny("create", "pods/eviction");
    r.api.deny("patch", "nodes");
    let calls = [
        Call::new("step `kill`".into(), "k8s.pod_kill", kill(json!({})), true).unwrap(),
        Call::new(
            "step `cordon`".into(),
            "k8s.cordon_zone",
            json!({"zone": "zone-a"}),
            true,
        )
        .unwrap(),
    ];
    let problems = r.k.preflight(&calls).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].owner, "step `cordon`");
    assert!(
        problems[0]
            .error
            .to_string()
            .contains("RBAC denies `patch` on `nodes` cluster-wide; grant it in a ClusterRole")
    );
    assert_eq!(r.api.mutations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn without_access_reviews_the_denied_request_itself_is_reported() {
    // A cluster that does not serve SelfSubjectAccessReview (404): nothing can be checked
    // before; the refused write is reported and nothing changed.
    let r = rig();
    r.api.serve_access_reviews(false);
    r.api.deny("patch", "nodes");
    let e =
        r.k.inject_json("k8s.node_cordon", &json!({"node": "zone-a-1"}))
            .await
            .unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("RBAC denies `patch` on `nodes` cluster-wide; grant it in a ClusterRole bound to user `system:serviceaccount:firedrill:drill`"),
        "{m}"
    );
    let reviews: Vec<Option<u16>> = r
        .api
        .requests()
        .iter()
        .filter(|q| q.is_access_review())
        .map(|q| q.status)
        .collect();
    assert!(
        !reviews.is_empty() && reviews.iter().all(|s| *s == Some(404)),
        "{reviews:?}"
    );
    assert!(!r.node("zone-a-1").unschedulable);
}

#[tokio::test(start_paused = true)]
async fn a_missing_node_is_an_invalid_target_listing_the_nodes() {
    let r = rig();
    let e =
        r.k.inject_json("k8s.node_cordon", &json!({"node": "zone-a-9"}))
            .await
            .unwrap_err();
    let (ErrorKind::NotFound, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("node `zone-a-9` not found; nodes: zone-a-1, zone-a-2"),
        "{m}"
    );
    assert_eq!(r.api.request_count("PATCH"), 0);
    // A missing workload names the ones that exist.
    let e =
        r.k.inject_json(
            "k8s.scale",
            &json!({"namespace": "web", "deployment": "apii", "replicas": 2}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "deployment `apii` not found in namespace `web`; deployments there: api, worker"
    );
    assert_eq!(r.api.mutations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_conflict_is_retried_after_reading_the_node_again() {
    let r = rig();
    r.api.inject(
        Fault::status(
            "PATCH",
            "/nodes/zone-a-1",
            409,
            "the object has been modified",
        )
        .times(2),
    );
    let out =
        r.k.inject_json("k8s.node_cordon", &json!({"node": "zone-a-1"}))
            .await
            .unwrap();
    assert_eq!(out["cordoned"], json!(["zone-a-1"]));
    let calls: Vec<(String, Option<u16>)> = r
        .requests_to("/api/v1/nodes/zone-a-1")
        .into_iter()
        .map(|q| (q.method, q.status))
        .collect();
    let want: Vec<(String, Option<u16>)> = [
        ("GET", 200),
        ("GET", 200),
        ("PATCH", 409),
        ("GET", 200),
        ("PATCH", 409),
        ("GET", 200),
        ("PATCH", 200),
    ]
    .into_iter()
    .map(|(m, s)| (m.to_string(), Some(s)))
    .collect();
    assert_eq!(calls, want);
    assert!(r.node("zone-a-1").unschedulable);
}

#[tokio::test(start_paused = true)]
async fn a_real_resource_version_conflict_is_resolved_by_rereading() {
    // The node changes between firedrill's read and its write: the server answers 409 because
    // the patch carries the resourceVersion read; the retry re-reads and keeps the new taint.
    let r = rig();
    let before = r.node_rv("zone-a-2");
    // Read 1: resolving the target; read 2: before the write.
    r.api
        .change_taints_after_reads("zone-a-2", 2, vec![taint("other", TaintEffect::NoSchedule)]);
    let out =
        r.k.inject_json(
            "k8s.node_taint",
            &json!({"node": "zone-a-2", "key": "chaos", "effect": "NoSchedule"}),
        )
        .await
        .unwrap();
    assert_eq!(out["tainted"], json!(["zone-a-2"]));
    let keys: Vec<String> = r
        .node("zone-a-2")
        .taints
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(keys, ["other", "chaos"]);
    let patches: Vec<(String, Option<u16>)> = r
        .requests_to("/api/v1/nodes/zone-a-2")
        .into_iter()
        .filter(|q| q.method == "PATCH")
        .map(|q| {
            (
                q.body["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                q.status,
            )
        })
        .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert_eq!(
        (patches[0].0.as_str(), patches[0].1),
        (before.as_str(), Some(409)),
        "the first write carried the version read before the other writer's change"
    );
    assert_ne!(patches[1].0, before, "the second carried the new version");
    assert_eq!(patches[1].1, Some(200));
}

#[tokio::test(start_paused = true)]
async fn an_eviction_refused_by_a_budget_is_retried_until_it_passes() {
    let r = rig();
    let api = r.pod_on("zone-c-1", "api");
    let agent = r.pod_on("zone-c-1", "agent");
    let eviction = format!("/api/v1/namespaces/web/pods/{}/eviction", name_of(&api));
    r.api.inject(
        Fault::status(
            "POST",
            &eviction,
            429,
            "Cannot evict pod as it would violate the pod's disruption budget.",
        )
        .times(3),
    );
    let t0 = tokio::time::Instant::now();
    let out =
        r.k.inject_json("k8s.node_drain", &json!({"node": "zone-c-1"}))
            .await
            .unwrap();
    assert_eq!(out["cordoned"], json!(["zone-c-1"]));
    assert_eq!(out["evicted"], json!([api]));
    assert_eq!(out["skipped"][0]["pod"], agent.as_str());
    assert_eq!(out["skipped"][0]["reason"], "DaemonSet pod");
    // Three refusals, each retried after kubectl's fixed 5s.
    assert_eq!(
        t0.elapsed(),
        3 * firedrill::lang::kubernetes::EVICTION_RETRY
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(15));
    let evictions = r.requests_to(&eviction);
    assert_eq!(
        evictions.iter().map(|q| q.status).collect::<Vec<_>>(),
        [Some(429), Some(429), Some(429), Some(201)]
    );
    assert_eq!(evictions[0].body["kind"], "Eviction");
    assert_eq!(evictions[0].body["apiVersion"], "policy/v1");
    assert!(
        r.live("api").iter().all(|p| p.name != name_of(&api)),
        "evicted: Terminating"
    );
    assert!(
        r.live("agent").iter().any(|p| p.name == name_of(&agent)),
        "DaemonSet pods stay"
    );
}

#[tokio::test(start_paused = true)]
async fn a_drain_blocked_past_its_timeout_fails_and_uncordons_what_it_cordoned() {
    let r = rig();
    let api = r.pod_on("zone-c-1", "api");
    r.api.inject(
        Fault::status(
            "POST",
            &format!("/pods/{}/eviction", name_of(&api)),
            429,
            "would violate the pod's disruption budget",
        )
        .always(),
    );
    let params = json!({"node": "zone-c-1", "timeout": "30s"});
    let t0 = tokio::time::Instant::now();
    let e =
        r.k.inject_json("k8s.node_drain", &params)
            .await
            .unwrap_err();
    assert!(t0.elapsed() <= secs(30));
    let (ErrorKind::InvalidState, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.contains(&format!("eviction of pod `{api}` still refused after 30s")),
        "{m}"
    );
    assert!(m.contains("PodDisruptionBudget"), "{m}");
    assert!(
        m.contains("uncordoned again after the failure: zone-c-1"),
        "{m}"
    );
    // A failed drain leaves no cordon behind, and its rollback finds nothing left to undo.
    assert!(!r.node("zone-c-1").unschedulable);
    assert_eq!(r.live("api").len(), 6, "nothing evicted");
    r.api.clear_requests();
    let out =
        r.k.revert_json("k8s.node_drain", &params, &Json::Null)
            .await
            .unwrap();
    assert_eq!(out["uncordoned"], json!([]));
    assert_eq!(r.api.mutations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_step_that_failed_half_way_is_rolled_back_from_the_ledger() {
    // The second node's patch fails: the step errors with no output, but zone-a-1 was cordoned.
    let r = rig();
    r.api
        .inject(Fault::status("PATCH", "/nodes/zone-a-2", 500, "etcd leader changed").always());
    let params = json!({"zone": "zone-a"});
    let e =
        r.k.inject_json("k8s.cordon_zone", &params)
            .await
            .unwrap_err();
    assert!(
        e.to_string().ends_with("(before this, cordoned: zone-a-1)"),
        "{e}"
    );
    assert!(r.node("zone-a-1").unschedulable);
    assert!(!r.node("zone-a-2").unschedulable);
    let out =
        r.k.revert_json("k8s.cordon_zone", &params, &Json::Null)
            .await
            .unwrap();
    assert_eq!(out["uncordoned"], json!(["zone-a-1"]));
    assert!(!r.node("zone-a-1").unschedulable);
    let out =
        r.k.revert_json("k8s.cordon_zone", &params, &Json::Null)
            .await
            .unwrap();
    assert_eq!(out["reverted"], false, "already rolled back");
}

#[tokio::test(start_paused = true)]
async fn a_server_error_is_unavailable() {
    let r = rig();
    r.api.inject(
        Fault::status("GET", "/api/v1/nodes", 500, "etcdserver: request timed out").always(),
    );
    let e = r.k.observe_json("k8s.nodes", &json!({})).await.unwrap_err();
    // A 5xx is the control plane being unavailable: a retryable kind.
    let (ErrorKind::Unavailable, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("failed `list` on nodes (500: etcdserver: request timed out)"),
        "{m}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_reported_once_with_its_url() {
    // Real IO (a refused connection), so the clock is not paused.
    firedrill::engine::generic::install_crypto_provider();
    let mut config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let mut s = settings();
    s.server = Some("http://127.0.0.1:1".into());
    let k = from_client(client, s);
    let e = k.observe_json("k8s.nodes", &json!({})).await.unwrap_err();
    let (ErrorKind::Unavailable, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("cannot reach the Kubernetes API server at http://127.0.0.1:1"),
        "{m}"
    );
    assert!(
        m.contains("check the kubeconfig, context and `server` setting"),
        "{m}"
    );
    let calls = [
        Call::new("probe `nodes`".into(), "k8s.nodes", json!({}), false).unwrap(),
        Call::new("step `kill`".into(), "k8s.pod_kill", kill(json!({})), true).unwrap(),
    ];
    let problems = k.preflight(&calls).await;
    assert_eq!(problems.len(), 1);
    assert!((problems[0].error).kind == ErrorKind::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_times_out_per_request() {
    let mut s = settings();
    s.request_timeout = Some(secs(5));
    let r = rig_with(params_with(vec![]), s);
    r.api.inject(Fault::hang("*", "/").always());
    let t0 = tokio::time::Instant::now();
    let e = r.k.observe_json("k8s.nodes", &json!({})).await.unwrap_err();
    assert!(
        e.kind == ErrorKind::Unavailable && e.message.contains("within 5s"),
        "{e:?}"
    );
    assert_eq!(t0.elapsed(), secs(5));
    let seen: Vec<(String, Option<u16>)> = r
        .api
        .requests()
        .into_iter()
        .map(|q| (q.path, q.status))
        .collect();
    assert_eq!(seen, [("/api/v1/nodes".to_string(), None)]);
}

// ---- refusing before touching ----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_selector_matching_nothing_names_it_and_the_labels_there() {
    let r = rig();
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({"selector": {"app": "apii"}})))
            .await
            .unwrap_err();
    let (ErrorKind::NotFound, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert_eq!(
        m,
        "no running pods match selector `app=apii` in namespace `web`; the running pods there have labels: app=api; app=worker"
    );
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({"namespace": "default"})))
            .await
            .unwrap_err();
    assert!(
        e.to_string()
            .contains("namespace `default` has no running pods at all"),
        "{e}"
    );
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({"namespace": "shop"})))
            .await
            .unwrap_err();
    assert!(
        e.to_string()
            .contains("namespace `shop` does not exist in the cluster (namespaces: default, kube-node-lease, kube-public, kube-system, web)"),
        "{e}"
    );
    let e =
        r.k.inject_json("k8s.cordon_zone", &json!({"zone": "zone-x"}))
            .await
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no nodes in zone `zone-x` (label topology.kubernetes.io/zone); zones with nodes: zone-a, zone-b, zone-c"
    );
    assert_eq!(r.api.mutations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn caps_refuse_before_any_delete_is_sent() {
    let r = rig();
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({"mode": "all", "max_pods": 3})))
            .await
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "blast radius: mode `all` would kill 6 of the 6 pods matching `app=api`, over max_pods 3; raise max_pods or narrow the selector"
    );
    let e =
        r.k.inject_json(
            "k8s.pod_kill",
            &kill(json!({"mode": "random-max-percent", "value": 60, "max_percent": 50})),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("would kill up to 4 of the 6 pods"),
        "{e}"
    );
    let e =
        r.k.inject_json("k8s.drain_zone", &json!({"zone": "zone-a", "max_nodes": 1}))
            .await
            .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "blast radius: this would touch 2 nodes (zone-a-1, zone-a-2), over max_nodes 1"
        ),
        "{e}"
    );
    // The environment's default caps apply when the step has none.
    let mut s = settings();
    s.max_pods = Some(2);
    let r2 = rig_with(params_with(vec![]), s);
    let e =
        r2.k.inject_json(
            "k8s.node_drain",
            &json!({"selector": {"topology.kubernetes.io/zone": "zone-a"}}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("this drain would evict 3 pods, over max_pods 2"),
        "{e}"
    );
    assert_eq!(r.api.mutations(), Vec::<String>::new());
    assert_eq!(r2.api.mutations(), Vec::<String>::new());
    assert_eq!(
        r.api.request_count("DELETE") + r2.api.request_count("DELETE"),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn kube_system_and_namespaces_outside_the_allow_list_are_refused_without_a_request() {
    let r = rig();
    let e =
        r.k.inject_json(
            "k8s.pod_kill",
            &json!({"namespace": "kube-system", "selector": {"app": "agent"}}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("refusing to act on namespace `kube-system`"),
        "{e}"
    );
    assert_eq!(r.api.requests(), vec![]);
    // Allowed explicitly on the step, it goes ahead.
    let out = r
        .k
        .inject_json("k8s.pod_kill", &json!({"namespace": "kube-system", "selector": {"app": "agent"}, "allow_kube_system": true}))
        .await
        .unwrap();
    assert_eq!(out["count"], 1);
    assert_eq!(r.api.request_count("DELETE"), 1);
    let mut s = settings();
    s.namespaces = vec!["shop".into()];
    let r = rig_with(params_with(vec![]), s);
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({})))
            .await
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "namespace `web` is not in this environment's allow-list (kubernetes.namespaces: shop); add it there to allow drills on it"
    );
    assert_eq!(r.api.requests(), vec![]);
    // A step naming another cluster is refused too.
    let e =
        r.k.inject_json("k8s.pod_kill", &kill(json!({"cluster": "staging"})))
            .await
            .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("this environment's Kubernetes cluster is `prod`, not `staging`"),
        "{e}"
    );
    assert_eq!(r.api.requests(), vec![]);
}

// ---- actions and rollbacks -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_pod_kill_deletes_the_picked_pods_and_records_them() {
    let r = rig();
    let out =
        r.k.inject_json(
            "k8s.pod_kill",
            &kill(json!({"mode": "fixed-percent", "value": 50, "grace_period": "10s"})),
        )
        .await
        .unwrap();
    assert_eq!(out["matched"], 6);
    assert_eq!(out["count"], 3);
    let killed = out["killed"].as_array().unwrap();
    assert_eq!(killed.len(), 3);
    let deletes: Vec<RecordedRequest> = r
        .api
        .requests()
        .into_iter()
        .filter(|q| q.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 3);
    for (d, k) in deletes.iter().zip(killed) {
        assert_eq!(
            format!("web/{}", d.path.rsplit('/').next().unwrap()),
            k.as_str().unwrap()
        );
        assert_eq!(d.body["gracePeriodSeconds"], 10);
        assert_eq!(d.status, Some(200));
    }
    assert_eq!(out["pods"][0]["owner"], "deployment/api");
    // Terminating for the grace period given, the others untouched.
    let pods = r.all_pods();
    for k in killed {
        let p = pods
            .iter()
            .find(|p| p.name == name_of(k.as_str().unwrap()))
            .unwrap();
        assert_eq!(p.deletion.map(|(_, g)| g), Some(secs(10)), "{}", p.name);
    }
    assert_eq!(r.live("api").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn random_max_percent_kills_between_one_and_the_percent() {
    let mut counts = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let r = rig();
        let k = from_client(r.api.client(), settings()).with_seed(seed);
        let out = k
            .inject_json(
                "k8s.pod_kill",
                &kill(json!({"mode": "random-max-percent", "value": 50})),
            )
            .await
            .unwrap();
        let n = out["count"].as_u64().unwrap();
        assert_eq!(r.api.request_count("DELETE") as u64, n);
        counts.insert(n);
    }
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_lists_the_pods_and_nodes_and_touches_nothing() {
    let r = rig();
    let d =
        r.k.describe_json("k8s.pod_kill", &kill(json!({"mode": "fixed", "value": 2})))
            .await
            .unwrap();
    assert!(
        d.starts_with("kill 2 of 6 pod(s) matching `app=api` in web (mode fixed): web/api-"),
        "{d}"
    );
    assert!(d.contains("picked at random at run time"), "{d}");
    let d =
        r.k.describe_json("k8s.pod_kill", &kill(json!({"mode": "all"})))
            .await
            .unwrap();
    assert!(!d.contains("random"), "{d}");
    let d =
        r.k.describe_json("k8s.drain_zone", &json!({"zone": "zone-a"}))
            .await
            .unwrap();
    let (evict, skip) = r.on_nodes(&["zone-a-1", "zone-a-2"]);
    assert_eq!(evict.len(), 3);
    assert_eq!(
        d,
        format!(
            "cordon 2 node(s): zone-a-1, zone-a-2; evict 3 pod(s) through the Eviction API: {}; skip {} (DaemonSet pod), {} (DaemonSet pod)",
            evict.join(", "),
            skip[0],
            skip[1]
        )
    );
    let d =
        r.k.describe_json(
            "k8s.drain_zone",
            &json!({"zone": "zone-b", "method": "taint"}),
        )
        .await
        .unwrap();
    assert!(d.starts_with("taint 2 node(s) `firedrill.dev/zone-loss=zone-b:NoExecute`: zone-b-1, zone-b-2; the cluster then evicts 3 pod(s)"), "{d}");
    let d =
        r.k.describe_json(
            "k8s.scale",
            &json!({"namespace": "web", "deployment": "api", "replicas": 2}),
        )
        .await
        .unwrap();
    assert_eq!(d, "scale deployment web/api from 6 to 2 replicas");
    assert_eq!(r.api.mutations(), Vec::<String>::new());
    assert_eq!(r.live("api").len(), 6);
}

#[tokio::test(start_paused = true)]
async fn rolling_back_a_zone_cordon_uncordons_only_the_nodes_it_cordoned() {
    let r = rig();
    r.model(|e, at| e.set_unschedulable(at, CLUSTER, "zone-a-2", true))
        .unwrap();
    let params = json!({"zone": "zone-a"});
    let out = r.k.inject_json("k8s.cordon_zone", &params).await.unwrap();
    assert_eq!(out["cordoned"], json!(["zone-a-1"]));
    assert_eq!(out["already_cordoned"], json!(["zone-a-2"]));
    r.api.clear_requests();
    let out2 =
        r.k.revert_json("k8s.cordon_zone", &params, &out)
            .await
            .unwrap();
    assert_eq!(out2["uncordoned"], json!(["zone-a-1"]));
    assert_eq!(r.api.mutations(), ["PATCH /api/v1/nodes/zone-a-1"]);
    assert!(!r.node("zone-a-1").unschedulable);
    assert!(
        r.node("zone-a-2").unschedulable,
        "was cordoned before the drill"
    );
}

#[tokio::test(start_paused = true)]
async fn a_zone_drain_cordons_evicts_and_rolls_back() {
    let r = rig();
    let (evict, _) = r.on_nodes(&["zone-a-1", "zone-a-2"]);
    let params = json!({"zone": "zone-a"});
    let out = r.k.inject_json("k8s.drain_zone", &params).await.unwrap();
    assert_eq!(out["method"], "evict");
    assert_eq!(out["cordoned"], json!(["zone-a-1", "zone-a-2"]));
    assert_eq!(out["evicted"], json!(evict));
    let out2 =
        r.k.revert_json("k8s.drain_zone", &params, &out)
            .await
            .unwrap();
    assert_eq!(out2["uncordoned"], json!(["zone-a-1", "zone-a-2"]));
    assert_eq!(r.api.request_count("DELETE"), 0, "evictions, not deletes");
    assert_eq!(
        r.api
            .requests()
            .iter()
            .filter(|q| q.path.ends_with("/eviction") && q.status == Some(201))
            .count(),
        3
    );
    assert!(
        r.objects(ObjKind::Node)
            .iter()
            .all(|(_, o)| matches!(o, Obj::Node(n) if !n.unschedulable))
    );
}

#[tokio::test(start_paused = true)]
async fn a_zone_taint_and_node_taints_roll_back_exactly() {
    let r = rig();
    let params = json!({"zone": "zone-b", "method": "taint"});
    let out = r.k.inject_json("k8s.drain_zone", &params).await.unwrap();
    assert_eq!(out["tainted"], json!(["zone-b-1", "zone-b-2"]));
    assert_eq!(out["pods"].as_array().unwrap().len(), 3);
    let t = &r.node("zone-b-1").taints;
    assert_eq!(
        t.iter()
            .map(|t| (t.key.as_str(), t.value.as_deref(), t.effect))
            .collect::<Vec<_>>(),
        [(
            "firedrill.dev/zone-loss",
            Some("zone-b"),
            TaintEffect::NoExecute
        )]
    );
    r.k.revert_json("k8s.drain_zone", &params, &out)
        .await
        .unwrap();
    assert_eq!(r.node("zone-b-1").taints, vec![]);

    // A taint already there is left alone by the step and by its rollback.
    r.model(|e, at| {
        e.set_taints(
            at,
            CLUSTER,
            "zone-a-1",
            vec![taint("chaos", TaintEffect::NoSchedule)],
        )
    })
    .unwrap();
    let params = json!({"selector": {"topology.kubernetes.io/zone": "zone-a"}, "key": "chaos", "effect": "NoSchedule"});
    let out = r.k.inject_json("k8s.node_taint", &params).await.unwrap();
    assert_eq!(out["tainted"], json!(["zone-a-2"]));
    assert_eq!(out["already_tainted"], json!(["zone-a-1"]));
    r.k.revert_json("k8s.node_taint", &params, &out)
        .await
        .unwrap();
    assert_eq!(r.node("zone-a-1").taints.len(), 1);
    assert_eq!(r.node("zone-a-2").taints, vec![]);
    // Untaint removes it and its rollback puts back exactly what it removed.
    let params = json!({"node": "zone-a-1", "key": "chaos"});
    let out = r.k.inject_json("k8s.node_untaint", &params).await.unwrap();
    assert_eq!(out["removed"][0]["node"], "zone-a-1");
    assert_eq!(r.node("zone-a-1").taints, vec![]);
    r.k.revert_json("k8s.node_untaint", &params, &out)
        .await
        .unwrap();
    assert_eq!(
        r.node("zone-a-1").taints,
        vec![taint("chaos", TaintEffect::NoSchedule)]
    );
}

#[tokio::test(start_paused = true)]
async fn uncordon_rolls_back_by_cordoning_only_what_it_uncordoned() {
    let r = rig();
    r.model(|e, at| e.set_unschedulable(at, CLUSTER, "zone-a-1", true))
        .unwrap();
    let params = json!({"selector": {"topology.kubernetes.io/zone": "zone-a"}});
    let out = r.k.inject_json("k8s.node_uncordon", &params).await.unwrap();
    assert_eq!(out["uncordoned"], json!(["zone-a-1"]));
    assert_eq!(out["already_schedulable"], json!(["zone-a-2"]));
    r.k.revert_json("k8s.node_uncordon", &params, &out)
        .await
        .unwrap();
    assert!(r.node("zone-a-1").unschedulable);
    assert!(!r.node("zone-a-2").unschedulable);
}

#[tokio::test(start_paused = true)]
async fn scale_and_rollout_restart_restore_the_previous_values() {
    let r = rig();
    let params = json!({"namespace": "web", "deployment": "api", "replicas": 2});
    let out = r.k.inject_json("k8s.scale", &params).await.unwrap();
    assert_eq!(out["previous"], 6);
    assert_eq!(r.deployment("api").replicas, 2);
    assert!(
        r.api
            .requests()
            .iter()
            .any(|q| q.method == "PATCH" && q.path.ends_with("/deployments/api/scale"))
    );
    let out2 = r.k.revert_json("k8s.scale", &params, &out).await.unwrap();
    assert_eq!(out2["replicas"], 6);
    assert_eq!(r.deployment("api").replicas, 6);

    let params = json!({"namespace": "web", "deployment": "worker"});
    let out =
        r.k.inject_json("k8s.rollout_restart", &params)
            .await
            .unwrap();
    assert_eq!(out["previous"], Json::Null);
    let ann = r.deployment("worker").template_annotations;
    assert_eq!(
        ann.get("kubectl.kubernetes.io/restartedAt")
            .map(String::as_str),
        out["restarted_at"].as_str()
    );
    r.k.revert_json("k8s.rollout_restart", &params, &out)
        .await
        .unwrap();
    let ann = r.deployment("worker").template_annotations;
    assert!(ann.is_empty(), "{ann:?}");
}

// ---- probes ----------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_pods_probe_takes_desired_from_the_deployment() {
    let r = rig();
    // Zone a loses power for 10s: its pods' containers restart (the api pods there: 2).
    r.model(|e, at| e.lose_zone(at, "zone-a")).unwrap();
    tokio::time::sleep(secs(10)).await;
    r.model(|e, at| e.restore_zone(at, "zone-a")).unwrap();
    tokio::time::sleep(secs(31)).await;
    // Desired 8: with every node cordoned one new pod is Pending; one is scheduled on the node
    // uncordoned for it and is starting.
    let nodes: Vec<String> = r
        .objects(ObjKind::Node)
        .into_iter()
        .map(|(_, o)| o.name().to_string())
        .collect();
    r.model(|e, at| {
        for n in &nodes {
            e.set_unschedulable(at, CLUSTER, n, true).unwrap();
        }
        e.scale_workload(at, CLUSTER, "web", None, "api", 7)
            .unwrap();
        e.set_unschedulable(at, CLUSTER, "zone-c-2", false).unwrap();
        e.set_unschedulable(at, CLUSTER, "zone-c-2", true).unwrap();
        e.scale_workload(at, CLUSTER, "web", None, "api", 8)
            .unwrap();
    });
    let p = json!({"namespace": "web", "selector": {"app": "api"}});
    let v = r.k.observe_json("k8s.pods", &p).await.unwrap();
    assert_eq!(
        (
            v["desired"].as_u64(),
            v["total"].as_u64(),
            v["ready"].as_u64(),
            v["starting"].as_u64(),
            v["pending"].as_u64()
        ),
        (Some(8), Some(8), Some(6), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["ready_ratio"], 0.75);
    assert_eq!(v["ready_percent"], 75.0);
    assert_eq!(v["restarts"], 2);
    // The owner was resolved through the pods' ReplicaSet the API serves.
    assert!(
        r.api
            .requests()
            .iter()
            .any(|q| q.path.contains("/replicasets/api-") && q.status == Some(200)),
        "{:?}",
        r.api.requests()
    );
    // Every pod gone (deleted at once, not yet replaced): desired is still the Deployment's.
    let names: Vec<String> = r
        .all_pods()
        .into_iter()
        .filter(|p| p.workload == "api")
        .map(|p| p.name)
        .collect();
    r.model(|e, at| {
        for n in &names {
            e.delete_pod(at, CLUSTER, "web", n, Some(Duration::ZERO))
                .unwrap();
        }
    });
    assert!(r.all_pods().iter().all(|p| p.workload != "api"));
    let v = r.k.observe_json("k8s.pods", &p).await.unwrap();
    assert_eq!(
        (
            v["desired"].as_u64(),
            v["total"].as_u64(),
            v["ready_ratio"].as_f64()
        ),
        (Some(8), Some(0), Some(0.0))
    );
    // A fresh provider that never saw a pod finds the Deployment by its pod template.
    let k2 = from_client(r.api.client(), settings());
    let v = k2.observe_json("k8s.pods", &p).await.unwrap();
    assert_eq!(v["desired"], 8);
}

#[tokio::test(start_paused = true)]
async fn pod_restarts_counts_the_increase_over_the_window() {
    let r = rig();
    let p = json!({"namespace": "web", "selector": {"app": "api"}, "window": "5m"});
    let v = r.k.observe_json("k8s.pod_restarts", &p).await.unwrap();
    assert_eq!(
        (v["restarts"].as_u64(), v["increase"].as_u64()),
        (Some(0), Some(0))
    );
    tokio::time::sleep(secs(60)).await;
    // Zone c loses power for a second (its two api pods' containers restart once each), and one
    // api pod of zone a is deleted and replaced.
    r.model(|e, at| e.lose_zone(at, "zone-c")).unwrap();
    tokio::time::sleep(secs(1)).await;
    r.model(|e, at| e.restore_zone(at, "zone-c")).unwrap();
    let victim = r.pod_on("zone-a-1", "api");
    r.model(|e, at| e.delete_pod(at, CLUSTER, "web", name_of(&victim), Some(Duration::ZERO)))
        .unwrap();
    tokio::time::sleep(secs(3)).await;
    assert_eq!(r.live("api").len(), 6, "replaced");
    let v = r.k.observe_json("k8s.pod_restarts", &p).await.unwrap();
    assert_eq!(
        (v["restarts"].as_u64(), v["increase"].as_u64()),
        (Some(3), Some(3)),
        "{v}"
    );
    tokio::time::sleep(secs(300)).await;
    let v = r.k.observe_json("k8s.pod_restarts", &p).await.unwrap();
    assert_eq!(
        v["increase"], 0,
        "the changes are older than the window: {v}"
    );
    assert_eq!(v["window_seconds"], 300.0);
}

#[tokio::test(start_paused = true)]
async fn workload_nodes_and_memory_probes() {
    let r = rig();
    let workload = json!({"namespace": "web", "deployment": "api"});
    // One api pod deleted: 5 available until its replacement is Ready.
    let victim = r.pod_on("zone-a-1", "api");
    r.model(|e, at| e.delete_pod(at, CLUSTER, "web", name_of(&victim), None))
        .unwrap();
    let v = r.k.observe_json("k8s.workload", &workload).await.unwrap();
    assert_eq!(
        (
            v["replicas"].as_i64(),
            v["available_replicas"].as_i64(),
            v["available"].as_bool()
        ),
        (Some(6), Some(5), Some(false))
    );
    tokio::time::sleep(secs(60)).await;
    let v = r.k.observe_json("k8s.workload", &workload).await.unwrap();
    assert_eq!(v["available"], true, "{v}");
    // A cordoned node is not schedulable; a lost zone's nodes are NotReady once noticed.
    r.model(|e, at| e.set_unschedulable(at, CLUSTER, "zone-b-1", true))
        .unwrap();
    r.model(|e, at| e.lose_zone(at, "zone-c")).unwrap();
    tokio::time::sleep(secs(41)).await;
    let nodes = |v: &Json| {
        (
            v["ready"].as_u64(),
            v["total"].as_u64(),
            v["schedulable"].as_u64(),
            v["ready_ratio"].as_f64(),
        )
    };
    let v =
        r.k.observe_json("k8s.nodes", &json!({"zone": "zone-b"}))
            .await
            .unwrap();
    assert_eq!(nodes(&v), (Some(2), Some(2), Some(1), Some(1.0)));
    let v =
        r.k.observe_json("k8s.nodes", &json!({"zone": "zone-c"}))
            .await
            .unwrap();
    assert_eq!(nodes(&v), (Some(0), Some(2), Some(0), Some(0.0)));
    let e =
        r.k.observe_json("k8s.nodes", &json!({"zone": "zone-q"}))
            .await
            .unwrap_err();
    assert!(
        e.to_string().starts_with("no nodes in zone `zone-q`"),
        "{e}"
    );
    // 14 pods of 2Gi, minus the four on zone c's NotReady nodes, over 4 Ready nodes of 16Gi.
    assert_eq!(r.all_pods().len(), 14);
    let v = r.k.observe_json("k8s.memory", &json!({})).await.unwrap();
    assert_eq!(
        v["utilization"].as_f64().unwrap(),
        10.0 * 2.0 / (4.0 * 16.0)
    );
    assert_eq!(v["ready_nodes"], 4);
}

#[tokio::test(start_paused = true)]
async fn preflight_checks_targets_caps_and_selectors_read_only() {
    let r = rig();
    let call = |owner: &str, name: &str, params: Json| {
        let is_action = !name.starts_with("k8s.pods");
        Call::new(owner.into(), name, params, is_action).unwrap()
    };
    let calls = [
        call(
            "step `kill`",
            "k8s.pod_kill",
            kill(json!({"mode": "fixed-percent", "value": 50, "max_pods": 3})),
        ),
        call(
            "step `big`",
            "k8s.pod_kill",
            kill(json!({"mode": "all", "max_pods": 3})),
        ),
        call(
            "probe `typo`",
            "k8s.pods",
            json!({"namespace": "web", "selector": {"app": "apii"}}),
        ),
        call(
            "probe `ok`",
            "k8s.pods",
            json!({"namespace": "web", "selector": {"app": "api"}}),
        ),
        call("step `zone`", "k8s.drain_zone", json!({"zone": "zone-q"})),
        call(
            "step `scale`",
            "k8s.scale",
            json!({"namespace": "web", "statefulset": "db", "replicas": 1}),
        ),
        call(
            "step `drain`",
            "k8s.node_drain",
            json!({"node": "zone-b-2"}),
        ),
    ];
    let problems = r.k.preflight(&calls).await;
    let owners: Vec<&str> = problems.iter().map(|p| p.owner.as_str()).collect();
    assert_eq!(
        owners,
        ["step `big`", "probe `typo`", "step `zone`", "step `scale`"],
        "{problems:#?}"
    );
    assert!(
        problems[3]
            .error
            .to_string()
            .starts_with("statefulset `db` not found in namespace `web`")
    );
    assert!(
        r.api.requests().iter().any(|q| q.is_access_review()),
        "the rights were checked"
    );
    assert_eq!(
        r.api.mutations(),
        Vec::<String>::new(),
        "preflight only reads"
    );
}

// ---- recovery timings ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn killed_pods_are_watched_until_their_replacements_are_ready() {
    let r = rig();
    r.k.start(&RunContext {
        clock: r.clock,
        run_id: "r".into(),
        experiment: "e".into(),
    });
    tokio::time::sleep(secs(60)).await;
    let out =
        r.k.inject_json("k8s.pod_kill", &kill(json!({"mode": "fixed", "value": 2})))
            .await
            .unwrap();
    let killed: Vec<String> = out["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pod"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(out["pods"][0]["at_ms"], 60_000);
    // Unrelated churn: another worker pod appears, and the api pods of a zone no victim was in
    // restart their containers (a one-second power cut): neither is a replacement.
    let victim_zones: Vec<String> = out["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = p["node"].as_str().unwrap();
            n[..n.len() - 2].to_string()
        })
        .collect();
    let quiet = ["zone-a", "zone-b", "zone-c"]
        .into_iter()
        .find(|z| !victim_zones.iter().any(|v| v == z))
        .unwrap();
    r.model(|e, at| e.scale_workload(at, CLUSTER, "web", None, "worker", 3))
        .unwrap();
    r.model(|e, at| e.lose_zone(at, quiet)).unwrap();
    tokio::time::sleep(secs(1)).await;
    r.model(|e, at| e.restore_zone(at, quiet)).unwrap();
    // The ReplicaSet creates the replacements after 2s; they are Ready 30s later.
    tokio::time::sleep(secs(30)).await;
    assert!(!r.k.recovery_idle());
    tokio::time::sleep(secs(2)).await;
    let events = r.k.drain_events();
    let details: Vec<&Json> = events.iter().filter_map(|e| e.detail.as_ref()).collect();
    assert_eq!(details.len(), 2, "{events:#?}");
    // The estate's own record of the replacements.
    let estate = r.shared.lock().pod_recoveries().to_vec();
    assert_eq!(estate.len(), 2, "{estate:#?}");
    let mut victims: Vec<&str> = details.iter().map(|d| d["pod"].as_str().unwrap()).collect();
    victims.sort();
    let mut want: Vec<&str> = killed.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(victims, want);
    for (d, e) in details.iter().zip(&events) {
        let rec = estate
            .iter()
            .find(|x| x.replacement == d["replacement"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{d} is not a replacement the estate made"));
        assert_eq!(
            d["replacement_node"],
            rec.replacement_node.clone().unwrap().as_str()
        );
        assert_eq!(d["owner"], "deployment/api");
        assert_eq!(d["killed_at_ms"], 60_000);
        assert_eq!(d["scheduled_after_ms"], 2_000);
        assert_eq!(d["ready_after_ms"], 32_000);
        assert_eq!(e.at_ms, 92_000);
        assert!(
            e.message.contains(&format!(
                "replaced by {} on {}: scheduled after 2s, Ready after 32s",
                rec.replacement,
                rec.replacement_node.as_deref().unwrap()
            )),
            "{}",
            e.message
        );
    }
    assert!(
        r.k.recovery_idle(),
        "the watch stops once every pod recovered"
    );
}

#[tokio::test(start_paused = true)]
async fn drains_skip_protected_namespaces_and_a_zone_taint_refuses_to_hit_them() {
    // A kube-system Deployment pod (like CoreDNS) and a pod of another team, both on zone a.
    let r = rig_with(
        params_with(vec![
            workload("coredns", "kube-system", WorkloadKind::Deployment, Some(1)),
            workload("ledger", "payments", WorkloadKind::Deployment, Some(1)),
        ]),
        KubernetesSettings {
            namespaces: vec!["web".into()],
            ..settings()
        },
    );
    let coredns = r.pod_on("zone-a-1", "coredns");
    let ledger = r.pod_on("zone-a-2", "ledger");
    let (evict, _) = r.on_nodes(&["zone-a-1", "zone-a-2"]);
    let web: Vec<&String> = evict.iter().filter(|p| p.starts_with("web/")).collect();
    let out =
        r.k.inject_json("k8s.drain_zone", &json!({"zone": "zone-a"}))
            .await
            .unwrap();
    assert_eq!(out["evicted"], json!(web));
    let skipped: Vec<String> = out["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                s["pod"].as_str().unwrap(),
                s["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            format!("{}: DaemonSet pod", r.pod_on("zone-a-1", "agent")),
            format!("{coredns}: kube-system (set allow_kube_system to evict it)"),
            format!("{}: DaemonSet pod", r.pod_on("zone-a-2", "agent")),
            format!("{ledger}: namespace `payments` is not in kubernetes.namespaces"),
        ]
    );
    let evictions: Vec<String> = r
        .api
        .requests()
        .into_iter()
        .filter(|q| q.path.ends_with("/eviction"))
        .map(|q| q.path)
        .collect();
    assert!(
        evictions
            .iter()
            .all(|p| p.starts_with("/api/v1/namespaces/web/")),
        "{evictions:?}"
    );
    r.k.revert_json("k8s.drain_zone", &json!({"zone": "zone-a"}), &out)
        .await
        .unwrap();
    r.api.clear_requests();
    // A taint cannot skip anything: the cluster would evict CoreDNS, so the step is refused.
    let e =
        r.k.inject_json(
            "k8s.drain_zone",
            &json!({"zone": "zone-a", "method": "taint"}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!("the zone taint would make the cluster evict pod `{coredns}`: refusing to act on namespace `kube-system`")),
        "{e}"
    );
    assert_eq!(r.api.mutations(), Vec::<String>::new());
}
