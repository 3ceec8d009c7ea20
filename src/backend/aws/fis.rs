//! AWS FIS experiments (`fis.experiment`) through aws-sdk-fis: create the template from an
//! inline one (or use an existing template), start the experiment, follow it to a terminal
//! state journaling every action's state change, stop it on rollback, delete the template.
//!
//! Call sequence of a waiting inline run: `CreateExperimentTemplate` (tags `firedrill:run-id`,
//! `firedrill:params`) → `StartExperiment` (same tags) → `GetExperiment` every poll interval
//! until a terminal state → `DeleteExperimentTemplate`. Rollback: `GetExperiment` →
//! `StopExperiment` if it still runs → `GetExperiment` until stopped → `DeleteExperimentTemplate`
//! if the template is still there. A rollback whose step lost its output (an abort cancelled it
//! mid-poll) finds the step's experiments and templates by those tags (`ListExperiments`,
//! `ListExperimentTemplates`), so nothing firedrill created is left behind unannounced: every
//! creation, start, stop and deletion is journaled as an environment event as it happens, and a
//! failing step's error names what it created and whether it was cleaned up.
//!
//! States: pending, initiating, running and stopping are polled through; completed is success;
//! stopped (a stop condition fired, or someone stopped it), failed and cancelled fail the step
//! with FIS's reason; a state this version does not know fails the step with a clear error and
//! leaves the experiment to the rollback.
//!
//! Every FIS API call goes through [`crate::backend::aws::call`], the one AWS call path: the same retry
//! policy as RDS and Route 53 (`aws.retries` attempts in all, throttling, 5xx and transport
//! failures retried with backoff, each retry journaled as an `aws` note), and a mutating call
//! (create or delete a template, start or stop an experiment) that timed out is not retried,
//! since FIS may have acted on it. The same error mapping: access denied names the IAM action
//! and the ARN (plus the other actions the call needs), `ResourceNotFoundException` is not
//! found, `ValidationException` is rejected input (fix the template), `ConflictException` and
//! `ServiceQuotaExceededException` an invalid state. Every template and experiment firedrill
//! creates is also recorded in the provider's ledger of created resources, journaled once as
//! `aws_resource_created` with its cleanup command, beside the FIS events above.
//!
//! Invariant: [`describe`] and [`preflight`] only read.

use crate::backend::aws::call::{self, Op};
use crate::backend::aws::clients::Clients;
use crate::backend::aws::provider::CreatedResource;
use crate::backend::{EnvironmentEvent, ErrorKind, ProviderError};
use crate::engine::clock::RunClock;
use crate::lang::action::FisQuery;
use crate::lang::fis_template::{Source, StepParams, TAG_PARAMS, TAG_RUN_ID, Template, timeline};
use aws_sdk_fis::types::{
    AccountTargeting, CreateExperimentTemplateActionInput,
    CreateExperimentTemplateExperimentOptionsInput, CreateExperimentTemplateStopConditionInput,
    CreateExperimentTemplateTargetInput, EmptyTargetResolutionMode, Experiment,
    ExperimentTemplateTargetInputFilter,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a rollback waits for a stopped experiment to reach `stopped`.
pub const STOP_WAIT: Duration = Duration::from_secs(300);

/// What the FIS functions need from the AWS provider.
pub struct FisCtx<'a> {
    pub clients: &'a Clients,
    /// Tagged on every template and experiment firedrill creates.
    pub run_id: &'a str,
    /// The run clock events' `at_ms` refer to.
    pub clock: RunClock,
    /// Where environment events go (the provider's `drain_events` hands them to the journal).
    pub events: &'a Mutex<Vec<EnvironmentEvent>>,
    /// Time between `GetExperiment` polls.
    pub poll_interval: Duration,
    /// Attempts of one API call in all (`aws.retries`), as for every AWS call.
    pub attempts: u32,
    /// One line per retry, for the journal (the provider journals it as an `aws` note, as it
    /// does for RDS and Route 53 calls).
    pub note: &'a (dyn Fn(String) + Send + Sync),
    /// Records a template or experiment firedrill created in the provider's ledger of created
    /// resources (journaled once, as `aws_resource_created`), with what firedrill does with it.
    pub created: &'a (dyn Fn(CreatedResource, &str) + Send + Sync),
    /// The caller's account when known, for ARNs in messages (`<account>` otherwise).
    pub account: Option<String>,
}

impl FisCtx<'_> {
    fn event(&self, component: String, message: String, detail: Option<Json>) {
        let ev = EnvironmentEvent {
            at_ms: self.clock.elapsed_ms(),
            component,
            message,
            detail,
        };
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ev);
    }

    fn region(&self) -> &str {
        &self.clients.region
    }

    /// The ARN of an FIS resource (`experiment-template/EXT1`, `experiment/EXP1`, `*`).
    fn arn(&self, resource: &str) -> String {
        if resource == "*" {
            return "*".into();
        }
        format!(
            "arn:aws:fis:{}:{}:{resource}",
            self.region(),
            self.account.as_deref().unwrap_or("<account>")
        )
    }

    /// The [`Op`] of one FIS call: `action` is the IAM action (`fis:StartExperiment`).
    fn op(&self, action: &'static str, what: String, resource: &str, mutating: bool) -> Op {
        Op {
            action,
            what,
            arn: self.arn(resource),
            region: self.region().to_string(),
            mutating,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Calls: through `aws::call`, with FIS's hints.
// ---------------------------------------------------------------------------------------------

/// One FIS API call through [`call::call`]: the AWS retry policy (`aws.retries`, retries
/// journaled, a timed-out mutating call not retried) and its error mapping. FIS's own hints are
/// added to the message: `also` names the other IAM actions the call needs when access is
/// denied, a missing id says how to list them, rejected input says to fix the template. The
/// calls that create things carry a client token, so a retry after throttling never creates
/// twice.
async fn fis_call<T, E, F, Fut>(
    ctx: &FisCtx<'_>,
    op: &Op,
    also: &str,
    f: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    call::call(ctx.attempts, ctx.note, op, f)
        .await
        .map_err(|e| hint(ctx, op, also, e))
}

fn hint(ctx: &FisCtx<'_>, op: &Op, also: &str, e: ProviderError) -> ProviderError {
    let region = ctx.region().to_string();
    match e.kind {
        ErrorKind::Denied if !also.is_empty() => e.map_message(|m| format!("{m}; {also}")),
        ErrorKind::NotFound if e.message.contains("does not exist") => {
            let list = if op.what.starts_with("experiment template") {
                "list-experiment-templates"
            } else {
                "list-experiments"
            };
            e.map_message(|m| {
                format!("{m}; FIS ids are listed by `aws fis {list} --region {region}`")
            })
        }
        ErrorKind::InvalidInput if op.action == "fis:CreateExperimentTemplate" => {
            e.map_message(|m| {
                format!("{m}; fix the template (ARNs, role, parameters) and run again")
            })
        }
        ErrorKind::NotFound | ErrorKind::InvalidInput => e.map_message(|m| {
            format!("{m}; FIS rejected the request: check the template id and the template")
        }),
        _ => e,
    }
}

static TOKENS: AtomicU64 = AtomicU64::new(0);

/// An idempotency token for one create/start (the same across retries of that call).
fn client_token(digest: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let n = TOKENS.fetch_add(1, Ordering::Relaxed);
    format!("fd-{}-{nanos:x}-{n}", &digest[..digest.len().min(12)])
}

// ---------------------------------------------------------------------------------------------
// Experiments as firedrill sees them.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct ActionView {
    action_id: String,
    status: String,
    reason: String,
    start: Option<String>,
    end: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct View {
    id: String,
    arn: Option<String>,
    template_id: Option<String>,
    status: String,
    reason: String,
    error_code: Option<String>,
    actions: BTreeMap<String, ActionView>,
}

fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
}

fn view(e: &Experiment) -> View {
    let state = e.state();
    View {
        id: e.id().unwrap_or_default().to_string(),
        arn: e.arn().map(str::to_string),
        template_id: e.experiment_template_id().map(str::to_string),
        status: state
            .and_then(|s| s.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        reason: state
            .and_then(|s| s.reason())
            .unwrap_or_default()
            .to_string(),
        error_code: state
            .and_then(|s| s.error())
            .and_then(|e| e.code())
            .map(str::to_string),
        actions: e
            .actions()
            .map(|m| {
                m.iter()
                    .map(|(name, a)| {
                        let st = a.state();
                        (
                            name.clone(),
                            ActionView {
                                action_id: a.action_id().unwrap_or_default().to_string(),
                                status: st
                                    .and_then(|s| s.status())
                                    .map(|s| s.as_str().to_string())
                                    .unwrap_or_else(|| "unknown".into()),
                                reason: st.and_then(|s| s.reason()).unwrap_or_default().to_string(),
                                start: time(a.start_time()),
                                end: time(a.end_time()),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// What an FIS experiment state means for the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// pending, initiating, running, stopping: keep polling.
    Active,
    Completed,
    Stopped,
    Failed,
    Cancelled,
    /// A state this version does not know.
    Unknown,
}

/// Map an FIS experiment status to a [`Phase`].
pub fn phase(status: &str) -> Phase {
    match status {
        "pending" | "initiating" | "running" | "stopping" => Phase::Active,
        "completed" => Phase::Completed,
        "stopped" => Phase::Stopped,
        "failed" => Phase::Failed,
        "cancelled" => Phase::Cancelled,
        _ => Phase::Unknown,
    }
}

impl View {
    fn to_json(&self) -> Json {
        let actions: serde_json::Map<String, Json> = self
            .actions
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    json!({"action_id": a.action_id, "state": a.status, "reason": a.reason, "start": a.start, "end": a.end}),
                )
            })
            .collect();
        json!({
            "experiment_id": self.id,
            "experiment_arn": self.arn,
            "state": self.status,
            "reason": self.reason,
            "error_code": self.error_code,
            "actions": actions,
        })
    }

    /// Journal what changed since `before`.
    fn journal_changes(&self, ctx: &FisCtx, before: Option<&View>) {
        let component = format!("fis {}", self.id);
        for (name, a) in &self.actions {
            let was = before.and_then(|b| b.actions.get(name)).map(|b| &b.status);
            if was != Some(&a.status) {
                ctx.event(
                    component.clone(),
                    format!(
                        "action `{name}` ({}) {}{}",
                        a.action_id,
                        a.status,
                        if a.reason.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", a.reason)
                        }
                    ),
                    Some(json!({"kind": "fis_action", "experiment": self.id, "action": name, "action_id": a.action_id, "state": a.status, "start": a.start, "end": a.end})),
                );
            }
        }
        if before.map(|b| &b.status) != Some(&self.status) {
            ctx.event(
                component,
                format!("experiment {}: {}", self.status, self.reason),
                Some(
                    json!({"kind": "fis_experiment", "experiment": self.id, "state": self.status}),
                ),
            );
        }
    }
}

async fn get(ctx: &FisCtx<'_>, id: &str) -> Result<View, ProviderError> {
    let op = ctx.op(
        "fis:GetExperiment",
        format!("experiment {id}"),
        &format!("experiment/{id}"),
        false,
    );
    let out = fis_call(ctx, &op, "", || {
        ctx.clients.fis.get_experiment().id(id).send()
    })
    .await?;
    out.experiment()
        .map(view)
        .ok_or_else(|| ProviderError::failed(format!("FIS returned no experiment for {id}")))
}

// ---------------------------------------------------------------------------------------------
// Templates.
// ---------------------------------------------------------------------------------------------

fn build_err(e: aws_sdk_fis::error::BuildError) -> ProviderError {
    ProviderError::not_found(format!("the FIS template cannot be sent: {e}"))
}

async fn create_template(
    ctx: &FisCtx<'_>,
    t: &Template,
    digest: &str,
    delete: bool,
) -> Result<String, ProviderError> {
    let mut req = ctx
        .clients
        .fis
        .create_experiment_template()
        .client_token(client_token(digest))
        .description(&t.description)
        .role_arn(&t.role_arn)
        .tags(TAG_RUN_ID, ctx.run_id)
        .tags(TAG_PARAMS, digest);
    for (k, v) in &t.tags {
        req = req.tags(k, v);
    }
    for (name, a) in &t.actions {
        let mut b = CreateExperimentTemplateActionInput::builder().action_id(&a.action_id);
        if let Some(d) = &a.description {
            b = b.description(d);
        }
        for (k, v) in &a.parameters {
            b = b.parameters(k, v);
        }
        for (k, v) in &a.targets {
            b = b.targets(k, v);
        }
        for s in &a.start_after {
            b = b.start_after(s);
        }
        req = req.actions(name, b.build().map_err(build_err)?);
    }
    for (name, tg) in &t.targets {
        let mut b = CreateExperimentTemplateTargetInput::builder()
            .resource_type(&tg.resource_type)
            .selection_mode(&tg.selection_mode);
        for a in &tg.resource_arns {
            b = b.resource_arns(a);
        }
        for (k, v) in &tg.resource_tags {
            b = b.resource_tags(k, v);
        }
        for f in &tg.filters {
            b = b.filters(
                ExperimentTemplateTargetInputFilter::builder()
                    .path(&f.path)
                    .set_values(Some(f.values.clone()))
                    .build()
                    .map_err(build_err)?,
            );
        }
        for (k, v) in &tg.parameters {
            b = b.parameters(k, v);
        }
        req = req.targets(name, b.build().map_err(build_err)?);
    }
    for s in &t.stop_conditions {
        req = req.stop_conditions(
            CreateExperimentTemplateStopConditionInput::builder()
                .source(&s.source)
                .set_value(s.value.clone())
                .build()
                .map_err(build_err)?,
        );
    }
    if let Some(o) = &t.experiment_options {
        req = req.experiment_options(
            CreateExperimentTemplateExperimentOptionsInput::builder()
                .set_account_targeting(o.account_targeting.as_deref().map(AccountTargeting::from))
                .set_empty_target_resolution_mode(
                    o.empty_target_resolution_mode
                        .as_deref()
                        .map(EmptyTargetResolutionMode::from),
                )
                .build(),
        );
    }
    if let Some(l) = &t.log_configuration {
        use aws_sdk_fis::types::{
            CreateExperimentTemplateLogConfigurationInput,
            ExperimentTemplateCloudWatchLogsLogConfigurationInput,
            ExperimentTemplateS3LogConfigurationInput,
        };
        let mut b = CreateExperimentTemplateLogConfigurationInput::builder()
            .log_schema_version(l.log_schema_version as i32);
        if let Some(c) = &l.cloud_watch_logs_configuration {
            b = b.cloud_watch_logs_configuration(
                ExperimentTemplateCloudWatchLogsLogConfigurationInput::builder()
                    .log_group_arn(&c.log_group_arn)
                    .build()
                    .map_err(build_err)?,
            );
        }
        if let Some(s3) = &l.s3_configuration {
            b = b.s3_configuration(
                ExperimentTemplateS3LogConfigurationInput::builder()
                    .bucket_name(&s3.bucket_name)
                    .set_prefix(s3.prefix.clone())
                    .build()
                    .map_err(build_err)?,
            );
        }
        req = req.log_configuration(b.build().map_err(build_err)?);
    }
    if let Some(r) = &t.experiment_report_configuration {
        use aws_sdk_fis::types::{
            CreateExperimentTemplateReportConfigurationInput,
            ExperimentTemplateReportConfigurationDataSourcesInput,
            ExperimentTemplateReportConfigurationOutputsInput,
            ReportConfigurationCloudWatchDashboardInput, ReportConfigurationS3OutputInput,
        };
        let mut b = CreateExperimentTemplateReportConfigurationInput::builder()
            .set_pre_experiment_duration(r.pre_experiment_duration.clone())
            .set_post_experiment_duration(r.post_experiment_duration.clone());
        if let Some(o) = &r.outputs {
            b = b.outputs(
                ExperimentTemplateReportConfigurationOutputsInput::builder()
                    .s3_configuration(
                        ReportConfigurationS3OutputInput::builder()
                            .bucket_name(&o.s3_configuration.bucket_name)
                            .set_prefix(o.s3_configuration.prefix.clone())
                            .build(),
                    )
                    .build(),
            );
        }
        if let Some(d) = &r.data_sources {
            let mut ds = ExperimentTemplateReportConfigurationDataSourcesInput::builder();
            for dash in &d.cloud_watch_dashboards {
                ds = ds.cloud_watch_dashboards(
                    ReportConfigurationCloudWatchDashboardInput::builder()
                        .dashboard_identifier(&dash.dashboard_identifier)
                        .build(),
                );
            }
            b = b.data_sources(ds.build());
        }
        req = req.experiment_report_configuration(b.build());
    }
    let op = ctx.op(
        "fis:CreateExperimentTemplate",
        format!("template \"{}\"", t.description),
        "experiment-template/*",
        true,
    );
    let out = fis_call(
        ctx,
        &op,
        &format!(
            "creating a template also needs `fis:TagResource` (firedrill tags what it creates with the run id) and `iam:PassRole` on the template's roleArn `{}`",
            t.role_arn
        ),
        || req.clone().send(),
    )
    .await?;
    let created = out.experiment_template();
    let id = created
        .and_then(|t| t.id())
        .ok_or_else(|| ProviderError::failed("FIS created a template without an id".into()))?
        .to_string();
    let arn = created.and_then(|t| t.arn()).map_or_else(
        || ctx.arn(&format!("experiment-template/{id}")),
        str::to_string,
    );
    ctx.event(
        format!("fis template {id}"),
        format!(
            "created experiment template {id} (\"{}\", {} action(s)), tagged {TAG_RUN_ID}={}",
            t.description,
            t.actions.len(),
            ctx.run_id
        ),
        Some(json!({"kind": "fis_template", "template": id, "created": true})),
    );
    (ctx.created)(
        CreatedResource {
            kind: "fis experiment template",
            name: id.clone(),
            arn,
            region: ctx.region().to_string(),
            cleanup: delete_command(&id, ctx.region()),
        },
        if delete {
            "firedrill deletes it when the experiment ends (or in the step's rollback); if it is left behind"
        } else {
            "firedrill keeps it (`delete_template: false`); to delete it"
        },
    );
    Ok(id)
}

/// Delete a template firedrill created; a template that is already gone is fine.
async fn delete_template(ctx: &FisCtx<'_>, id: &str) -> Result<(), ProviderError> {
    let op = ctx.op(
        "fis:DeleteExperimentTemplate",
        format!("experiment template {id}"),
        &format!("experiment-template/{id}"),
        true,
    );
    match fis_call(ctx, &op, "", || {
        ctx.clients.fis.delete_experiment_template().id(id).send()
    })
    .await
    {
        Ok(_) => {
            ctx.event(
                format!("fis template {id}"),
                format!("deleted experiment template {id}"),
                Some(json!({"kind": "fis_template", "template": id, "deleted": true})),
            );
            Ok(())
        }
        Err(ProviderError {
            kind: ErrorKind::NotFound,
            message: m,
            ..
        }) if m.contains("does not exist") => Ok(()),
        Err(e) => Err(e),
    }
}

fn delete_command(id: &str, region: &str) -> String {
    format!("aws fis delete-experiment-template --id {id} --region {region}")
}

fn stop_command(id: &str, region: &str) -> String {
    format!("aws fis stop-experiment --id {id} --region {region}")
}

fn delete_hint(id: &str, region: &str) -> String {
    format!("delete it with `{}`", delete_command(id, region))
}

fn stop_hint(id: &str, region: &str) -> String {
    format!("stop it with `{}`", stop_command(id, region))
}

// ---------------------------------------------------------------------------------------------
// Entry points.
// ---------------------------------------------------------------------------------------------

/// Start the experiment (creating the template first when it is inline); with `wait` (the
/// default) follow it to a terminal state. The output names the experiment, the template and
/// whether firedrill created and deleted it. `digest` tags what the step creates (the digest of
/// its parameters, [`crate::lang::fis_template::params_digest`]), for a rollback that lost the
/// output.
pub async fn inject(ctx: &FisCtx<'_>, p: &StepParams, digest: &str) -> Result<Json, ProviderError> {
    let region = ctx.region().to_string();
    let (template_id, created) = match &p.source {
        Source::Existing(id) => (id.clone(), false),
        Source::Inline(t) => (
            create_template(ctx, t, digest, p.delete_template).await?,
            true,
        ),
    };
    // Cleanup of a template this step created, with what happened for the messages.
    let cleanup = |why: &'static str| {
        let template_id = template_id.clone();
        let region = region.clone();
        async move {
            if !created {
                return (false, String::new());
            }
            match delete_template(ctx, &template_id).await {
                Ok(()) => (
                    true,
                    format!("; the template {template_id} it created was deleted"),
                ),
                Err(e) => (
                    false,
                    format!(
                        "; the template {template_id} it created could not be deleted {why} ({e}): {}",
                        delete_hint(&template_id, &region)
                    ),
                ),
            }
        }
    };

    let op = ctx.op(
        "fis:StartExperiment",
        format!("experiment template {template_id}"),
        &format!("experiment-template/{template_id}"),
        true,
    );
    let token = client_token(digest);
    let also = "starting an experiment also needs `fis:StartExperiment` on `experiment/*` and `fis:TagResource` (firedrill tags experiments with the run id)";
    let started = fis_call(ctx, &op, also, || {
        ctx.clients
            .fis
            .start_experiment()
            .client_token(&token)
            .experiment_template_id(&template_id)
            .tags(TAG_RUN_ID, ctx.run_id)
            .tags(TAG_PARAMS, digest)
            .send()
    })
    .await;
    let first = match started.map(|o| o.experiment().map(view)) {
        Ok(Some(v)) => v,
        Ok(None) => {
            let (_, note) = cleanup("after the start").await;
            return Err(ProviderError::failed(format!(
                "FIS started no experiment from {template_id}{note}"
            )));
        }
        Err(e) => {
            let (_, note) = cleanup("after the failed start").await;
            // A start that timed out (or whose answer was lost) may have started one anyway.
            let maybe = if matches!(
                e.kind,
                ErrorKind::Failed | ErrorKind::TimedOut | ErrorKind::Unavailable
            ) {
                format!(
                    "; an experiment that did start anyway is tagged {TAG_RUN_ID}={} and the step's rollback finds and stops it (list them with `aws fis list-experiments --region {region}`)",
                    ctx.run_id
                )
            } else {
                String::new()
            };
            return Err(with_note(e, &format!("{note}{maybe}")));
        }
    };
    let id = first.id.clone();
    ctx.event(
        format!("fis {id}"),
        format!(
            "started experiment {id} from template {template_id}, tagged {TAG_RUN_ID}={}",
            ctx.run_id
        ),
        Some(json!({"kind": "fis_experiment", "experiment": id, "template": template_id, "state": first.status})),
    );
    (ctx.created)(
        CreatedResource {
            kind: "fis experiment",
            name: id.clone(),
            arn: first
                .arn
                .clone()
                .unwrap_or_else(|| ctx.arn(&format!("experiment/{id}"))),
            region: region.clone(),
            cleanup: stop_command(&id, &region),
        },
        "it ends by itself, and the step's rollback stops it if it still runs; if it is left running",
    );
    first.journal_changes(ctx, None);
    let output = |v: &View, deleted: bool, waited: bool| {
        let mut o = v.to_json();
        o["template_id"] = json!(template_id);
        o["template_created"] = json!(created);
        o["template_deleted"] = json!(deleted);
        o["waited"] = json!(waited);
        o["backend"] = json!("aws");
        o["region"] = json!(region);
        o
    };
    if !p.wait {
        return Ok(output(&first, false, false));
    }

    let deadline = tokio::time::Instant::now() + p.timeout;
    let mut last = first;
    let last = loop {
        match phase(&last.status) {
            Phase::Active => {}
            Phase::Unknown => {
                return Err(ProviderError::failed(format!(
                    "FIS experiment {id} is in state `{}` ({}), which this firedrill does not know; it was left as it is and the rollback stops it if it still runs (or {})",
                    last.status,
                    last.reason,
                    stop_hint(&id, &region)
                )));
            }
            _ => break last,
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let stopped = stop_and_wait(ctx, &id, None).await;
            let (_, note) = cleanup("after the timeout").await;
            let how = match stopped {
                Ok(v) => format!("it was stopped ({})", v.status),
                Err(e) => format!("stopping it failed ({e}): {}", stop_hint(&id, &region)),
            };
            return Err(ProviderError::invalid_state(format!(
                "FIS experiment {id} did not end within {}; {how}{note}",
                crate::lang::duration::format(p.timeout)
            )));
        }
        tokio::time::sleep(ctx.poll_interval.min(deadline - now)).await;
        match get(ctx, &id).await {
            Ok(v) => {
                v.journal_changes(ctx, Some(&last));
                last = v;
            }
            Err(e) => {
                return Err(with_note(
                    e,
                    &format!(
                        "; lost track of FIS experiment {id}, which may still be running: the rollback stops it (or {}){}",
                        stop_hint(&id, &region),
                        if created {
                            format!(" and deletes the template {template_id}")
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
        }
    };
    let deleted = if p.delete_template {
        let (deleted, note) = cleanup("after the experiment ended").await;
        if !deleted && created {
            ctx.event(
                format!("fis template {template_id}"),
                format!("template {template_id} left behind{note}"),
                Some(json!({"kind": "fis_template", "template": template_id, "deleted": false})),
            );
        }
        deleted
    } else {
        false
    };
    let out = output(&last, deleted, true);
    let tail = if created && !deleted && p.delete_template {
        format!(
            "; the template {template_id} is still there: {}",
            delete_hint(&template_id, &region)
        )
    } else if deleted {
        format!("; the template {template_id} was deleted")
    } else {
        String::new()
    };
    let reason = if last.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", last.reason)
    };
    let code = last
        .error_code
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    match phase(&last.status) {
        Phase::Completed => Ok(out),
        Phase::Stopped => Err(ProviderError::invalid_state(format!(
            "FIS experiment {id} was stopped before it completed (a stop condition fired, or someone stopped it){reason}{tail}"
        ))),
        Phase::Failed => Err(ProviderError::invalid_state(format!(
            "FIS experiment {id} failed{reason}{code}{tail}"
        ))),
        Phase::Cancelled => Err(ProviderError::invalid_state(format!(
            "FIS experiment {id} was cancelled{reason}{tail}"
        ))),
        Phase::Active | Phase::Unknown => unreachable!("the loop ends on terminal states only"),
    }
}

fn with_note(e: ProviderError, note: &str) -> ProviderError {
    if e.kind == ErrorKind::Unsupported {
        return e;
    }
    e.map_message(|m| format!("{m}{note}"))
}

/// Whether a rollback should stop an experiment in this state: active ones, and ones in a
/// state this version does not know (stopping is the safe side).
fn may_run(status: &str) -> bool {
    matches!(phase(status), Phase::Active | Phase::Unknown)
}

/// Stop an experiment if it may still run and wait (up to [`STOP_WAIT`]) for it to end.
/// Returns its final view.
async fn stop_and_wait(
    ctx: &FisCtx<'_>,
    id: &str,
    known: Option<View>,
) -> Result<View, ProviderError> {
    let mut v = match known {
        Some(v) => v,
        None => get(ctx, id).await?,
    };
    if !may_run(&v.status) {
        return Ok(v);
    }
    let op = ctx.op(
        "fis:StopExperiment",
        format!("experiment {id}"),
        &format!("experiment/{id}"),
        true,
    );
    if v.status != "stopping" {
        let out = fis_call(ctx, &op, "", || {
            ctx.clients.fis.stop_experiment().id(id).send()
        })
        .await?;
        ctx.event(
            format!("fis {id}"),
            format!("stop requested for experiment {id}"),
            Some(json!({"kind": "fis_experiment", "experiment": id, "stop_requested": true})),
        );
        if let Some(nv) = out.experiment().map(view) {
            nv.journal_changes(ctx, Some(&v));
            v = nv;
        }
    }
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    while may_run(&v.status) {
        if tokio::time::Instant::now() >= deadline {
            return Err(ProviderError::invalid_state(format!(
                "FIS experiment {id} was asked to stop but is still `{}` after {}; {}",
                v.status,
                crate::lang::duration::format(STOP_WAIT),
                stop_hint(id, ctx.region())
            )));
        }
        tokio::time::sleep(ctx.poll_interval).await;
        let nv = get(ctx, id).await?;
        nv.journal_changes(ctx, Some(&v));
        v = nv;
    }
    Ok(v)
}

/// Pages of `ListExperiments`: experiments tagged with this run (and step, when `digest`).
async fn tagged_experiments(
    ctx: &FisCtx<'_>,
    template_id: Option<&str>,
    digest: Option<&str>,
) -> Result<Vec<(String, Option<aws_smithy_types::DateTime>, String)>, ProviderError> {
    let op = ctx.op(
        "fis:ListExperiments",
        "this run's experiments".into(),
        "*",
        false,
    );
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let page = fis_call(ctx, &op, "", || {
            ctx.clients
                .fis
                .list_experiments()
                .set_experiment_template_id(template_id.map(str::to_string))
                .set_next_token(token.clone())
                .send()
        })
        .await?;
        for e in page.experiments() {
            let tags = e.tags();
            let tag = |k: &str| tags.and_then(|t| t.get(k)).map(String::as_str);
            if tag(TAG_RUN_ID) != Some(ctx.run_id)
                || digest.is_some_and(|d| tag(TAG_PARAMS) != Some(d))
            {
                continue;
            }
            if template_id.is_some_and(|t| e.experiment_template_id() != Some(t)) {
                continue;
            }
            let status = e
                .state()
                .and_then(|s| s.status())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            out.push((
                e.id().unwrap_or_default().to_string(),
                e.creation_time().cloned(),
                status,
            ));
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.sort_by_key(|(_, t, _)| t.map(|t| (t.secs(), t.subsec_nanos())));
    Ok(out)
}

/// Templates this run's step created (by tags), for a rollback that lost the step's output.
async fn tagged_templates(ctx: &FisCtx<'_>, digest: &str) -> Result<Vec<String>, ProviderError> {
    let op = ctx.op(
        "fis:ListExperimentTemplates",
        "this run's templates".into(),
        "*",
        false,
    );
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let page = fis_call(ctx, &op, "", || {
            ctx.clients
                .fis
                .list_experiment_templates()
                .set_next_token(token.clone())
                .send()
        })
        .await?;
        for t in page.experiment_templates() {
            let tags = t.tags();
            let tag = |k: &str| tags.and_then(|m| m.get(k)).map(String::as_str);
            if tag(TAG_RUN_ID) == Some(ctx.run_id) && tag(TAG_PARAMS) == Some(digest) {
                out.push(t.id().unwrap_or_default().to_string());
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The step's rollback: stop its experiment if it still runs, then delete the inline template
/// if it is still there. Uses the step's output; without one (an abort cancelled the step),
/// finds them by the run and step tags (`digest`: as given to [`inject`]).
pub async fn revert(
    ctx: &FisCtx<'_>,
    p: &StepParams,
    digest: &str,
    output: &Json,
) -> Result<Json, ProviderError> {
    let ids: Vec<String> = match output.get("experiment_id").and_then(Json::as_str) {
        Some(id) => vec![id.to_string()],
        None => tagged_experiments(ctx, None, Some(digest))
            .await?
            .into_iter()
            .map(|(id, _, _)| id)
            .collect(),
    };
    let mut stopped = Vec::new();
    let mut ended = Vec::new();
    let mut problems = Vec::new();
    for id in &ids {
        match get(ctx, id).await {
            Ok(v) if !may_run(&v.status) => {
                ended.push(json!({"experiment_id": id, "state": v.status}))
            }
            Ok(v) => match stop_and_wait(ctx, id, Some(v)).await {
                Ok(v) => stopped.push(json!({"experiment_id": id, "state": v.status})),
                Err(e) => problems.push(e.to_string()),
            },
            Err(e) => problems.push(e.to_string()),
        }
    }
    let templates: Vec<String> = match (&p.source, output.get("template_id")) {
        (Source::Inline(_), Some(Json::String(t))) => {
            let created = output["template_created"].as_bool().unwrap_or(false);
            let deleted = output["template_deleted"].as_bool().unwrap_or(false);
            if created && !deleted && p.delete_template {
                vec![t.clone()]
            } else {
                Vec::new()
            }
        }
        (Source::Inline(_), _) if p.delete_template => tagged_templates(ctx, digest).await?,
        _ => Vec::new(),
    };
    let mut deleted = Vec::new();
    for t in &templates {
        match delete_template(ctx, t).await {
            Ok(()) => deleted.push(json!(t)),
            Err(e) => problems.push(format!("{e}; {}", delete_hint(t, ctx.region()))),
        }
    }
    if !problems.is_empty() {
        return Err(ProviderError::failed(format!(
            "the FIS rollback is incomplete: {}",
            problems.join("; ")
        )));
    }
    Ok(json!({
        "stopped": stopped,
        "already_ended": ended,
        "templates_deleted": deleted,
    }))
}

/// What the step would do, reading (never writing) FIS: an existing template is looked up.
pub async fn describe(ctx: &FisCtx<'_>, p: &StepParams) -> Result<String, ProviderError> {
    let wait = if p.wait {
        format!(
            "wait for it to end (timeout {})",
            crate::lang::duration::format(p.timeout)
        )
    } else {
        "return once it has started".into()
    };
    let tags = format!("tagged {TAG_RUN_ID}={}", ctx.run_id);
    match &p.source {
        Source::Inline(t) => {
            let steps = timeline(t)
                .map_err(ProviderError::invalid_input)?
                .into_iter()
                .map(|(name, start, _)| {
                    format!(
                        "t+{} {name} ({})",
                        crate::lang::duration::format(start),
                        t.actions[&name].action_id
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let stops = t
                .stop_conditions
                .iter()
                .map(|s| s.value.clone().unwrap_or_else(|| s.source.clone()))
                .collect::<Vec<_>>()
                .join(", ");
            Ok(format!(
                "create FIS template \"{}\" in {} (actions: {steps}; stop conditions: {stops}), start it {tags}, {wait}; rollback stops it{}",
                t.description,
                ctx.region(),
                if p.delete_template {
                    "; the template is deleted afterwards"
                } else {
                    ""
                }
            ))
        }
        Source::Existing(id) => {
            let op = ctx.op(
                "fis:GetExperimentTemplate",
                format!("experiment template {id}"),
                &format!("experiment-template/{id}"),
                false,
            );
            let out = fis_call(ctx, &op, "", || {
                ctx.clients.fis.get_experiment_template().id(id).send()
            })
            .await?;
            let t = out.experiment_template();
            let actions = t
                .and_then(|t| t.actions())
                .map(|m| {
                    let mut v: Vec<String> = m
                        .iter()
                        .map(|(n, a)| format!("{n} ({})", a.action_id().unwrap_or_default()))
                        .collect();
                    v.sort();
                    v.join(", ")
                })
                .unwrap_or_default();
            Ok(format!(
                "start FIS template {id} \"{}\" in {} (actions: {actions}) {tags}, {wait}; rollback stops it",
                t.and_then(|t| t.description()).unwrap_or_default(),
                ctx.region()
            ))
        }
    }
}

/// Before anything runs: an existing template exists and may be read; for an inline one, FIS
/// answers and the caller may list templates.
pub async fn preflight(ctx: &FisCtx<'_>, p: &StepParams) -> Result<(), ProviderError> {
    match &p.source {
        Source::Existing(id) => {
            let op = ctx.op(
                "fis:GetExperimentTemplate",
                format!("experiment template {id}"),
                &format!("experiment-template/{id}"),
                false,
            );
            let also = "running it also needs `fis:StartExperiment` and `fis:TagResource`";
            fis_call(ctx, &op, also, || {
                ctx.clients.fis.get_experiment_template().id(id).send()
            })
            .await
            .map(|_| ())
        }
        Source::Inline(_) => {
            let op = ctx.op(
                "fis:ListExperimentTemplates",
                "FIS experiment templates".into(),
                "*",
                false,
            );
            let also = "running an inline template also needs `fis:CreateExperimentTemplate`, `fis:StartExperiment`, `fis:TagResource` and `iam:PassRole`";
            fis_call(ctx, &op, also, || {
                ctx.clients
                    .fis
                    .list_experiment_templates()
                    .max_results(1)
                    .send()
            })
            .await
            .map(|_| ())
        }
    }
}

/// The `fis.experiment` probe: the newest experiment this run started (optionally from one
/// template).
pub async fn observe(ctx: &FisCtx<'_>, q: &FisQuery) -> Result<Json, ProviderError> {
    let template = q.template_id.as_deref();
    let found = tagged_experiments(ctx, template, None).await?;
    let Some((id, _, _)) = found.last() else {
        return Ok(
            json!({"id": null, "state": "none", "reason": "no FIS experiment started by this run yet", "running": false, "actions": {}, "experiments": 0}),
        );
    };
    let v = get(ctx, id).await?;
    let actions: serde_json::Map<String, Json> = v
        .actions
        .iter()
        .map(|(k, a)| (k.clone(), json!(a.status)))
        .collect();
    Ok(json!({
        "id": v.id,
        "state": v.status,
        "reason": v.reason,
        "running": phase(&v.status) == Phase::Active,
        "actions": actions,
        "experiments": found.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fis_state_has_a_meaning() {
        for s in ["pending", "initiating", "running", "stopping"] {
            assert_eq!(phase(s), Phase::Active, "{s}");
        }
        assert_eq!(phase("completed"), Phase::Completed);
        assert_eq!(phase("stopped"), Phase::Stopped);
        assert_eq!(phase("failed"), Phase::Failed);
        assert_eq!(phase("cancelled"), Phase::Cancelled);
        assert_eq!(phase("paused"), Phase::Unknown);
    }

    #[test]
    fn client_tokens_are_unique_and_short() {
        let a = client_token("0123456789abcdef");
        let b = client_token("0123456789abcdef");
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a}");
    }
}
