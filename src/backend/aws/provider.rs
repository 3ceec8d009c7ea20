//! [`AwsProvider`]: the `db.*` and `dns.*` vocabulary against the AWS APIs, with the state a run
//! needs beyond the APIs themselves: the run clock, the journal notes (environment events), the
//! ledger of what the drill created or changed, and what DNS answers resolvers may still cache.

use super::call::{self, Op};
use super::clients::{self, Clients};
use super::settings::AwsSettings;
use crate::backend::{
    Action, BoxFuture, Call, EnvironmentEvent, PreflightProblem, Probe, Provider, ProviderError,
    RunContext,
};
use crate::engine::clock::RunClock;
use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Actions this backend implements.
pub const ACTIONS: &[&str] = &[
    "db.cluster_failover",
    "db.instance_reboot",
    "db.global_switchover",
    "db.global_failover",
    "db.detach_and_promote",
    "db.point_in_time_restore",
    "db.cluster_outage",
    "dns.failover",
    "fis.experiment",
];

/// Probes this backend implements.
pub const PROBES: &[&str] = &[
    "db.cluster",
    "db.instance",
    "dns.record",
    "dns.health_check",
    "fis.experiment",
];

/// Where the SDK clients come from.
enum Source {
    /// Built by the caller (tests with mocked transports); no role is assumed.
    Fixed(Arc<Clients>),
    /// Built from per-region configs; with `role_arn`, rebuilt once the run id is known so the
    /// STS session is named `firedrill-<run id>` (`firedrill-preflight` before the run starts).
    Configs(Box<Configs>),
}

struct Configs {
    primary: SdkConfig,
    dr: Option<SdkConfig>,
    built: tokio::sync::Mutex<Option<(String, Arc<Clients>)>>,
}

/// Something the drill created or changed, kept so a half-done action can still be reported and
/// reverted (the executor hands `revert` a null output when the step failed).
#[derive(Debug, Clone)]
pub(crate) enum Ledger {
    /// A resource the drill created. RDS ones are never deleted automatically; an inline FIS
    /// template is deleted by its step when it ends (the entry stays: the run created it).
    Created {
        kind: &'static str,
        name: String,
        arn: String,
        region: String,
        cleanup: String,
    },
    /// Route 53 record sets as they were before `dns.failover` changed them.
    DnsChanged {
        record: String,
        zone_id: String,
        previous: Vec<aws_sdk_route53::types::ResourceRecordSet>,
    },
}

/// A resource the drill created (RDS clusters and instances, FIS templates and experiments).
/// firedrill never deletes the RDS ones; it deletes an inline FIS template when its experiment
/// ends (`delete_template`), and stops an FIS experiment only in the step's rollback.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedResource {
    pub kind: &'static str,
    pub name: String,
    pub arn: String,
    pub region: String,
    /// The command that deletes it.
    pub cleanup: String,
}

/// What resolvers may still have cached for a record: its authoritative answer changed from
/// `previous` to `current` at `changed_at` (run clock).
#[derive(Debug, Clone, Default)]
pub(crate) struct DnsMemory {
    pub current: Option<String>,
    pub previous: Option<String>,
    pub changed_at: Option<std::time::Duration>,
}

#[derive(Default)]
pub(crate) struct State {
    pub run_id: Option<String>,
    pub experiment: Option<String>,
    pub events: Vec<EnvironmentEvent>,
    pub ledger: Vec<Ledger>,
    pub dns: HashMap<String, DnsMemory>,
    /// Restore points of clusters this run restored (their newest data).
    pub restore_points: HashMap<String, DateTime<Utc>>,
    /// The caller's account, once known (for ARNs in messages).
    pub account: Option<String>,
    /// Region of each cluster name seen.
    pub cluster_regions: HashMap<String, String>,
    /// Hosted zone of each record name resolved.
    pub zones: HashMap<String, String>,
}

pub struct AwsProvider {
    pub(crate) settings: AwsSettings,
    source: Source,
    clock: OnceLock<RunClock>,
    state: Mutex<State>,
    /// FIS experiment notes (`crate::backend::aws::fis` journals action state changes here).
    fis_events: Mutex<Vec<EnvironmentEvent>>,
}

impl AwsProvider {
    /// A provider over per-region SDK configs (`connect` loads them from the standard chain).
    pub fn from_configs(
        settings: AwsSettings,
        primary: SdkConfig,
        dr: Option<SdkConfig>,
    ) -> AwsProvider {
        AwsProvider {
            settings,
            source: Source::Configs(Box::new(Configs {
                primary,
                dr,
                built: tokio::sync::Mutex::new(None),
            })),
            clock: OnceLock::new(),
            state: Mutex::new(State::default()),
            fis_events: Mutex::new(Vec::new()),
        }
    }

    /// A provider over ready clients (tests: mocked or bridged transports). `role_arn` is not
    /// applied to them.
    pub fn from_clients(settings: AwsSettings, clients: Clients) -> AwsProvider {
        AwsProvider {
            settings,
            source: Source::Fixed(Arc::new(clients)),
            clock: OnceLock::new(),
            state: Mutex::new(State::default()),
            fis_events: Mutex::new(Vec::new()),
        }
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("aws provider state poisoned")
    }

    pub(crate) fn clock(&self) -> RunClock {
        *self.clock.get_or_init(RunClock::start_now)
    }

    /// The STS session name for assumed roles.
    pub fn session_name(&self) -> String {
        let id = self
            .state()
            .run_id
            .clone()
            .unwrap_or_else(|| "preflight".into());
        let name: String = format!("firedrill-{id}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        name
    }

    /// The clients for this moment of the run.
    pub async fn clients(&self) -> Arc<Clients> {
        match &self.source {
            Source::Fixed(c) => c.clone(),
            Source::Configs(cfg) => {
                let Configs { primary, dr, built } = &**cfg;
                let session = self.session_name();
                let mut b = built.lock().await;
                if let Some((s, c)) = b.as_ref()
                    && (self.settings.role_arn.is_none() || *s == session)
                {
                    return c.clone();
                }
                let (p, d) = match &self.settings.role_arn {
                    Some(role) => {
                        let p = clients::assume_role(primary, role, &session).await;
                        let d = match dr {
                            Some(d) => Some(clients::assume_role(d, role, &session).await),
                            None => None,
                        };
                        (p, d)
                    }
                    None => (primary.clone(), dr.clone()),
                };
                let c = Arc::new(Clients::from_configs(&p, d.as_ref()));
                *b = Some((session, c.clone()));
                c
            }
        }
    }

    /// Journal a note (an environment event of component `aws`).
    pub(crate) fn note(&self, message: String, detail: Option<Json>) {
        let at_ms = self.clock().elapsed_ms();
        self.state().events.push(EnvironmentEvent {
            at_ms,
            component: "aws".into(),
            message,
            detail,
        });
    }

    /// One API call with the retry policy.
    pub(crate) async fn call<T, E, F, Fut>(&self, op: &Op, f: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let note = |m: String| self.note(m, None);
        call::call(self.settings.retries, &note, op, f).await
    }

    /// Poll `check` every `poll_interval` until it yields a value, for at most `max_wait`.
    pub(crate) async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        mut check: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, ProviderError>>,
    {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(v) = check().await? {
                return Ok(v);
            }
            if start.elapsed() >= self.settings.max_wait {
                return Err(ProviderError::failed(format!(
                    "still waiting for {what} after {} (`aws.max_wait`); check it in the AWS console",
                    crate::lang::duration::format(self.settings.max_wait)
                )));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// An ARN for messages: the account if known, else a placeholder.
    pub(crate) fn arn(&self, service: &str, region: &str, resource: &str) -> String {
        let account = self
            .state()
            .account
            .clone()
            .unwrap_or_else(|| "<account>".into());
        format!("arn:aws:{service}:{region}:{account}:{resource}")
    }

    /// Learn the account from an ARN seen in a response.
    pub(crate) fn learn_account(&self, arn: &str) {
        if let Some(acct) = arn.split(':').nth(4).filter(|a| !a.is_empty()) {
            let mut st = self.state();
            if st.account.is_none() {
                st.account = Some(acct.to_string());
            }
        }
    }

    /// Record a resource the drill created, and journal it with its cleanup.
    pub(crate) fn created(
        &self,
        kind: &'static str,
        name: &str,
        arn: &str,
        region: &str,
        cleanup: String,
    ) {
        self.record_created(
            CreatedResource {
                kind,
                name: name.to_string(),
                arn: arn.to_string(),
                region: region.to_string(),
                cleanup,
            },
            "firedrill does not delete it",
        );
    }

    /// Record `r` in the ledger and journal it once (`aws_resource_created`), saying what
    /// firedrill itself does with it (`fate`) and how to delete it.
    pub(crate) fn record_created(&self, r: CreatedResource, fate: &str) {
        let CreatedResource {
            kind,
            name,
            arn,
            region,
            cleanup,
        } = r;
        self.note(
            format!("created {kind} {name} ({arn}); {fate}: {cleanup}"),
            Some(json!({
                "kind": "aws_resource_created",
                "resource_type": kind,
                "name": name,
                "arn": arn,
                "region": region,
                "cleanup": cleanup,
            })),
        );
        self.state().ledger.push(Ledger::Created {
            kind,
            name,
            arn,
            region,
            cleanup,
        });
    }

    /// Resources this run created so far.
    pub fn created_resources(&self) -> Vec<CreatedResource> {
        self.state()
            .ledger
            .iter()
            .filter_map(|l| match l {
                Ledger::Created {
                    kind,
                    name,
                    arn,
                    region,
                    cleanup,
                } => Some(CreatedResource {
                    kind,
                    name: name.clone(),
                    arn: arn.clone(),
                    region: region.clone(),
                    cleanup: cleanup.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Run an FIS call with the context `crate::backend::aws::fis` needs: the same retry policy
    /// (`aws.retries`) and retry notes as every other AWS call, and this ledger for what FIS
    /// creates.
    pub(crate) async fn with_fis_ctx<T>(
        &self,
        f: impl AsyncFnOnce(&super::fis::FisCtx<'_>) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let clients = self.clients().await;
        let (run_id, account) = {
            let st = self.state();
            (
                st.run_id.clone().unwrap_or_else(|| "preflight".into()),
                st.account.clone(),
            )
        };
        let note = |m: String| self.note(m, None);
        let created = |r: CreatedResource, fate: &str| self.record_created(r, fate);
        let ctx = super::fis::FisCtx {
            clients: &clients,
            run_id: &run_id,
            clock: self.clock(),
            events: &self.fis_events,
            poll_interval: self.settings.poll_interval,
            attempts: self.settings.retries,
            note: &note,
            created: &created,
            account,
        };
        f(&ctx).await
    }

    fn unsupported(name: &str) -> ProviderError {
        ProviderError::unsupported("aws", name)
    }
}

pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

pub(crate) fn to_smithy(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}

pub(crate) fn rfc3339(t: Option<DateTime<Utc>>) -> Json {
    t.map_or(Json::Null, |t| json!(t.to_rfc3339()))
}

impl Provider for AwsProvider {
    fn backend(&self) -> &'static str {
        "aws"
    }

    fn start(&self, ctx: &RunContext) {
        let _ = self.clock.set(ctx.clock);
        let mut st = self.state();
        st.run_id = Some(ctx.run_id.clone());
        st.experiment = Some(ctx.experiment.clone());
    }

    fn supports(&self, name: &str) -> bool {
        ACTIONS.contains(&name) || PROBES.contains(&name)
    }

    fn preflight<'a>(&'a self, calls: &'a [Call]) -> BoxFuture<'a, Vec<PreflightProblem>> {
        Box::pin(super::preflight::preflight(self, calls))
    }

    fn inject<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            match action {
                Action::DbClusterFailover(a) => super::rds::cluster_failover(self, a).await,
                Action::DbInstanceReboot(a) => super::rds::instance_reboot(self, a).await,
                Action::DbGlobalSwitchover(a) => super::rds::global_change(self, a, false).await,
                Action::DbGlobalFailover(a) => {
                    super::rds::global_change(self, a, a.allow_data_loss).await
                }
                Action::DbDetachAndPromote(a) => super::rds::detach_and_promote(self, a).await,
                Action::DbPointInTimeRestore(a) => super::rds::point_in_time_restore(self, a).await,
                Action::DbClusterOutage(a) => super::rds::cluster_stop(self, a).await,
                Action::DnsFailover(a) => super::route53::failover(self, a).await,
                Action::FisExperiment(sp) => {
                    let digest = sp.digest.clone();
                    self.with_fis_ctx(async |ctx| super::fis::inject(ctx, sp, &digest).await)
                        .await
                }
                other => Err(Self::unsupported(other.name())),
            }
        })
    }

    fn revert<'a>(
        &'a self,
        action: &'a Action,
        output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            match action {
                Action::DbClusterOutage(a) => super::rds::cluster_start(self, a).await,
                Action::DnsFailover(a) => super::route53::restore(self, a, output).await,
                Action::FisExperiment(sp) => {
                    let digest = sp.digest.clone();
                    self.with_fis_ctx(async |ctx| {
                        super::fis::revert(ctx, sp, &digest, output).await
                    })
                    .await
                }
                other => Err(Self::unsupported(&format!("rollback of {}", other.name()))),
            }
        })
    }

    fn observe<'a>(&'a self, probe: &'a Probe) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            match probe {
                Probe::DbCluster(q) => super::rds::cluster_probe(self, q).await,
                Probe::DbInstance(q) => super::rds::instance_probe(self, q).await,
                Probe::DnsRecord(q) => super::route53::record_probe(self, q).await,
                Probe::DnsHealthCheck(q) => super::route53::health_check_probe(self, q).await,
                Probe::FisExperiment(q) => {
                    self.with_fis_ctx(async |ctx| super::fis::observe(ctx, q).await)
                        .await
                }
                other => Err(Self::unsupported(other.name())),
            }
        })
    }

    fn describe<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, ProviderError>> {
        if let Action::FisExperiment(sp) = action {
            return Box::pin(self.with_fis_ctx(async |ctx| super::fis::describe(ctx, sp).await));
        }
        Box::pin(super::preflight::describe(self, action))
    }

    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        let mut all = std::mem::take(&mut self.state().events);
        all.extend(std::mem::take(
            &mut *self.fis_events.lock().expect("fis events poisoned"),
        ));
        all.sort_by_key(|e| e.at_ms);
        all
    }
}
