//! Read-only checks before a drill: the API server answers, every namespace, node, zone and
//! workload exists, selectors match something, blast-radius caps hold, and the caller may do
//! what each call needs (SelfSubjectAccessReview, `authorization.k8s.io/v1`; skipped when the
//! cluster does not serve it, existence is still checked).

use super::KubeProvider;
use super::api::{Op, labels, p_str, selector_string};
use crate::provider::{Call, PreflightProblem, ProviderError};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::Value as Json;

fn group_of(resource: &str) -> &'static str {
    match resource {
        "deployments" | "statefulsets" | "replicasets" | "daemonsets" => "apps",
        _ => "",
    }
}

impl KubeProvider {
    /// May the caller do `verb` on `resource[/sub]` (in `ns`, or cluster-wide)? `None` when the
    /// cluster cannot say (no SelfSubjectAccessReview API, or the review itself refused).
    pub(crate) async fn can(
        &self,
        verb: &str,
        resource: &str,
        sub: Option<&str>,
        ns: Option<&str>,
    ) -> Result<Option<(bool, String)>, ProviderError> {
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group_of(resource).into()),
                    resource: Some(resource.into()),
                    subresource: sub.map(str::to_string),
                    verb: Some(verb.into()),
                    namespace: ns.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let op = Op::new("create", "selfsubjectaccessreviews");
        match self
            .call_raw(op, api.create(&PostParams::default(), &review))
            .await?
        {
            Ok(r) => Ok(r.status.map(|s| {
                let why = s.reason.or(s.evaluation_error).unwrap_or_default();
                (s.allowed && !s.denied.unwrap_or(false), why)
            })),
            // The review API is missing or refused: cannot check; a real call will tell.
            Err(kube::Error::Api(_)) | Err(kube::Error::SerdeError(_)) => Ok(None),
            Err(e) => Err(self.map(op, e)),
        }
    }

    /// Refuse, before touching anything, what RBAC will deny.
    pub(crate) async fn require(
        &self,
        verb: &str,
        resource: &str,
        sub: Option<&str>,
        ns: Option<&str>,
    ) -> Result<(), ProviderError> {
        match self.can(verb, resource, sub, ns).await? {
            Some((false, why)) => {
                let res = match sub {
                    Some(s) => format!("{resource}/{s}"),
                    None => resource.to_string(),
                };
                let (scope, role) = match ns {
                    Some(ns) => (format!("in namespace `{ns}`"), "a Role"),
                    None => ("cluster-wide".to_string(), "a ClusterRole"),
                };
                Err(ProviderError::denied(format!(
                    "RBAC denies `{verb}` on `{res}` {scope}; grant it in {role} bound to the user of {}{}",
                    self.ep.origin,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" (SelfSubjectAccessReview: {why})")
                    }
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether the API server answers at all (any HTTP answer counts).
    pub(crate) async fn reachable(&self) -> Result<(), ProviderError> {
        let op = Op::new("get", "version");
        match self.call_raw(op, self.client.apiserver_version()).await? {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 401 => Err(self.map(op, kube::Error::Api(s))),
            Err(kube::Error::Api(_)) | Err(kube::Error::SerdeError(_)) => Ok(()),
            Err(e) => Err(self.map(op, e)),
        }
    }

    pub(crate) async fn preflight_calls(&self, calls: &[Call]) -> Vec<PreflightProblem> {
        let mut problems = Vec::new();
        if let Err(e) = self.reachable().await {
            // Every call would fail the same way: say it once.
            if let Some(c) = calls.first() {
                problems.push(PreflightProblem {
                    owner: c.owner.clone(),
                    error: e,
                });
            }
            return problems;
        }
        for c in calls {
            if let Err(error) = self.preflight_one(c).await {
                problems.push(PreflightProblem {
                    owner: c.owner.clone(),
                    error,
                });
            }
        }
        problems
    }

    /// RBAC allows evicting pods in every namespace of `pods` (drains check this before the
    /// first write; preflight checks it before the run). Returns those namespaces, sorted.
    pub(super) async fn eviction_rights(
        &self,
        pods: &[k8s_openapi::api::core::v1::Pod],
    ) -> Result<Vec<String>, ProviderError> {
        let mut namespaces: Vec<String> = pods
            .iter()
            .filter_map(|p| p.metadata.namespace.clone())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        for ns in &namespaces {
            self.require("create", "pods", Some("eviction"), Some(ns))
                .await?;
        }
        Ok(namespaces)
    }

    async fn preflight_one(&self, c: &Call) -> Result<(), ProviderError> {
        let p: &Json = &c.params;
        self.check_cluster(p)?;
        match c.name.as_str() {
            "k8s.pod_kill" => {
                let plan = self.plan_pod_kill(p, None).await?;
                for ns in &plan.namespaces {
                    self.require("list", "pods", None, Some(ns)).await?;
                    self.require("delete", "pods", None, Some(ns)).await?;
                }
            }
            "k8s.cordon_zone" => {
                self.plan_zone(p).await?;
                self.require("patch", "nodes", None, None).await?;
            }
            "k8s.drain_zone" => {
                let nodes = self.plan_zone(p).await?;
                let taint = (p_str(p, "method") == Some("taint")).then(|| Self::zone_taint(p));
                let (pods, _) = self.plan_drain(&nodes, p, taint.as_ref()).await?;
                self.require("patch", "nodes", None, None).await?;
                if p_str(p, "method") != Some("taint") {
                    self.eviction_rights(&pods).await?;
                }
            }
            "k8s.node_cordon" | "k8s.node_uncordon" | "k8s.node_taint" | "k8s.node_untaint" => {
                self.plan_nodes(p).await?;
                self.require("patch", "nodes", None, None).await?;
            }
            "k8s.node_drain" => {
                let nodes = self.plan_nodes(p).await?;
                let (pods, _) = self.plan_drain(&nodes, p, None).await?;
                self.require("patch", "nodes", None, None).await?;
                self.eviction_rights(&pods).await?;
            }
            "k8s.scale" | "k8s.rollout_restart" => {
                let ns = p_str(p, "namespace").unwrap_or_default();
                self.check_namespace(ns, p)?;
                let (kind, name) = Self::workload(p)?;
                self.get_workload(ns, kind, &name).await?;
                let resource = if kind == "deployment" {
                    "deployments"
                } else {
                    "statefulsets"
                };
                let sub = (c.name == "k8s.scale").then_some("scale");
                self.require("patch", resource, sub, Some(ns)).await?;
            }
            "k8s.pods" | "k8s.pod_restarts" => {
                let ns = p_str(p, "namespace").unwrap_or_default();
                let selector = selector_string(&labels(p, "selector"));
                let fields = p_str(p, "field_selector");
                self.require("list", "pods", None, Some(ns)).await?;
                let pods = self.list_pods(ns, &selector, fields).await?;
                if pods.is_empty() && !self.workloads_matching(ns, &selector).await.is_empty() {
                    return Ok(());
                }
                if pods.is_empty() {
                    return Err(self.no_match(&[ns.to_string()], &selector, fields).await);
                }
            }
            "k8s.workload" => {
                let ns = p_str(p, "namespace").unwrap_or_default();
                let (kind, name) = Self::workload(p)?;
                self.get_workload(ns, kind, &name).await?;
            }
            "k8s.nodes" => {
                self.require("list", "nodes", None, None).await?;
                self.observe_probe("k8s.nodes", p).await?;
            }
            "k8s.memory" => {
                self.require("list", "nodes", None, None).await?;
                self.require("list", "pods", None, None).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
