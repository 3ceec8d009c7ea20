//! The `k8s.*` vocabulary on the simulated estate, through the `Provider` trait on a paused
//! clock: every action, its revert and every probe; blast-radius caps and the kube-system rule
//! refuse before touching anything; recovery timings follow the parameters.

use std::collections::BTreeMap;
use std::time::Duration;

use firedrill::backend::sim::{SharedEstate, SimProvider};
use firedrill::backend::{ErrorKind, Provider, ProviderError, ProviderExt, RunContext};
use firedrill::engine::clock::RunClock;
use firedrill::sim::model::{DeploymentParams, Estate, SimParams, WorkloadKind};
use serde_json::{Value as Json, json};

fn provider_with(params: SimParams) -> SimProvider {
    let seed = params.seed;
    let shared = SharedEstate::new(Estate::from_params(params).unwrap());
    let p = SimProvider::from_shared(shared, seed);
    p.start(&RunContext {
        clock: RunClock::start_now(),
        run_id: "test".into(),
        experiment: "test".into(),
    });
    p
}

fn provider() -> SimProvider {
    provider_with(SimParams::default())
}

async fn inject(p: &SimProvider, action: &str, params: Json) -> Result<Json, ProviderError> {
    p.inject_json(action, &params).await
}

async fn observe(p: &SimProvider, probe: &str, params: Json) -> Json {
    p.observe_json(probe, &params).await.unwrap()
}

async fn pods(p: &SimProvider, ns: &str, app: &str) -> Json {
    observe(
        p,
        "k8s.pods",
        json!({"namespace": ns, "selector": {"app": app}}),
    )
    .await
}

async fn nodes(p: &SimProvider, zone: Option<&str>) -> Json {
    match zone {
        Some(z) => observe(p, "k8s.nodes", json!({"zone": z})).await,
        None => observe(p, "k8s.nodes", json!({})).await,
    }
}

fn strs(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn invalid(r: Result<Json, ProviderError>) -> String {
    match r {
        // Missing targets are `not found`; blast-radius and kube-system refusals are `denied`;
        // parameters validation would have refused are `invalid input`.
        Err(ProviderError {
            kind: ErrorKind::NotFound | ErrorKind::Denied | ErrorKind::InvalidInput,
            message: m,
            ..
        }) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn params() -> SimParams {
    SimParams::default()
}

#[tokio::test(start_paused = true)]
async fn pod_kill_modes_selectors_and_recovery_timings() {
    let p = provider();
    let c = params().kubernetes[0].clone();
    let api = &c.deployments[0];
    let out = inject(
        &p,
        "k8s.pod_kill",
        json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed", "value": 2}),
    )
    .await
    .unwrap();
    assert_eq!(
        (out["count"].as_u64(), out["matched"].as_u64()),
        (Some(2), Some(6))
    );
    let killed = strs(&out["killed"]);
    assert_eq!(out["pods"][0]["owner"], "deployment/api");
    let v = pods(&p, "web", "api").await;
    assert_eq!(
        (
            v["total"].as_u64(),
            v["terminating"].as_u64(),
            v["ready"].as_u64()
        ),
        (Some(4), Some(2), Some(4))
    );
    // Replacements after reschedule_delay, Ready after startup ± jitter: one pod_recovery event each.
    tokio::time::sleep(c.reschedule_delay + api.startup + api.startup_jitter).await;
    let v = pods(&p, "web", "api").await;
    assert_eq!(
        (
            v["ready"].as_u64(),
            v["ready_percent"].as_f64(),
            v["restarts"].as_u64()
        ),
        (Some(6), Some(100.0), Some(2))
    );
    let recoveries: Vec<Json> = p
        .drain_events()
        .into_iter()
        .filter_map(|e| e.detail)
        .filter(|d| d["kind"] == "pod_recovery")
        .collect();
    assert_eq!(recoveries.len(), 2);
    for r in &recoveries {
        assert!(killed.contains(&r["pod"].as_str().unwrap().to_string()));
        assert_eq!(r["owner"], "deployment/api");
        assert_eq!(r["killed_at_ms"], 0);
        assert_eq!(
            r["scheduled_after_ms"].as_u64(),
            Some(c.reschedule_delay.as_millis() as u64)
        );
        let ready = r["ready_after_ms"].as_u64().unwrap();
        let lo = (c.reschedule_delay + api.startup - api.startup_jitter).as_millis() as u64;
        let hi = (c.reschedule_delay + api.startup + api.startup_jitter).as_millis() as u64;
        assert!((lo..=hi).contains(&ready), "{ready}");
        assert!(r["replacement_node"].is_string() && r["node"].is_string());
        for k in ["namespace", "replacement"] {
            assert!(r[k].is_string(), "{k}");
        }
    }

    // all / fixed-percent / random-max-percent / one, and several namespaces.
    let out = inject(
        &p,
        "k8s.pod_kill",
        json!({"namespaces": ["web", "data"], "selector": {"app": "worker"}, "mode": "all"}),
    )
    .await
    .unwrap();
    assert_eq!(out["count"], 3);
    let out = inject(&p, "k8s.pod_kill", json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed-percent", "value": 50}))
        .await
        .unwrap();
    assert_eq!(out["count"], 3);
    tokio::time::sleep(Duration::from_secs(120)).await;
    for _ in 0..5 {
        let out = inject(&p, "k8s.pod_kill", json!({"namespace": "web", "selector": {"app": "api"}, "mode": "random-max-percent", "value": 50}))
            .await
            .unwrap();
        let n = out["count"].as_u64().unwrap();
        assert!((1..=3).contains(&n), "{n}");
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    let out = inject(
        &p,
        "k8s.pod_kill",
        json!({"namespace": "data", "selector": {"app": "db"}}),
    )
    .await
    .unwrap();
    assert_eq!(out["count"], 1);

    // Field selector: only pods on one node (a node that runs a live worker pod now).
    let node = {
        let shared = p.shared();
        let mut e = shared.lock();
        let now = e.now();
        e.objects(now, "prod-east", firedrill::sim::model::ObjKind::Pod)
            .unwrap()
            .into_iter()
            .find_map(|(_, o)| match o {
                firedrill::sim::model::Obj::Pod(x)
                    if x.workload == "worker" && x.deletion.is_none() =>
                {
                    x.node
                }
                _ => None,
            })
            .unwrap()
    };
    let out = inject(&p, "k8s.pod_kill", json!({"namespace": "web", "selector": {"app": "worker"}, "mode": "all", "field_selector": format!("spec.nodeName={node}")}))
        .await
        .unwrap();
    assert!(out["count"].as_u64().unwrap() >= 1);
    assert!(
        out["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["node"] == node.as_str())
    );
    assert!(out["count"].as_u64() < Some(3));
    let m = invalid(inject(&p, "k8s.pod_kill", json!({"namespace": "web", "selector": {"app": "api"}, "field_selector": "spec.nodeName=nowhere"})).await);
    assert!(
        m.contains("no pods match selector app=api and field selector spec.nodeName=nowhere"),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn pod_kill_refusals_touch_nothing() {
    let p = provider();
    let before = pods(&p, "web", "api").await;
    let m = invalid(
        inject(
            &p,
            "k8s.pod_kill",
            json!({"namespace": "web", "selector": {"app": "api"}, "mode": "all", "max_pods": 5}),
        )
        .await,
    );
    assert!(
        m.contains("would kill 6 of the 6 pods matching `app=api`, over max_pods 5"),
        "{m}"
    );
    let m = invalid(inject(&p, "k8s.pod_kill", json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed", "value": 4, "max_percent": 50})).await);
    assert!(
        m.contains("would kill 4 of the 6 pods matching `app=api` (67%), over max_percent 50%"),
        "{m}"
    );
    let m = invalid(
        inject(
            &p,
            "k8s.pod_kill",
            json!({"namespace": "web", "selector": {"app": "nope"}}),
        )
        .await,
    );
    assert!(
        m.contains("no pods match selector app=nope") && m.contains("app=api"),
        "{m}"
    );
    let m = invalid(
        inject(
            &p,
            "k8s.pod_kill",
            json!({"namespace": "kube-system", "selector": {"app": "node-exporter"}}),
        )
        .await,
    );
    assert!(m.contains("allow_kube_system"), "{m}");
    let m = invalid(
        inject(
            &p,
            "k8s.pod_kill",
            json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed-percent"}),
        )
        .await,
    );
    assert!(m.contains("needs `value`"), "{m}");
    assert_eq!(pods(&p, "web", "api").await, before, "nothing was touched");
    assert!(p.drain_events().is_empty());
    // Allowed explicitly, a DaemonSet pod is recreated on its node.
    let out = inject(&p, "k8s.pod_kill", json!({"namespace": "kube-system", "selector": {"app": "node-exporter"}, "allow_kube_system": true, "grace_period": "0s"}))
        .await
        .unwrap();
    let node = out["pods"][0]["node"].clone();
    let c = params().kubernetes[0].clone();
    tokio::time::sleep(c.reschedule_delay + c.deployments[3].startup).await;
    let ev: Vec<Json> = p
        .drain_events()
        .into_iter()
        .filter_map(|e| e.detail)
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0]["replacement_node"].clone(), ev[0]["owner"].clone()),
        (node, json!("daemonset/node-exporter"))
    );
    assert_eq!(
        ev[0]["ready_after_ms"].as_u64(),
        Some((c.reschedule_delay + c.deployments[3].startup).as_millis() as u64)
    );
}

#[tokio::test(start_paused = true)]
async fn cordon_zone_reverts_only_what_it_touched() {
    let p = provider();
    let pre = inject(&p, "k8s.node_cordon", json!({"node": "us-east-1a-2"}))
        .await
        .unwrap();
    assert_eq!(strs(&pre["nodes"]), ["us-east-1a-2"]);
    let params_ = json!({"zone": "us-east-1a"});
    let out = inject(&p, "k8s.cordon_zone", params_.clone())
        .await
        .unwrap();
    assert_eq!(strs(&out["nodes"]), ["us-east-1a-1", "us-east-1a-3"]);
    assert_eq!(strs(&out["unchanged"]), ["us-east-1a-2"]);
    assert_eq!(nodes(&p, Some("us-east-1a")).await["schedulable"], 0);
    p.revert_json("k8s.cordon_zone", &params_, &out)
        .await
        .unwrap();
    assert_eq!(
        nodes(&p, Some("us-east-1a")).await["schedulable"],
        2,
        "the pre-cordoned node stays cordoned"
    );
    p.revert_json("k8s.node_cordon", &json!({"node": "us-east-1a-2"}), &pre)
        .await
        .unwrap();
    assert_eq!(nodes(&p, None).await["schedulable"], 9);
    let m = invalid(
        inject(
            &p,
            "k8s.cordon_zone",
            json!({"zone": "us-east-1a", "max_nodes": 2}),
        )
        .await,
    );
    assert!(m.contains("would touch 3 nodes ("), "{m}");
    assert!(m.contains("), over max_nodes 2"), "{m}");
    let m = invalid(inject(&p, "k8s.cordon_zone", json!({"zone": "us-west-2a"})).await);
    assert!(m.contains("not in cluster `prod-east`"), "{m}");
    assert_eq!(nodes(&p, None).await["schedulable"], 9);
    // A failed step recorded nothing; its revert changes nothing.
    let r = p
        .revert_json(
            "k8s.cordon_zone",
            &json!({"zone": "us-east-1a"}),
            &Json::Null,
        )
        .await
        .unwrap();
    assert_eq!(r["restored"], false);
}

#[tokio::test(start_paused = true)]
async fn node_cordon_uncordon_by_selector() {
    let p = provider();
    let sel = json!({"selector": {"topology.kubernetes.io/zone": "us-east-1c"}});
    let out = inject(&p, "k8s.node_cordon", sel.clone()).await.unwrap();
    assert_eq!(out["nodes"].as_array().unwrap().len(), 3);
    let un = inject(&p, "k8s.node_uncordon", json!({"node": "us-east-1c-1"}))
        .await
        .unwrap();
    assert_eq!(strs(&un["nodes"]), ["us-east-1c-1"]);
    assert_eq!(nodes(&p, Some("us-east-1c")).await["schedulable"], 1);
    p.revert_json("k8s.node_uncordon", &json!({"node": "us-east-1c-1"}), &un)
        .await
        .unwrap();
    assert_eq!(nodes(&p, Some("us-east-1c")).await["schedulable"], 0);
    p.revert_json("k8s.node_cordon", &sel, &out).await.unwrap();
    assert_eq!(nodes(&p, Some("us-east-1c")).await["schedulable"], 3);
    let m = invalid(
        inject(
            &p,
            "k8s.node_cordon",
            json!({"selector": {"topology.kubernetes.io/zone": "mars-1a"}}),
        )
        .await,
    );
    assert!(
        m.contains(
            "no node of cluster `prod-east` matches selector topology.kubernetes.io/zone=mars-1a"
        ),
        "{m}"
    );
    let m = invalid(inject(&p, "k8s.node_cordon", json!({})).await);
    // The rule is the shared one validation applies (lang::kubernetes).
    assert!(m.contains("the step needs `node` or `selector`"), "{m}");
    let m = invalid(inject(&p, "k8s.node_cordon", json!({"node": "nope"})).await);
    assert!(m.contains("us-east-1a-1"), "{m}");
}

/// A zone drain evicts through the budgets: the api budget (max_unavailable 1) lets the second
/// api pod of the zone go only once the first one's replacement is Ready, so the drain takes
/// about reschedule_delay + startup; DaemonSet pods stay.
#[tokio::test(start_paused = true)]
async fn drain_zone_by_eviction_honours_budgets_and_reverts() {
    let p = provider();
    let c = params().kubernetes[0].clone();
    let api = &c.deployments[0];
    let dry = p
        .describe_json("k8s.drain_zone", &json!({"zone": "us-east-1a"}))
        .await
        .unwrap();
    assert!(
        dry.contains("refused by a PodDisruptionBudget now"),
        "{dry}"
    );
    assert_eq!(
        nodes(&p, Some("us-east-1a")).await["schedulable"],
        3,
        "the dry run touched nothing"
    );
    let params_ = json!({"zone": "us-east-1a"});
    let out = inject(&p, "k8s.drain_zone", params_.clone()).await.unwrap();
    assert_eq!(out["method"], "evict");
    assert_eq!(out["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(out["refused"].as_array().unwrap().len(), 0);
    assert_eq!(out["skipped_daemonset_pods"].as_array().unwrap().len(), 3);
    let took = out["took_seconds"].as_f64().unwrap();
    let lo = (c.reschedule_delay + api.startup - api.startup_jitter).as_secs_f64();
    assert!(took >= lo, "took {took}s");
    // Nothing but DaemonSet pods left in the zone.
    let v = observe(&p, "k8s.pods", json!({"namespace": "web", "selector": {"app": "api"}, "field_selector": "spec.nodeName=us-east-1a-1"})).await;
    assert_eq!(v["total"], 0);
    assert_eq!(nodes(&p, Some("us-east-1a")).await["schedulable"], 0);
    p.revert_json("k8s.drain_zone", &params_, &out)
        .await
        .unwrap();
    assert_eq!(nodes(&p, Some("us-east-1a")).await["schedulable"], 3);
}

#[tokio::test(start_paused = true)]
async fn drain_that_times_out_leaves_no_cordon_behind() {
    let mut sp = params();
    sp.kubernetes[0].deployments[0].pdb = Some(firedrill::sim::model::PdbParams {
        max_unavailable: Some(0),
        min_available: None,
    });
    let p = provider_with(sp);
    let r = inject(
        &p,
        "k8s.drain_zone",
        json!({"zone": "us-east-1b", "timeout": "20s"}),
    )
    .await;
    match r {
        Err(ProviderError {
            kind: ErrorKind::InvalidState,
            message: m,
            ..
        }) => {
            assert!(
                m.contains("timed out after 20s") && m.contains("PodDisruptionBudget api"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(nodes(&p, Some("us-east-1b")).await["schedulable"], 3);
}

#[tokio::test(start_paused = true)]
async fn drain_zone_by_taint_and_node_drain_kube_system_rule() {
    let p = provider();
    let params_ = json!({"zone": "us-east-1c", "method": "taint"});
    let out = inject(&p, "k8s.drain_zone", params_.clone()).await.unwrap();
    assert_eq!(
        (
            out["method"].as_str(),
            out["nodes"].as_array().unwrap().len()
        ),
        (Some("taint"), 3)
    );
    // NoExecute ignores budgets: every api pod of the zone is Terminating at once.
    let v = observe(
        &p,
        "k8s.pods",
        json!({"namespace": "web", "selector": {"app": "api"}}),
    )
    .await;
    assert_eq!(v["terminating"], 2);
    assert_eq!(nodes(&p, Some("us-east-1c")).await["schedulable"], 0);
    p.revert_json("k8s.drain_zone", &params_, &out)
        .await
        .unwrap();
    assert_eq!(nodes(&p, Some("us-east-1c")).await["schedulable"], 3);

    // A non-DaemonSet kube-system pod makes a drain refuse unless allowed.
    let mut sp = params();
    sp.kubernetes[0].deployments.push(DeploymentParams {
        name: "coredns".into(),
        kind: WorkloadKind::Deployment,
        namespace: "kube-system".into(),
        labels: BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]),
        replicas: Some(9),
        startup: Duration::from_secs(5),
        startup_jitter: Duration::ZERO,
        memory_gib: 0.25,
        termination_grace: Duration::from_secs(30),
        pdb: None,
    });
    let p = provider_with(sp);
    let m = invalid(inject(&p, "k8s.node_drain", json!({"node": "us-east-1a-1"})).await);
    assert!(
        m.contains("refusing to evict kube-system pods") && m.contains("coredns"),
        "{m}"
    );
    assert_eq!(
        nodes(&p, None).await["schedulable"],
        9,
        "refused before cordoning"
    );
    let out = inject(
        &p,
        "k8s.node_drain",
        json!({"node": "us-east-1a-1", "allow_kube_system": true, "grace_period": "1s"}),
    )
    .await
    .unwrap();
    assert!(
        out["evicted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["namespace"] == "kube-system")
    );
}

#[tokio::test(start_paused = true)]
async fn node_taint_and_untaint_revert_exactly() {
    let p = provider();
    let t1 = json!({"node": "us-east-1b-2", "key": "team", "value": "a", "effect": "NoSchedule"});
    inject(&p, "k8s.node_taint", t1).await.unwrap();
    let t2 = json!({"node": "us-east-1b-2", "key": "team", "value": "b", "effect": "NoSchedule"});
    let out = inject(&p, "k8s.node_taint", t2.clone()).await.unwrap();
    assert_eq!(out["previous"]["us-east-1b-2"]["value"], "a");
    assert_eq!(nodes(&p, Some("us-east-1b")).await["schedulable"], 2);
    p.revert_json("k8s.node_taint", &t2, &out).await.unwrap();
    // Back to the value it had before the step, still tainted.
    let un = json!({"node": "us-east-1b-2", "key": "team"});
    let removed = inject(&p, "k8s.node_untaint", un.clone()).await.unwrap();
    assert_eq!(removed["removed"]["us-east-1b-2"][0]["value"], "a");
    assert_eq!(nodes(&p, Some("us-east-1b")).await["schedulable"], 3);
    p.revert_json("k8s.node_untaint", &un, &removed)
        .await
        .unwrap();
    assert_eq!(nodes(&p, Some("us-east-1b")).await["schedulable"], 2);
    let again = inject(
        &p,
        "k8s.node_untaint",
        json!({"node": "us-east-1b-2", "key": "team", "effect": "NoExecute"}),
    )
    .await
    .unwrap();
    assert_eq!(
        again["nodes"].as_array().unwrap().len(),
        0,
        "no NoExecute taint with that key"
    );
}

#[tokio::test(start_paused = true)]
async fn scale_and_workload_probe_and_revert() {
    let p = provider();
    let params_ = json!({"namespace": "data", "statefulset": "db", "replicas": 5});
    let out = inject(&p, "k8s.scale", params_.clone()).await.unwrap();
    assert_eq!(
        (out["previous"].as_u64(), out["kind"].as_str()),
        (Some(3), Some("statefulset"))
    );
    let w = observe(
        &p,
        "k8s.workload",
        json!({"namespace": "data", "statefulset": "db"}),
    )
    .await;
    assert_eq!(
        (
            w["replicas"].as_u64(),
            w["ready_replicas"].as_u64(),
            w["available"].as_bool()
        ),
        (Some(5), Some(3), Some(false))
    );
    // OrderedReady: db-3 then db-4, each after the controller delay and start-up.
    let c = params().kubernetes[0].clone();
    let db = &c.deployments[2];
    tokio::time::sleep((c.reschedule_delay + db.startup) * 2).await;
    let w = observe(
        &p,
        "k8s.workload",
        json!({"namespace": "data", "statefulset": "db"}),
    )
    .await;
    assert_eq!(
        (w["ready_replicas"].as_u64(), w["available"].as_bool()),
        (Some(5), Some(true))
    );
    p.revert_json("k8s.scale", &params_, &out).await.unwrap();
    let w = observe(
        &p,
        "k8s.workload",
        json!({"namespace": "data", "statefulset": "db"}),
    )
    .await;
    assert_eq!(w["replicas"], 3);
    let d = inject(
        &p,
        "k8s.scale",
        json!({"namespace": "web", "deployment": "worker", "replicas": 1}),
    )
    .await
    .unwrap();
    assert_eq!(d["previous"], 3);
    let m = invalid(
        inject(
            &p,
            "k8s.scale",
            json!({"namespace": "web", "deployment": "nope", "replicas": 1}),
        )
        .await,
    );
    assert!(
        m.contains("no deployment `web/nope`") && m.contains("web/api"),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn rollout_restart_replaces_pods_one_at_a_time_and_reverts() {
    let p = provider();
    let params_ = json!({"namespace": "web", "deployment": "worker"});
    let out = inject(&p, "k8s.rollout_restart", params_.clone())
        .await
        .unwrap();
    assert!(out["restarted_at"].is_string());
    let mut worst = 0;
    loop {
        let w = observe(&p, "k8s.workload", params_.clone()).await;
        worst = worst.max(3 - w["ready_replicas"].as_u64().unwrap());
        if w["rolling_out"] == false {
            assert_eq!(
                (w["updated_replicas"].as_u64(), w["available"].as_bool()),
                (Some(3), Some(true))
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(worst, 1, "maxUnavailable 1");
    let r = p
        .revert_json("k8s.rollout_restart", &params_, &out)
        .await
        .unwrap();
    assert_eq!(r["restored_annotations"], json!({}));
}

#[tokio::test(start_paused = true)]
async fn pod_restarts_window_and_nodes_after_zone_loss() {
    let p = provider();
    let c = params().kubernetes[0].clone();
    inject(
        &p,
        "k8s.pod_kill",
        json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed", "value": 3}),
    )
    .await
    .unwrap();
    tokio::time::sleep(c.reschedule_delay).await;
    let q = json!({"namespace": "web", "selector": {"app": "api"}, "window": "5m"});
    let r = observe(&p, "k8s.pod_restarts", q.clone()).await;
    assert_eq!(
        (
            r["restarts"].as_u64(),
            r["increase"].as_u64(),
            r["window_seconds"].as_f64()
        ),
        (Some(3), Some(3), Some(300.0))
    );
    tokio::time::sleep(Duration::from_secs(300)).await;
    let r = observe(&p, "k8s.pod_restarts", q).await;
    assert_eq!(
        (r["restarts"].as_u64(), r["increase"].as_u64()),
        (Some(3), Some(0))
    );

    // Zone loss: the API shows the nodes Ready until the node controller notices.
    inject(&p, "az.power_interruption", json!({"zone": "us-east-1b"}))
        .await
        .unwrap();
    assert_eq!(nodes(&p, Some("us-east-1b")).await["ready"], 3);
    tokio::time::sleep(c.node_failure_detection).await;
    let n = nodes(&p, Some("us-east-1b")).await;
    assert_eq!(
        (n["ready"].as_u64(), n["schedulable"].as_u64()),
        (Some(0), Some(0))
    );
    let all = nodes(&p, None).await;
    assert!((all["ready_ratio"].as_f64().unwrap() - 6.0 / 9.0).abs() < 1e-9);
    let v = pods(&p, "web", "api").await;
    assert_eq!(v["unreachable"], 2);
}
