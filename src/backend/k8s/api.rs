//! Small helpers over the Kubernetes API: what a failed request means for the operator
//! ([`map_error`]), selectors, pod and node predicates, resource quantities.

use crate::backend::ProviderError;
use k8s_openapi::api::core::v1::{Node, Pod};
use std::collections::BTreeMap;

/// One API operation, for messages: `delete` on `pods` named `api-1` in namespace `web`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl<'a> Op<'a> {
    pub fn new(verb: &'a str, resource: &'a str) -> Op<'a> {
        Op {
            verb,
            resource,
            namespace: None,
            name: None,
        }
    }
    pub fn ns(mut self, ns: &'a str) -> Op<'a> {
        self.namespace = Some(ns);
        self
    }
    pub fn name(mut self, name: &'a str) -> Op<'a> {
        self.name = Some(name);
        self
    }

    /// `pods `web/api-1``, `nodes `node-1``, `pods in namespace `web``.
    fn object(&self) -> String {
        match (self.namespace, self.name) {
            (Some(ns), Some(n)) => format!("{} `{ns}/{n}`", singular(self.resource)),
            (None, Some(n)) => format!("{} `{n}`", singular(self.resource)),
            (Some(ns), None) => format!("{} in namespace `{ns}`", self.resource),
            (None, None) => self.resource.to_string(),
        }
    }
}

fn singular(resource: &str) -> String {
    let base = resource.split('/').next().unwrap_or(resource);
    let sub = resource.split_once('/').map(|(_, s)| s);
    let one = base.strip_suffix('s').unwrap_or(base);
    match sub {
        Some(s) => format!("{one} {s}"),
        None => one.to_string(),
    }
}

/// Who the server is, for messages.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The API server URL (or a description when unknown).
    pub server: String,
    /// Where the configuration came from (`context `prod` of kubeconfig `...``).
    pub origin: String,
}

/// The HTTP status of an API error, if it is one.
pub(crate) fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The user named in a 403 message (`User "alice" cannot ...`).
fn user_in(message: &str) -> Option<String> {
    let i = message.find("User \"")?;
    let rest = &message[i + 6..];
    let j = rest.find('"')?;
    Some(rest[..j].to_string())
}

/// What a failed request means, naming the object and what to do.
pub(crate) fn map_error(ep: &Endpoint, op: Op<'_>, e: kube::Error) -> ProviderError {
    match e {
        kube::Error::Api(s) => {
            let said = if s.message.is_empty() {
                s.reason.clone()
            } else {
                s.message.clone()
            };
            match s.code {
                401 => ProviderError::denied(format!(
                    "the API server at {} rejected the credentials (401 Unauthorized) for `{}` on `{}`: {said}; refresh them (e.g. log in again to the cloud CLI that issues the token) or check the user of {}",
                    ep.server, op.verb, op.resource, ep.origin
                )),
                403 => {
                    let who = user_in(&said)
                        .map(|u| format!("user `{u}`"))
                        .unwrap_or_else(|| format!("the user of {}", ep.origin));
                    let (scope, role) = match op.namespace {
                        Some(ns) => (format!("in namespace `{ns}`"), "a Role"),
                        None => ("cluster-wide".to_string(), "a ClusterRole"),
                    };
                    ProviderError::denied(format!(
                        "RBAC denies `{}` on `{}` {scope}; grant it in {role} bound to {who} (the API server said: {said})",
                        op.verb, op.resource
                    ))
                }
                404 => {
                    if op.name.is_some() {
                        ProviderError::not_found(format!(
                            "{} not found on {}; check the name (`kubectl get {}`)",
                            op.object(),
                            ep.server,
                            op.resource.split('/').next().unwrap_or(op.resource)
                        ))
                    } else {
                        ProviderError::not_found(format!(
                            "the API server at {} does not serve {} ({said}); check the cluster's version and API groups",
                            ep.server,
                            op.object()
                        ))
                    }
                }
                409 => ProviderError::invalid_state(format!(
                    "{} kept changing under firedrill (409 Conflict on `{}`: {said}); retry the drill when the cluster is quieter",
                    op.object(),
                    op.verb
                )),
                429 => ProviderError::throttled(format!(
                    "the API server at {} is throttling requests (429 on `{}` {}): {said}; retry later or lower the drill's concurrency",
                    ep.server,
                    op.verb,
                    op.object()
                )),
                c if c >= 500 => ProviderError::unavailable(format!(
                    "the API server at {} failed `{}` on {} ({c}: {said}); the control plane may be unhealthy, retry later",
                    ep.server,
                    op.verb,
                    op.object()
                )),
                c => ProviderError::not_found(format!(
                    "the API server at {} refused `{}` on {} ({c}: {said})",
                    ep.server,
                    op.verb,
                    op.object()
                )),
            }
        }
        kube::Error::Auth(a) => ProviderError::denied(format!(
            "cannot get credentials for {} from {}: {}; check the user entry (token, exec plugin) of the kubeconfig",
            ep.server,
            ep.origin,
            super::settings::chain(&a)
        )),
        kube::Error::SerdeError(se) => ProviderError::failed(format!(
            "unexpected answer from {} to `{}` on {}: {se}; is this a Kubernetes API server?",
            ep.server,
            op.verb,
            op.object()
        )),
        other => ProviderError::unavailable(format!(
            "cannot reach the Kubernetes API server at {} ({}): {}; check the kubeconfig, context and `server` setting, and that the cluster is up",
            ep.server,
            ep.origin,
            super::settings::chain(&other)
        )),
    }
}

// ---- selectors and lists -------------------------------------------------------------------

/// `{app: api, tier: web}` as a label selector: `app=api,tier=web`.
pub(crate) fn selector_string(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) use crate::backend::strings;

pub(crate) fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

// ---- pods and nodes ------------------------------------------------------------------------

pub(crate) const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub(crate) const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
pub(crate) const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
pub(crate) use crate::lang::kubernetes::ZONE_LOSS_TAINT;

pub(crate) fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

pub(crate) fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(crate) fn pod_phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Succeeded or Failed: no longer running and never will again.
pub(crate) fn pod_finished(p: &Pod) -> bool {
    matches!(pod_phase(p), "Succeeded" | "Failed")
}

pub(crate) fn pod_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// A pod that counts: not finished, not being deleted.
pub(crate) fn pod_live(p: &Pod) -> bool {
    !pod_finished(p) && !pod_terminating(p)
}

pub(crate) fn pod_node(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

pub(crate) fn pod_restarts(p: &Pod) -> u64 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count.max(0) as u64).sum())
        .unwrap_or(0)
}

/// The pod's controller (kind, name, uid).
pub(crate) fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<(String, String, String)> {
    meta.owner_references.as_ref().and_then(|o| {
        o.iter()
            .find(|r| r.controller == Some(true))
            .or_else(|| o.first())
            .map(|r| (r.kind.clone(), r.name.clone(), r.uid.clone()))
    })
}

pub(crate) fn pod_daemonset(p: &Pod) -> bool {
    controller_of(&p.metadata).is_some_and(|(k, _, _)| k == "DaemonSet")
}

pub(crate) fn pod_mirror(p: &Pod) -> bool {
    p.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

/// `deployment/api` for a ReplicaSet `api-5d4f8` with `pod-template-hash: 5d4f8`; else the
/// controller as `kind/name` in lower case.
pub(crate) fn owner_label(p: &Pod) -> String {
    match controller_of(&p.metadata) {
        Some((kind, name, _)) if kind == "ReplicaSet" => {
            match p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"))
                .and_then(|h| name.strip_suffix(&format!("-{h}")))
            {
                Some(d) => format!("deployment/{d}"),
                None => format!("replicaset/{name}"),
            }
        }
        Some((kind, name, _)) => format!("{}/{name}", kind.to_lowercase()),
        None => "none".into(),
    }
}

pub(crate) fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(crate) fn node_unschedulable(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

pub(crate) fn node_zone(n: &Node) -> Option<&str> {
    n.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ZONE_LABEL))
        .map(String::as_str)
}

/// A resource quantity (`16Gi`, `512Mi`, `1e9`, `100M`, `250m`) in base units.
pub(crate) fn quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    // `1e3` is an exponent; a bare `E` suffix (exa) is caught by the split above only when
    // not followed by digits, so handle `E`/`e` explicitly.
    let (num, suffix) = if suffix.is_empty() && (num.ends_with('E') || num.ends_with('e')) {
        (&num[..num.len() - 1], "E")
    } else {
        (num, suffix)
    };
    let n: f64 = num.parse().ok()?;
    let m = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * m)
}

/// Memory requested by a pod's containers (bytes).
pub(crate) fn pod_memory_request(p: &Pod) -> f64 {
    p.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.resources.as_ref())
                .filter_map(|r| r.requests.as_ref())
                .filter_map(|r| r.get("memory"))
                .filter_map(|q| quantity(&q.0))
                .sum()
        })
        .unwrap_or(0.0)
}

pub(crate) fn node_allocatable_memory(n: &Node) -> f64 {
    n.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .and_then(|a| a.get("memory"))
        .and_then(|q| quantity(&q.0))
        .unwrap_or(0.0)
}

/// SplitMix64: the seeded generator for pod picks (same as the simulated estate's).
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("16Gi"), Some(16.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("1e9"), Some(1e9));
        assert_eq!(quantity("100M"), Some(1e8));
        assert_eq!(quantity("250m"), Some(0.25));
        assert_eq!(quantity("1.5Gi"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("123"), Some(123.0));
        assert_eq!(quantity("2E"), Some(2e18));
        assert_eq!(quantity("lots"), None);
        assert_eq!(quantity("12Xi"), None);
    }

    #[test]
    fn forbidden_names_verb_resource_namespace_and_user() {
        let ep = Endpoint {
            server: "https://k".into(),
            origin: "context `prod`".into(),
        };
        let st = kube::core::Status::failure(
            "pods \"api-1\" is forbidden: User \"alice\" cannot delete resource \"pods\" in API group \"\" in the namespace \"web\"",
            "Forbidden",
        )
        .with_code(403);
        let e = map_error(
            &ep,
            Op::new("delete", "pods").ns("web").name("api-1"),
            kube::Error::Api(Box::new(st)),
        );
        let (crate::backend::ErrorKind::Denied, m) = (e.kind, &e.message) else {
            panic!("{e:?}")
        };
        assert!(
            m.starts_with("RBAC denies `delete` on `pods` in namespace `web`; grant it in a Role bound to user `alice`"),
            "{m}"
        );
    }

    #[test]
    fn owner_labels() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-5d4f8-x", "labels": {"pod-template-hash": "5d4f8"},
              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-5d4f8", "uid": "u", "controller": true}]}
        }))
        .unwrap();
        assert_eq!(owner_label(&pod), "deployment/api");
    }
}
