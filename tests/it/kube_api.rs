//! The simulated estate's Kubernetes API, exercised through kube-rs (`KubeApi::client`: real
//! HTTP/1.1 over an in-memory duplex) on a paused clock. Timings are asserted against the
//! estate's parameters, not constants.

use std::time::Duration;

use firedrill::backend::sim::SharedEstate;
use firedrill::engine::clock::RunClock;
use firedrill::sim::kube_api::KubeApi;
use firedrill::sim::model::{ClusterParams, Estate, SimParams};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams,
};

const CLUSTER: &str = "prod-east";

fn setup() -> (SharedEstate, KubeApi, kube::Client) {
    let shared = SharedEstate::new(Estate::from_params(SimParams::default()).unwrap());
    shared.start(RunClock::start_now());
    let api = KubeApi::new(shared.clone(), CLUSTER).unwrap();
    let client = api.client();
    (shared, api, client)
}

fn cluster_params(shared: &SharedEstate) -> ClusterParams {
    shared.lock().params().kubernetes[0].clone()
}

fn api_err(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn ready_since(p: &Pod) -> i64 {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.as_second())
        .unwrap()
}

fn created(p: &Pod) -> i64 {
    p.metadata
        .creation_timestamp
        .as_ref()
        .unwrap()
        .0
        .as_second()
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect()
}

async fn list(api: &Api<Pod>, sel: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(sel))
        .await
        .unwrap()
        .items
}

#[tokio::test(start_paused = true)]
async fn lists_with_label_and_field_selectors() {
    let (_s, _api, client) = setup();
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    assert_eq!(list(&web, "app=api").await.len(), 6);
    assert_eq!(list(&web, "app==worker").await.len(), 3);
    assert_eq!(list(&web, "app in (api, worker)").await.len(), 9);
    assert_eq!(list(&web, "app notin (api)").await.len(), 3);
    assert_eq!(list(&web, "app!=api").await.len(), 3);
    assert_eq!(list(&web, "pod-template-hash").await.len(), 9);
    assert_eq!(list(&web, "!app").await.len(), 0);
    let all: Api<Pod> = Api::all(client.clone());
    let every = all.list(&ListParams::default()).await.unwrap();
    // 6 api + 3 worker + 3 db + one node-exporter per node (9).
    assert_eq!(every.items.len(), 21);
    assert!(every.metadata.resource_version.is_some());
    let node = every.items[0]
        .spec
        .as_ref()
        .unwrap()
        .node_name
        .clone()
        .unwrap();
    let on_node = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .unwrap()
        .items;
    assert!(!on_node.is_empty());
    assert!(
        on_node
            .iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(&node))
    );
    let running = all
        .list(&ListParams::default().fields("status.phase=Running,metadata.namespace=data"))
        .await
        .unwrap()
        .items;
    assert_eq!(names(&running), ["db-0", "db-1", "db-2"]);

    let nodes: Api<Node> = Api::all(client.clone());
    let zone_a = nodes
        .list(&ListParams::default().labels("topology.kubernetes.io/zone=us-east-1a"))
        .await
        .unwrap()
        .items;
    assert_eq!(zone_a.len(), 3);
    let labels = zone_a[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels["topology.kubernetes.io/region"], "us-east-1");
    assert_eq!(
        labels["kubernetes.io/hostname"],
        zone_a[0].metadata.name.clone().unwrap()
    );

    // Owners: a ReplicaSet named after the template hash, and a StatefulSet.
    let api_pod = &list(&web, "app=api").await[0];
    let owner = &api_pod.metadata.owner_references.as_ref().unwrap()[0];
    let hash = &api_pod.metadata.labels.as_ref().unwrap()["pod-template-hash"];
    assert_eq!(
        (owner.kind.as_str(), owner.name.clone()),
        ("ReplicaSet", format!("api-{hash}"))
    );

    let err = web
        .list(&ListParams::default().labels("app in (api"))
        .await
        .unwrap_err();
    let (code, reason, msg) = api_err(err);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert!(msg.contains("unable to parse requirement"), "{msg}");
    let err = all
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await
        .unwrap_err();
    assert!(
        api_err(err)
            .2
            .contains("field label not supported: spec.bogus")
    );
}

#[tokio::test(start_paused = true)]
async fn get_and_not_found() {
    let (_s, _api, client) = setup();
    let data: Api<Pod> = Api::namespaced(client.clone(), "data");
    let p = data.get("db-1").await.unwrap();
    assert!(ready(&p));
    let (code, reason, msg) = api_err(data.get("db-9").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), msg.as_str()),
        (404, "NotFound", "pods \"db-9\" not found")
    );
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "data");
    let s = sts.get("db").await.unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(3));
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "web");
    let pdb = pdbs.get("api").await.unwrap();
    let st = pdb.status.unwrap();
    assert_eq!(
        (
            st.current_healthy,
            st.desired_healthy,
            st.disruptions_allowed
        ),
        (6, 5, 1)
    );
}

/// A deleted pod stays Terminating for its grace period; the ReplicaSet's replacement appears
/// after `reschedule_delay` and is Ready after the modelled start-up (± jitter).
#[tokio::test(start_paused = true)]
async fn delete_is_replaced_after_the_modelled_delays() {
    let (shared, _api, client) = setup();
    let c = cluster_params(&shared);
    let dep = &c.deployments[0];
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    let before = names(&list(&web, "app=api").await);
    let victim = before[0].clone();
    let deleted = web
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the pod, Terminating");
    let md = &deleted.metadata;
    assert_eq!(
        md.deletion_grace_period_seconds,
        Some(dep.termination_grace.as_secs() as i64)
    );
    assert!(md.deletion_timestamp.is_some());
    let killed_at = tokio::time::Instant::now();

    tokio::time::sleep(c.reschedule_delay - Duration::from_millis(1)).await;
    assert_eq!(
        list(&web, "app=api").await.len(),
        6,
        "no replacement before the delay"
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    let now = list(&web, "app=api").await;
    assert_eq!(
        now.len(),
        7,
        "replacement created, victim still Terminating"
    );
    let new: Vec<&Pod> = now
        .iter()
        .filter(|p| !before.contains(p.metadata.name.as_ref().unwrap()))
        .collect();
    assert_eq!(new.len(), 1);
    let new_name = new[0].metadata.name.clone().unwrap();
    assert!(!ready(new[0]));

    // Ready within startup ± jitter of its creation.
    loop {
        let p = web.get(&new_name).await.unwrap();
        if ready(&p) {
            let took = ready_since(&p) - created(&p);
            let (lo, hi) = (
                (dep.startup - dep.startup_jitter).as_secs() as i64 - 1,
                (dep.startup + dep.startup_jitter).as_secs() as i64 + 1,
            );
            assert!((lo..=hi).contains(&took), "ready after {took}s");
            break;
        }
        assert!(
            killed_at.elapsed()
                < c.reschedule_delay + dep.startup + dep.startup_jitter + Duration::from_secs(1)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The victim is gone once its grace period is over.
    tokio::time::sleep_until(killed_at + dep.termination_grace).await;
    let (code, ..) = api_err(web.get(&victim).await.unwrap_err());
    assert_eq!(code, 404);

    // Grace period 0 deletes at once.
    let other = before[1].clone();
    web.delete(&other, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(api_err(web.get(&other).await.unwrap_err()).0, 404);
}

#[tokio::test(start_paused = true)]
async fn eviction_is_refused_by_the_budget_then_allowed() {
    let (shared, _api, client) = setup();
    let c = cluster_params(&shared);
    let dep = &c.deployments[0];
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    let pods = names(&list(&web, "app=api").await);
    web.evict(&pods[0], &EvictParams::default()).await.unwrap();
    let (code, reason, msg) = api_err(
        web.evict(&pods[1], &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        msg,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    // Allowed once the replacement is Ready.
    tokio::time::sleep(c.reschedule_delay + dep.startup + dep.startup_jitter).await;
    web.evict(&pods[1], &EvictParams::default()).await.unwrap();
    let (code, ..) = api_err(
        web.evict("nope", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
}

#[tokio::test(start_paused = true)]
async fn cordon_uncordon_and_no_execute_taint() {
    let (_s, _api, client) = setup();
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes.cordon("us-east-1a-1").await.unwrap();
    assert_eq!(n.spec.as_ref().unwrap().unschedulable, Some(true));
    assert_eq!(
        nodes
            .get("us-east-1a-1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .unschedulable,
        Some(true)
    );
    let n = nodes.uncordon("us-east-1a-1").await.unwrap();
    assert_eq!(n.spec.unwrap().unschedulable, None);

    let all: Api<Pod> = Api::all(client.clone());
    let on = |node: &str| ListParams::default().fields(&format!("spec.nodeName={node}"));
    let before = all.list(&on("us-east-1b-1")).await.unwrap().items;
    assert!(before.len() > 1);
    let patch = serde_json::json!({"spec": {"taints": [{"key": "chaos", "value": "drill", "effect": "NoExecute"}]}});
    let n = nodes
        .patch(
            "us-east-1b-1",
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .unwrap();
    let taints = n.spec.unwrap().taints.unwrap();
    assert_eq!(
        (taints[0].key.as_str(), taints[0].effect.as_str()),
        ("chaos", "NoExecute")
    );
    assert!(taints[0].time_added.is_some());
    // Everything but the DaemonSet pod is Terminating.
    for p in all.list(&on("us-east-1b-1")).await.unwrap().items {
        let ds = p.metadata.labels.as_ref().unwrap()["app"] == "node-exporter";
        assert_eq!(
            p.metadata.deletion_timestamp.is_none(),
            ds,
            "{:?}",
            p.metadata.name
        );
    }
    // Strategic merge replaces the taint list (no merge key).
    let patch = serde_json::json!({"spec": {"taints": [{"key": "other", "effect": "NoSchedule"}]}});
    let n = nodes
        .patch(
            "us-east-1b-1",
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .unwrap();
    let keys: Vec<String> = n
        .spec
        .unwrap()
        .taints
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(keys, ["other"]);
    let patch = serde_json::json!({"spec": {"taints": [{"key": "x", "effect": "Sometimes"}]}});
    let (code, reason, msg) = api_err(
        nodes
            .patch(
                "us-east-1b-1",
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        msg.contains("spec.taints[0].effect: Unsupported value: \"Sometimes\""),
        "{msg}"
    );
    // JSON patch works too.
    let body = serde_json::to_vec(&serde_json::json!([
        {"op": "remove", "path": "/spec/taints"},
        {"op": "add", "path": "/spec/unschedulable", "value": true}
    ]))
    .unwrap();
    let req = http::Request::patch("/api/v1/nodes/us-east-1b-1")
        .header("content-type", "application/json-patch+json")
        .body(body)
        .unwrap();
    let n: Node = client.request(req).await.unwrap();
    let spec = n.spec.unwrap();
    assert_eq!((spec.unschedulable, spec.taints), (Some(true), None));
}

#[tokio::test(start_paused = true)]
async fn scale_through_the_scale_subresource_and_rollout_restart() {
    let (shared, _api, client) = setup();
    let c = cluster_params(&shared);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "web");
    let s = deps.get_scale("worker").await.unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(3));
    let patch = serde_json::json!({"spec": {"replicas": 5}});
    let s = deps
        .patch_scale("worker", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(5));
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    assert_eq!(list(&web, "app=worker").await.len(), 5);
    tokio::time::sleep(c.deployments[1].startup).await;
    let d = deps.get("worker").await.unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(5));
    let (code, reason, _) = api_err(
        deps.patch_scale(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": -1}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    // Rollout restart (kube-rs' own annotation): pods replaced one at a time, never more than
    // one unavailable (maxUnavailable 1, no surge).
    let old: Vec<String> = names(&list(&web, "app=worker").await);
    deps.restart("worker").await.unwrap();
    let mut worst = 0;
    for _ in 0..400 {
        let pods = list(&web, "app=worker").await;
        let live_ready = pods
            .iter()
            .filter(|p| ready(p) && p.metadata.deletion_timestamp.is_none())
            .count();
        worst = worst.max(5 - live_ready);
        if pods.len() == 5
            && pods
                .iter()
                .all(|p| ready(p) && !old.contains(p.metadata.name.as_ref().unwrap()))
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let pods = list(&web, "app=worker").await;
    assert!(
        pods.iter()
            .all(|p| !old.contains(p.metadata.name.as_ref().unwrap())),
        "all replaced"
    );
    assert_eq!(worst, 1);
}

/// A pod's controller is a ReplicaSet the API serves, itself owned by the Deployment; a rollout
/// restart adds the next revision's ReplicaSet and leaves the old one at zero.
#[tokio::test(start_paused = true)]
async fn replicasets_own_the_pods_and_belong_to_their_deployment() {
    let (_s, _api, client) = setup();
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "web");
    let pod = list(&web, "app=worker").await.remove(0);
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "ReplicaSet");
    let rs = rss.get(&owner.name).await.unwrap();
    assert_eq!(rs.metadata.uid.as_deref(), Some(owner.uid.as_str()));
    let dep_ref = &rs.metadata.owner_references.as_ref().unwrap()[0];
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "web");
    let d = deps.get("worker").await.unwrap();
    assert_eq!(
        (
            dep_ref.kind.as_str(),
            dep_ref.name.as_str(),
            Some(&dep_ref.uid)
        ),
        ("Deployment", "worker", d.metadata.uid.as_ref())
    );
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(rs.status.as_ref().unwrap().ready_replicas, Some(3));
    let hash = &pod.metadata.labels.as_ref().unwrap()["pod-template-hash"];
    assert_eq!(owner.name, format!("worker-{hash}"));
    let listed = rss
        .list(&ListParams::default().labels("app=worker"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1);

    deps.restart("worker").await.unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    let listed = rss
        .list(&ListParams::default().labels("app=worker"))
        .await
        .unwrap()
        .items;
    let shape: Vec<(String, Option<i32>)> = listed
        .iter()
        .map(|r| {
            (
                r.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"]
                    .clone(),
                r.spec.as_ref().unwrap().replicas,
            )
        })
        .collect();
    let mut shape = shape;
    shape.sort();
    assert_eq!(
        shape,
        [("1".to_string(), Some(0)), ("2".to_string(), Some(3))]
    );
    let (code, _, _) = api_err(rss.get("worker-nope").await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test(start_paused = true)]
async fn watch_streams_a_deletion_in_order() {
    let (shared, _api, client) = setup();
    let c = cluster_params(&shared);
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    let listed = web
        .list(&ListParams::default().labels("app=worker"))
        .await
        .unwrap();
    let rv = listed.metadata.resource_version.clone().unwrap();
    let victim = listed.items[0].metadata.name.clone().unwrap();
    let wp = WatchParams::default().labels("app=worker").timeout(290);
    let mut stream = web.watch(&wp, &rv).await.unwrap().boxed();
    web.delete(&victim, &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    let mut last_rv = rv.parse::<u64>().unwrap();
    while let Some(ev) = stream.try_next().await.unwrap() {
        let (kind, p) = match ev {
            WatchEvent::Added(p) => ("ADDED", p),
            WatchEvent::Modified(p) => ("MODIFIED", p),
            WatchEvent::Deleted(p) => ("DELETED", p),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        };
        let prv: u64 = p
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        assert!(prv > last_rv, "resource versions increase");
        last_rv = prv;
        let name = p.metadata.name.clone().unwrap();
        seen.push((kind, name == victim, ready(&p), tokio::time::Instant::now()));
        if kind == "DELETED" {
            break;
        }
    }
    let kinds: Vec<(&str, bool)> = seen.iter().map(|s| (s.0, s.1)).collect();
    // Terminating, replacement created, replacement Ready (startup 20s < grace 30s), victim gone.
    assert_eq!(
        kinds,
        [
            ("MODIFIED", true),
            ("ADDED", false),
            ("MODIFIED", false),
            ("DELETED", true)
        ]
    );
    let t0 = seen[0].3;
    assert_eq!(seen[1].3 - t0, c.reschedule_delay);
    assert_eq!(
        seen[2].3 - t0,
        c.reschedule_delay + c.deployments[1].startup
    );
    assert!(seen[2].2);
    assert_eq!(seen[3].3 - t0, c.deployments[1].termination_grace);
}

#[tokio::test(start_paused = true)]
async fn conflict_forbidden_unauthorized_and_method_not_allowed() {
    let (_s, api, client) = setup();
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes.get("us-east-1c-2").await.unwrap();
    let stale = n.metadata.resource_version.clone().unwrap();
    nodes.cordon("us-east-1c-2").await.unwrap();
    let patch = serde_json::json!({"metadata": {"resourceVersion": stale}, "spec": {"unschedulable": false}});
    let (code, reason, msg) = api_err(
        nodes
            .patch(
                "us-east-1c-2",
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(msg.contains("the object has been modified"), "{msg}");
    assert_eq!(
        nodes
            .get("us-east-1c-2")
            .await
            .unwrap()
            .spec
            .unwrap()
            .unschedulable,
        Some(true)
    );

    api.deny("delete", "pods");
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    let victim = names(&list(&web, "app=api").await)[0].clone();
    let (code, reason, msg) = api_err(
        web.delete(&victim, &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        format!(
            "pods \"{victim}\" is forbidden: User \"system:serviceaccount:firedrill:drill\" cannot delete resource \"pods\" in API group \"\" in the namespace \"web\""
        )
    );
    api.deny("list", "nodes");
    let (code, _, msg) = api_err(nodes.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(code, 403);
    assert!(
        msg.ends_with("cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{msg}"
    );
    api.deny("create", "pods/eviction");
    let (code, _, msg) = api_err(
        web.evict(&victim, &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert!(
        msg.contains("cannot create resource \"pods/eviction\""),
        "{msg}"
    );
    api.allow_all();
    assert!(
        web.get(&victim)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "nothing was deleted"
    );

    api.require_token(Some("s3cret"));
    let (code, reason, _) = api_err(web.get(&victim).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
    let authed: Api<Pod> = Api::namespaced(api.client_with_token(Some("s3cret")), "web");
    authed.get(&victim).await.unwrap();
    let wrong: Api<Pod> = Api::namespaced(api.client_with_token(Some("nope")), "web");
    assert_eq!(api_err(wrong.get(&victim).await.unwrap_err()).0, 401);
    api.require_token(None);

    // Deleting a node is not something the simulated API does.
    let (code, reason, _) = api_err(
        nodes
            .delete("us-east-1c-2", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (405, "MethodNotAllowed"));
}

/// Requests through the duplex client take no virtual time even with a long timer pending: on
/// a paused clock nothing waits on the IO driver, so the clock cannot auto-advance mid-request.
#[tokio::test(start_paused = true)]
async fn duplex_requests_take_no_virtual_time() {
    let (_s, _api, client) = setup();
    tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
    let t0 = tokio::time::Instant::now();
    let pods: Api<Pod> = Api::all(client);
    for _ in 0..20 {
        pods.list(&ListParams::default()).await.unwrap();
    }
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn discovery_serves_the_resource_lists() {
    let (_s, api, client) = setup();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "35"));
    let core = client.list_core_api_resources("v1").await.unwrap();
    let pods = core.resources.iter().find(|r| r.name == "pods").unwrap();
    assert!(pods.verbs.contains(&"delete".to_string()) && pods.namespaced);
    assert!(
        core.resources
            .iter()
            .any(|r| r.name == "pods/eviction" && r.verbs == ["create"])
    );
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["apps", "authorization.k8s.io", "policy"]);
    let authz = client
        .list_api_group_resources("authorization.k8s.io/v1")
        .await
        .unwrap();
    assert!(
        authz
            .resources
            .iter()
            .any(|r| r.name == "selfsubjectaccessreviews"
                && r.verbs == ["create"]
                && !r.namespaced)
    );
    let apps = client.list_api_group_resources("apps/v1").await.unwrap();
    assert!(apps.resources.iter().any(|r| r.name == "deployments/scale"));
    assert!(
        apps.resources
            .iter()
            .any(|r| r.name == "replicasets" && r.verbs == ["get", "list", "watch"])
    );
    let d = kube::Discovery::new(client.clone()).run().await.unwrap();
    assert!(d.has_group("policy") && d.has_group("authorization.k8s.io"));
    // A cluster that does not serve access reviews leaves the group out.
    api.serve_access_reviews(false);
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["apps", "policy"]);
    assert!(
        client
            .list_api_group_resources("authorization.k8s.io/v1")
            .await
            .is_err()
    );
}

/// kube-runtime's watcher (list, then watch with bookmarks) follows a deletion to the Ready
/// replacement on a paused clock, at the modelled times.
#[tokio::test(start_paused = true)]
async fn kube_runtime_watcher_sees_the_replacement_become_ready() {
    use kube::runtime::{WatchStreamExt, watcher};
    let (shared, _api, client) = setup();
    let c = cluster_params(&shared);
    let worker = &c.deployments[1];
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    let before = names(&list(&web, "app=worker").await);
    let mut stream = watcher(web.clone(), watcher::Config::default().labels("app=worker"))
        .applied_objects()
        .boxed();
    // The initial list comes first.
    for _ in 0..before.len() {
        stream.try_next().await.unwrap().unwrap();
    }
    let t0 = tokio::time::Instant::now();
    web.delete(&before[0], &DeleteParams::default())
        .await
        .unwrap();
    loop {
        let p = stream.try_next().await.unwrap().unwrap();
        if !before.contains(p.metadata.name.as_ref().unwrap()) && ready(&p) {
            assert_eq!(t0.elapsed(), c.reschedule_delay + worker.startup);
            break;
        }
    }
}

// ---- the test controls: request log, faults, access reviews, another writer ------------------

#[tokio::test(start_paused = true)]
async fn every_request_is_recorded_with_its_answer() {
    let (_s, api, client) = setup();
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    let victim = names(&list(&web, "app=api").await)[0].clone();
    web.delete(&victim, &DeleteParams::default().grace_period(5))
        .await
        .unwrap();
    let (code, ..) = api_err(web.get("nope").await.unwrap_err());
    assert_eq!(code, 404);
    let log = api.requests();
    let shape: Vec<(&str, &str, Option<u16>)> = log
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    let delete_path = format!("/api/v1/namespaces/web/pods/{victim}");
    assert_eq!(
        shape,
        [
            ("GET", "/api/v1/namespaces/web/pods", Some(200)),
            ("DELETE", delete_path.as_str(), Some(200)),
            ("GET", "/api/v1/namespaces/web/pods/nope", Some(404)),
        ]
    );
    assert_eq!(log[0].param("labelSelector").as_deref(), Some("app=api"));
    assert_eq!(log[1].body["gracePeriodSeconds"], 5);
    assert_eq!(log[0].body, serde_json::Value::Null);
    assert_eq!(api.request_count("GET"), 2);
    assert_eq!(api.request_count("delete"), 1);
    assert_eq!(api.mutations(), [format!("DELETE {delete_path}")]);
    api.clear_requests();
    assert!(api.requests().is_empty() && api.mutations().is_empty());
}

#[tokio::test(start_paused = true)]
async fn injected_faults_answer_the_api_status_and_change_nothing() {
    use firedrill::sim::kube_api::Fault;
    let (_s, api, client) = setup();
    let nodes: Api<Node> = Api::all(client.clone());
    for (code, reason) in [
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "NotFound"),
        (409, "Conflict"),
        (429, "TooManyRequests"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (200, "InternalError"),
    ] {
        api.inject(Fault::status("GET", "/api/v1/nodes", code, "injected"));
        let got = api_err(nodes.list(&ListParams::default()).await.unwrap_err());
        // A code that is not an error is answered as 500.
        let want = if code < 400 { 500 } else { code };
        assert_eq!(got, (want, reason.into(), "injected".into()), "{code}");
        // Spent after one request.
        nodes.list(&ListParams::default()).await.unwrap();
    }
    // `times`: only matching method and path fragment; the failed writes change nothing.
    api.inject(Fault::status("PATCH", "/nodes/us-east-1a-1", 500, "etcd leader changed").times(2));
    nodes.get("us-east-1a-1").await.unwrap();
    nodes.cordon("us-east-1a-2").await.unwrap();
    for _ in 0..2 {
        let (code, _, msg) = api_err(nodes.cordon("us-east-1a-1").await.unwrap_err());
        assert_eq!((code, msg.as_str()), (500, "etcd leader changed"));
        let n = nodes.get("us-east-1a-1").await.unwrap();
        assert_eq!(n.spec.unwrap().unschedulable, None, "not cordoned");
    }
    nodes.cordon("us-east-1a-1").await.unwrap();
    let statuses: Vec<Option<u16>> = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == "/api/v1/nodes/us-east-1a-1")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    // `always`, any method: until the faults are cleared.
    api.inject(Fault::status("*", "/pods", 403, "no").always());
    let web: Api<Pod> = Api::namespaced(client.clone(), "web");
    for _ in 0..3 {
        assert_eq!(
            api_err(web.list(&ListParams::default()).await.unwrap_err()).0,
            403
        );
    }
    api.clear_faults();
    web.list(&ListParams::default()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_hanging_fault_never_answers() {
    use firedrill::sim::kube_api::Fault;
    let (_s, api, client) = setup();
    api.inject(Fault::hang("GET", "/api/v1/nodes"));
    let nodes: Api<Node> = Api::all(client);
    let t0 = tokio::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), nodes.list(&ListParams::default())).await;
    assert!(r.is_err(), "answered: {r:?}");
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert_eq!(api.requests()[0].status, None, "recorded, unanswered");
    nodes.list(&ListParams::default()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn access_reviews_answer_from_the_rbac_rules() {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let (_s, api, client) = setup();
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = |verb: &str, resource: &str, sub: Option<&str>| {
        let reviews = reviews.clone();
        let r = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    resource: Some(resource.into()),
                    subresource: sub.map(str::to_string),
                    namespace: Some("web".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        async move {
            let s = reviews
                .create(&Default::default(), &r)
                .await
                .unwrap()
                .status
                .unwrap();
            (s.allowed, s.reason.unwrap_or_default())
        }
    };
    assert!(review("delete", "pods", None).await.0);
    api.deny("delete", "pods");
    api.deny("patch", "deployments/scale");
    assert_eq!(
        review("delete", "pods", None).await,
        (false, "no RBAC policy matched".into())
    );
    assert!(!review("patch", "deployments", Some("scale")).await.0);
    assert!(
        review("patch", "deployments", None).await.0,
        "the subresource only"
    );
    assert!(review("create", "pods", Some("eviction")).await.0);
    // The reviews themselves stay allowed whatever the rules deny.
    api.deny("*", "*");
    assert!(!review("get", "nodes", None).await.0);
    api.allow_all();
    assert!(review("delete", "pods", None).await.0);
    assert_eq!(
        api.mutations(),
        Vec::<String>::new(),
        "reviews are not mutations"
    );
    // A cluster that does not serve them: 404.
    api.serve_access_reviews(false);
    let (code, reason, _) = api_err(
        reviews
            .create(&Default::default(), &SelfSubjectAccessReview::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
}

#[tokio::test(start_paused = true)]
async fn another_writer_changes_a_node_right_after_the_nth_read() {
    use firedrill::sim::model::{Taint, TaintEffect};
    let (_s, api, client) = setup();
    let nodes: Api<Node> = Api::all(client);
    let node = "us-east-1b-2";
    api.change_taints_after_reads(
        node,
        2,
        vec![Taint {
            key: "other".into(),
            value: None,
            effect: TaintEffect::NoSchedule,
            added: None,
        }],
    );
    let rv = |n: &Node| n.metadata.resource_version.clone().unwrap();
    let first = nodes.get(node).await.unwrap();
    let second = nodes.get(node).await.unwrap();
    assert_eq!(
        rv(&first),
        rv(&second),
        "the second read is answered before the change"
    );
    let third = nodes.get(node).await.unwrap();
    assert_ne!(rv(&third), rv(&second));
    let taints = third.spec.clone().unwrap().taints.unwrap();
    assert_eq!(
        (
            taints.len(),
            taints[0].key.as_str(),
            taints[0].effect.as_str()
        ),
        (1, "other", "NoSchedule")
    );
    // A write carrying the version read before the change conflicts.
    let stale = serde_json::json!({"metadata": {"resourceVersion": rv(&second)}, "spec": {"unschedulable": true}});
    let (code, ..) = api_err(
        nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    // Spent: later reads change nothing.
    let fourth = nodes.get(node).await.unwrap();
    assert_eq!(rv(&fourth), rv(&third));
    assert!(api.mutations().iter().all(|m| m.starts_with("PATCH")));
}
