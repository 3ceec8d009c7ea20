//! The served Kubernetes API against the real `kubectl` (keeps the API honest). Each test starts
//! the server on 127.0.0.1:0 in-process (wall clock: nothing here waits for timed behaviour),
//! writes a kubeconfig to a temporary directory and runs kubectl with it.
//!
//! kubectl is required: `apt-get install kubernetes-client` (Debian's 1.20; the tests also pass
//! with 1.32). `FIREDRILL_KUBECTL=/path/to/kubectl` picks another binary.

use std::path::PathBuf;

use firedrill::backend::sim::SharedEstate;
use firedrill::engine::clock::RunClock;
use firedrill::sim::kube_api::{KubeApi, kubeconfig};
use firedrill::sim::model::{Estate, Obj, ObjKind, SimParams};

const CLUSTER: &str = "prod-east";

struct Server {
    shared: SharedEstate,
    api: KubeApi,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

fn kubectl_binary() -> String {
    std::env::var("FIREDRILL_KUBECTL").unwrap_or_else(|_| "kubectl".to_string())
}

async fn start() -> Server {
    let shared = SharedEstate::new(Estate::from_params(SimParams::default()).unwrap());
    shared.start(RunClock::start_now());
    let api = KubeApi::new(shared.clone(), CLUSTER).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api.clone().serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig_path = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig_path, kubeconfig(&url, CLUSTER, None)).unwrap();
    Server {
        shared,
        api,
        dir,
        kubeconfig: kubeconfig_path,
    }
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Server {
    async fn kubectl(&self, args: &[&str]) -> Out {
        let bin = kubectl_binary();
        let out = tokio::process::Command::new(&bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{bin}` ({e}): these tests need kubectl; install it with `apt-get install kubernetes-client` (or set FIREDRILL_KUBECTL to a kubectl binary)"
                )
            });
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn pods(&self) -> Vec<firedrill::sim::model::PodObj> {
        let mut e = self.shared.lock();
        let now = self.shared.now();
        e.objects(now, CLUSTER, ObjKind::Pod)
            .unwrap()
            .into_iter()
            .filter_map(|(_, o)| match o {
                Obj::Pod(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn unschedulable(&self, node: &str) -> bool {
        let mut e = self.shared.lock();
        let now = self.shared.now();
        match e.object(now, CLUSTER, ObjKind::Node, "", node).unwrap() {
            Some((_, Obj::Node(n))) => n.unschedulable,
            _ => panic!("no node {node}"),
        }
    }
}

fn ok(o: &Out, what: &str) {
    assert!(o.ok, "kubectl {what} failed:\n{}\n{}", o.stdout, o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_in_all_namespaces() {
    let s = start().await;
    let o = s.kubectl(&["get", "pods", "-A"]).await;
    ok(&o, "get pods -A");
    let lines: Vec<&str> = o.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(lines.len() - 1, s.pods().len(), "{}", o.stdout);
    for p in s.pods() {
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(p.name.as_str()))
            .unwrap_or_else(|| panic!("{} missing:\n{}", p.name, o.stdout));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            &cells[..4],
            [p.namespace.as_str(), p.name.as_str(), "1/1", "Running"]
        );
    }
    // Server-side printing with -o wide shows the node.
    let o = s
        .kubectl(&["get", "pods", "-n", "data", "-o", "wide"])
        .await;
    ok(&o, "get pods -o wide");
    assert!(
        o.stdout.contains("NODE") && o.stdout.contains("us-east-1"),
        "{}",
        o.stdout
    );
    // And a single object as JSON is a real Pod.
    let o = s
        .kubectl(&["get", "pod", "-n", "data", "db-0", "-o", "json"])
        .await;
    ok(&o, "get pod -o json");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        (
            v["kind"].as_str(),
            v["metadata"]["ownerReferences"][0]["kind"].as_str()
        ),
        (Some("Pod"), Some("StatefulSet"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_nodes_by_zone_label() {
    let s = start().await;
    let o = s
        .kubectl(&[
            "get",
            "nodes",
            "-l",
            "topology.kubernetes.io/zone=us-east-1a",
        ])
        .await;
    ok(&o, "get nodes -l");
    let names: Vec<&str> = o
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["us-east-1a-1", "us-east-1a-2", "us-east-1a-3"]);
    assert!(
        o.stdout.lines().skip(1).all(|l| l.contains(" Ready ")),
        "{}",
        o.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_delete_and_uncordon() {
    let s = start().await;
    let node = "us-east-1b-2";
    let o = s.kubectl(&["cordon", node]).await;
    ok(&o, "cordon");
    assert!(
        o.stdout.contains(&format!("node/{node} cordoned")),
        "{}",
        o.stdout
    );
    assert!(
        s.unschedulable(node),
        "the API shows the node unschedulable"
    );
    let o = s.kubectl(&["get", "node", node]).await;
    assert!(
        o.stdout.contains("Ready,SchedulingDisabled"),
        "{}",
        o.stdout
    );

    let victim = s
        .pods()
        .into_iter()
        .find(|p| p.namespace == "web" && p.workload == "api")
        .unwrap()
        .name;
    let o = s
        .kubectl(&["delete", "pod", "-n", "web", &victim, "--wait=false"])
        .await;
    ok(&o, "delete pod");
    assert!(
        o.stdout.contains(&format!("pod \"{victim}\" deleted")),
        "{}",
        o.stdout
    );
    let p = s
        .pods()
        .into_iter()
        .find(|p| p.name == victim)
        .expect("Terminating, not gone yet");
    assert!(p.deletion.is_some());
    let o = s.kubectl(&["get", "pod", "-n", "web", &victim]).await;
    assert!(o.stdout.contains("Terminating"), "{}", o.stdout);
    // A force delete is immediate.
    let o = s
        .kubectl(&[
            "delete",
            "pod",
            "-n",
            "web",
            &victim,
            "--grace-period=0",
            "--force",
        ])
        .await;
    ok(&o, "delete --force");
    assert!(!s.pods().iter().any(|p| p.name == victim));
    let o = s.kubectl(&["get", "pod", "-n", "web", &victim]).await;
    assert!(!o.ok && o.stderr.contains("NotFound"), "{}", o.stderr);

    let o = s.kubectl(&["uncordon", node]).await;
    ok(&o, "uncordon");
    assert!(
        o.stdout.contains(&format!("node/{node} uncordoned")),
        "{}",
        o.stdout
    );
    assert!(!s.unschedulable(node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_skips_daemonsets_and_forbidden_reads_like_the_real_api() {
    let s = start().await;
    let node = "us-east-1c-1";
    let o = s
        .kubectl(&[
            "drain",
            node,
            "--ignore-daemonsets",
            "--grace-period=0",
            "--timeout=30s",
        ])
        .await;
    ok(&o, "drain");
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(
        all.contains("node-exporter"),
        "DaemonSet pods are ignored:\n{all}"
    );
    // kubectl 1.20 ends with `node/<n> evicted`, 1.32 with `node/<n> drained`.
    assert!(all.contains("pod/") && all.contains(" evicted"), "{all}");
    assert!(
        all.contains(&format!("node/{node} drained"))
            || all.contains(&format!("node/{node} evicted")),
        "{all}"
    );
    let left: Vec<String> = s
        .pods()
        .into_iter()
        .filter(|p| p.node.as_deref() == Some(node))
        .map(|p| p.workload)
        .collect();
    assert_eq!(left, ["node-exporter"]);
    ok(&s.kubectl(&["uncordon", node]).await, "uncordon");

    s.api.deny("delete", "pods");
    let victim = s
        .pods()
        .into_iter()
        .find(|p| p.namespace == "web")
        .unwrap()
        .name;
    let o = s
        .kubectl(&["delete", "pod", "-n", "web", &victim, "--wait=false"])
        .await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(&format!(
            "Error from server (Forbidden): pods \"{victim}\" is forbidden: User \"system:serviceaccount:firedrill:drill\" cannot delete resource \"pods\" in API group \"\" in the namespace \"web\""
        )),
        "{}",
        o.stderr
    );
}

/// `kubectl get rs` lists the Deployments' ReplicaSets; `kubectl auth can-i` is refused with
/// 415: its typed client sends protobuf, and the served API speaks JSON only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicasets_and_a_protobuf_access_review() {
    let s = start().await;
    let o = s
        .kubectl(&["auth", "can-i", "delete", "pods", "-n", "web"])
        .await;
    assert!(!o.ok);
    assert!(
        o.stderr
            .contains("Error from server (UnsupportedMediaType)")
            && o.stderr.contains("application/vnd.kubernetes.protobuf"),
        "{}",
        o.stderr
    );
    let o = s.kubectl(&["get", "rs", "-n", "web"]).await;
    ok(&o, "get rs");
    let header: Vec<&str> = o
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    let rows: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{}", o.stdout);
    assert!(
        rows[0][0].starts_with("api-") && rows[0][1..4] == ["6", "6", "6"],
        "{rows:?}"
    );
    assert!(
        rows[1][0].starts_with("worker-") && rows[1][1..4] == ["3", "3", "3"],
        "{rows:?}"
    );
}

/// `firedrill sim serve` end to end: the binary prints its URL, writes a kubeconfig, and kubectl
/// works with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_serve_writes_a_kubeconfig_kubectl_can_use() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args([
            "sim",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            "prod-west",
        ])
        .arg("--kubeconfig-out")
        .arg(&kc)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            url = Some(u.to_string());
        }
        if line.starts_with("press Ctrl-C") {
            break;
        }
    }
    let url = url.expect("the URL is printed");
    let config = std::fs::read_to_string(&kc).unwrap();
    assert!(config.contains(&format!("server: {url}")), "{config}");
    let out = tokio::process::Command::new(kubectl_binary())
        .arg("--kubeconfig")
        .arg(&kc)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args([
            "get",
            "nodes",
            "-l",
            "topology.kubernetes.io/region=us-west-2",
        ])
        .env("HOME", dir.path())
        .output()
        .await
        .expect("kubectl is needed: apt-get install kubernetes-client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().skip(1).count(), 9, "{stdout}");
    assert!(stdout.contains("us-west-2a-1"), "{stdout}");
    child.kill().await.unwrap();
}
