//! Read-only checks before a drill: the API server answers, every namespace, node, zone and
//! workload exists, selectors match something, blast-radius caps hold, and the caller may do
//! what each call needs (SelfSubjectAccessReview, `authorization.k8s.io/v1`; skipped when the
//! cluster does not serve it, existence is still checked).

use super::KubeProvider;
use super::api::{Op, selector_string};
use crate::backend::{Action, Call, PreflightProblem, Probe, ProviderError, Typed};
use crate::lang::action::{Scale, WorkloadAt};
use crate::lang::kubernetes::DrainMethod;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

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
        match &c.typed {
            Typed::Action(a) => {
                self.check_cluster(a.cluster())?;
                self.preflight_action(a).await
            }
            Typed::Probe(p) => {
                self.check_cluster(p.cluster())?;
                self.preflight_probe(p).await
            }
            Typed::Canary(_) => Err(ProviderError::unsupported("kubernetes", "canary")),
        }
    }

    async fn preflight_action(&self, a: &Action) -> Result<(), ProviderError> {
        match a {
            Action::PodKill(pk) => {
                let plan = self.plan_pod_kill(pk, None).await?;
                for ns in &plan.namespaces {
                    self.require("list", "pods", None, Some(ns)).await?;
                    self.require("delete", "pods", None, Some(ns)).await?;
                }
            }
            Action::CordonZone(z) => {
                self.plan_zone(z).await?;
                self.require("patch", "nodes", None, None).await?;
            }
            Action::DrainZone(z) => {
                let nodes = self.plan_zone(z).await?;
                let taint = (z.method == DrainMethod::Taint).then(|| Self::zone_taint(z));
                let (pods, _) = self.plan_drain(&nodes, z.into(), taint.as_ref()).await?;
                self.require("patch", "nodes", None, None).await?;
                if z.method != DrainMethod::Taint {
                    self.eviction_rights(&pods).await?;
                }
            }
            Action::NodeCordon(n) | Action::NodeUncordon(n) => {
                self.plan_nodes(n).await?;
                self.require("patch", "nodes", None, None).await?;
            }
            Action::NodeTaint(t) => {
                self.plan_nodes(&t.nodes).await?;
                self.require("patch", "nodes", None, None).await?;
            }
            Action::NodeUntaint(u) => {
                self.plan_nodes(&u.nodes).await?;
                self.require("patch", "nodes", None, None).await?;
            }
            Action::NodeDrain(n) => {
                let nodes = self.plan_nodes(n).await?;
                let (pods, _) = self.plan_drain(&nodes, n.into(), None).await?;
                self.require("patch", "nodes", None, None).await?;
                self.eviction_rights(&pods).await?;
            }
            Action::Scale(Scale {
                namespace,
                workload,
                ..
            })
            | Action::RolloutRestart(WorkloadAt {
                namespace,
                workload,
                ..
            }) => {
                let ns = namespace.as_str();
                self.check_namespace(ns, false)?;
                let (kind, name) = (workload.kind(), workload.name());
                self.get_workload(ns, kind, name).await?;
                let resource = if kind == "deployment" {
                    "deployments"
                } else {
                    "statefulsets"
                };
                let sub = matches!(a, Action::Scale(_)).then_some("scale");
                self.require("patch", resource, sub, Some(ns)).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn preflight_probe(&self, p: &Probe) -> Result<(), ProviderError> {
        match p {
            Probe::Pods(q) | Probe::PodRestarts(q) => {
                let ns = q.namespace.as_str();
                let selector = selector_string(&q.selector);
                let fields = q.field_selector.as_deref();
                self.require("list", "pods", None, Some(ns)).await?;
                let pods = self.list_pods(ns, &selector, fields).await?;
                if pods.is_empty() && !self.workloads_matching(ns, &selector).await.is_empty() {
                    return Ok(());
                }
                if pods.is_empty() {
                    return Err(self.no_match(&[ns.to_string()], &selector, fields).await);
                }
            }
            Probe::Workload(at) => {
                let ns = at.namespace.as_str();
                self.get_workload(ns, at.workload.kind(), at.workload.name())
                    .await?;
            }
            Probe::Nodes(n) => {
                self.require("list", "nodes", None, None).await?;
                self.nodes_probe(n).await?;
            }
            Probe::Memory(_) => {
                self.require("list", "nodes", None, None).await?;
                self.require("list", "pods", None, None).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
