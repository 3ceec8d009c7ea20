//! The Kubernetes backend at the transport level: kube-rs over a `tower_test` mock that plays a
//! small in-memory API server (pods, nodes, deployments, replicasets, evictions, merge patches
//! with resourceVersion conflicts, SelfSubjectAccessReview) and can be told to fail. Every
//! request is recorded, so tests assert what was (and was not) sent: error paths a served API
//! does not produce (401, 403, 409, 429, 500, unreachable) and the "refuse before touching"
//! guarantees.

use firedrill::backend::k8s::{KubeProvider, KubernetesSettings, from_client};
use firedrill::backend::{Call, ErrorKind, Provider, ProviderExt};
use http_body_util::BodyExt;
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Req = http::Request<kube::client::Body>;
type RespBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::convert::Infallible>;
type Resp = http::Response<RespBody>;
/// An open watch: namespace, label selector, where its events go.
type Watcher = (
    String,
    Option<String>,
    tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
);

/// One request the fake API saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Json,
}

/// Fail requests matching `method` and a path fragment, `times` times, with `code`.
struct Fault {
    method: &'static str,
    path: &'static str,
    code: u16,
    message: String,
    times: u32,
}

#[derive(Default)]
struct Fake {
    pods: Vec<Json>,
    nodes: Vec<Json>,
    deployments: Vec<Json>,
    replicasets: Vec<Json>,
    /// SelfSubjectAccessReview: `None` = the API is not served (404); else which
    /// (verb, resource) are denied.
    ssar_denied: Option<Vec<(&'static str, &'static str)>>,
    faults: Vec<Fault>,
    /// Another writer changes this node's taints right after firedrill's n-th read of it.
    race: Option<(&'static str, u32, Json)>,
    rv: u64,
    log: Vec<Seen>,
    watchers: Vec<Watcher>,
}

fn status(code: u16, reason: &str, message: &str) -> Json {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message})
}

fn decode(q: &str) -> String {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(h, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| decode(v))
}

fn get<'a>(v: &'a Json, path: &str) -> &'a Json {
    v.pointer(path).unwrap_or(&Json::Null)
}

fn matches_labels(obj: &Json, selector: Option<&str>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|kv| {
        let (k, v) = kv.split_once('=').unwrap();
        get(obj, "/metadata/labels").get(k).and_then(Json::as_str) == Some(v)
    })
}

fn matches_fields(obj: &Json, selector: Option<&str>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|kv| {
        let (k, v) = kv.split_once('=').unwrap();
        let path = format!("/{}", k.replace('.', "/"));
        get(obj, &path).as_str() == Some(v)
    })
}

fn merge(target: &mut Json, patch: &Json) {
    match (target, patch) {
        (Json::Object(t), Json::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Json::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn list(kind: &str, items: Vec<Json>) -> Json {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

impl Fake {
    fn handle(&mut self, s: &Seen) -> (u16, Json) {
        self.log.push(s.clone());
        if let Some(f) = self
            .faults
            .iter_mut()
            .find(|f| f.times > 0 && f.method == s.method && s.path.contains(f.path))
        {
            f.times -= 1;
            let reason = match f.code {
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                429 => "TooManyRequests",
                _ => "InternalError",
            };
            return (f.code, status(f.code, reason, &f.message));
        }
        let parts: Vec<&str> = s.path.trim_matches('/').split('/').collect();
        let q = s.query.as_str();
        let labels = param(q, "labelSelector");
        let fields = param(q, "fieldSelector");
        let not_found = |what: &str| (404, status(404, "NotFound", &format!("{what} not found")));
        match (s.method.as_str(), parts.as_slice()) {
            ("GET", ["version"]) => (
                200,
                json!({"major": "1", "minor": "35", "gitVersion": "v1.35.0", "gitCommit": "x", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}),
            ),
            (
                "POST",
                [
                    "apis",
                    "authorization.k8s.io",
                    "v1",
                    "selfsubjectaccessreviews",
                ],
            ) => match &self.ssar_denied {
                None => not_found("selfsubjectaccessreviews"),
                Some(denied) => {
                    let verb = get(&s.body, "/spec/resourceAttributes/verb")
                        .as_str()
                        .unwrap_or_default();
                    let res = get(&s.body, "/spec/resourceAttributes/resource")
                        .as_str()
                        .unwrap_or_default();
                    let allowed = !denied.iter().any(|(v, r)| *v == verb && *r == res);
                    let mut body = s.body.clone();
                    body["status"] = json!({"allowed": allowed, "reason": if allowed { "" } else { "no RBAC policy matched" }});
                    (201, body)
                }
            },
            ("GET", ["api", "v1", "pods"]) => (
                200,
                list(
                    "PodList",
                    self.pods
                        .iter()
                        .filter(|p| {
                            matches_labels(p, labels.as_deref())
                                && matches_fields(p, fields.as_deref())
                        })
                        .cloned()
                        .collect(),
                ),
            ),
            ("GET", ["api", "v1", "namespaces", ns, "pods"]) => (
                200,
                list(
                    "PodList",
                    self.pods
                        .iter()
                        .filter(|p| get(p, "/metadata/namespace") == ns)
                        .filter(|p| {
                            matches_labels(p, labels.as_deref())
                                && matches_fields(p, fields.as_deref())
                        })
                        .cloned()
                        .collect(),
                ),
            ),
            ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
                match self.pods.iter().find(|p| {
                    get(p, "/metadata/namespace") == ns && get(p, "/metadata/name") == name
                }) {
                    Some(p) => (200, p.clone()),
                    None => not_found(&format!("pods \"{name}\"")),
                }
            }
            ("DELETE", ["api", "v1", "namespaces", ns, "pods", name])
            | ("POST", ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
                match self.pods.iter().position(|p| {
                    get(p, "/metadata/namespace") == ns && get(p, "/metadata/name") == name
                }) {
                    Some(i) => {
                        let p = self.pods.remove(i);
                        self.notify("DELETED", &p);
                        if s.method == "DELETE" {
                            (200, p)
                        } else {
                            (
                                201,
                                json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 201}),
                            )
                        }
                    }
                    None => not_found(&format!("pods \"{name}\"")),
                }
            }
            ("GET", ["api", "v1", "nodes"]) => (
                200,
                list(
                    "NodeList",
                    self.nodes
                        .iter()
                        .filter(|n| matches_labels(n, labels.as_deref()))
                        .cloned()
                        .collect(),
                ),
            ),
            ("GET", ["api", "v1", "nodes", name]) => {
                let Some(n) = self
                    .nodes
                    .iter_mut()
                    .find(|n| get(n, "/metadata/name") == name)
                else {
                    return not_found(&format!("nodes \"{name}\""));
                };
                let answer = n.clone();
                if let Some((r, left, _)) = &mut self.race
                    && r == name
                {
                    *left -= 1;
                    if *left == 0 {
                        n["spec"]["taints"] = self.race.take().unwrap().2;
                        n["metadata"]["resourceVersion"] = json!("99");
                    }
                }
                (200, answer)
            }
            ("PATCH", ["api", "v1", "nodes", name]) => {
                self.rv += 1;
                let rv = self.rv;
                let Some(n) = self
                    .nodes
                    .iter_mut()
                    .find(|n| get(n, "/metadata/name") == name)
                else {
                    return not_found(&format!("nodes \"{name}\""));
                };
                if let Some(want) = get(&s.body, "/metadata/resourceVersion").as_str()
                    && Some(want) != get(n, "/metadata/resourceVersion").as_str()
                {
                    return (
                        409,
                        status(
                            409,
                            "Conflict",
                            "the object has been modified; please apply your changes to the latest version and try again",
                        ),
                    );
                }
                merge(n, &s.body);
                n["metadata"]["resourceVersion"] = json!(rv.to_string());
                (200, n.clone())
            }
            ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments"]) => (
                200,
                list(
                    "DeploymentList",
                    self.deployments
                        .iter()
                        .filter(|d| get(d, "/metadata/namespace") == ns)
                        .cloned()
                        .collect(),
                ),
            ),
            ("GET", ["apis", "apps", "v1", "namespaces", ns, "replicasets", name]) => {
                match self.replicasets.iter().find(|d| {
                    get(d, "/metadata/namespace") == ns && get(d, "/metadata/name") == name
                }) {
                    Some(d) => (200, d.clone()),
                    None => not_found(&format!("replicasets.apps \"{name}\"")),
                }
            }
            (
                "GET" | "PATCH",
                [
                    "apis",
                    "apps",
                    "v1",
                    "namespaces",
                    ns,
                    "deployments",
                    name,
                    rest @ ..,
                ],
            ) => {
                let Some(d) = self.deployments.iter_mut().find(|d| {
                    get(d, "/metadata/namespace") == ns && get(d, "/metadata/name") == name
                }) else {
                    return not_found(&format!("deployments.apps \"{name}\""));
                };
                if s.method == "PATCH" {
                    merge(d, &s.body);
                }
                if rest == ["scale"] {
                    let r = d["spec"]["replicas"].clone();
                    (
                        200,
                        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name, "namespace": ns}, "spec": {"replicas": r}, "status": {"replicas": r}}),
                    )
                } else {
                    (200, d.clone())
                }
            }
            _ => not_found(&s.path),
        }
    }

    /// Send a watch event about a pod to the watches it matches.
    fn notify(&mut self, kind: &str, pod: &Json) {
        let line = serde_json::to_vec(&json!({"type": kind, "object": pod})).unwrap();
        let mut line = bytes::BytesMut::from(&line[..]);
        line.extend_from_slice(b"\n");
        let line = line.freeze();
        self.watchers.retain(|(ns, sel, tx)| {
            if get(pod, "/metadata/namespace") != ns.as_str()
                || !matches_labels(pod, sel.as_deref())
            {
                return true;
            }
            tx.send(line.clone()).is_ok()
        });
    }

    /// A controller's move: add a pod, or change one, seen by the watches.
    fn upsert_pod(&mut self, pod: Json) {
        self.rv += 1;
        let mut pod = pod;
        pod["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let name = pod["metadata"]["name"].clone();
        let kind = match self.pods.iter_mut().find(|p| p["metadata"]["name"] == name) {
            Some(p) => {
                *p = pod.clone();
                "MODIFIED"
            }
            None => {
                self.pods.push(pod.clone());
                "ADDED"
            }
        };
        self.notify(kind, &pod);
    }

    fn count(&self, method: &str) -> usize {
        self.log.iter().filter(|s| s.method == method).count()
    }

    fn mutations(&self) -> Vec<String> {
        self.log
            .iter()
            .filter(|s| s.method != "GET" && !s.path.contains("selfsubjectaccessreviews"))
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }

    fn node(&self, name: &str) -> &Json {
        self.nodes
            .iter()
            .find(|n| get(n, "/metadata/name") == name)
            .unwrap()
    }
}

/// A client whose requests the fake answers.
fn serve(fake: Fake) -> (kube::Client, Arc<Mutex<Fake>>) {
    let fake = Arc::new(Mutex::new(fake));
    let (svc, mut handle) = tower_test::mock::pair::<Req, Resp>();
    let f = fake.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Json::Null),
            };
            if parts.uri.query().unwrap_or_default().contains("watch=true") {
                // A watch: an open stream of JSON lines, fed by `Fake::notify`.
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
                let ns = seen.path.split('/').nth(4).unwrap_or_default().to_string();
                let sel = param(&seen.query, "labelSelector");
                {
                    let mut f = f.lock().unwrap();
                    f.log.push(seen.clone());
                    f.watchers.push((ns, sel, tx));
                }
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv()
                        .await
                        .map(|b| (Ok(hyper::body::Frame::data(b)), rx))
                });
                send.send_response(
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(http_body_util::StreamBody::new(stream).boxed_unsync())
                        .unwrap(),
                );
                continue;
            }
            let (code, json) = f.lock().unwrap().handle(&seen);
            send.send_response(
                http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(
                        http_body_util::Full::new(bytes::Bytes::from(
                            serde_json::to_vec(&json).unwrap(),
                        ))
                        .boxed_unsync(),
                    )
                    .unwrap(),
            );
        }
    });
    (kube::Client::new(svc, "default"), fake)
}

fn settings() -> KubernetesSettings {
    KubernetesSettings {
        cluster: Some("prod".into()),
        server: Some("https://k8s.example:6443".into()),
        ..Default::default()
    }
}

fn provider(fake: Fake) -> (KubeProvider, Arc<Mutex<Fake>>) {
    let (client, fake) = serve(fake);
    (from_client(client, settings()).with_seed(7), fake)
}

// ---- fixtures --------------------------------------------------------------------------------

fn pod(ns: &str, name: &str, app: &str, node: &str) -> Json {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
            "labels": {"app": app, "pod-template-hash": "5d4f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-5d4f"), "uid": format!("rs-{app}"), "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"memory": "2Gi"}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 1}]}
    })
}

fn daemon_pod(ns: &str, name: &str, node: &str) -> Json {
    let mut p = pod(ns, name, "agent", node);
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds", "controller": true}]);
    // Like kube-proxy or a CNI agent: tolerates every taint.
    p["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    p
}

fn node(name: &str, zone: &str, cordoned: bool) -> Json {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "resourceVersion": "1", "labels": {"topology.kubernetes.io/zone": zone}},
        "spec": {"unschedulable": cordoned},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"memory": "16Gi"}}
    })
}

fn deployment(ns: &str, name: &str, replicas: i64) -> Json {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "uid": format!("dep-{name}")},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c"}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas}
    })
}

fn replicaset(ns: &str, app: &str) -> Json {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{app}-5d4f"), "namespace": ns, "uid": format!("rs-{app}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "uid": format!("dep-{app}"), "controller": true}]},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": app}}}
    })
}

/// Six api pods over three zones (two nodes each), two worker pods, one DaemonSet pod per node.
fn estate() -> Fake {
    let mut f = Fake::default();
    for (i, z) in ["a", "a", "b", "b", "c", "c"].iter().enumerate() {
        f.nodes
            .push(node(&format!("node-{i}"), &format!("zone-{z}"), false));
        f.pods
            .push(pod("web", &format!("api-{i}"), "api", &format!("node-{i}")));
        f.pods.push(daemon_pod(
            "kube-system",
            &format!("agent-{i}"),
            &format!("node-{i}"),
        ));
    }
    f.pods.push(pod("web", "worker-0", "worker", "node-0"));
    f.pods.push(pod("web", "worker-1", "worker", "node-2"));
    f.deployments.push(deployment("web", "api", 6));
    f.deployments.push(deployment("web", "worker", 2));
    f.replicasets.push(replicaset("web", "api"));
    f
}

fn kill(extra: Json) -> Json {
    let mut p = json!({"namespace": "web", "selector": {"app": "api"}});
    merge(&mut p, &extra);
    p
}

fn fault(method: &'static str, path: &'static str, code: u16, message: &str, times: u32) -> Fault {
    Fault {
        method,
        path,
        code,
        message: message.into(),
        times,
    }
}

// ---- errors ------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn unauthorized_is_denied_and_names_the_server() {
    let mut f = estate();
    f.faults
        .push(fault("GET", "/pods", 401, "Unauthorized", u32::MAX));
    let (k, fake) = provider(f);
    let e = k
        .inject_json("k8s.pod_kill", &kill(json!({})))
        .await
        .unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("https://k8s.example:6443 rejected the credentials (401 Unauthorized)"),
        "{m}"
    );
    assert_eq!(fake.lock().unwrap().count("DELETE"), 0);
}

#[tokio::test(start_paused = true)]
async fn forbidden_names_the_verb_resource_and_namespace() {
    let mut f = estate();
    f.faults.push(fault(
        "DELETE",
        "/pods/",
        403,
        "pods \"api-0\" is forbidden: User \"drill-bot\" cannot delete resource \"pods\" in API group \"\" in the namespace \"web\"",
        u32::MAX,
    ));
    let (k, fake) = provider(f);
    let e = k
        .inject_json("k8s.pod_kill", &kill(json!({})))
        .await
        .unwrap_err();
    let (ErrorKind::Denied, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("RBAC denies `delete` on `pods` in namespace `web`; grant it in a Role bound to user `drill-bot`"),
        "{m}"
    );
    assert_eq!(fake.lock().unwrap().pods.len(), 14, "nothing deleted");
}

#[tokio::test(start_paused = true)]
async fn an_access_review_denial_refuses_before_any_delete() {
    let mut f = estate();
    f.ssar_denied = Some(vec![("delete", "pods")]);
    let (k, fake) = provider(f);
    let e = k
        .inject_json("k8s.pod_kill", &kill(json!({"mode": "all"})))
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
    assert_eq!(fake.lock().unwrap().mutations(), Vec::<String>::new());
    // Preflight reports it too, per call, and lists the missing eviction right for a drain.
    let mut f = estate();
    f.ssar_denied = Some(vec![("create", "pods"), ("patch", "nodes")]);
    let (k, _) = provider(f);
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
    let problems = k.preflight(&calls).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].owner, "step `cordon`");
    assert!(
        problems[0]
            .error
            .to_string()
            .contains("RBAC denies `patch` on `nodes` cluster-wide; grant it in a ClusterRole")
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_node_is_an_invalid_target_listing_the_nodes() {
    let (k, fake) = provider(estate());
    let e = k
        .inject_json("k8s.node_cordon", &json!({"node": "node-9"}))
        .await
        .unwrap_err();
    let (ErrorKind::NotFound, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("node `node-9` not found; nodes: node-0, node-1"),
        "{m}"
    );
    assert_eq!(fake.lock().unwrap().count("PATCH"), 0);
    // A missing workload names the ones that exist.
    let e = k
        .inject_json(
            "k8s.scale",
            &json!({"namespace": "web", "deployment": "apii", "replicas": 2}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "deployment `apii` not found in namespace `web`; deployments there: api, worker"
    );
}

#[tokio::test(start_paused = true)]
async fn a_conflict_is_retried_after_reading_the_node_again() {
    let mut f = estate();
    f.faults.push(fault(
        "PATCH",
        "/nodes/node-0",
        409,
        "the object has been modified",
        2,
    ));
    let (k, fake) = provider(f);
    let out = k
        .inject_json("k8s.node_cordon", &json!({"node": "node-0"}))
        .await
        .unwrap();
    assert_eq!(out["cordoned"], json!(["node-0"]));
    let fake = fake.lock().unwrap();
    let node_calls: Vec<String> = fake
        .log
        .iter()
        .filter(|s| s.path == "/api/v1/nodes/node-0")
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(
        node_calls,
        ["GET", "GET", "PATCH", "GET", "PATCH", "GET", "PATCH"]
    );
    assert_eq!(fake.node("node-0")["spec"]["unschedulable"], true);
}

#[tokio::test(start_paused = true)]
async fn a_real_resource_version_conflict_is_resolved_by_rereading() {
    // The node changes between firedrill's read and its write: the server answers 409 because
    // the patch carries the resourceVersion read; the retry re-reads and keeps the new taint.
    let mut f = estate();
    // Read 1: resolving the target; read 2: before the write.
    f.race = Some((
        "node-1",
        2,
        json!([{"key": "other", "effect": "NoSchedule"}]),
    ));
    let (k, fake) = provider(f);
    let out = k
        .inject_json(
            "k8s.node_taint",
            &json!({"node": "node-1", "key": "chaos", "effect": "NoSchedule"}),
        )
        .await
        .unwrap();
    assert_eq!(out["tainted"], json!(["node-1"]));
    let taints = fake.lock().unwrap().node("node-1")["spec"]["taints"].clone();
    assert_eq!(taints.as_array().unwrap().len(), 2, "{taints}");
    let patches: Vec<String> = fake
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.body["metadata"]["resourceVersion"].to_string())
        .collect();
    assert_eq!(
        patches,
        ["\"1\"", "\"99\""],
        "the first write conflicted, the second carried the new version"
    );
}

#[tokio::test(start_paused = true)]
async fn an_eviction_refused_by_a_budget_is_retried_until_it_passes() {
    let mut f = estate();
    f.faults.push(fault(
        "POST",
        "/pods/api-4/eviction",
        429,
        "Cannot evict pod as it would violate the pod's disruption budget.",
        3,
    ));
    let (k, fake) = provider(f);
    let t0 = tokio::time::Instant::now();
    let out = k
        .inject_json("k8s.node_drain", &json!({"node": "node-4"}))
        .await
        .unwrap();
    assert_eq!(out["cordoned"], json!(["node-4"]));
    assert_eq!(out["evicted"], json!(["web/api-4"]));
    assert_eq!(out["skipped"][0]["pod"], "kube-system/agent-4");
    assert_eq!(out["skipped"][0]["reason"], "DaemonSet pod");
    // Three refusals, each retried after kubectl's fixed 5s.
    assert_eq!(
        t0.elapsed(),
        3 * firedrill::lang::kubernetes::EVICTION_RETRY
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(15));
    let fake = fake.lock().unwrap();
    assert_eq!(
        fake.log
            .iter()
            .filter(|s| s.path.ends_with("/eviction"))
            .count(),
        4
    );
    let body = &fake
        .log
        .iter()
        .find(|s| s.path.ends_with("/eviction"))
        .unwrap()
        .body;
    assert_eq!(body["kind"], "Eviction");
    assert_eq!(body["apiVersion"], "policy/v1");
    assert!(fake.pods.iter().all(|p| p["metadata"]["name"] != "api-4"));
    assert!(
        fake.pods.iter().any(|p| p["metadata"]["name"] == "agent-4"),
        "DaemonSet pods stay"
    );
}

#[tokio::test(start_paused = true)]
async fn a_drain_blocked_past_its_timeout_fails_and_uncordons_what_it_cordoned() {
    let mut f = estate();
    f.faults.push(fault(
        "POST",
        "/pods/api-4/eviction",
        429,
        "would violate the pod's disruption budget",
        u32::MAX,
    ));
    let (k, fake) = provider(f);
    let params = json!({"node": "node-4", "timeout": "30s"});
    let t0 = tokio::time::Instant::now();
    let e = k.inject_json("k8s.node_drain", &params).await.unwrap_err();
    assert!(t0.elapsed() <= Duration::from_secs(30));
    let (ErrorKind::InvalidState, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("eviction of pod `web/api-4` still refused after 30s"),
        "{m}"
    );
    assert!(m.contains("PodDisruptionBudget"), "{m}");
    assert!(
        m.contains("uncordoned again after the failure: node-4"),
        "{m}"
    );
    // A failed drain leaves no cordon behind, and its rollback finds nothing left to undo.
    assert_eq!(
        fake.lock().unwrap().node("node-4")["spec"]["unschedulable"],
        false
    );
    fake.lock().unwrap().log.clear();
    let r = k
        .revert_json("k8s.node_drain", &params, &Json::Null)
        .await
        .unwrap();
    assert_eq!(r["uncordoned"], json!([]));
    assert_eq!(fake.lock().unwrap().mutations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_step_that_failed_half_way_is_rolled_back_from_the_ledger() {
    // The second node's patch fails: the step errors with no output, but node-0 was cordoned.
    let mut f = estate();
    f.faults.push(fault(
        "PATCH",
        "/nodes/node-1",
        500,
        "etcd leader changed",
        u32::MAX,
    ));
    let (k, fake) = provider(f);
    let params = json!({"zone": "zone-a"});
    let e = k.inject_json("k8s.cordon_zone", &params).await.unwrap_err();
    assert!(
        e.to_string().ends_with("(before this, cordoned: node-0)"),
        "{e}"
    );
    assert_eq!(
        fake.lock().unwrap().node("node-0")["spec"]["unschedulable"],
        true
    );
    let r = k
        .revert_json("k8s.cordon_zone", &params, &Json::Null)
        .await
        .unwrap();
    assert_eq!(r["uncordoned"], json!(["node-0"]));
    assert_eq!(
        fake.lock().unwrap().node("node-0")["spec"]["unschedulable"],
        false
    );
    let r = k
        .revert_json("k8s.cordon_zone", &params, &Json::Null)
        .await
        .unwrap();
    assert_eq!(r["reverted"], false, "already rolled back");
}

#[tokio::test(start_paused = true)]
async fn a_server_error_is_unavailable() {
    let mut f = estate();
    f.faults.push(fault(
        "GET",
        "/api/v1/nodes",
        500,
        "etcdserver: request timed out",
        u32::MAX,
    ));
    let (k, _) = provider(f);
    let e = k.observe_json("k8s.nodes", &json!({})).await.unwrap_err();
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
    let (svc, _handle) = tower_test::mock::pair::<Req, Resp>();
    let mut s = settings();
    s.request_timeout = Some(Duration::from_secs(5));
    let k = from_client(kube::Client::new(svc, "default"), s);
    let e = k.observe_json("k8s.nodes", &json!({})).await.unwrap_err();
    assert!(
        e.kind == ErrorKind::Unavailable && e.message.contains("within 5s"),
        "{e:?}"
    );
}

// ---- refusing before touching ----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_selector_matching_nothing_names_it_and_the_labels_there() {
    let (k, fake) = provider(estate());
    let e = k
        .inject_json("k8s.pod_kill", &kill(json!({"selector": {"app": "apii"}})))
        .await
        .unwrap_err();
    let (ErrorKind::NotFound, m) = (e.kind, &e.message) else {
        panic!("{e:?}")
    };
    assert_eq!(
        m,
        "no running pods match selector `app=apii` in namespace `web`; the running pods there have labels: app=api; app=worker"
    );
    let e = k
        .inject_json("k8s.pod_kill", &kill(json!({"namespace": "shop"})))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("namespace `shop` has no running pods at all"),
        "{e}"
    );
    let e = k
        .inject_json("k8s.cordon_zone", &json!({"zone": "zone-x"}))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no nodes in zone `zone-x` (label topology.kubernetes.io/zone); zones with nodes: zone-a, zone-b, zone-c"
    );
    assert_eq!(fake.lock().unwrap().mutations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn caps_refuse_before_any_delete_is_sent() {
    let (k, fake) = provider(estate());
    let e = k
        .inject_json("k8s.pod_kill", &kill(json!({"mode": "all", "max_pods": 3})))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "blast radius: mode `all` would kill 6 of the 6 pods matching `app=api`, over max_pods 3; raise max_pods or narrow the selector"
    );
    let e = k
        .inject_json(
            "k8s.pod_kill",
            &kill(json!({"mode": "random-max-percent", "value": 60, "max_percent": 50})),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("would kill up to 4 of the 6 pods"),
        "{e}"
    );
    let e = k
        .inject_json("k8s.drain_zone", &json!({"zone": "zone-a", "max_nodes": 1}))
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "blast radius: this would touch 2 nodes (node-0, node-1), over max_nodes 1"
        ),
        "{e}"
    );
    // The environment's default caps apply when the step has none.
    let (client, fake2) = serve(estate());
    let mut s = settings();
    s.max_pods = Some(2);
    let k2 = from_client(client, s);
    let e = k2
        .inject_json(
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
    assert_eq!(fake.lock().unwrap().mutations(), Vec::<String>::new());
    assert_eq!(fake2.lock().unwrap().mutations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn kube_system_and_namespaces_outside_the_allow_list_are_refused_without_a_request() {
    let (k, fake) = provider(estate());
    let e = k
        .inject_json(
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
    assert!(fake.lock().unwrap().log.is_empty());
    // Allowed explicitly on the step, it goes ahead.
    let out = k
        .inject_json("k8s.pod_kill", &json!({"namespace": "kube-system", "selector": {"app": "agent"}, "allow_kube_system": true}))
        .await
        .unwrap();
    assert_eq!(out["count"], 1);
    let (client, fake) = serve(estate());
    let mut s = settings();
    s.namespaces = vec!["shop".into()];
    let k = from_client(client, s);
    let e = k
        .inject_json("k8s.pod_kill", &kill(json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "namespace `web` is not in this environment's allow-list (kubernetes.namespaces: shop); add it there to allow drills on it"
    );
    assert!(fake.lock().unwrap().log.is_empty());
    // A step naming another cluster is refused too.
    let e = k
        .inject_json("k8s.pod_kill", &kill(json!({"cluster": "staging"})))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("this environment's Kubernetes cluster is `prod`, not `staging`"),
        "{e}"
    );
}

// ---- actions and rollbacks -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_pod_kill_deletes_the_picked_pods_and_records_them() {
    let (k, fake) = provider(estate());
    let out = k
        .inject_json(
            "k8s.pod_kill",
            &kill(json!({"mode": "fixed-percent", "value": 50, "grace_period": "10s"})),
        )
        .await
        .unwrap();
    assert_eq!(out["matched"], 6);
    assert_eq!(out["count"], 3);
    let killed = out["killed"].as_array().unwrap();
    assert_eq!(killed.len(), 3);
    let fake = fake.lock().unwrap();
    let deletes: Vec<&Seen> = fake.log.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 3);
    for (d, k) in deletes.iter().zip(killed) {
        assert_eq!(
            format!("web/{}", d.path.rsplit('/').next().unwrap()),
            k.as_str().unwrap()
        );
        assert_eq!(d.body["gracePeriodSeconds"], 10);
    }
    assert_eq!(out["pods"][0]["owner"], "deployment/api");
    assert_eq!(
        fake.pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "api")
            .count(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn random_max_percent_kills_between_one_and_the_percent() {
    let mut counts = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let (client, _) = serve(estate());
        let k = from_client(client, settings()).with_seed(seed);
        let out = k
            .inject_json(
                "k8s.pod_kill",
                &kill(json!({"mode": "random-max-percent", "value": 50})),
            )
            .await
            .unwrap();
        counts.insert(out["count"].as_u64().unwrap());
    }
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_lists_the_pods_and_nodes_and_touches_nothing() {
    let (k, fake) = provider(estate());
    let d = k
        .describe_json("k8s.pod_kill", &kill(json!({"mode": "fixed", "value": 2})))
        .await
        .unwrap();
    assert!(
        d.starts_with("kill 2 of 6 pod(s) matching `app=api` in web (mode fixed): web/api-"),
        "{d}"
    );
    assert!(d.contains("picked at random at run time"), "{d}");
    let d = k
        .describe_json("k8s.pod_kill", &kill(json!({"mode": "all"})))
        .await
        .unwrap();
    assert!(!d.contains("random"), "{d}");
    let d = k
        .describe_json("k8s.drain_zone", &json!({"zone": "zone-a"}))
        .await
        .unwrap();
    assert_eq!(
        d,
        "cordon 2 node(s): node-0, node-1; evict 3 pod(s) through the Eviction API: web/api-0, web/worker-0, web/api-1; skip kube-system/agent-0 (DaemonSet pod), kube-system/agent-1 (DaemonSet pod)"
    );
    let d = k
        .describe_json(
            "k8s.drain_zone",
            &json!({"zone": "zone-b", "method": "taint"}),
        )
        .await
        .unwrap();
    assert!(d.starts_with("taint 2 node(s) `firedrill.dev/zone-loss=zone-b:NoExecute`: node-2, node-3; the cluster then evicts 3 pod(s)"), "{d}");
    let d = k
        .describe_json(
            "k8s.scale",
            &json!({"namespace": "web", "deployment": "api", "replicas": 2}),
        )
        .await
        .unwrap();
    assert_eq!(d, "scale deployment web/api from 6 to 2 replicas");
    assert_eq!(fake.lock().unwrap().mutations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn rolling_back_a_zone_cordon_uncordons_only_the_nodes_it_cordoned() {
    let mut f = estate();
    f.nodes[1]["spec"]["unschedulable"] = json!(true);
    let (k, fake) = provider(f);
    let params = json!({"zone": "zone-a"});
    let out = k.inject_json("k8s.cordon_zone", &params).await.unwrap();
    assert_eq!(out["cordoned"], json!(["node-0"]));
    assert_eq!(out["already_cordoned"], json!(["node-1"]));
    fake.lock().unwrap().log.clear();
    let r = k
        .revert_json("k8s.cordon_zone", &params, &out)
        .await
        .unwrap();
    assert_eq!(r["uncordoned"], json!(["node-0"]));
    let fake = fake.lock().unwrap();
    assert_eq!(fake.mutations(), ["PATCH /api/v1/nodes/node-0"]);
    assert_eq!(fake.node("node-0")["spec"]["unschedulable"], false);
    assert_eq!(
        fake.node("node-1")["spec"]["unschedulable"],
        true,
        "was cordoned before the drill"
    );
}

#[tokio::test(start_paused = true)]
async fn a_zone_drain_cordons_evicts_and_rolls_back() {
    let (k, fake) = provider(estate());
    let params = json!({"zone": "zone-a"});
    let out = k.inject_json("k8s.drain_zone", &params).await.unwrap();
    assert_eq!(out["method"], "evict");
    assert_eq!(out["cordoned"], json!(["node-0", "node-1"]));
    assert_eq!(
        out["evicted"],
        json!(["web/api-0", "web/worker-0", "web/api-1"])
    );
    let r = k
        .revert_json("k8s.drain_zone", &params, &out)
        .await
        .unwrap();
    assert_eq!(r["uncordoned"], json!(["node-0", "node-1"]));
    let fake = fake.lock().unwrap();
    assert_eq!(fake.count("DELETE"), 0, "evictions, not deletes");
    assert!(
        fake.nodes
            .iter()
            .all(|n| n["spec"]["unschedulable"] == false)
    );
}

#[tokio::test(start_paused = true)]
async fn a_zone_taint_and_node_taints_roll_back_exactly() {
    let (k, fake) = provider(estate());
    let params = json!({"zone": "zone-b", "method": "taint"});
    let out = k.inject_json("k8s.drain_zone", &params).await.unwrap();
    assert_eq!(out["tainted"], json!(["node-2", "node-3"]));
    assert_eq!(out["pods"].as_array().unwrap().len(), 3);
    {
        let f = fake.lock().unwrap();
        assert_eq!(
            f.node("node-2")["spec"]["taints"],
            json!([{"key": "firedrill.dev/zone-loss", "value": "zone-b", "effect": "NoExecute"}])
        );
    }
    k.revert_json("k8s.drain_zone", &params, &out)
        .await
        .unwrap();
    assert_eq!(
        fake.lock().unwrap().node("node-2")["spec"]["taints"],
        json!([])
    );

    // A taint already there is left alone by the step and by its rollback.
    {
        let mut f = fake.lock().unwrap();
        let n = f
            .nodes
            .iter_mut()
            .find(|n| n["metadata"]["name"] == "node-0")
            .unwrap();
        n["spec"]["taints"] = json!([{"key": "chaos", "effect": "NoSchedule"}]);
    }
    let params = json!({"selector": {"topology.kubernetes.io/zone": "zone-a"}, "key": "chaos", "effect": "NoSchedule"});
    let out = k.inject_json("k8s.node_taint", &params).await.unwrap();
    assert_eq!(out["tainted"], json!(["node-1"]));
    assert_eq!(out["already_tainted"], json!(["node-0"]));
    k.revert_json("k8s.node_taint", &params, &out)
        .await
        .unwrap();
    {
        let f = fake.lock().unwrap();
        assert_eq!(
            f.node("node-0")["spec"]["taints"].as_array().unwrap().len(),
            1
        );
        assert_eq!(f.node("node-1")["spec"]["taints"], json!([]));
    }
    // Untaint removes it and its rollback puts back exactly what it removed.
    let params = json!({"node": "node-0", "key": "chaos"});
    let out = k.inject_json("k8s.node_untaint", &params).await.unwrap();
    assert_eq!(out["removed"][0]["node"], "node-0");
    assert_eq!(
        fake.lock().unwrap().node("node-0")["spec"]["taints"],
        json!([])
    );
    k.revert_json("k8s.node_untaint", &params, &out)
        .await
        .unwrap();
    assert_eq!(
        fake.lock().unwrap().node("node-0")["spec"]["taints"],
        json!([{"key": "chaos", "effect": "NoSchedule"}])
    );
}

#[tokio::test(start_paused = true)]
async fn uncordon_rolls_back_by_cordoning_only_what_it_uncordoned() {
    let mut f = estate();
    f.nodes[0]["spec"]["unschedulable"] = json!(true);
    let (k, fake) = provider(f);
    let params = json!({"selector": {"topology.kubernetes.io/zone": "zone-a"}});
    let out = k.inject_json("k8s.node_uncordon", &params).await.unwrap();
    assert_eq!(out["uncordoned"], json!(["node-0"]));
    assert_eq!(out["already_schedulable"], json!(["node-1"]));
    k.revert_json("k8s.node_uncordon", &params, &out)
        .await
        .unwrap();
    let f = fake.lock().unwrap();
    assert_eq!(f.node("node-0")["spec"]["unschedulable"], true);
    assert_eq!(f.node("node-1")["spec"]["unschedulable"], false);
}

#[tokio::test(start_paused = true)]
async fn scale_and_rollout_restart_restore_the_previous_values() {
    let (k, fake) = provider(estate());
    let params = json!({"namespace": "web", "deployment": "api", "replicas": 2});
    let out = k.inject_json("k8s.scale", &params).await.unwrap();
    assert_eq!(out["previous"], 6);
    assert_eq!(fake.lock().unwrap().deployments[0]["spec"]["replicas"], 2);
    assert!(
        fake.lock()
            .unwrap()
            .log
            .iter()
            .any(|s| s.method == "PATCH" && s.path.ends_with("/deployments/api/scale"))
    );
    let r = k.revert_json("k8s.scale", &params, &out).await.unwrap();
    assert_eq!(r["replicas"], 6);
    assert_eq!(fake.lock().unwrap().deployments[0]["spec"]["replicas"], 6);

    let params = json!({"namespace": "web", "deployment": "worker"});
    let out = k.inject_json("k8s.rollout_restart", &params).await.unwrap();
    assert_eq!(out["previous"], Json::Null);
    let ann = fake.lock().unwrap().deployments[1]["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].clone();
    assert_eq!(ann, out["restarted_at"]);
    k.revert_json("k8s.rollout_restart", &params, &out)
        .await
        .unwrap();
    let t = fake.lock().unwrap().deployments[1]["spec"]["template"]["metadata"].clone();
    assert_eq!(t["annotations"], json!({}), "{t}");
}

// ---- probes ----------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_pods_probe_takes_desired_from_the_deployment() {
    let mut f = estate();
    // One api pod is starting, one is pending.
    f.pods[2]["status"]["conditions"][0]["status"] = json!("False");
    f.pods[4]["spec"]["nodeName"] = Json::Null;
    f.pods[4]["status"]["conditions"][0]["status"] = json!("False");
    f.deployments[0]["spec"]["replicas"] = json!(8);
    let (k, fake) = provider(f);
    let p = json!({"namespace": "web", "selector": {"app": "api"}});
    let v = k.observe_json("k8s.pods", &p).await.unwrap();
    assert_eq!(
        (
            v["desired"].as_u64(),
            v["total"].as_u64(),
            v["ready"].as_u64(),
            v["starting"].as_u64(),
            v["pending"].as_u64()
        ),
        (Some(8), Some(6), Some(4), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["ready_ratio"], 0.5);
    assert_eq!(v["ready_percent"], 50.0);
    assert_eq!(v["restarts"], 6);
    // Every pod gone: desired is still the Deployment's.
    fake.lock()
        .unwrap()
        .pods
        .retain(|p| p["metadata"]["labels"]["app"] != "api");
    let v = k.observe_json("k8s.pods", &p).await.unwrap();
    assert_eq!(
        (v["desired"].as_u64(), v["ready_ratio"].as_f64()),
        (Some(8), Some(0.0))
    );
    // A fresh provider that never saw a pod finds the Deployment by its pod template.
    let (client, _) = serve({
        let mut f = estate();
        f.pods.clear();
        f
    });
    let k2 = from_client(client, settings());
    let v = k2.observe_json("k8s.pods", &p).await.unwrap();
    assert_eq!(v["desired"], 6);
}

#[tokio::test(start_paused = true)]
async fn pod_restarts_counts_the_increase_over_the_window() {
    let (k, fake) = provider(estate());
    let p = json!({"namespace": "web", "selector": {"app": "api"}, "window": "5m"});
    let v = k.observe_json("k8s.pod_restarts", &p).await.unwrap();
    assert_eq!(
        (v["restarts"].as_u64(), v["increase"].as_u64()),
        (Some(6), Some(0))
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    {
        // One container restarts twice; one pod is replaced.
        let mut f = fake.lock().unwrap();
        f.pods[0]["status"]["containerStatuses"][0]["restartCount"] = json!(3);
        let i = f
            .pods
            .iter()
            .position(|p| p["metadata"]["name"] == "api-5")
            .unwrap();
        f.pods.remove(i);
        f.pods.push(pod("web", "api-6", "api", "node-5"));
        f.pods.last_mut().unwrap()["status"]["containerStatuses"][0]["restartCount"] = json!(0);
    }
    let v = k.observe_json("k8s.pod_restarts", &p).await.unwrap();
    assert_eq!(
        (v["restarts"].as_u64(), v["increase"].as_u64()),
        (Some(9), Some(3)),
        "{v}"
    );
    tokio::time::advance(Duration::from_secs(300)).await;
    let v = k.observe_json("k8s.pod_restarts", &p).await.unwrap();
    assert_eq!(
        v["increase"], 0,
        "the changes are older than the window: {v}"
    );
    assert_eq!(v["window_seconds"], 300.0);
}

#[tokio::test(start_paused = true)]
async fn workload_nodes_and_memory_probes() {
    let mut f = estate();
    f.deployments[0]["status"]["availableReplicas"] = json!(5);
    f.nodes[5]["status"]["conditions"][0]["status"] = json!("False");
    f.nodes[4]["spec"]["unschedulable"] = json!(true);
    let (k, _) = provider(f);
    let v = k
        .observe_json(
            "k8s.workload",
            &json!({"namespace": "web", "deployment": "api"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            v["replicas"].as_i64(),
            v["available_replicas"].as_i64(),
            v["available"].as_bool()
        ),
        (Some(6), Some(5), Some(false))
    );
    let v = k
        .observe_json("k8s.nodes", &json!({"zone": "zone-c"}))
        .await
        .unwrap();
    assert_eq!(
        (
            v["ready"].as_u64(),
            v["total"].as_u64(),
            v["schedulable"].as_u64()
        ),
        (Some(1), Some(2), Some(0))
    );
    assert_eq!(v["ready_ratio"], 0.5);
    let e = k
        .observe_json("k8s.nodes", &json!({"zone": "zone-q"}))
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with("no nodes in zone `zone-q`"),
        "{e}"
    );
    // 14 pods of 2Gi, minus the two on the NotReady node-5, over 5 Ready nodes of 16Gi.
    let v = k.observe_json("k8s.memory", &json!({})).await.unwrap();
    assert_eq!(
        v["utilization"].as_f64().unwrap(),
        12.0 * 2.0 / (5.0 * 16.0)
    );
}

#[tokio::test(start_paused = true)]
async fn preflight_checks_targets_caps_and_selectors_read_only() {
    let mut f = estate();
    f.ssar_denied = Some(vec![]);
    let (k, fake) = provider(f);
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
        call("step `drain`", "k8s.node_drain", json!({"node": "node-3"})),
    ];
    let problems = k.preflight(&calls).await;
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
    assert_eq!(
        fake.lock().unwrap().mutations(),
        Vec::<String>::new(),
        "preflight only reads"
    );
}

// ---- recovery timings ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn killed_pods_are_watched_until_their_replacements_are_ready() {
    let (k, fake) = provider(estate());
    let clock = firedrill::engine::clock::RunClock::start_now();
    k.start(&firedrill::backend::RunContext {
        clock,
        run_id: "r".into(),
        experiment: "e".into(),
    });
    tokio::time::advance(Duration::from_secs(60)).await;
    let out = k
        .inject_json("k8s.pod_kill", &kill(json!({"mode": "fixed", "value": 2})))
        .await
        .unwrap();
    let killed: Vec<String> = out["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pod"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(out["pods"][0]["at_ms"], 60_000);
    // The ReplicaSet replaces them: created after 2s, scheduled at once, Ready after 30s and 35s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, n) in ["api-x", "api-y"].iter().enumerate() {
        let mut p = pod("web", n, "api", &format!("node-{}", 3 + i));
        p["spec"]["nodeName"] = Json::Null;
        p["status"]["conditions"][0]["status"] = json!("False");
        fake.lock().unwrap().upsert_pod(p.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        p["spec"]["nodeName"] = json!(format!("node-{}", 3 + i));
        fake.lock().unwrap().upsert_pod(p);
    }
    // Unrelated churn: a worker pod appears (another controller) and an api pod that existed
    // before the kill changes.
    fake.lock()
        .unwrap()
        .upsert_pod(pod("web", "worker-9", "worker", "node-1"));
    let mut old = pod("web", "api-5", "api", "node-5");
    old["status"]["containerStatuses"][0]["restartCount"] = json!(2);
    fake.lock().unwrap().upsert_pod(old);
    tokio::time::sleep(Duration::from_secs(29)).await;
    let mut x = pod("web", "api-x", "api", "node-3");
    x["metadata"]["uid"] = json!("uid-api-x");
    fake.lock().unwrap().upsert_pod(x);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!k.recovery_idle());
    fake.lock()
        .unwrap()
        .upsert_pod(pod("web", "api-y", "api", "node-4"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let events = k.drain_events();
    let details: Vec<&Json> = events.iter().filter_map(|e| e.detail.as_ref()).collect();
    assert_eq!(details.len(), 2, "{events:#?}");
    assert_eq!(details[0]["pod"], killed[0].as_str());
    assert_eq!(details[0]["replacement"], "api-x");
    assert_eq!(details[0]["replacement_node"], "node-3");
    assert_eq!(details[0]["owner"], "deployment/api");
    assert_eq!(details[0]["killed_at_ms"], 60_000);
    assert_eq!(details[0]["scheduled_after_ms"], 2_500);
    assert_eq!(details[0]["ready_after_ms"], 32_000);
    assert_eq!(events[0].at_ms, 92_000);
    assert_eq!(details[1]["pod"], killed[1].as_str());
    assert_eq!(details[1]["replacement"], "api-y");
    assert_eq!(details[1]["scheduled_after_ms"], 3_000);
    assert_eq!(details[1]["ready_after_ms"], 37_000);
    assert!(
        events[1]
            .message
            .contains("replaced by api-y on node-4: scheduled after 3s, Ready after 37s"),
        "{}",
        events[1].message
    );
    assert!(
        k.recovery_idle(),
        "the watch stops once every pod recovered"
    );
}

#[tokio::test(start_paused = true)]
async fn drains_skip_protected_namespaces_and_a_zone_taint_refuses_to_hit_them() {
    let mut f = estate();
    // A kube-system Deployment pod (like CoreDNS) and a pod of another team on zone-b.
    f.pods
        .push(pod("kube-system", "coredns-0", "coredns", "node-2"));
    f.pods.push(pod("payments", "ledger-0", "ledger", "node-3"));
    let (client, fake) = serve(f);
    let mut s = settings();
    s.namespaces = vec!["web".into()];
    let k = from_client(client, s);
    let out = k
        .inject_json("k8s.drain_zone", &json!({"zone": "zone-b"}))
        .await
        .unwrap();
    assert_eq!(
        out["evicted"],
        json!(["web/api-2", "web/worker-1", "web/api-3"])
    );
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
            "kube-system/agent-2: DaemonSet pod",
            "kube-system/coredns-0: kube-system (set allow_kube_system to evict it)",
            "kube-system/agent-3: DaemonSet pod",
            "payments/ledger-0: namespace `payments` is not in kubernetes.namespaces"
        ]
    );
    k.revert_json("k8s.drain_zone", &json!({"zone": "zone-b"}), &out)
        .await
        .unwrap();
    fake.lock().unwrap().log.clear();
    // A taint cannot skip anything: the cluster would evict CoreDNS, so the step is refused.
    let e = k
        .inject_json(
            "k8s.drain_zone",
            &json!({"zone": "zone-b", "method": "taint"}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with("the zone taint would make the cluster evict pod `kube-system/coredns-0`: refusing to act on namespace `kube-system`"),
        "{e}"
    );
    assert_eq!(fake.lock().unwrap().mutations(), Vec::<String>::new());
}
