//! The served API's controls for testing a client against it (firedrill's own tests, or any Rust
//! test that embeds the served estate): a log of every request, injected faults
//! (an error status, or no answer at all), and another writer racing the client on a node.
//! RBAC ([`KubeApi::deny`]), SelfSubjectAccessReview ([`KubeApi::serve_access_reviews`]) and the
//! bearer token ([`KubeApi::require_token`]) are in the parent module.
//!
//! None of them bypasses the model: a fault answers before the estate is consulted, and a race
//! changes the estate through its own operation ([`Estate::set_taints`]), so resource versions
//! move exactly as for any other change.

use std::sync::atomic::Ordering;

use serde_json::Value as Json;

use super::{ApiError, KubeApi, percent_decode};
use crate::sim::model::{Estate, Taint};

/// One request the API received, in arrival order (see [`KubeApi::requests`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `PATCH`...
    pub method: String,
    /// The path, e.g. `/api/v1/namespaces/web/pods/api-0` (not decoded).
    pub path: String,
    /// The raw query string (empty when there is none); [`RecordedRequest::param`] decodes it.
    pub query: String,
    /// The body as JSON; `Null` when empty or not JSON.
    pub body: Json,
    /// The status answered; `None` while unanswered (a hanging fault). A watch counts as
    /// answered (200) once its stream opens.
    pub status: Option<u16>,
    seq: u64,
}

impl RecordedRequest {
    /// A query parameter, percent-decoded (`labelSelector`, `dryRun`...).
    pub fn param(&self, key: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| percent_decode(k) == key)
            .map(|(_, v)| percent_decode(v))
    }

    /// Whether this asks the API's opinion rather than acting: a SelfSubjectAccessReview.
    pub fn is_access_review(&self) -> bool {
        self.path.ends_with("/selfsubjectaccessreviews")
    }

    /// Whether this may change something: any method but GET, HEAD and OPTIONS, except an
    /// access review.
    pub fn is_mutation(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS") && !self.is_access_review()
    }
}

/// What a [`Fault`] does to a request it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultEffect {
    /// Answer this HTTP status as a `kind: Status` failure with the reason the real API gives
    /// for it (401 `Unauthorized`, 403 `Forbidden`, 404 `NotFound`, 409 `Conflict`, 429
    /// `TooManyRequests`, 500 `InternalError`, 503 `ServiceUnavailable`...) and this message. A
    /// code outside 400–599 is answered as 500.
    Status {
        /// HTTP status code.
        code: u16,
        /// The Status' `message`.
        message: String,
    },
    /// Never answer (a control plane that hangs): the request stays open until the client gives
    /// up.
    Hang,
}

/// Make the next matching requests fail: those whose method is `method` (`*`: any) and whose
/// path contains `path`, `times` times (then the fault is spent). Injected with
/// [`KubeApi::inject`]; the first unspent fault that matches applies, before authentication,
/// RBAC and the estate are consulted (nothing is changed).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// HTTP method, upper case, or `*`.
    pub method: String,
    /// A fragment of the path, e.g. `/nodes/us-east-1a-1` or `/eviction`.
    pub path: String,
    /// What happens to a matching request.
    pub effect: FaultEffect,
    /// Matching requests still to fail (`u32::MAX`: every one).
    pub times: u32,
}

impl Fault {
    /// Fail the next matching request with `code` and `message` (see [`FaultEffect::Status`]).
    pub fn status(method: &str, path: &str, code: u16, message: &str) -> Fault {
        Fault {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            effect: FaultEffect::Status {
                code,
                message: message.to_string(),
            },
            times: 1,
        }
    }

    /// Never answer the next matching request.
    pub fn hang(method: &str, path: &str) -> Fault {
        Fault {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            effect: FaultEffect::Hang,
            times: 1,
        }
    }

    /// Apply to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = n;
        self
    }

    /// Apply to every matching request.
    pub fn always(self) -> Fault {
        self.times(u32::MAX)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0 && (self.method == "*" || self.method == method) && path.contains(&self.path)
    }
}

/// The reason the real API gives with a status code.
pub(super) fn reason_for(code: u16) -> &'static str {
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        400..=499 => "BadRequest",
        _ => "InternalError",
    }
}

/// Another writer's change to a node, due right after the client's `reads`-th GET of it.
#[derive(Debug, Clone)]
pub(super) struct Race {
    node: String,
    reads: u32,
    taints: Vec<Taint>,
}

/// The request log.
#[derive(Debug, Default)]
pub(super) struct Log {
    next: u64,
    entries: Vec<RecordedRequest>,
}

impl KubeApi {
    // ----- the request log -------------------------------------------------------

    /// Every request received since the API was made (or [`KubeApi::clear_requests`]), in
    /// arrival order, including those refused or failed by a fault.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.log.lock().expect("log poisoned").entries.clone()
    }

    /// Forget the requests received so far.
    pub fn clear_requests(&self) {
        self.inner.log.lock().expect("log poisoned").entries.clear();
    }

    /// How many requests with this method (`GET`, `DELETE`...) were received.
    pub fn request_count(&self, method: &str) -> usize {
        let log = self.inner.log.lock().expect("log poisoned");
        log.entries
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// `METHOD path` of every request that may have changed something (see
    /// [`RecordedRequest::is_mutation`]): empty when a client only read and asked for access
    /// reviews.
    pub fn mutations(&self) -> Vec<String> {
        let log = self.inner.log.lock().expect("log poisoned");
        log.entries
            .iter()
            .filter(|r| r.is_mutation())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Record a request as it arrives; returns its sequence number (for [`KubeApi::answered`]).
    pub(super) fn record(&self, method: &str, uri: &http::Uri, body: &[u8]) -> u64 {
        let mut log = self.inner.log.lock().expect("log poisoned");
        log.next += 1;
        let seq = log.next;
        log.entries.push(RecordedRequest {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            body: serde_json::from_slice(body).unwrap_or(Json::Null),
            status: None,
            seq,
        });
        seq
    }

    /// Note the status a recorded request was answered with.
    pub(super) fn answered(&self, seq: u64, status: u16) {
        let mut log = self.inner.log.lock().expect("log poisoned");
        if let Some(r) = log.entries.iter_mut().rev().find(|r| r.seq == seq) {
            r.status = Some(status);
        }
    }

    // ----- faults --------------------------------------------------------------------

    /// Inject a fault (see [`Fault`]); faults apply in the order injected.
    pub fn inject(&self, fault: Fault) {
        self.inner
            .faults
            .lock()
            .expect("faults poisoned")
            .push(fault);
    }

    /// Remove every fault, spent or not.
    pub fn clear_faults(&self) {
        self.inner.faults.lock().expect("faults poisoned").clear();
    }

    /// The effect of the first unspent fault matching a request, spending one of its times.
    pub(super) fn take_fault(&self, method: &str, path: &str) -> Option<FaultEffect> {
        let mut faults = self.inner.faults.lock().expect("faults poisoned");
        let f = faults.iter_mut().find(|f| f.matches(method, path))?;
        if f.times != u32::MAX {
            f.times -= 1;
        }
        Some(f.effect.clone())
    }

    /// A fault's error status.
    pub(super) fn fault_error(code: u16, message: &str) -> ApiError {
        let code = if (400..=599).contains(&code) {
            code
        } else {
            500
        };
        ApiError::new(code, reason_for(code), message)
    }

    // ----- SelfSubjectAccessReview -------------------------------------------------------

    /// Serve `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (the default),
    /// answering from the [`KubeApi::deny`] rules; `false`: answer 404 and leave the group out
    /// of discovery, like a cluster that does not serve it.
    pub fn serve_access_reviews(&self, serve: bool) {
        self.inner.access_reviews.store(serve, Ordering::Relaxed);
    }

    pub(super) fn access_reviews_served(&self) -> bool {
        self.inner.access_reviews.load(Ordering::Relaxed)
    }

    // ----- another writer -------------------------------------------------------------

    /// Another writer races the client on `node`: right after the `reads`-th GET of the node
    /// from now is answered, its taints become `taints` (through the estate's own operation, so
    /// its resourceVersion changes and a write carrying the version just read conflicts with
    /// 409). Several races on one node apply in turn.
    pub fn change_taints_after_reads(&self, node: &str, reads: u32, taints: Vec<Taint>) {
        self.inner.races.lock().expect("races poisoned").push(Race {
            node: node.to_string(),
            reads: reads.max(1),
            taints,
        });
    }

    /// A GET of `node` was answered: count it, and make the change of a race that is due.
    /// Returns whether the estate changed.
    pub(super) fn node_read(&self, e: &mut Estate, node: &str) -> bool {
        let due = {
            let mut races = self.inner.races.lock().expect("races poisoned");
            let Some(i) = races.iter().position(|r| r.node == node) else {
                return false;
            };
            races[i].reads -= 1;
            if races[i].reads > 0 {
                return false;
            }
            races.remove(i)
        };
        let at = e.now();
        e.set_taints(at, &self.inner.cluster, node, due.taints)
            .is_ok()
    }
}
