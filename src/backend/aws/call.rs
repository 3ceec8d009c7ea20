//! One AWS API call with our bounded retry, and the mapping of SDK errors to
//! [`ProviderError`]s whose messages name the IAM action, the resource and the fix. Every AWS
//! service firedrill calls goes through here: RDS, Route 53, STS and FIS.
//!
//! Retry policy (the SDK's own retries are off, see [`super::clients`]): throttling (HTTP 429 or a
//! throttling error code), HTTP 5xx and transport failures are retried up to `aws.retries`
//! attempts in all, with exponential backoff 1s, 2s, 4s, ... capped at 20s, on the tokio clock;
//! each retry is one line for the journal (`note`); when they run out the error is
//! [`ErrorKind::Throttled`] or [`ErrorKind::Unavailable`]. A mutating call that timed out is
//! *not* retried: AWS may have acted on it, so the error ([`ErrorKind::TimedOut`]) says the
//! outcome is unknown instead of risking a second failover (or a second FIS experiment).
//! Everything else fails at once:
//! access denied (and rejected credentials) -> [`ErrorKind::Denied`] naming the IAM action and
//! resource ARN; not found (`*NotFound*`, `NoSuch*`, FIS's `ResourceNotFoundException`) ->
//! [`ErrorKind::NotFound`]; invalid state, already exists and FIS's `ConflictException` ->
//! [`ErrorKind::InvalidState`]; a service quota (`ServiceQuotaExceededException`) ->
//! [`ErrorKind::InvalidState`]; rejected input (`Invalid*`, `*Validation*` such as FIS's
//! `ValidationException`, `Malformed*`, `*Parameter*`) -> [`ErrorKind::InvalidInput`].

use crate::backend::{ErrorKind, ProviderError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::future::Future;
use std::time::Duration;

/// First backoff; doubled per retry.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest single backoff.
pub const BACKOFF_CAP: Duration = Duration::from_secs(20);

/// The pause before retry number `retry` (1-based).
pub fn backoff(retry: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(16)))
        .min(BACKOFF_CAP)
}

/// What a call is, for messages: the IAM action it needs and the resource it acts on.
#[derive(Debug, Clone)]
pub struct Op {
    /// IAM action, e.g. `rds:FailoverDBCluster`.
    pub action: &'static str,
    /// The resource in words, e.g. "cluster `orders-db`".
    pub what: String,
    /// The resource ARN the IAM policy must allow (`*` for list calls).
    pub arn: String,
    /// Region the call goes to (Route 53 and STS: the primary).
    pub region: String,
    /// The call changes something: a timeout leaves its outcome unknown, so it is not retried.
    pub mutating: bool,
}

/// How an error is handled.
#[derive(Debug, Clone)]
pub enum Class {
    /// Retry after a backoff; the error if the attempts run out.
    Retry(ProviderError),
    /// Fail now.
    Fatal(ProviderError),
}

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "NotAuthorized",
    "Unauthorized",
    "AuthorizationError",
];

const BAD_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidSignatureException",
];

/// The resource is busy with, or in a state that conflicts with, the call (FIS).
const CONFLICT: &[&str] = &["ConflictException"];

/// A service quota (not a rate limit: waiting a few seconds does not help).
const QUOTA: &[&str] = &["ServiceQuotaExceededException", "ServiceQuotaExceeded"];

const SERVER: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerException",
];

/// Classify an SDK error for `op`.
pub fn classify<E>(op: &Op, err: &SdkError<E, HttpResponse>) -> Class
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let (code, msg) = code_and_message(e.code(), e.message(), &e.to_string());
            classify_service(op, &code, &msg, status)
        }
        SdkError::ResponseError(_) => {
            let detail = DisplayErrorContext(err).to_string();
            match status {
                Some(s) if s >= 500 || s == 429 => Class::Retry(ProviderError::new(
                    if s == 429 {
                        ErrorKind::Throttled
                    } else {
                        ErrorKind::Unavailable
                    },
                    format!(
                        "AWS answered HTTP {s} to `{}` on {} ({}); the service may be degraded or not implement the call: retry later",
                        op.action,
                        op.what,
                        short(&detail)
                    ),
                )),
                _ => Class::Fatal(ProviderError::failed(format!(
                    "`{}` on {} got an unreadable answer (HTTP {}): {}",
                    op.action,
                    op.what,
                    status.map_or("?".into(), |s| s.to_string()),
                    short(&detail)
                ))),
            }
        }
        SdkError::DispatchFailure(d) => {
            let detail = DisplayErrorContext(err).to_string();
            if d.is_user() {
                Class::Fatal(ProviderError::failed(format!(
                    "`{}` on {}: the request could not be sent: {}",
                    op.action,
                    op.what,
                    short(&detail)
                )))
            } else if d.is_other() && detail.to_lowercase().contains("credential") {
                Class::Fatal(ProviderError::denied(format!(
                    "no usable AWS credentials for `{}` in {} ({}); provide them through the standard chain (environment, `aws.profile`, SSO, instance or container role)",
                    op.action,
                    op.region,
                    short(&detail)
                )))
            } else if d.is_timeout() && op.mutating {
                Class::Fatal(unknown_outcome(op, &detail))
            } else {
                Class::Retry(unreachable(op, &detail))
            }
        }
        SdkError::TimeoutError(_) => {
            let detail = DisplayErrorContext(err).to_string();
            if op.mutating {
                Class::Fatal(unknown_outcome(op, &detail))
            } else {
                Class::Retry(unreachable(op, &detail))
            }
        }
        _ => Class::Fatal(ProviderError::failed(format!(
            "`{}` on {} could not be built: {}",
            op.action,
            op.what,
            short(&DisplayErrorContext(err).to_string())
        ))),
    }
}

/// The error code and message of a service error. A modeled error built without metadata (an
/// SDK test double) has neither, but displays as `Code: message` (or just `Code`); use that.
pub fn code_and_message(
    code: Option<&str>,
    message: Option<&str>,
    shown: &str,
) -> (String, String) {
    if let Some(c) = code {
        return (c.to_string(), message.unwrap_or_default().to_string());
    }
    let (head, rest) = shown.split_once(':').unwrap_or((shown, ""));
    let head = head.trim();
    let modeled = !head.is_empty()
        && head.chars().all(|c| c.is_ascii_alphanumeric())
        && (head.ends_with("Exception") || head.ends_with("Fault"));
    if !modeled {
        return ("Unknown".into(), message.unwrap_or_default().to_string());
    }
    let msg = message.map_or_else(|| rest.trim().to_string(), str::to_string);
    (head.to_string(), msg)
}

/// Classify a modeled or unmodeled AWS error by its code and HTTP status.
pub fn classify_service(op: &Op, code: &str, msg: &str, status: Option<u16>) -> Class {
    let said = if msg.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {msg}")
    };
    if THROTTLING.contains(&code) || status == Some(429) {
        return Class::Retry(ProviderError::throttled(format!(
            "`{}` on {} is throttled by AWS ({said}); raise `aws.retries` or run the drill when the account is quieter",
            op.action, op.what
        )));
    }
    if DENIED.contains(&code) {
        return Class::Fatal(ProviderError::denied(format!(
            "access denied: the caller may not `{}` on `{}` ({said}); grant `{}` on that resource to the identity firedrill runs as",
            op.action, op.arn, op.action
        )));
    }
    if BAD_CREDENTIALS.contains(&code) {
        return Class::Fatal(ProviderError::denied(format!(
            "AWS rejected the credentials calling `{}` in {} ({said}); check the credential chain (`aws.profile`, environment, `aws.role_arn`)",
            op.action, op.region
        )));
    }
    if SERVER.contains(&code) || status.is_some_and(|s| s >= 500) {
        return Class::Retry(ProviderError::unavailable(format!(
            "AWS failed `{}` on {} with a server error ({said}, HTTP {}); retry later",
            op.action,
            op.what,
            status.map_or("?".into(), |s| s.to_string())
        )));
    }
    if QUOTA.contains(&code) {
        return Class::Fatal(ProviderError::invalid_state(format!(
            "`{}` on {} is over an AWS service quota ({said}); end or delete what uses it (e.g. running experiments, old templates) or ask AWS for a higher quota",
            op.action, op.what
        )));
    }
    if CONFLICT.contains(&code) {
        return Class::Fatal(ProviderError::invalid_state(format!(
            "{} cannot `{}` in its current state ({said}); check that no other operation is running on it, then run again",
            op.what, op.action
        )));
    }
    if code.contains("NotFound") || code.starts_with("NoSuch") {
        return Class::Fatal(ProviderError::not_found(format!(
            "{} does not exist in {} ({said}); check the name and the environment's `aws.region`/`aws.dr_region`",
            op.what, op.region
        )));
    }
    if code.starts_with("Invalid") && code.contains("State") {
        return Class::Fatal(ProviderError::invalid_state(format!(
            "{} cannot `{}` in its current state ({said}); wait until it is available, or check that no other operation is running on it",
            op.what, op.action
        )));
    }
    if code.contains("AlreadyExists") {
        return Class::Fatal(ProviderError::invalid_state(format!(
            "`{}` on {}: it already exists ({said}); pick another name or delete the old one",
            op.action, op.what
        )));
    }
    if code.starts_with("Invalid")
        || code.contains("Validation")
        || code.contains("Malformed")
        || code.contains("Parameter")
    {
        return Class::Fatal(ProviderError::invalid_input(format!(
            "`{}` rejected the input for {} ({said}); check the step's parameters",
            op.action, op.what
        )));
    }
    Class::Fatal(ProviderError::failed(format!(
        "`{}` on {} failed ({said})",
        op.action, op.what
    )))
}

fn unreachable(op: &Op, detail: &str) -> ProviderError {
    ProviderError::unavailable(format!(
        "cannot reach the AWS API for `{}` in {} ({}); check the network, or `aws.endpoint_url` if you use an emulator",
        op.action,
        op.region,
        short(detail)
    ))
}

fn unknown_outcome(op: &Op, detail: &str) -> ProviderError {
    ProviderError::timed_out(format!(
        "`{}` on {} timed out after the request was sent, so AWS may or may not have acted on it ({}); check {} in the console before re-running",
        op.action,
        op.what,
        short(detail),
        op.what
    ))
}

/// Keep error chains readable in one line.
fn short(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 400 {
        let cut: String = s.chars().take(400).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Run `f` with the retry policy. `note` receives one line per retry (for the journal).
pub async fn call<T, E, F, Fut>(
    attempts: u32,
    note: &(dyn Fn(String) + Send + Sync),
    op: &Op,
    mut f: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let attempts = attempts.max(1);
    let mut waited = Duration::ZERO;
    let mut attempt = 1;
    loop {
        let err = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        match classify(op, &err) {
            Class::Fatal(e) => return Err(e),
            Class::Retry(e) if attempt >= attempts => {
                return Err(exhausted(e, op, attempt, waited));
            }
            Class::Retry(e) => {
                let pause = backoff(attempt);
                note(format!(
                    "`{}` on {} failed (attempt {attempt} of {attempts}), retrying in {}: {e}",
                    op.action,
                    op.what,
                    crate::lang::duration::format(pause)
                ));
                tokio::time::sleep(pause).await;
                waited += pause;
                attempt += 1;
            }
        }
    }
}

fn exhausted(e: ProviderError, op: &Op, attempts: u32, waited: Duration) -> ProviderError {
    let tail = if attempts > 1 {
        format!(
            " (gave up after {attempts} attempts over {}, `aws.retries: {attempts}`)",
            crate::lang::duration::format(waited)
        )
    } else {
        " (no retry: `aws.retries: 1`)".to_string()
    };
    let _ = op;
    match e.kind {
        ErrorKind::Unavailable | ErrorKind::Throttled | ErrorKind::Failed => {
            e.map_message(|m| m + &tail)
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(mutating: bool) -> Op {
        Op {
            action: "rds:FailoverDBCluster",
            what: "cluster `orders-db`".into(),
            arn: "arn:aws:rds:us-east-1:123456789012:cluster:orders-db".into(),
            region: "us-east-1".into(),
            mutating,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let v: Vec<u64> = (1..=7).map(|r| backoff(r).as_secs()).collect();
        assert_eq!(v, vec![1, 2, 4, 8, 16, 20, 20]);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn codes_map_to_provider_errors() {
        let o = op(true);
        let c = |code: &str, status: Option<u16>| classify_service(&o, code, "m", status);
        assert!(matches!(c("Throttling", Some(400)), Class::Retry(_)));
        assert!(matches!(c("Whatever", Some(429)), Class::Retry(_)));
        assert!(matches!(
            c("PriorRequestNotComplete", Some(400)),
            Class::Retry(_)
        ));
        assert!(matches!(c("InternalFailure", Some(500)), Class::Retry(_)));
        assert!(matches!(c("Unknown", Some(503)), Class::Retry(_)));
        match c("AccessDenied", Some(403)) {
            Class::Fatal(ProviderError {
                kind: ErrorKind::Denied,
                message: m,
                ..
            }) => {
                assert!(m.contains("`rds:FailoverDBCluster`"), "{m}");
                assert!(
                    m.contains("arn:aws:rds:us-east-1:123456789012:cluster:orders-db"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c("InvalidClientTokenId", Some(403)),
            Class::Fatal(ProviderError {
                kind: ErrorKind::Denied,
                ..
            })
        ));
        assert!(matches!(
            c("DBClusterNotFoundFault", Some(404)),
            Class::Fatal(ProviderError {
                kind: ErrorKind::NotFound,
                ..
            })
        ));
        assert!(matches!(
            c("NoSuchHostedZone", Some(404)),
            Class::Fatal(ProviderError {
                kind: ErrorKind::NotFound,
                ..
            })
        ));
        assert!(matches!(
            c("InvalidDBClusterStateFault", Some(400)),
            Class::Fatal(ProviderError {
                kind: ErrorKind::InvalidState,
                ..
            })
        ));
        assert!(matches!(
            c("DBClusterAlreadyExistsFault", Some(400)),
            Class::Fatal(ProviderError {
                kind: ErrorKind::InvalidState,
                ..
            })
        ));
        assert!(matches!(
            c("InvalidParameterValue", Some(400)),
            Class::Fatal(ProviderError {
                kind: ErrorKind::InvalidInput,
                ..
            })
        ));
        assert!(matches!(
            c("SomethingElse", Some(400)),
            Class::Fatal(ProviderError {
                kind: ErrorKind::Failed,
                ..
            })
        ));
    }

    fn fis_op(mutating: bool) -> Op {
        Op {
            action: "fis:StartExperiment",
            what: "experiment template EXT1".into(),
            arn: "arn:aws:fis:us-east-1:123456789012:experiment-template/EXT1".into(),
            region: "us-east-1".into(),
            mutating,
        }
    }

    fn kind(c: Class) -> (bool, ErrorKind, String) {
        match c {
            Class::Retry(e) => (true, e.kind, e.message),
            Class::Fatal(e) => (false, e.kind, e.message),
        }
    }

    #[test]
    fn fis_codes_map_to_provider_errors() {
        let o = fis_op(true);
        let c = |code: &str, status: u16| kind(classify_service(&o, code, "why", Some(status)));
        let (retry, k, m) = c("ResourceNotFoundException", 404);
        assert_eq!((retry, k), (false, ErrorKind::NotFound), "{m}");
        assert!(
            m.contains("experiment template EXT1 does not exist in us-east-1"),
            "{m}"
        );
        let (retry, k, m) = c("ValidationException", 400);
        assert_eq!((retry, k), (false, ErrorKind::InvalidInput), "{m}");
        assert!(m.contains("rejected the input") && m.contains("why"), "{m}");
        let (retry, k, m) = c("ConflictException", 409);
        assert_eq!((retry, k), (false, ErrorKind::InvalidState), "{m}");
        assert!(m.contains("in its current state"), "{m}");
        let (retry, k, m) = c("ServiceQuotaExceededException", 402);
        assert_eq!((retry, k), (false, ErrorKind::InvalidState), "{m}");
        assert!(m.contains("service quota"), "{m}");
        let (retry, k, m) = c("AccessDeniedException", 403);
        assert_eq!((retry, k), (false, ErrorKind::Denied), "{m}");
        assert!(
            m.contains("`fis:StartExperiment`")
                && m.contains("arn:aws:fis:us-east-1:123456789012:experiment-template/EXT1"),
            "{m}"
        );
        for code in [
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
        ] {
            assert_eq!(c(code, 403).1, ErrorKind::Denied, "{code}");
        }
        for code in ["ThrottlingException", "TooManyRequestsException"] {
            assert!(c(code, 400).0, "{code} is retried");
        }
        for code in ["InternalServerException", "ServiceUnavailableException"] {
            assert!(c(code, 500).0, "{code} is retried");
        }
    }

    #[test]
    fn a_modeled_error_without_metadata_is_read_from_its_display() {
        assert_eq!(
            code_and_message(None, None, "ValidationException: Role ARN x is not valid"),
            (
                "ValidationException".to_string(),
                "Role ARN x is not valid".to_string()
            )
        );
        assert_eq!(
            code_and_message(None, None, "ConflictException"),
            ("ConflictException".to_string(), String::new())
        );
        assert_eq!(
            code_and_message(Some("Throttling"), Some("Rate exceeded"), "whatever: x"),
            ("Throttling".to_string(), "Rate exceeded".to_string())
        );
        assert_eq!(
            code_and_message(None, None, "unhandled error (something: odd)"),
            ("Unknown".to_string(), String::new())
        );
    }
}
