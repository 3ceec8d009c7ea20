//! The simulated estate's Kubernetes part served as a Kubernetes API over HTTP/1.1 (hyper), for
//! one cluster: discovery, namespaces, nodes, pods, deployments (and their replicasets),
//! statefulsets, daemonsets and PodDisruptionBudgets; list (label and field selectors, server-side Table printing), get,
//! watch, delete, eviction, merge / strategic-merge / JSON patch, the `scale` subresource, and
//! `kind: Status` errors shaped like the real API's, and SelfSubjectAccessReview. The estate's
//! controllers react on the shared clock, so a drill run through kube-rs (or `kubectl`) sees
//! pods replaced after their modelled delays.
//!
//! It is the project's one fake Kubernetes API: besides the estate, it has the controls a test
//! of a client needs (firedrill's own, or any Rust test embedding the served estate): RBAC
//! ([`KubeApi::deny`], answered as 403 and by the access reviews), a bearer token
//! ([`KubeApi::require_token`], 401), and in [`controls`] a log of every request
//! ([`KubeApi::requests`], [`KubeApi::mutations`]), injected faults ([`Fault`]: any error
//! status with the real reason, or no answer), access reviews switched off (404, like a
//! cluster without them), and another writer racing the client on a node
//! ([`KubeApi::change_taints_after_reads`]: a real resourceVersion conflict).
//!
//! [`KubeApi::client`] gives a `kube::Client` whose requests go through a real HTTP/1.1 exchange
//! (hyper client → hyper server) over an in-memory `tokio::io::duplex`: no sockets, so it works
//! on a paused tokio clock (see ARCHITECTURE.md). [`KubeApi::serve`] serves a TCP listener
//! (`firedrill sim serve`, the kubectl tests).
//!
//! Invariant: the API never acts on the estate except through the model's operations
//! ([`crate::sim::model::Estate`]) — the test controls included — and every object it returns
//! is rendered from the model's published view, with the resource version of its last change.

pub mod controls;
pub mod patch;
pub mod render;
pub mod selector;

pub use controls::{Fault, FaultEffect, RecordedRequest};

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR, Status, StatusCause, StatusDetails,
};
use serde_json::{Value as Json, json};

use crate::backend::sim::SharedEstate;
use crate::sim::model::{Estate, Obj, ObjKind, SimError, Taint, TaintEffect, WorkloadKind};
use patch::PatchType;
use render::Ctx;
use selector::{FieldSelector, LabelSelector};

/// The user every request is made as (named in Forbidden messages).
pub const USER: &str = "system:serviceaccount:firedrill:drill";

/// Longest request body accepted (the real API's limit is about 3 MiB).
const MAX_BODY: usize = 3 << 20;

/// Default watch length when the client gives no `timeoutSeconds` (the real server picks 30–60m).
const DEFAULT_WATCH: Duration = Duration::from_secs(1800);

/// How often a quiet watch sends a bookmark (when the client allows them).
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// FNV-1a (stable addresses and ids in rendered objects).
pub(crate) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The Kubernetes API of one cluster of a shared estate. Cheap to clone (one server).
#[derive(Clone)]
pub struct KubeApi {
    inner: Arc<Inner>,
}

struct Inner {
    shared: SharedEstate,
    cluster: String,
    /// (verb, resource) pairs refused with 403; `*` matches any.
    denied: Mutex<Vec<(String, String)>>,
    /// Bearer token every request must carry, if set.
    token: Mutex<Option<String>>,
    /// Whether SelfSubjectAccessReview is served.
    access_reviews: AtomicBool,
    /// Every request received (see `controls`).
    log: Mutex<controls::Log>,
    /// Injected faults, in order.
    faults: Mutex<Vec<Fault>>,
    /// Another writer's pending changes.
    races: Mutex<Vec<controls::Race>>,
}

/// A resource the API serves.
#[derive(Debug, Clone, Copy)]
struct Res {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: ObjKind,
    k8s_kind: &'static str,
    short: &'static [&'static str],
    verbs: &'static [&'static str],
}

const RESOURCES: &[Res] = &[
    Res {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: ObjKind::Namespace,
        k8s_kind: "Namespace",
        short: &["ns"],
        verbs: &["get", "list", "watch"],
    },
    Res {
        group: "",
        version: "v1",
        plural: "nodes",
        kind: ObjKind::Node,
        k8s_kind: "Node",
        short: &["no"],
        verbs: &["get", "list", "patch", "update", "watch"],
    },
    Res {
        group: "",
        version: "v1",
        plural: "pods",
        kind: ObjKind::Pod,
        k8s_kind: "Pod",
        short: &["po"],
        verbs: &["delete", "get", "list", "watch"],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: ObjKind::Deployment,
        k8s_kind: "Deployment",
        short: &["deploy"],
        verbs: &["get", "list", "patch", "update", "watch"],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        kind: ObjKind::StatefulSet,
        k8s_kind: "StatefulSet",
        short: &["sts"],
        verbs: &["get", "list", "patch", "update", "watch"],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        kind: ObjKind::DaemonSet,
        k8s_kind: "DaemonSet",
        short: &["ds"],
        verbs: &["get", "list", "patch", "update", "watch"],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        kind: ObjKind::ReplicaSet,
        k8s_kind: "ReplicaSet",
        short: &["rs"],
        verbs: &["get", "list", "watch"],
    },
    Res {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        kind: ObjKind::PodDisruptionBudget,
        k8s_kind: "PodDisruptionBudget",
        short: &["pdb"],
        verbs: &["get", "list", "watch"],
    },
];

/// A subresource: (parent plural, name, kind, group of the kind, version, verbs).
type Subresource = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const SUBRESOURCES: &[Subresource] = &[
    ("pods", "eviction", "Eviction", "policy", "v1", &["create"]),
    (
        "deployments",
        "scale",
        "Scale",
        "autoscaling",
        "v1",
        &["get", "patch", "update"],
    ),
    (
        "statefulsets",
        "scale",
        "Scale",
        "autoscaling",
        "v1",
        &["get", "patch", "update"],
    ),
];

/// An error answered as a `kind: Status`.
#[derive(Debug, Clone)]
struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Box<StatusDetails>>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn details(mut self, name: &str, group: &str, kind: &str) -> ApiError {
        self.details = Some(Box::new(StatusDetails {
            name: (!name.is_empty()).then(|| name.to_string()),
            group: (!group.is_empty()).then(|| group.to_string()),
            kind: Some(kind.to_string()),
            ..Default::default()
        }));
        self
    }

    fn not_found(res: &Res, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", res.plural),
        )
        .details(name, res.group, res.plural)
    }

    fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", msg)
    }

    fn invalid(res: &Res, name: &str, field: &str, msg: impl Into<String>) -> ApiError {
        let msg = msg.into();
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!(
                "{}{} \"{name}\" is invalid: {field}: {msg}",
                res.k8s_kind,
                if res.group.is_empty() {
                    String::new()
                } else {
                    format!(".{}", res.group)
                }
            ),
        )
        .details(name, res.group, res.k8s_kind);
        if let Some(d) = e.details.as_mut() {
            d.causes = Some(vec![StatusCause {
                reason: Some("FieldValueInvalid".into()),
                message: Some(msg),
                field: Some(field.into()),
            }]);
        }
        e
    }

    fn conflict(res: &Res, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                res.plural,
                if res.group.is_empty() {
                    String::new()
                } else {
                    format!(".{}", res.group)
                }
            ),
        )
        .details(name, res.group, res.plural)
    }

    fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    fn status(&self) -> Status {
        Status {
            status: Some("Failure".into()),
            message: Some(self.message.clone()),
            reason: Some(self.reason.into()),
            details: self.details.as_deref().cloned(),
            code: Some(i32::from(self.code)),
            ..Default::default()
        }
    }
}

fn sim_error(res: &Res, name: &str, e: SimError) -> ApiError {
    match e {
        SimError::Unknown { .. } => ApiError::not_found(res, name),
        SimError::Budget { message, .. } => {
            let mut err = ApiError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            err.details = Some(Box::new(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("DisruptionBudget".into()),
                    message: Some(message),
                    field: None,
                }]),
                ..Default::default()
            }));
            err
        }
        SimError::Refused(m) => ApiError::invalid(res, name, "spec", m),
        other => ApiError::new(500, "InternalError", other.to_string()),
    }
}

fn json_response(code: StatusCode, v: &Json) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut v = serde_json::to_value(e.status()).unwrap_or(Json::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
    }
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &v,
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// A parsed resource request.
#[derive(Debug, Clone)]
struct Target {
    res: Res,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Json(Json),
    Text(&'static str),
    /// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
    AccessReview,
    Resource(Target),
}

impl KubeApi {
    /// Serve `cluster` of a shared estate. Errors name the valid clusters.
    pub fn new(shared: SharedEstate, cluster: &str) -> Result<KubeApi, SimError> {
        let clusters = shared.lock().clusters();
        if !clusters.iter().any(|c| c == cluster) {
            return Err(SimError::Unknown {
                kind: "cluster",
                name: cluster.to_string(),
                valid: clusters.join(", "),
            });
        }
        Ok(KubeApi {
            inner: Arc::new(Inner {
                shared,
                cluster: cluster.to_string(),
                denied: Mutex::new(Vec::new()),
                token: Mutex::new(None),
                access_reviews: AtomicBool::new(true),
                log: Mutex::new(controls::Log::default()),
                faults: Mutex::new(Vec::new()),
                races: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The cluster served.
    pub fn cluster(&self) -> &str {
        &self.inner.cluster
    }

    /// RBAC switch: from now on answer `verb` on `resource` (`pods`, `pods/eviction`,
    /// `deployments/scale`...; `*` matches any) with 403 Forbidden, as a Role lacking it would.
    /// SelfSubjectAccessReviews answer from the same rules (`allowed: false`, reason `no RBAC
    /// policy matched`); the reviews themselves are always allowed, as `system:basic-user`
    /// allows them to every authenticated user.
    pub fn deny(&self, verb: &str, resource: &str) {
        self.inner
            .denied
            .lock()
            .expect("rbac poisoned")
            .push((verb.to_string(), resource.to_string()));
    }

    /// Undo every [`KubeApi::deny`].
    pub fn allow_all(&self) {
        self.inner.denied.lock().expect("rbac poisoned").clear();
    }

    /// Require `Authorization: Bearer <token>` on every request (401 Unauthorized otherwise);
    /// `None` lifts the requirement.
    pub fn require_token(&self, token: Option<&str>) {
        *self.inner.token.lock().expect("token poisoned") = token.map(str::to_string);
    }

    /// A `kube::Client` speaking HTTP/1.1 to this API over an in-memory `tokio::io::duplex`
    /// (a hyper client and a hyper server on either end: the wire format is real, no sockets, so
    /// it works on a paused clock). Must be called inside a tokio runtime.
    pub fn client(&self) -> kube::Client {
        self.client_with_token(None)
    }

    /// As [`KubeApi::client`], sending `Authorization: Bearer <token>` when given.
    pub fn client_with_token(&self, token: Option<&str>) -> kube::Client {
        let api = self.clone();
        let token = token.map(|t| {
            HeaderValue::from_str(&format!("Bearer {t}"))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"))
        });
        let svc = tower::service_fn(move |mut req: Request<kube::client::Body>| {
            let api = api.clone();
            if let Some(t) = &token {
                req.headers_mut().insert(header::AUTHORIZATION, t.clone());
            }
            async move {
                let (client_io, server_io) = tokio::io::duplex(1 << 16);
                let server_api = api.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |r: Request<Incoming>| {
                        let a = server_api.clone();
                        async move { Ok::<_, Infallible>(a.handle(r).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(server_io), svc)
                        .await;
                });
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(client_io)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender.send_request(req).await
            }
        });
        kube::Client::new(svc, "default")
    }

    /// Serve HTTP/1.1 on a TCP listener until the future is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let api = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r: Request<Incoming>| {
                    let a = api.clone();
                    async move { Ok::<_, Infallible>(a.handle(r).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }

    fn ctx(&self, e: &Estate) -> Ctx {
        let eviction_timeout = e
            .params()
            .kubernetes
            .iter()
            .find(|c| c.name == self.inner.cluster)
            .map(|c| c.pod_eviction_timeout)
            .unwrap_or_default();
        Ctx {
            epoch_ms: self.inner.shared.epoch_ms(),
            now: e.now(),
            eviction_timeout,
            cluster: self.inner.cluster.clone(),
        }
    }

    /// Answer one request: it is recorded (see [`KubeApi::requests`]), then an injected fault
    /// that matches it applies, then authentication, RBAC and the estate.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|_| {
                ApiError::new(
                    413,
                    "RequestEntityTooLarge",
                    "the request body is too large (limit 3 MiB)",
                )
            });
        let seq = self.record(
            parts.method.as_str(),
            &parts.uri,
            bytes.as_deref().unwrap_or_default(),
        );
        let r = match self.take_fault(parts.method.as_str(), parts.uri.path()) {
            Some(FaultEffect::Hang) => std::future::pending().await,
            Some(FaultEffect::Status { code, message }) => {
                error_response(&Self::fault_error(code, &message))
            }
            None => match self.handle_inner(parts, bytes).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            },
        };
        self.answered(seq, r.status().as_u16());
        r
    }

    async fn handle_inner(
        &self,
        parts: http::request::Parts,
        bytes: Result<Bytes, ApiError>,
    ) -> Result<Response<Body>, ApiError> {
        if let Some(want) = self.inner.token.lock().expect("token poisoned").clone() {
            let got = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if got != Some(want.as_str()) {
                return Err(ApiError::new(401, "Unauthorized", "Unauthorized"));
            }
        }
        let q = query(&parts.uri);
        let route = self.route(parts.uri.path())?;
        let target = match route {
            Route::Json(v) => {
                if parts.method != Method::GET {
                    return Err(ApiError::method_not_allowed());
                }
                return Ok(json_response(StatusCode::OK, &v));
            }
            Route::Text(t) => {
                let mut r =
                    Response::new(Full::new(Bytes::from_static(t.as_bytes())).boxed_unsync());
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                return Ok(r);
            }
            Route::AccessReview => {
                if parts.method != Method::POST {
                    return Err(ApiError::method_not_allowed());
                }
                let ct = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // kubectl's typed clients send protobuf, which this API does not speak.
                if !ct.is_empty() && !ct.contains("json") {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json (got {ct:?})"
                        ),
                    ));
                }
                let review: Json = serde_json::from_slice(&bytes?).map_err(|e| {
                    ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
                })?;
                return Ok(json_response(
                    StatusCode::CREATED,
                    &self.access_review(&review),
                ));
            }
            Route::Resource(t) => t,
        };
        let watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
        let verb = match (&parts.method, &target.name, &target.sub) {
            (&Method::GET, None, _) if watch => "watch",
            (&Method::GET, None, _) => "list",
            (&Method::GET, Some(_), _) => "get",
            (&Method::DELETE, Some(_), _) => "delete",
            (&Method::DELETE, None, _) => "deletecollection",
            (&Method::PATCH, Some(_), _) => "patch",
            (&Method::PUT, Some(_), _) => "update",
            (&Method::POST, _, _) => "create",
            _ => return Err(ApiError::method_not_allowed()),
        };
        self.authorize(verb, &target)?;
        let table = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"));
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = if matches!(verb, "delete" | "patch" | "update" | "create") {
            let bytes = bytes?;
            if bytes.is_empty() {
                None
            } else {
                Some(serde_json::from_slice::<Json>(&bytes).map_err(|e| {
                    ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
                })?)
            }
        } else {
            None
        };
        let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
        let r = match verb {
            "list" => self.list(&target, &q, table),
            "watch" => return self.watch(&target, &q, table),
            "get" => self.get(&target, table),
            "delete" => self.delete(&target, &q, body.as_ref(), dry_run),
            "patch" => {
                let kind = PatchType::from_content_type(&content_type).ok_or_else(|| {
                    ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
                        ),
                    )
                })?;
                let patch = body.ok_or_else(|| ApiError::bad_request("the patch is empty"))?;
                self.update(&target, Some(kind), &patch, dry_run)
            }
            "update" => {
                let obj = body.ok_or_else(|| ApiError::bad_request("the request body is empty"))?;
                self.update(&target, None, &obj, dry_run)
            }
            "create" => self.create(&target, body.as_ref(), dry_run),
            _ => Err(ApiError::method_not_allowed()),
        }?;
        Ok(json_response(r.0, &r.1))
    }

    /// Whether a [`KubeApi::deny`] rule refuses `verb` on `resource` (`pods/eviction`...).
    fn denied(&self, verb: &str, resource: &str) -> bool {
        self.inner
            .denied
            .lock()
            .expect("rbac poisoned")
            .iter()
            .any(|(v, r)| (v == "*" || v == verb) && (r == "*" || r == resource))
    }

    /// The answer to a SelfSubjectAccessReview: the review with its `status`, from the same
    /// rules as the 403s. Non-resource URLs (`nonResourceAttributes`) are always allowed.
    fn access_review(&self, review: &Json) -> Json {
        let attrs = review.pointer("/spec/resourceAttributes");
        let field = |k: &str| {
            attrs
                .and_then(|a| a.get(k))
                .and_then(Json::as_str)
                .unwrap_or_default()
        };
        let resource = match field("subresource") {
            "" => field("resource").to_string(),
            sub => format!("{}/{sub}", field("resource")),
        };
        let allowed = attrs.is_none() || !self.denied(field("verb"), &resource);
        json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": review.get("spec").cloned().unwrap_or_else(|| json!({})),
            "status": if allowed {
                json!({"allowed": true, "reason": "RBAC: allowed (no deny rule of the simulated API matches)"})
            } else {
                json!({"allowed": false, "reason": "no RBAC policy matched"})
            },
        })
    }

    fn authorize(&self, verb: &str, t: &Target) -> Result<(), ApiError> {
        let resource = match &t.sub {
            Some(s) => format!("{}/{s}", t.res.plural),
            None => t.res.plural.to_string(),
        };
        if !self.denied(verb, &resource) {
            return Ok(());
        }
        let subject = match &t.name {
            Some(n) => format!("{} \"{n}\"", t.res.plural),
            None => t.res.plural.to_string(),
        };
        let scope = match &t.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "{subject} is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
                t.res.group
            ),
        )
        .details(t.name.as_deref().unwrap_or(""), t.res.group, t.res.plural))
    }

    // ----- routing and discovery ----------------------------------------------

    fn route(&self, path: &str) -> Result<Route, ApiError> {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let reviews = self.access_reviews_served();
        let not_found = || {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .details("", "", "")
        };
        let (group, version, rest) = match s.as_slice() {
            ["version"] => return Ok(Route::Json(version_info())),
            ["healthz" | "livez" | "readyz"] => return Ok(Route::Text("ok")),
            ["api"] => return Ok(Route::Json(api_versions())),
            ["apis"] => return Ok(Route::Json(api_groups(reviews))),
            [
                "apis",
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
            ] if reviews => {
                return Ok(Route::AccessReview);
            }
            ["api", "v1", rest @ ..] => ("", "v1", rest),
            ["apis", g] => {
                return api_groups(reviews)["groups"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["name"] == *g).cloned())
                    .map(|mut x| {
                        if let Some(m) = x.as_object_mut() {
                            m.insert("kind".into(), json!("APIGroup"));
                            m.insert("apiVersion".into(), json!("v1"));
                        }
                        Route::Json(x)
                    })
                    .ok_or_else(not_found);
            }
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => return Err(not_found()),
        };
        if rest.is_empty() {
            return resource_list(group, version, reviews)
                .map(Route::Json)
                .ok_or_else(not_found);
        }
        let find = |plural: &str| {
            RESOURCES
                .iter()
                .find(|r| r.group == group && r.version == version && r.plural == plural)
                .copied()
        };
        let (namespace, plural, name, sub) = match rest {
            ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => (
                Some(ns.to_string()),
                *plural,
                tail.first().map(|x| x.to_string()),
                tail.get(1).map(|x| x.to_string()),
            ),
            [plural, tail @ ..] if tail.len() <= 2 => (
                None,
                *plural,
                tail.first().map(|x| x.to_string()),
                tail.get(1).map(|x| x.to_string()),
            ),
            _ => return Err(not_found()),
        };
        let res = find(plural).ok_or_else(not_found)?;
        if namespace.is_some() && !res.kind.namespaced() {
            return Err(not_found());
        }
        if let Some(sub) = &sub
            && !SUBRESOURCES
                .iter()
                .any(|(p, n, ..)| *p == res.plural && n == sub)
        {
            return Err(not_found());
        }
        Ok(Route::Resource(Target {
            res,
            namespace,
            name,
            sub,
        }))
    }

    // ----- reading ------------------------------------------------------------------

    fn lock_now(&self) -> std::sync::MutexGuard<'_, Estate> {
        let now = self.inner.shared.now();
        let mut e = self.inner.shared.lock();
        e.advance_to(now);
        e
    }

    fn selectors(
        &self,
        t: &Target,
        q: &BTreeMap<String, String>,
    ) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?;
        let supported = match t.res.kind {
            ObjKind::Pod => selector::POD_FIELDS,
            ObjKind::Node => selector::NODE_FIELDS,
            _ => selector::META_FIELDS,
        };
        let fields =
            FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str), supported)
                .map_err(ApiError::bad_request)?;
        Ok((labels, fields))
    }

    /// Objects of the target's kind (namespace-filtered), rendered.
    fn rendered(&self, e: &mut Estate, t: &Target) -> Result<Vec<(u64, Obj, Json)>, ApiError> {
        let ctx = self.ctx(e);
        let objs = e
            .objects(e.now(), &self.inner.cluster, t.res.kind)
            .map_err(|x| ApiError::new(500, "InternalError", x.to_string()))?;
        Ok(objs
            .into_iter()
            .filter(|(_, o)| t.namespace.as_deref().is_none_or(|ns| o.namespace() == ns))
            .map(|(rv, o)| {
                let j = render::object(&ctx, rv, &o);
                (rv, o, j)
            })
            .collect())
    }

    fn list(
        &self,
        t: &Target,
        q: &BTreeMap<String, String>,
        table: bool,
    ) -> Result<(StatusCode, Json), ApiError> {
        if t.sub.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let (labels, fields) = self.selectors(t, q)?;
        let mut e = self.lock_now();
        let rv = e.resource_version();
        let ctx = self.ctx(&e);
        let items: Vec<(u64, Obj, Json)> = self
            .rendered(&mut e, t)?
            .into_iter()
            .filter(|(_, _, j)| selected(j, &labels, &fields))
            .collect();
        if table {
            let objs: Vec<(u64, Obj)> = items.into_iter().map(|(rv, o, _)| (rv, o)).collect();
            return Ok((StatusCode::OK, render::table(&ctx, rv, &objs)));
        }
        Ok((
            StatusCode::OK,
            json!({
                "kind": format!("{}List", t.res.k8s_kind),
                "apiVersion": api_version(&t.res),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items.into_iter().map(|(_, _, j)| j).collect::<Vec<_>>(),
            }),
        ))
    }

    fn find(&self, e: &mut Estate, t: &Target) -> Result<(u64, Obj), ApiError> {
        let name = t.name.as_deref().unwrap_or_default();
        e.object(
            e.now(),
            &self.inner.cluster,
            t.res.kind,
            t.namespace.as_deref().unwrap_or_default(),
            name,
        )
        .map_err(|x| ApiError::new(500, "InternalError", x.to_string()))?
        .ok_or_else(|| ApiError::not_found(&t.res, name))
    }

    fn get(&self, t: &Target, table: bool) -> Result<(StatusCode, Json), ApiError> {
        let mut e = self.lock_now();
        let (rv, o) = self.find(&mut e, t)?;
        let ctx = self.ctx(&e);
        let out = match t.sub.as_deref() {
            None if table => render::table(&ctx, rv, &[(rv, o.clone())]),
            None => render::object(&ctx, rv, &o),
            Some("scale") => match &o {
                Obj::Workload(w) => render::scale(&ctx, rv, w),
                _ => return Err(ApiError::method_not_allowed()),
            },
            Some(_) => return Err(ApiError::method_not_allowed()),
        };
        // The answer is rendered; another writer may act now (see `change_taints_after_reads`).
        if let Obj::Node(n) = &o
            && t.sub.is_none()
            && self.node_read(&mut e, &n.name)
        {
            drop(e);
            self.inner.shared.notify_changed();
        }
        Ok((StatusCode::OK, out))
    }

    // ----- writing ------------------------------------------------------------------

    /// Run `f` on the estate, or on a copy of it for a dry run; then wake the watches.
    fn act<T>(
        &self,
        dry_run: bool,
        f: impl FnOnce(&mut Estate) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut e = self.lock_now();
        let out = if dry_run {
            let mut copy = e.clone();
            f(&mut copy)
        } else {
            f(&mut e)
        };
        drop(e);
        if !dry_run {
            self.inner.shared.notify_changed();
        }
        out
    }

    fn delete(
        &self,
        t: &Target,
        q: &BTreeMap<String, String>,
        body: Option<&Json>,
        dry_run: bool,
    ) -> Result<(StatusCode, Json), ApiError> {
        if t.res.kind != ObjKind::Pod || t.sub.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let grace = grace_period(body, q)?;
        let dry_run = dry_run
            || body
                .and_then(|b| b.get("dryRun"))
                .and_then(Json::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let name = t.name.clone().unwrap_or_default();
        let ns = t.namespace.clone().unwrap_or_default();
        self.act(dry_run, |e| {
            let (rv0, before) = self.find(e, t)?;
            if let Some(pre) = body
                .and_then(|b| b.pointer("/preconditions/resourceVersion"))
                .and_then(Json::as_str)
                && pre != rv0.to_string()
            {
                return Err(ApiError::conflict(&t.res, &name));
            }
            let at = e.now();
            let after = e
                .delete_pod(at, &self.inner.cluster, &ns, &name, grace)
                .map_err(|x| sim_error(&t.res, &name, x))?;
            let ctx = self.ctx(e);
            let out = match after {
                Some(p) => {
                    let rv = self
                        .find(e, t)
                        .map(|(rv, _)| rv)
                        .unwrap_or(e.resource_version());
                    render::object(&ctx, rv, &Obj::Pod(p))
                }
                None => render::object(&ctx, e.resource_version(), &before),
            };
            Ok((StatusCode::OK, out))
        })
    }

    fn create(
        &self,
        t: &Target,
        body: Option<&Json>,
        dry_run: bool,
    ) -> Result<(StatusCode, Json), ApiError> {
        if t.res.kind != ObjKind::Pod || t.sub.as_deref() != Some("eviction") {
            return Err(ApiError::method_not_allowed());
        }
        let name = t.name.clone().unwrap_or_default();
        let ns = t.namespace.clone().unwrap_or_default();
        let body = body.ok_or_else(|| ApiError::bad_request("the Eviction body is empty"))?;
        if let Some(n) = body.pointer("/metadata/name").and_then(Json::as_str)
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object ({n:?} vs {name:?})"
            )));
        }
        let grace = body
            .pointer("/deleteOptions/gracePeriodSeconds")
            .and_then(Json::as_i64)
            .map(|s| Duration::from_secs(s.max(0) as u64));
        let dry_run = dry_run
            || body
                .pointer("/deleteOptions/dryRun")
                .and_then(Json::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        self.act(dry_run, |e| {
            let at = e.now();
            e.evict_pod(at, &self.inner.cluster, &ns, &name, grace)
                .map_err(|x| sim_error(&t.res, &name, x))?;
            Ok((
                StatusCode::CREATED,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        })
    }

    /// PATCH (`kind` given) or PUT (`kind` None, `doc` is the whole new object).
    fn update(
        &self,
        t: &Target,
        kind: Option<PatchType>,
        doc: &Json,
        dry_run: bool,
    ) -> Result<(StatusCode, Json), ApiError> {
        let name = t.name.clone().unwrap_or_default();
        let ns = t.namespace.clone().unwrap_or_default();
        let cluster = self.inner.cluster.clone();
        let scale = match (t.sub.as_deref(), t.res.kind) {
            (
                None,
                ObjKind::Node | ObjKind::Deployment | ObjKind::StatefulSet | ObjKind::DaemonSet,
            ) => false,
            (Some("scale"), ObjKind::Deployment | ObjKind::StatefulSet) => true,
            _ => return Err(ApiError::method_not_allowed()),
        };
        self.act(dry_run, |e| {
            let (rv, obj) = self.find(e, t)?;
            let ctx = self.ctx(e);
            let current = match (&obj, scale) {
                (Obj::Workload(w), true) => render::scale(&ctx, rv, w),
                _ => render::object(&ctx, rv, &obj),
            };
            let new = match kind {
                Some(k) => patch::apply(k, current.clone(), doc).map_err(|m| {
                    ApiError::new(422, "Invalid", m).details(&name, t.res.group, t.res.k8s_kind)
                })?,
                None => doc.clone(),
            };
            let new_rv = new
                .pointer("/metadata/resourceVersion")
                .and_then(Json::as_str);
            if new_rv.is_some_and(|v| v != rv.to_string()) {
                return Err(ApiError::conflict(&t.res, &name));
            }
            if new
                .pointer("/metadata/name")
                .and_then(Json::as_str)
                .is_some_and(|n| n != name)
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    new["metadata"]["name"]
                )));
            }
            let at = e.now();
            match (&obj, scale) {
                (Obj::Node(_), _) => {
                    let unsched = match new.pointer("/spec/unschedulable") {
                        None | Some(Json::Null) => false,
                        Some(Json::Bool(b)) => *b,
                        Some(v) => {
                            return Err(ApiError::invalid(
                                &t.res,
                                &name,
                                "spec.unschedulable",
                                format!("Invalid value: {v}: must be a boolean"),
                            ));
                        }
                    };
                    let taints = parse_taints(&t.res, &name, new.pointer("/spec/taints"))?;
                    only_changed(
                        &t.res,
                        &name,
                        &current,
                        &new,
                        &["/spec/unschedulable", "/spec/taints"],
                        kind.is_none(),
                    )?;
                    e.set_unschedulable(at, &cluster, &name, unsched)
                        .map_err(|x| sim_error(&t.res, &name, x))?;
                    let old: Vec<Taint> = match &obj {
                        Obj::Node(n) => n.taints.clone(),
                        _ => Vec::new(),
                    };
                    if !same_taints(&old, &taints) {
                        e.set_taints(at, &cluster, &name, taints)
                            .map_err(|x| sim_error(&t.res, &name, x))?;
                    }
                }
                (Obj::Workload(w), true) => {
                    let replicas = replicas_of(&t.res, &name, &new)?;
                    only_changed(
                        &t.res,
                        &name,
                        &current,
                        &new,
                        &["/spec/replicas"],
                        kind.is_none(),
                    )?;
                    if replicas != w.replicas {
                        e.scale_workload(at, &cluster, &ns, Some(w.kind), &name, replicas)
                            .map_err(|x| sim_error(&t.res, &name, x))?;
                    }
                }
                (Obj::Workload(w), false) => {
                    let annotations: BTreeMap<String, String> = new
                        .pointer("/spec/template/metadata/annotations")
                        .and_then(Json::as_object)
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_string())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut allowed = vec!["/spec/template/metadata/annotations"];
                    if w.kind != WorkloadKind::DaemonSet {
                        allowed.push("/spec/replicas");
                    }
                    only_changed(&t.res, &name, &current, &new, &allowed, kind.is_none())?;
                    if w.kind != WorkloadKind::DaemonSet {
                        let replicas = replicas_of(&t.res, &name, &new)?;
                        if replicas != w.replicas {
                            e.scale_workload(at, &cluster, &ns, Some(w.kind), &name, replicas)
                                .map_err(|x| sim_error(&t.res, &name, x))?;
                        }
                    }
                    if annotations != w.template_annotations {
                        e.set_template_annotations(
                            at,
                            &cluster,
                            &ns,
                            Some(w.kind),
                            &name,
                            annotations,
                        )
                        .map_err(|x| sim_error(&t.res, &name, x))?;
                    }
                }
                _ => return Err(ApiError::method_not_allowed()),
            }
            let (rv, obj) = self.find(e, t)?;
            let ctx = self.ctx(e);
            let out = match (&obj, scale) {
                (Obj::Workload(w), true) => render::scale(&ctx, rv, w),
                _ => render::object(&ctx, rv, &obj),
            };
            Ok((StatusCode::OK, out))
        })
    }

    // ----- watch --------------------------------------------------------------------

    fn watch(
        &self,
        t: &Target,
        q: &BTreeMap<String, String>,
        table: bool,
    ) -> Result<Response<Body>, ApiError> {
        if t.sub.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let (labels, fields) = self.selectors(t, q)?;
        let timeout = match q.get("timeoutSeconds") {
            Some(s) => Duration::from_secs(s.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("timeoutSeconds: {s:?} is not a whole number"))
            })?),
            None => DEFAULT_WATCH,
        };
        let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
        let start: Option<u64> = match q.get("resourceVersion").map(String::as_str) {
            None | Some("") | Some("0") => None,
            Some(v) => Some(v.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "resourceVersion: {v:?} is not a valid resource version"
                ))
            })?),
        };
        let initial = start.is_none() || q.get("sendInitialEvents").is_some_and(|v| v == "true");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(256);
        let api = self.clone();
        let t = t.clone();
        tokio::spawn(async move {
            api.watch_loop(
                t, labels, fields, timeout, bookmarks, start, initial, table, tx,
            )
            .await;
        });
        let stream = futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
        });
        let mut r = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(r)
    }

    #[expect(clippy::too_many_arguments, reason = "one watch's settings, used once")]
    async fn watch_loop(
        &self,
        t: Target,
        labels: LabelSelector,
        fields: FieldSelector,
        timeout: Duration,
        bookmarks: bool,
        start: Option<u64>,
        initial: bool,
        table: bool,
        tx: tokio::sync::mpsc::Sender<Bytes>,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let notify = self.inner.shared.changes();
        let line = |kind: &str, obj: Json| {
            let mut v =
                serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
            v.push(b'\n');
            Bytes::from(v)
        };
        let render_one = |ctx: &Ctx, rv: u64, o: &Obj| {
            if table {
                render::table(ctx, rv, &[(rv, o.clone())])
            } else {
                render::object(ctx, rv, o)
            }
        };
        // Objects currently selected: leaving the selection is a DELETED, entering an ADDED.
        let mut shown: BTreeSet<(String, String)> = BTreeSet::new();
        let mut last = {
            let (rv_now, ctx, items) = {
                let mut e = self.lock_now();
                let rv_now = e.resource_version();
                let ctx = self.ctx(&e);
                let items = self.rendered(&mut e, &t);
                (rv_now, ctx, items)
            };
            let Ok(items) = items else {
                return;
            };
            for (rv, o, j) in items {
                if selected(&j, &labels, &fields) {
                    shown.insert((o.namespace().to_string(), o.name().to_string()));
                    if initial
                        && tx
                            .send(line("ADDED", render_one(&ctx, rv, &o)))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
            }
            if initial && start.is_some() {
                let mark = json!({"kind": t.res.k8s_kind, "apiVersion": api_version(&t.res),
                    "metadata": {"resourceVersion": rv_now.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}}});
                if tx.send(line("BOOKMARK", mark)).await.is_err() {
                    return;
                }
            }
            match start {
                Some(rv) if !initial => rv,
                _ => rv_now,
            }
        };
        let mut last_bookmark = tokio::time::Instant::now();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (changes, next_at, now, rv_now, ctx) = {
                let e = self.lock_now();
                (
                    e.changes_since(&self.inner.cluster, last),
                    e.next_event_at(),
                    e.now(),
                    e.resource_version(),
                    self.ctx(&e),
                )
            };
            let changes = match changes {
                Ok(c) => c,
                Err(oldest) => {
                    let gone = ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {last} ({oldest})"),
                    );
                    let mut status = serde_json::to_value(gone.status()).unwrap_or(Json::Null);
                    if let Some(m) = status.as_object_mut() {
                        m.insert("kind".into(), json!("Status"));
                        m.insert("apiVersion".into(), json!("v1"));
                    }
                    let _ = tx.send(line("ERROR", status)).await;
                    return;
                }
            };
            let mut sent = false;
            for c in changes {
                if c.obj.kind() != t.res.kind
                    || t.namespace
                        .as_deref()
                        .is_some_and(|ns| c.obj.namespace() != ns)
                {
                    continue;
                }
                let j = render::object(&ctx, c.rv, &c.obj);
                let key = (c.obj.namespace().to_string(), c.obj.name().to_string());
                let now_in = c.kind != crate::sim::model::ChangeType::Deleted
                    && selected(&j, &labels, &fields);
                let was_in = shown.contains(&key);
                let kind = match (was_in, now_in) {
                    (false, true) => "ADDED",
                    (true, true) => "MODIFIED",
                    (true, false) => "DELETED",
                    (false, false) => continue,
                };
                if now_in {
                    shown.insert(key);
                } else {
                    shown.remove(&key);
                }
                let obj = if table {
                    render_one(&ctx, c.rv, &c.obj)
                } else {
                    j
                };
                if tx.send(line(kind, obj)).await.is_err() {
                    return;
                }
                sent = true;
            }
            last = rv_now;
            let clock_now = tokio::time::Instant::now();
            let quiet = !sent && clock_now.duration_since(last_bookmark) >= BOOKMARK_EVERY;
            if bookmarks && (quiet || clock_now >= deadline) {
                last_bookmark = clock_now;
                let mark = json!({"kind": t.res.k8s_kind, "apiVersion": api_version(&t.res),
                    "metadata": {"resourceVersion": rv_now.to_string()}});
                if tx.send(line("BOOKMARK", mark)).await.is_err() {
                    return;
                }
            }
            if clock_now >= deadline {
                return;
            }
            // Sleep until the estate's next event (the model changes only then or when someone
            // acts on it), the deadline or the next bookmark.
            let mut wait = deadline - clock_now;
            if let Some(at) = next_at {
                wait = wait.min(at.saturating_sub(now).max(Duration::from_millis(1)));
            }
            if bookmarks {
                wait = wait.min(BOOKMARK_EVERY);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut notified => {}
                _ = tx.closed() => return,
            }
        }
    }
}

fn api_version(r: &Res) -> String {
    if r.group.is_empty() {
        r.version.to_string()
    } else {
        format!("{}/{}", r.group, r.version)
    }
}

/// Whether a rendered object passes the selectors.
fn selected(j: &Json, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    let obj_labels: BTreeMap<String, String> = j
        .pointer("/metadata/labels")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    labels.matches(&obj_labels)
        && fields.matches(|f| {
            let ptr = format!("/{}", f.replace('.', "/"));
            match j.pointer(&ptr) {
                Some(Json::String(s)) => s.clone(),
                Some(Json::Bool(b)) => b.to_string(),
                Some(v) => v.to_string(),
                None if f == "spec.unschedulable" => "false".into(),
                None => String::new(),
            }
        })
}

fn grace_period(
    body: Option<&Json>,
    q: &BTreeMap<String, String>,
) -> Result<Option<Duration>, ApiError> {
    if let Some(v) = body.and_then(|b| b.get("gracePeriodSeconds")) {
        let s = v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("gracePeriodSeconds: {v} is not a whole number"))
        })?;
        return Ok(Some(Duration::from_secs(s.max(0) as u64)));
    }
    match q.get("gracePeriodSeconds") {
        Some(s) => s
            .parse::<i64>()
            .map(|v| Some(Duration::from_secs(v.max(0) as u64)))
            .map_err(|_| {
                ApiError::bad_request(format!("gracePeriodSeconds: {s:?} is not a whole number"))
            }),
        None => Ok(None),
    }
}

fn replicas_of(res: &Res, name: &str, new: &Json) -> Result<u32, ApiError> {
    match new.pointer("/spec/replicas") {
        Some(v) => match v.as_i64() {
            Some(n) if (0..=10_000).contains(&n) => Ok(n as u32),
            Some(n) if n < 0 => Err(ApiError::invalid(
                res,
                name,
                "spec.replicas",
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            )),
            _ => Err(ApiError::invalid(
                res,
                name,
                "spec.replicas",
                format!("Invalid value: {v}: must be a whole number from 0 to 10000"),
            )),
        },
        None => Ok(1),
    }
}

fn parse_taints(res: &Res, name: &str, v: Option<&Json>) -> Result<Vec<Taint>, ApiError> {
    let Some(list) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or_else(|| {
        ApiError::invalid(res, name, "spec.taints", "Invalid value: must be a list")
    })?;
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let field = |f: &str| format!("spec.taints[{i}].{f}");
        let key = t.get("key").and_then(Json::as_str).unwrap_or_default();
        if key.is_empty() {
            return Err(ApiError::invalid(
                res,
                name,
                &field("key"),
                "Required value",
            ));
        }
        let effect_s = t.get("effect").and_then(Json::as_str).unwrap_or_default();
        let effect = TaintEffect::parse(effect_s).ok_or_else(|| {
            ApiError::invalid(
                res,
                name,
                &field("effect"),
                format!(
                    "Unsupported value: \"{effect_s}\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
                ),
            )
        })?;
        out.push(Taint {
            key: key.to_string(),
            value: t
                .get("value")
                .and_then(Json::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            effect,
            added: None,
        });
    }
    Ok(out)
}

fn same_taints(a: &[Taint], b: &[Taint]) -> bool {
    let strip = |v: &[Taint]| {
        v.iter()
            .map(|t| (t.key.clone(), t.value.clone(), t.effect))
            .collect::<Vec<_>>()
    };
    strip(a) == strip(b)
}

/// Refuse (422) a change to anything but `allowed` in spec, labels or annotations. A PUT
/// (`whole`) may omit status and server-set metadata.
fn only_changed(
    res: &Res,
    name: &str,
    current: &Json,
    new: &Json,
    allowed: &[&str],
    whole: bool,
) -> Result<(), ApiError> {
    let normalize = |v: &Json| {
        let mut v = v.clone();
        for p in allowed {
            let (parent, leaf) = p.rsplit_once('/').unwrap_or(("", p));
            let leaf = leaf.replace("~1", "/").replace("~0", "~");
            if let Some(Json::Object(m)) = v.pointer_mut(parent) {
                m.remove(&leaf);
            }
        }
        // Empty containers are the same as absent ones.
        fn prune(v: &mut Json) {
            if let Json::Object(m) = v {
                for x in m.values_mut() {
                    prune(x);
                }
                m.retain(|_, x| !(x.is_null() || x.as_object().is_some_and(|o| o.is_empty())));
            }
        }
        prune(&mut v);
        v
    };
    let (a, b) = (normalize(current), normalize(new));
    for part in ["/spec", "/metadata/labels", "/metadata/annotations"] {
        let (x, y) = (a.pointer(part), b.pointer(part));
        if whole && y.is_none() && part != "/spec" {
            continue;
        }
        if x != y {
            let what = allowed
                .iter()
                .map(|p| {
                    p.trim_start_matches('/')
                        .replace('/', ".")
                        .replace("~1", "/")
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiError::invalid(
                res,
                name,
                part.trim_start_matches('/').replace('/', ".").as_str(),
                format!("Forbidden: the simulated API can change only {what} here"),
            ));
        }
    }
    Ok(())
}

fn version_info() -> Json {
    json!({
        "major": "1",
        "minor": "35",
        "gitVersion": format!("{}+firedrill-sim", render::KUBE_VERSION),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn api_versions() -> Json {
    let mut v = serde_json::to_value(APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".into(),
            server_address: "127.0.0.1".into(),
        }],
    })
    .unwrap_or(Json::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), json!("APIVersions"));
    }
    v
}

/// The API groups; `authorization.k8s.io` when access reviews are served.
fn api_groups(reviews: bool) -> Json {
    let groups: Vec<APIGroup> = ["apps", "authorization.k8s.io", "policy"]
        .into_iter()
        .filter(|g| reviews || *g != "authorization.k8s.io")
        .map(|g| {
            let gv = GroupVersionForDiscovery {
                group_version: format!("{g}/v1"),
                version: "v1".into(),
            };
            APIGroup {
                name: g.into(),
                versions: vec![gv.clone()],
                preferred_version: Some(gv),
                server_address_by_client_cidrs: None,
            }
        })
        .collect();
    let mut v = serde_json::to_value(APIGroupList { groups }).unwrap_or(Json::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), json!("APIGroupList"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    v
}

fn resource_list(group: &str, version: &str, reviews: bool) -> Option<Json> {
    let mut resources = Vec::new();
    if reviews && group == "authorization.k8s.io" && version == "v1" {
        resources.push(APIResource {
            name: "selfsubjectaccessreviews".into(),
            singular_name: "selfsubjectaccessreview".into(),
            namespaced: false,
            kind: "SelfSubjectAccessReview".into(),
            verbs: vec!["create".into()],
            ..Default::default()
        });
    }
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(APIResource {
            name: r.plural.into(),
            singular_name: r.k8s_kind.to_lowercase(),
            namespaced: r.kind.namespaced(),
            kind: r.k8s_kind.into(),
            verbs: r.verbs.iter().map(|v| v.to_string()).collect(),
            short_names: Some(r.short.iter().map(|v| v.to_string()).collect()),
            categories: matches!(
                r.kind,
                ObjKind::Pod
                    | ObjKind::Deployment
                    | ObjKind::StatefulSet
                    | ObjKind::DaemonSet
                    | ObjKind::ReplicaSet
            )
            .then(|| vec!["all".to_string()]),
            ..Default::default()
        });
        for (parent, sub, kind, g, v, verbs) in SUBRESOURCES {
            if *parent == r.plural {
                resources.push(APIResource {
                    name: format!("{parent}/{sub}"),
                    singular_name: String::new(),
                    namespaced: r.kind.namespaced(),
                    group: Some(g.to_string()),
                    version: Some(v.to_string()),
                    kind: kind.to_string(),
                    verbs: verbs.iter().map(|x| x.to_string()).collect(),
                    ..Default::default()
                });
            }
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut v = serde_json::to_value(APIResourceList {
        group_version: gv,
        resources,
    })
    .unwrap_or(Json::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), json!("APIResourceList"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(v)
}

/// A kubeconfig for a served API (plain `http://` server; a bearer token when one is required).
pub fn kubeconfig(server: &str, cluster: &str, token: Option<&str>) -> String {
    let name = format!("firedrill-sim-{cluster}");
    let user = match token {
        Some(t) => format!("    token: {}\n", serde_json::Value::from(t)),
        None => "    {}\n".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: firedrill\n    namespace: default\ncurrent-context: {name}\nusers:\n- name: firedrill\n  user:\n{user}preferences: {{}}\n"
    )
}

/// What `firedrill sim serve` serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on, e.g. `127.0.0.1:0` (port 0: any free port).
    pub listen: String,
    /// Cluster to serve (default: the estate's first).
    pub cluster: Option<String>,
    /// Write a kubeconfig for the server here.
    pub kubeconfig_out: Option<std::path::PathBuf>,
    /// Require this bearer token.
    pub token: Option<String>,
}

/// `firedrill sim serve`: serve one cluster of the estate on wall-clock time until interrupted.
/// Prints the URL (and the kubeconfig path) on stdout, the estate's events on stderr as they
/// happen. Errors are messages for the user.
pub async fn serve_estate(
    provider: crate::backend::sim::SimProvider,
    opts: ServeOptions,
) -> Result<(), String> {
    use crate::backend::Provider;
    use std::io::Write;
    let shared = provider.shared();
    shared.start(crate::engine::clock::RunClock::start_now());
    let cluster = match opts.cluster {
        Some(c) => c,
        None => shared.lock().clusters().into_iter().next().ok_or(
            "the estate has no Kubernetes cluster to serve; add one under `sim.kubernetes`",
        )?,
    };
    let api = KubeApi::new(shared.clone(), &cluster).map_err(|e| e.to_string())?;
    api.require_token(opts.token.as_deref());
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e}; pick another --listen address",
                opts.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let url = format!("http://{addr}");
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "serving cluster `{cluster}` of the simulated estate as a Kubernetes API at {url}"
    );
    if let Some(path) = &opts.kubeconfig_out {
        std::fs::write(path, kubeconfig(&url, &cluster, opts.token.as_deref()))
            .map_err(|e| format!("cannot write the kubeconfig to {}: {e}", path.display()))?;
        let _ = writeln!(
            stdout,
            "kubeconfig written to {} (try: kubectl --kubeconfig {} get pods -A)",
            path.display(),
            path.display()
        );
    }
    let _ = writeln!(stdout, "press Ctrl-C to stop");
    let _ = stdout.flush();
    let events = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for ev in provider.drain_events() {
                eprintln!(
                    "{:>9}  {}: {}",
                    crate::lang::duration::format(Duration::from_millis(ev.at_ms)),
                    ev.component,
                    ev.message
                );
            }
        }
    };
    tokio::select! {
        r = api.serve(listener) => r.map_err(|e| format!("serving failed: {e}")),
        _ = events => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
