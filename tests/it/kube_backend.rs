//! The Kubernetes backend (kube-rs) against the simulated estate served as a Kubernetes API
//! (`KubeApi::client`: real HTTP/1.1 over an in-memory duplex) on a paused clock:
//! 1. every action, rollback and probe, with probes cross-checked against the simulated backend
//!    reading the same estate;
//! 2. the pod-kill and az-loss samples through the executor, `k8s.*` over kube-rs and the rest
//!    on the same estate, reaching the verdicts and RTOs of the pure simulated backend;
//! 3. kill-to-Ready times measured by the backend's watch against the estate's own record and
//!    its modelled delay (`reschedule_delay + startup ± startup_jitter`);
//! 4. denied RBAC (refused by the access review the API serves, or by the 403 of a cluster
//!    without it) and bad selectors leaving nothing changed.
//!
//! Run with `--nocapture` to see the measured-vs-modelled figures.

use firedrill::backend::k8s::{KubeProvider, KubernetesSettings, from_client};
use firedrill::backend::sim::{SharedEstate, SimProvider, WARM_UP};
use firedrill::backend::{EnvironmentEvent, ErrorKind, Provider, ProviderExt, RunContext};
use firedrill::engine::clock::RunClock;
use firedrill::engine::drill::Drill;
use firedrill::engine::events::VerdictKind;
use firedrill::engine::executor::Outcome;
use firedrill::lang::environment::Backend;
use firedrill::sim::kube_api::KubeApi;
use firedrill::sim::model::{Obj, ObjKind, PodRecovery};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const CLUSTER: &str = "prod-east";
const SEED: u64 = 42;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn settings() -> KubernetesSettings {
    KubernetesSettings {
        cluster: Some(CLUSTER.into()),
        ..Default::default()
    }
}

/// One estate, seen through the simulated backend and through kube-rs over its served API.
struct Rig {
    shared: SharedEstate,
    api: KubeApi,
    kube: Arc<KubeProvider>,
    sim: Arc<SimProvider>,
}

fn rig() -> Rig {
    let env = firedrill::lang::environment::builtin(&[]).unwrap();
    let sim = SimProvider::new(&env, Some(SEED)).unwrap();
    let shared = sim.shared();
    let clock = RunClock::start_now();
    let api = KubeApi::new(shared.clone(), CLUSTER).unwrap();
    let kube = from_client(api.client(), settings()).with_seed(SEED);
    let ctx = RunContext {
        clock,
        run_id: "test".into(),
        experiment: "test".into(),
    };
    sim.start(&ctx);
    kube.start(&ctx);
    Rig {
        shared,
        api,
        kube: Arc::new(kube),
        sim: Arc::new(sim),
    }
}

impl Rig {
    async fn act(&self, action: &str, p: Json) -> Json {
        match self.kube.inject_json(action, &p).await {
            Ok(o) => o,
            Err(e) => panic!("{action} {p}: {e}"),
        }
    }

    async fn revert(&self, action: &str, p: Json, out: &Json) -> Json {
        match self.kube.revert_json(action, &p, out).await {
            Ok(o) => o,
            Err(e) => panic!("revert {action} {p}: {e}"),
        }
    }

    async fn probe(&self, probe: &str, p: Json) -> Json {
        match self.kube.observe_json(probe, &p).await {
            Ok(o) => o,
            Err(e) => panic!("{probe} {p}: {e}"),
        }
    }

    fn objects(&self, kind: ObjKind) -> Vec<Obj> {
        let now = self.shared.now();
        self.shared
            .lock()
            .objects(now, CLUSTER, kind)
            .unwrap()
            .into_iter()
            .map(|(_, o)| o)
            .collect()
    }

    /// Everything a drill could change: nodes, pods and workloads.
    fn snapshot(&self) -> Vec<Obj> {
        let mut all = self.objects(ObjKind::Node);
        all.extend(self.objects(ObjKind::Pod));
        all.extend(self.objects(ObjKind::Deployment));
        all.extend(self.objects(ObjKind::StatefulSet));
        all
    }

    fn nodes(&self) -> BTreeMap<String, firedrill::sim::model::NodeObj> {
        self.objects(ObjKind::Node)
            .into_iter()
            .filter_map(|o| match o {
                Obj::Node(n) => Some((n.name.clone(), n)),
                _ => None,
            })
            .collect()
    }

    fn pods(&self, ns: &str, app: &str) -> Vec<firedrill::sim::model::PodObj> {
        self.objects(ObjKind::Pod)
            .into_iter()
            .filter_map(|o| match o {
                Obj::Pod(p)
                    if p.namespace == ns
                        && p.labels.get("app").map(String::as_str) == Some(app) =>
                {
                    Some(p)
                }
                _ => None,
            })
            .collect()
    }

    fn workload(&self, kind: ObjKind, ns: &str, name: &str) -> firedrill::sim::model::WorkloadObj {
        match self
            .objects(kind)
            .into_iter()
            .find(|o| o.namespace() == ns && o.name() == name)
        {
            Some(Obj::Workload(w)) => w,
            other => panic!("no {kind:?} {ns}/{name}: {other:?}"),
        }
    }

    fn recoveries(&self) -> Vec<PodRecovery> {
        self.shared.lock().pod_recoveries().to_vec()
    }

    /// Wait (virtual time) until every pod the backend is watching has a Ready replacement.
    async fn settle(&self) {
        for _ in 0..1200 {
            if self.kube.recovery_idle() {
                return;
            }
            tokio::time::sleep(secs(1)).await;
        }
        panic!("pods did not recover within 20 minutes");
    }
}

fn zone_nodes(r: &Rig, zone: &str) -> Vec<String> {
    r.nodes()
        .into_values()
        .filter(|n| n.zone == zone)
        .map(|n| n.name)
        .collect()
}

fn strs(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

// ---- 1. probes agree with the simulated backend ----------------------------------------------

/// `k8s.pods`, `k8s.nodes` and `k8s.memory` read through kube-rs give what the simulated backend
/// reads from the same estate, through a pod kill and an AZ power loss.
#[tokio::test(start_paused = true)]
async fn probes_agree_with_the_simulated_backend() {
    let r = rig();
    async fn compare(r: &Rig, when: &str) {
        for app in ["api", "worker"] {
            let p = json!({"namespace": "web", "selector": {"app": app}});
            let k = r.probe("k8s.pods", p.clone()).await;
            let s = r.sim.observe_json("k8s.pods", &p).await.unwrap();
            for f in [
                "desired",
                "total",
                "ready",
                "starting",
                "pending",
                "terminating",
                "unreachable",
                "ready_ratio",
            ] {
                assert_eq!(
                    k[f], s[f],
                    "{when}: k8s.pods {app} {f}: kube {k} vs sim {s}"
                );
            }
        }
        for zone in [
            None,
            Some("us-east-1a"),
            Some("us-east-1b"),
            Some("us-east-1c"),
        ] {
            let p = match zone {
                Some(z) => json!({"zone": z}),
                None => json!({}),
            };
            let k = r.probe("k8s.nodes", p.clone()).await;
            let s = r.sim.observe_json("k8s.nodes", &p).await.unwrap();
            for f in ["ready", "total", "schedulable"] {
                assert_eq!(
                    k[f], s[f],
                    "{when}: k8s.nodes {zone:?} {f}: kube {k} vs sim {s}"
                );
            }
        }
        let k = r.probe("k8s.memory", json!({})).await["utilization"]
            .as_f64()
            .unwrap();
        let s = r.sim.observe_json("k8s.memory", &json!({})).await.unwrap()["utilization"]
            .as_f64()
            .unwrap();
        assert!((k - s).abs() < 1e-9, "{when}: memory kube {k} vs sim {s}");
    }
    compare(&r, "baseline").await;
    r.act(
        "k8s.pod_kill",
        json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed-percent", "value": 50}),
    )
    .await;
    for t in [1, 10, 25, 45] {
        tokio::time::sleep(secs(t)).await;
        compare(&r, &format!("kill +{t}s")).await;
    }
    r.sim
        .inject_json("az.power_interruption", &json!({"zone": "us-east-1b"}))
        .await
        .unwrap();
    for t in [0, 30, 15, 65, 90, 120, 300] {
        tokio::time::sleep(secs(t)).await;
        compare(&r, &format!("zone loss +{t}s")).await;
    }
}

// ---- every action and rollback --------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn cordon_zone_and_its_rollback_touch_only_what_they_changed() {
    let r = rig();
    let nodes = zone_nodes(&r, "us-east-1a");
    // One node of the zone is cordoned before the drill.
    r.act("k8s.node_cordon", json!({"node": nodes[0]})).await;
    let p = json!({"zone": "us-east-1a"});
    let out = r.act("k8s.cordon_zone", p.clone()).await;
    assert_eq!(strs(&out["cordoned"]), nodes[1..]);
    assert_eq!(strs(&out["already_cordoned"]), nodes[..1]);
    assert!(
        r.nodes()
            .values()
            .filter(|n| n.zone == "us-east-1a")
            .all(|n| n.unschedulable)
    );
    let v = r.probe("k8s.nodes", json!({"zone": "us-east-1a"})).await;
    assert_eq!(v["schedulable"], 0);
    r.revert("k8s.cordon_zone", p, &out).await;
    let after = r.nodes();
    assert!(
        after[&nodes[0]].unschedulable,
        "cordoned before the drill: left alone"
    );
    assert!(!after[&nodes[1]].unschedulable && !after[&nodes[2]].unschedulable);
}

#[tokio::test(start_paused = true)]
async fn a_zone_drain_evicts_through_budgets_and_rolls_back() {
    let r = rig();
    let zone = "us-east-1a";
    let nodes = zone_nodes(&r, zone);
    let on_zone = |r: &Rig| -> Vec<String> {
        r.objects(ObjKind::Pod)
            .into_iter()
            .filter_map(|o| match o {
                Obj::Pod(p)
                    if p.deletion.is_none()
                        && p.owner_kind != "DaemonSet"
                        && p.node.as_ref().is_some_and(|n| nodes.contains(n)) =>
                {
                    Some(format!("{}/{}", p.namespace, p.name))
                }
                _ => None,
            })
            .collect()
    };
    let mut before = on_zone(&r);
    before.sort();
    assert!(
        before.iter().filter(|p| p.starts_with("web/api-")).count() >= 2,
        "{before:?}"
    );
    let p = json!({"zone": zone});
    let t0 = tokio::time::Instant::now();
    let out = r.act("k8s.drain_zone", p.clone()).await;
    let took = t0.elapsed();
    let mut evicted = strs(&out["evicted"]);
    evicted.sort();
    assert_eq!(evicted, before);
    assert_eq!(strs(&out["cordoned"]), nodes);
    assert!(
        strs(
            &out["skipped"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["pod"].clone())
                .collect()
        )
        .iter()
        .all(|s| s.starts_with("kube-system/node-exporter")),
        "{}",
        out["skipped"]
    );
    // The api PodDisruptionBudget (max_unavailable 1) answers 429 until a replacement is Ready:
    // the drain waited at least the modelled reschedule + start-up minus jitter.
    let c = &r.shared.lock().params().kubernetes[0].clone();
    let api = &c.deployments[0];
    assert!(
        took >= c.reschedule_delay + api.startup - api.startup_jitter,
        "drain took {took:?}"
    );
    println!(
        "zone drain of {zone}: {} pods evicted in {took:?} (PDB max_unavailable 1 on api)",
        evicted.len()
    );
    assert!(on_zone(&r).is_empty());
    r.settle().await;
    let v = r
        .probe(
            "k8s.pods",
            json!({"namespace": "web", "selector": {"app": "api"}}),
        )
        .await;
    assert_eq!(v["ready_ratio"], 1.0, "{v}");
    assert!(
        r.pods("web", "api")
            .iter()
            .all(|p| !nodes.contains(p.node.as_ref().unwrap())),
        "replacements avoid the cordoned zone"
    );
    r.revert("k8s.drain_zone", p, &out).await;
    assert!(r.nodes().values().all(|n| !n.unschedulable));
}

#[tokio::test(start_paused = true)]
async fn a_zone_taint_evicts_and_its_rollback_removes_it() {
    let r = rig();
    let zone = "us-east-1c";
    let nodes = zone_nodes(&r, zone);
    let p = json!({"zone": zone, "method": "taint"});
    let d = r.kube.describe_json("k8s.drain_zone", &p).await.unwrap();
    assert!(
        d.starts_with("taint 3 node(s) `firedrill.dev/zone-loss=us-east-1c:NoExecute`"),
        "{d}"
    );
    let out = r.act("k8s.drain_zone", p.clone()).await;
    assert_eq!(strs(&out["tainted"]), nodes);
    let tracked = out["pods"].as_array().unwrap().len();
    assert!(tracked > 0);
    for n in r.nodes().values().filter(|n| n.zone == zone) {
        assert!(
            n.taints
                .iter()
                .any(|t| t.key == "firedrill.dev/zone-loss" && t.effect.as_str() == "NoExecute"),
            "{n:?}"
        );
    }
    r.settle().await;
    let recovered = r
        .kube
        .drain_events()
        .iter()
        .filter(|e| e.detail.is_some())
        .count();
    assert_eq!(recovered, tracked, "every evicted pod's recovery was timed");
    assert!(
        r.pods("web", "api")
            .iter()
            .all(|p| !nodes.contains(p.node.as_ref().unwrap())),
        "nothing without a toleration stays on tainted nodes"
    );
    r.revert("k8s.drain_zone", p, &out).await;
    assert!(r.nodes().values().all(|n| n.taints.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn node_actions_and_their_rollbacks() {
    let r = rig();
    let node = zone_nodes(&r, "us-east-1b")[0].clone();
    let one = json!({"node": node});
    // Cordon / uncordon.
    let out = r.act("k8s.node_cordon", one.clone()).await;
    assert!(r.nodes()[&node].unschedulable);
    r.revert("k8s.node_cordon", one.clone(), &out).await;
    assert!(!r.nodes()[&node].unschedulable);
    r.act("k8s.node_cordon", one.clone()).await;
    let out = r.act("k8s.node_uncordon", one.clone()).await;
    assert_eq!(strs(&out["uncordoned"]), std::slice::from_ref(&node));
    assert!(!r.nodes()[&node].unschedulable);
    r.revert("k8s.node_uncordon", one.clone(), &out).await;
    assert!(
        r.nodes()[&node].unschedulable,
        "the rollback cordons it again"
    );
    r.act("k8s.node_uncordon", one.clone()).await;
    // Taint / untaint.
    let t = json!({"node": node, "key": "chaos", "value": "x", "effect": "NoSchedule"});
    let out = r.act("k8s.node_taint", t.clone()).await;
    assert_eq!(r.nodes()[&node].taints.len(), 1);
    assert_eq!(
        r.probe("k8s.nodes", json!({"zone": "us-east-1b"})).await["schedulable"],
        2
    );
    r.revert("k8s.node_taint", t.clone(), &out).await;
    assert!(r.nodes()[&node].taints.is_empty());
    r.act("k8s.node_taint", t.clone()).await;
    let u = json!({"node": node, "key": "chaos"});
    let out = r.act("k8s.node_untaint", u.clone()).await;
    assert!(r.nodes()[&node].taints.is_empty());
    r.revert("k8s.node_untaint", u.clone(), &out).await;
    let back = &r.nodes()[&node].taints;
    assert_eq!(
        (back.len(), back[0].key.as_str(), back[0].value.as_deref()),
        (1, "chaos", Some("x"))
    );
    r.act("k8s.node_untaint", u).await;
    // Drain one node.
    let pods_there = |r: &Rig| {
        r.objects(ObjKind::Pod)
            .into_iter()
            .filter(|o| matches!(o, Obj::Pod(p) if p.node.as_deref() == Some(node.as_str()) && p.owner_kind != "DaemonSet" && p.deletion.is_none()))
            .count()
    };
    let n = pods_there(&r);
    let out = r.act("k8s.node_drain", one.clone()).await;
    assert_eq!(strs(&out["evicted"]).len(), n);
    assert_eq!(pods_there(&r), 0);
    r.revert("k8s.node_drain", one, &out).await;
    assert!(!r.nodes()[&node].unschedulable);
}

#[tokio::test(start_paused = true)]
async fn scale_rollout_restart_and_workload_probes() {
    let r = rig();
    // Deployment.
    let p = json!({"namespace": "web", "deployment": "worker", "replicas": 5});
    let out = r.act("k8s.scale", p.clone()).await;
    assert_eq!(out["previous"], 3);
    assert_eq!(r.workload(ObjKind::Deployment, "web", "worker").replicas, 5);
    tokio::time::sleep(secs(60)).await;
    let w = r
        .probe(
            "k8s.workload",
            json!({"namespace": "web", "deployment": "worker"}),
        )
        .await;
    assert_eq!(
        (w["replicas"].as_i64(), w["available"].as_bool()),
        (Some(5), Some(true)),
        "{w}"
    );
    let v = r
        .probe(
            "k8s.pods",
            json!({"namespace": "web", "selector": {"app": "worker"}}),
        )
        .await;
    assert_eq!(
        (v["desired"].as_u64(), v["ready"].as_u64()),
        (Some(5), Some(5))
    );
    r.revert("k8s.scale", p, &out).await;
    assert_eq!(r.workload(ObjKind::Deployment, "web", "worker").replicas, 3);
    // StatefulSet.
    let p = json!({"namespace": "data", "statefulset": "db", "replicas": 2});
    let out = r.act("k8s.scale", p.clone()).await;
    assert_eq!(out["previous"], 3);
    assert_eq!(r.workload(ObjKind::StatefulSet, "data", "db").replicas, 2);
    let w = r
        .probe(
            "k8s.workload",
            json!({"namespace": "data", "statefulset": "db"}),
        )
        .await;
    assert_eq!(w["replicas"], 2);
    r.revert("k8s.scale", p, &out).await;
    assert_eq!(r.workload(ObjKind::StatefulSet, "data", "db").replicas, 3);
    // Rollout restart: the template annotation changes, pods roll, the rollback restores it.
    let p = json!({"namespace": "web", "deployment": "api"});
    let hash = r.workload(ObjKind::Deployment, "web", "api").template_hash;
    let out = r.act("k8s.rollout_restart", p.clone()).await;
    let w = r.workload(ObjKind::Deployment, "web", "api");
    assert_eq!(
        w.template_annotations
            .get("kubectl.kubernetes.io/restartedAt")
            .map(String::as_str),
        out["restarted_at"].as_str()
    );
    assert_ne!(w.template_hash, hash, "a new pod template");
    tokio::time::sleep(secs(600)).await;
    assert!(
        r.pods("web", "api")
            .iter()
            .all(|p| p.labels["pod-template-hash"] == w.template_hash)
    );
    let v = r
        .probe(
            "k8s.pods",
            json!({"namespace": "web", "selector": {"app": "api"}}),
        )
        .await;
    assert_eq!(v["ready_ratio"], 1.0, "{v}");
    r.revert("k8s.rollout_restart", p, &out).await;
    let w = r.workload(ObjKind::Deployment, "web", "api");
    assert!(
        !w.template_annotations
            .contains_key("kubectl.kubernetes.io/restartedAt")
    );
}

#[tokio::test(start_paused = true)]
async fn pod_restarts_count_replacements_over_the_window() {
    let r = rig();
    let p = json!({"namespace": "web", "selector": {"app": "api"}, "window": "5m"});
    assert_eq!(r.probe("k8s.pod_restarts", p.clone()).await["increase"], 0);
    r.act(
        "k8s.pod_kill",
        json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed", "value": 3}),
    )
    .await;
    tokio::time::sleep(secs(60)).await;
    assert_eq!(r.probe("k8s.pod_restarts", p.clone()).await["increase"], 3);
    tokio::time::sleep(secs(300)).await;
    assert_eq!(
        r.probe("k8s.pod_restarts", p).await["increase"],
        0,
        "older than the window"
    );
}

// ---- 3. kill -> Ready: measured vs modelled --------------------------------------------------

/// The estate's record of the replacement a measured event names.
fn record_of<'a>(d: &Json, estate: &'a [PodRecovery]) -> &'a PodRecovery {
    let rep = d["replacement"].as_str().unwrap();
    estate
        .iter()
        .rev()
        .find(|m| m.replacement == rep)
        .unwrap_or_else(|| panic!("the estate has no recovery with replacement {rep}"))
}

fn table(
    title: &str,
    events: &[EnvironmentEvent],
    estate: &[PodRecovery],
    bounds: Option<(Duration, Duration)>,
) {
    println!(
        "\n{title}: kill -> replacement scheduled / Ready, measured by the watch vs the estate's record"
    );
    println!(
        "{:<30} {:<30} {:<14} {:>11} {:>11} {:>11} {:>11}",
        "killed pod",
        "replacement",
        "owner",
        "sched meas",
        "sched model",
        "Ready meas",
        "Ready model"
    );
    for e in events {
        let d = e.detail.as_ref().unwrap();
        let m = record_of(d, estate);
        println!(
            "{:<30} {:<30} {:<14} {:>9}ms {:>9}ms {:>9}ms {:>9}ms",
            format!(
                "{}/{}",
                d["namespace"].as_str().unwrap(),
                d["pod"].as_str().unwrap()
            ),
            format!(
                "{} ({})",
                m.replacement,
                m.replacement_node.as_deref().unwrap_or("-")
            ),
            d["owner"].as_str().unwrap(),
            d["scheduled_after_ms"],
            (m.scheduled_at - m.killed_at).as_millis(),
            d["ready_after_ms"],
            (m.ready_at - m.killed_at).as_millis()
        );
    }
    if let Some((lo, hi)) = bounds {
        println!(
            "modelled kill->Ready range: {lo:?} .. {hi:?} (reschedule_delay + startup ± startup_jitter)"
        );
    }
}

/// Each measured timing equals the estate's record of the same replacement to the millisecond
/// (the watch sees a change at the instant the estate makes it), and the victims are the pods
/// the estate recorded as killed at the same instant.
fn check_against_estate(events: &[EnvironmentEvent], estate: &[PodRecovery]) {
    for e in events {
        let d = e.detail.as_ref().unwrap();
        let m = record_of(d, estate);
        let pod = d["pod"].as_str().unwrap();
        assert!(
            estate
                .iter()
                .any(|x| x.pod == pod && x.killed_at == m.killed_at),
            "{pod} was not killed with {}",
            m.pod
        );
        assert_eq!(
            d["replacement_node"],
            m.replacement_node.as_deref().unwrap(),
            "{pod}"
        );
        assert_eq!(d["owner"], m.owner.as_str(), "{pod}");
        assert_eq!(
            d["killed_at_ms"].as_u64().unwrap() as u128,
            (m.killed_at - WARM_UP).as_millis(),
            "{pod}"
        );
        assert_eq!(
            d["scheduled_after_ms"].as_u64().unwrap() as u128,
            (m.scheduled_at - m.killed_at).as_millis(),
            "{pod}"
        );
        assert_eq!(
            d["ready_after_ms"].as_u64().unwrap() as u128,
            (m.ready_at - m.killed_at).as_millis(),
            "{pod}"
        );
        assert_eq!(e.at_ms as u128, (m.ready_at - WARM_UP).as_millis(), "{pod}");
    }
}

#[tokio::test(start_paused = true)]
async fn kill_to_ready_measured_by_the_watch_matches_the_model() {
    let r = rig();
    let c = r.shared.lock().params().kubernetes[0].clone();
    let api = c
        .deployments
        .iter()
        .find(|d| d.name == "api")
        .unwrap()
        .clone();
    let lo = c.reschedule_delay + api.startup - api.startup_jitter;
    let hi = c.reschedule_delay + api.startup + api.startup_jitter;

    // Deployment pods: half of the api pods.
    let out = r
        .act("k8s.pod_kill", json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed-percent", "value": 50}))
        .await;
    assert_eq!(out["count"], 3);
    r.settle().await;
    let events: Vec<EnvironmentEvent> = r
        .kube
        .drain_events()
        .into_iter()
        .filter(|e| e.detail.is_some())
        .collect();
    assert_eq!(events.len(), 3);
    let estate = r.recoveries();
    table(
        "pod kill (3 of 6 api pods)",
        &events,
        &estate,
        Some((lo, hi)),
    );
    check_against_estate(&events, &estate);
    for e in &events {
        let d = e.detail.as_ref().unwrap();
        let ready = Duration::from_millis(d["ready_after_ms"].as_u64().unwrap());
        assert!(
            ready >= lo && ready <= hi,
            "{ready:?} outside {lo:?}..{hi:?}"
        );
        assert_eq!(
            Duration::from_millis(d["scheduled_after_ms"].as_u64().unwrap()),
            c.reschedule_delay
        );
    }

    // A StatefulSet pod: recreated under its name once its grace period has passed.
    let db = c
        .deployments
        .iter()
        .find(|d| d.name == "db")
        .unwrap()
        .clone();
    let out = r
        .act(
            "k8s.pod_kill",
            json!({"namespace": "data", "selector": {"app": "db"}, "mode": "one"}),
        )
        .await;
    let victim = out["pods"][0]["pod"].as_str().unwrap().to_string();
    r.settle().await;
    let events: Vec<EnvironmentEvent> = r
        .kube
        .drain_events()
        .into_iter()
        .filter(|e| e.detail.is_some())
        .collect();
    assert_eq!(events.len(), 1);
    let d = events[0].detail.as_ref().unwrap();
    assert_eq!(d["replacement"], victim.as_str(), "same name, new pod");
    let estate = r.recoveries();
    table("statefulset pod kill", &events, &estate, None);
    check_against_estate(&events, &estate);
    let ready = Duration::from_millis(d["ready_after_ms"].as_u64().unwrap());
    println!(
        "statefulset: termination_grace {:?} + reschedule_delay {:?} + startup {:?}",
        db.termination_grace, c.reschedule_delay, db.startup
    );
    assert!(ready >= db.startup + db.termination_grace, "{ready:?}");

    // A zone drain: evictions paced by the PodDisruptionBudget.
    r.act("k8s.drain_zone", json!({"zone": "us-east-1b"})).await;
    r.settle().await;
    let events: Vec<EnvironmentEvent> = r
        .kube
        .drain_events()
        .into_iter()
        .filter(|e| e.detail.is_some())
        .collect();
    assert!(!events.is_empty());
    let estate = r.recoveries();
    table("zone drain us-east-1b (evict)", &events, &estate, None);
    check_against_estate(&events, &estate);
}

// ---- 4. no partial damage --------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn denied_rbac_and_bad_selectors_change_nothing() {
    let r = rig();
    let before = r.snapshot();
    let kill = json!({"namespace": "web", "selector": {"app": "api"}, "mode": "all"});

    // The API serves SelfSubjectAccessReview from the same rules: the kill is refused before
    // any delete is sent.
    r.api.deny("delete", "pods");
    let e = r.kube.inject_json("k8s.pod_kill", &kill).await.unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(m.starts_with("RBAC denies `delete` on `pods` in namespace `web`; grant it in a Role bound to the user of"), "{m}");
    assert!(
        m.ends_with("(SelfSubjectAccessReview: no RBAC policy matched)"),
        "{m}"
    );
    assert_eq!(r.api.request_count("DELETE"), 0);
    assert_eq!(r.snapshot(), before);
    // A cluster without access reviews: the delete itself is refused (403), naming the user.
    r.api.serve_access_reviews(false);
    let e = r.kube.inject_json("k8s.pod_kill", &kill).await.unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(m.starts_with("RBAC denies `delete` on `pods` in namespace `web`; grant it in a Role bound to user `system:serviceaccount:firedrill:drill`"), "{m}");
    assert!(r.api.request_count("DELETE") > 0);
    assert_eq!(r.snapshot(), before);
    r.api.serve_access_reviews(true);

    r.api.deny("patch", "nodes");
    for (action, p) in [
        ("k8s.cordon_zone", json!({"zone": "us-east-1a"})),
        ("k8s.drain_zone", json!({"zone": "us-east-1a"})),
        (
            "k8s.drain_zone",
            json!({"zone": "us-east-1a", "method": "taint"}),
        ),
        (
            "k8s.node_taint",
            json!({"selector": {"topology.kubernetes.io/zone": "us-east-1a"}, "key": "k", "effect": "NoExecute"}),
        ),
    ] {
        let e = r.kube.inject_json(action, &p).await.unwrap_err();
        assert!(
            e.to_string().starts_with(
                "RBAC denies `patch` on `nodes` cluster-wide; grant it in a ClusterRole"
            ),
            "{action}: {e}"
        );
        assert_eq!(r.snapshot(), before, "{action}");
    }
    r.api.allow_all();

    // Evictions denied: the access review refuses the drain before it cordons anything...
    r.api.deny("create", "pods/eviction");
    r.api.clear_requests();
    let e = r
        .kube
        .inject_json("k8s.drain_zone", &json!({"zone": "us-east-1a"}))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("RBAC denies `create` on `pods/eviction` in namespace"),
        "{e}"
    );
    assert_eq!(r.api.mutations(), Vec::<String>::new());
    assert_eq!(r.snapshot(), before);
    // ... and without access reviews the drain cordons, cannot evict, and uncordons again.
    r.api.serve_access_reviews(false);
    let e = r
        .kube
        .inject_json("k8s.drain_zone", &json!({"zone": "us-east-1a"}))
        .await
        .unwrap_err();
    r.api.serve_access_reviews(true);
    assert!(
        e.to_string()
            .contains("RBAC denies `create` on `pods/eviction` in namespace"),
        "{e}"
    );
    assert!(
        e.to_string().contains("uncordoned again after the failure"),
        "{e}"
    );
    assert_eq!(
        r.snapshot()
            .iter()
            .filter(|o| matches!(o, Obj::Node(n) if n.unschedulable))
            .count(),
        0
    );
    assert_eq!(r.snapshot(), before);
    r.api.allow_all();

    r.api.deny("patch", "deployments/scale");
    let e = r
        .kube
        .inject_json(
            "k8s.scale",
            &json!({"namespace": "web", "deployment": "api", "replicas": 1}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("RBAC denies `patch` on `deployments/scale` in namespace `web`"),
        "{e}"
    );
    assert_eq!(r.snapshot(), before);
    r.api.allow_all();

    for (action, p, msg) in [
        (
            "k8s.pod_kill",
            json!({"namespace": "web", "selector": {"app": "apii"}}),
            "no running pods match selector `app=apii` in namespace `web`; the running pods there have labels: app=api; app=worker",
        ),
        (
            "k8s.pod_kill",
            json!({"namespace": "shop", "selector": {"app": "api"}}),
            "no running pods match selector `app=api` in namespace `shop`; namespace `shop` does not exist in the cluster (namespaces: data, default",
        ),
        (
            "k8s.cordon_zone",
            json!({"zone": "us-east-1z"}),
            "no nodes in zone `us-east-1z` (label topology.kubernetes.io/zone); zones with nodes: us-east-1a, us-east-1b, us-east-1c",
        ),
        (
            "k8s.pod_kill",
            json!({"namespace": "web", "selector": {"app": "api"}, "mode": "all", "max_pods": 2}),
            "blast radius: mode `all` would kill 6 of the 6 pods",
        ),
        (
            "k8s.pod_kill",
            json!({"namespace": "kube-system", "selector": {"app": "node-exporter"}}),
            "refusing to act on namespace `kube-system`",
        ),
        (
            "k8s.node_drain",
            json!({"node": "us-east-1a-9"}),
            "node `us-east-1a-9` not found; nodes: us-east-1a-1",
        ),
        (
            "k8s.scale",
            json!({"namespace": "web", "deployment": "apii", "replicas": 1}),
            "deployment `apii` not found in namespace `web`; deployments there: api, worker",
        ),
    ] {
        let e = r.kube.inject_json(action, &p).await.unwrap_err();
        // Caps and the kube-system rule deny; missing targets are not found.
        assert!(
            matches!(e.kind, ErrorKind::NotFound | ErrorKind::Denied),
            "{action}: {e:?}"
        );
        assert!(e.to_string().starts_with(msg), "{action}: {e}");
        assert_eq!(r.snapshot(), before, "{action}");
    }

    // Credentials the server rejects: 401, for probes, actions and preflight alike.
    r.api.require_token(Some("s3cret"));
    let e = r
        .kube
        .inject_json("k8s.cordon_zone", &json!({"zone": "us-east-1a"}))
        .await
        .unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("rejected the credentials (401 Unauthorized)"),
        "{m}"
    );
    let problems = r
        .kube
        .preflight(&[firedrill::backend::Call::new(
            "probe `nodes`".into(),
            "k8s.nodes",
            json!({}),
            false,
        )
        .unwrap()])
        .await;
    assert!(
        problems[0].error.to_string().contains("401 Unauthorized"),
        "{problems:?}"
    );
    let with_token = from_client(r.api.client_with_token(Some("s3cret")), settings());
    assert_eq!(
        with_token
            .observe_json("k8s.nodes", &json!({}))
            .await
            .unwrap()["total"],
        9
    );
    r.api.require_token(None);
    assert_eq!(r.snapshot(), before);

    // Preflight finds the same problems without touching anything.
    r.api.deny("delete", "pods");
    let calls = vec![
        firedrill::backend::Call::new(
            "step `kill`".into(),
            "k8s.pod_kill",
            json!({"namespace": "web", "selector": {"app": "apii"}}),
            true,
        )
        .unwrap(),
    ];
    let problems = r.kube.preflight(&calls).await;
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .error
            .to_string()
            .starts_with("no running pods match selector `app=apii`")
    );
    assert_eq!(r.snapshot(), before);
}

// ---- 2. the samples: kube-rs reaches the simulated backend's verdicts ------------------------

struct Run {
    outcome: Outcome,
    events: Vec<firedrill::engine::events::Record>,
    /// The estate's own record of every pod replaced during the run.
    estate: Vec<PodRecovery>,
}

async fn drill(file: &str, through_kube: bool) -> Run {
    let path = format!("{}/experiments/{file}", env!("CARGO_MANIFEST_DIR"));
    let exp = firedrill::lang::spec::parse_experiment(&path, &std::fs::read(&path).unwrap(), &[])
        .unwrap();
    let env = firedrill::lang::environment::builtin(&[]).unwrap();
    let sim = SimProvider::new(&env, Some(SEED)).unwrap();
    let shared = sim.shared();
    let provider: Arc<dyn Provider> = if through_kube {
        let api = KubeApi::new(shared.clone(), CLUSTER).unwrap();
        let kube = from_client(api.client(), settings()).with_seed(SEED);
        Arc::new(firedrill::backend::router::Router::from_parts(
            Backend::Sim,
            [Backend::Sim, Backend::Kubernetes].into_iter().collect(),
            vec![
                (
                    Backend::Sim,
                    Arc::new(SimProvider::from_shared(shared.clone(), SEED)) as Arc<dyn Provider>,
                ),
                (Backend::Kubernetes, Arc::new(kube) as Arc<dyn Provider>),
            ],
        ))
    } else {
        Arc::new(sim)
    };
    let (outcome, events) = Drill::new(exp, provider)
        .run_id("test")
        .environment(env.name.clone())
        .seed(SEED)
        .run_recorded()
        .await;
    let estate = shared.lock().pod_recoveries().to_vec();
    Run {
        outcome,
        events,
        estate,
    }
}

fn measured(o: &Outcome, name: &str) -> Option<Duration> {
    o.measurements
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| m.measured_ms)
        .map(Duration::from_millis)
}

fn pod_recoveries(run: &Run) -> Vec<Json> {
    run.events
        .iter()
        .filter_map(|r| match &r.event {
            // The Kubernetes backend's own (the simulated backend reports the same estate's
            // recoveries as `k8s <cluster>`).
            firedrill::engine::events::Event::EnvironmentEvent {
                component,
                detail: Some(d),
                ..
            } if d["kind"] == "pod_recovery" && component.starts_with("kubernetes ") => {
                Some(d.clone())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_samples_reach_the_simulated_backends_verdicts_through_kube_rs() {
    for file in ["pod-kill.yaml", "az-loss.yaml"] {
        let sim = drill(file, false).await;
        let kube = drill(file, true).await;
        let rto = |o: &Outcome| measured(o, "rto");
        println!(
            "{file}: sim backend {:?} RTO {:?} | kube-rs backend {:?} RTO {:?} (reasons: {:?})",
            sim.outcome.verdict,
            rto(&sim.outcome),
            kube.outcome.verdict,
            rto(&kube.outcome),
            kube.outcome.reasons
        );
        assert_eq!(
            sim.outcome.verdict,
            VerdictKind::Pass,
            "{file}: {:?}",
            sim.outcome.reasons
        );
        assert_eq!(
            kube.outcome.verdict, sim.outcome.verdict,
            "{file}: {:?}",
            kube.outcome.reasons
        );
        assert_eq!(kube.outcome.exit_code, sim.outcome.exit_code);
        let (a, b) = (rto(&sim.outcome).unwrap(), rto(&kube.outcome).unwrap());
        // Different pods may be picked, and each replacement's start-up jitter is drawn in
        // turn, so the RTOs may differ by the jitter span plus one poll interval.
        let slack = secs(20) + secs(10);
        assert!(
            a.abs_diff(b) <= slack,
            "{file}: RTO sim {a:?} vs kube {b:?}"
        );
        for m in ["rpo", "mttd"] {
            assert_eq!(
                measured(&sim.outcome, m).is_some(),
                measured(&kube.outcome, m).is_some(),
                "{file} {m}"
            );
        }
        if file == "pod-kill.yaml" {
            for m in &sim.estate {
                println!(
                    "  sim backend: {}/{} on {} -> {} on {}: scheduled after {}ms, Ready after {}ms (estate record)",
                    m.namespace,
                    m.pod,
                    m.node.as_deref().unwrap_or("-"),
                    m.replacement,
                    m.replacement_node.as_deref().unwrap_or("-"),
                    (m.scheduled_at - m.killed_at).as_millis(),
                    (m.ready_at - m.killed_at).as_millis()
                );
            }
            let recs = pod_recoveries(&kube);
            assert_eq!(recs.len(), 3, "one recovery timing per killed pod");
            // The journaled timings are the estate's, to the millisecond.
            for d in &recs {
                let m = record_of(d, &kube.estate);
                assert_eq!(
                    d["ready_after_ms"].as_u64().unwrap() as u128,
                    (m.ready_at - m.killed_at).as_millis()
                );
            }
            for d in &recs {
                println!(
                    "  kube-rs backend: {}/{} on {} -> {} on {}: scheduled after {}ms, Ready after {}ms (measured by the watch)",
                    d["namespace"].as_str().unwrap(),
                    d["pod"].as_str().unwrap(),
                    d["node"].as_str().unwrap(),
                    d["replacement"].as_str().unwrap(),
                    d["replacement_node"].as_str().unwrap(),
                    d["scheduled_after_ms"],
                    d["ready_after_ms"]
                );
            }
        }
    }
}

// ---- the real CLI over TCP -------------------------------------------------------------------

/// `firedrill run --dry-run` with a `kubernetes: {server: ...}` section, against the served API
/// on a TCP port (real time, real sockets): connect, preflight and describe end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_dry_run_lists_the_pods_over_tcp_and_preflight_catches_an_unreachable_server() {
    let env = firedrill::lang::environment::builtin(&[]).unwrap();
    let sim = SimProvider::new(&env, Some(SEED)).unwrap();
    let shared = sim.shared();
    shared.start(RunClock::start_now());
    let api = KubeApi::new(shared.clone(), CLUSTER).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(api.serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let write_env = |name: &str, port: u16| {
        let path = dir.path().join(name);
        // The built-in estate (same seed and parameters as the served one) plus a kubernetes
        // section pointing at the served API.
        let sim_yaml =
            firedrill::lang::environment::BUILTIN_SIM.replace("name: sim\n", "name: served\n");
        std::fs::write(
            &path,
            format!(
                "{sim_yaml}kubernetes:\n  server: http://127.0.0.1:{port}\n  cluster: {CLUSTER}\n  namespaces: [web]\n  request_timeout: 10s\n"
            ),
        )
        .unwrap();
        path
    };
    let good = write_env("good.yaml", port);
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bad = write_env("bad.yaml", closed);
    let exp = format!("{}/experiments/pod-kill.yaml", env!("CARGO_MANIFEST_DIR"));
    let run = |env: std::path::PathBuf| {
        let exp = exp.clone();
        let cwd = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
                .current_dir(cwd)
                .args(["run", &exp, "--env"])
                .arg(env)
                .arg("--dry-run")
                .output()
                .unwrap()
        })
    };
    let out = run(good).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Environment: served (backend sim + kubernetes"),
        "{stdout}"
    );
    let would = &stdout[stdout.find("Would do:").expect("a Would do section")..];
    let line = would
        .lines()
        .find(|l| l.trim_start().starts_with("kill-api-pods"))
        .unwrap();
    assert!(
        line.contains(
            "kill 3 of 6 pod(s) matching `app=api` in web (mode fixed-percent): web/api-"
        ),
        "{line}"
    );
    assert!(line.contains("picked at random at run time"), "{line}");
    println!("dry run over TCP: {}", line.trim());

    let out = run(bad).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("preflight found 1 problem(s)"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the Kubernetes API server at http://127.0.0.1:{closed}"
        )),
        "{stderr}"
    );
    server.abort();
}

// ---- parity: the same step through both backends ----------------------------------------------

/// What a step changed, as both backends would show it: terminating pods (by name, or only
/// their count when the pick is random), unschedulable nodes, node taints.
fn effect(r: &Rig, random_pick: bool) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut gone: Vec<String> = r
        .objects(ObjKind::Pod)
        .into_iter()
        .filter_map(|o| match o {
            Obj::Pod(p) if p.deletion.is_some() => Some(format!("{}/{}", p.namespace, p.name)),
            _ => None,
        })
        .collect();
    if random_pick {
        gone = vec![format!("{} pods", gone.len())];
    }
    let nodes = r.nodes();
    let cordoned = nodes
        .values()
        .filter(|n| n.unschedulable)
        .map(|n| n.name.clone())
        .collect();
    let taints = nodes
        .values()
        .flat_map(|n| {
            n.taints.iter().map(move |t| {
                format!(
                    "{}:{}={}:{}",
                    n.name,
                    t.key,
                    t.value.clone().unwrap_or_default(),
                    t.effect.as_str()
                )
            })
        })
        .collect();
    (gone, cordoned, taints)
}

/// The simulated estate and the kube-rs backend share one Kubernetes semantics
/// (`lang::kubernetes`): the same step hits the same pods and nodes, puts the same taint, and
/// is refused with the same kind and message.
#[tokio::test(start_paused = true)]
async fn both_backends_hit_and_refuse_the_same() {
    let web_api = |extra: Json| {
        let mut p = json!({"namespace": "web", "selector": {"app": "api"}});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    // (action, parameters, the pick among the matches is random)
    let cases: Vec<(&str, Json, bool)> = vec![
        ("k8s.pod_kill", web_api(json!({"mode": "all"})), false),
        (
            "k8s.pod_kill",
            web_api(json!({"mode": "fixed-percent", "value": 50})),
            true,
        ),
        (
            "k8s.pod_kill",
            web_api(json!({"mode": "fixed", "value": 2, "max_pods": 2})),
            true,
        ),
        (
            "k8s.pod_kill",
            json!({"namespaces": ["web", "data"], "selector": {"app": "worker"}, "mode": "all"}),
            false,
        ),
        // Refusals: caps against the highest count a mode may take, kube-system, no match.
        (
            "k8s.pod_kill",
            web_api(json!({"mode": "all", "max_pods": 2})),
            false,
        ),
        (
            "k8s.pod_kill",
            web_api(json!({"mode": "random-max-percent", "value": 50, "max_pods": 2})),
            false,
        ),
        (
            "k8s.pod_kill",
            web_api(json!({"mode": "all", "max_percent": 50})),
            false,
        ),
        (
            "k8s.pod_kill",
            json!({"namespace": "kube-system", "selector": {"app": "node-exporter"}}),
            false,
        ),
        (
            "k8s.pod_kill",
            json!({"namespace": "shop", "selector": {"app": "api"}}),
            false,
        ),
        ("k8s.cordon_zone", json!({"zone": "us-east-1a"}), false),
        (
            "k8s.cordon_zone",
            json!({"zone": "us-east-1a", "max_nodes": 1}),
            false,
        ),
        ("k8s.cordon_zone", json!({"zone": "us-east-1z"}), false),
        (
            "k8s.drain_zone",
            json!({"zone": "us-east-1c", "method": "taint"}),
            false,
        ),
        (
            "k8s.node_cordon",
            json!({"selector": {"topology.kubernetes.io/zone": "us-east-1b"}}),
            false,
        ),
        (
            "k8s.node_taint",
            json!({"node": "us-east-1a-1", "key": "example.com/maint", "value": "x", "effect": "NoSchedule"}),
            false,
        ),
        (
            "k8s.scale",
            json!({"namespace": "web", "deployment": "apii", "replicas": 1}),
            false,
        ),
        (
            "k8s.rollout_restart",
            json!({"namespace": "web", "statefulset": "nope"}),
            false,
        ),
    ];
    let mut compared = 0;
    for (action, p, random) in cases {
        let (s, k) = (rig(), rig());
        let by_sim = s.sim.inject_json(action, &p).await;
        let by_kube = k.kube.inject_json(action, &p).await;
        match (&by_sim, &by_kube) {
            (Ok(_), Ok(_)) => {
                assert_eq!(effect(&s, random), effect(&k, random), "{action} {p}");
                compared += 1;
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.kind, b.kind, "{action} {p}: sim {a}; kube {b}");
                if a.kind == ErrorKind::Denied {
                    assert_eq!(a.message, b.message, "{action} {p}");
                }
                assert_eq!(
                    effect(&s, false),
                    effect(&rig(), false),
                    "{action}: sim touched"
                );
                assert_eq!(
                    effect(&k, false),
                    effect(&rig(), false),
                    "{action}: kube touched"
                );
            }
            _ => panic!("{action} {p}: the backends disagree: sim {by_sim:?}; kube {by_kube:?}"),
        }
    }
    assert!(compared >= 7, "the successful cases compared effects");
}

/// A probe whose target matches nothing is never passing, on either backend.
#[tokio::test(start_paused = true)]
async fn a_probe_on_nothing_fails_on_both_backends() {
    let r = rig();
    for (probe, p) in [
        (
            "k8s.pods",
            json!({"namespace": "web", "selector": {"app": "nothing"}}),
        ),
        (
            "k8s.pods",
            json!({"namespace": "shop", "selector": {"app": "api"}}),
        ),
        (
            "k8s.pod_restarts",
            json!({"namespace": "web", "selector": {"app": "nothing"}}),
        ),
    ] {
        let s = r.sim.observe_json(probe, &p).await.unwrap_err();
        let k = r.kube.observe_json(probe, &p).await.unwrap_err();
        assert_eq!(s.kind, ErrorKind::NotFound, "{probe} {p}: {s}");
        assert_eq!(k.kind, ErrorKind::NotFound, "{probe} {p}: {k}");
    }
    // A workload scaled to zero still has a controller that wants its pods back: not an error,
    // and not passing either (nothing is ready).
    r.act(
        "k8s.scale",
        json!({"namespace": "web", "deployment": "api", "replicas": 0}),
    )
    .await;
    let p = json!({"namespace": "web", "selector": {"app": "api"}});
    let k = r.probe("k8s.pods", p.clone()).await;
    let s = r.sim.observe_json("k8s.pods", &p).await.unwrap();
    assert_eq!(k["desired"], 0, "{k}");
    assert_eq!(k["ready_ratio"], 0.0, "terminating pods are not ready: {k}");
    assert_eq!(s["ready_ratio"], k["ready_ratio"], "sim {s}; kube {k}");
}
