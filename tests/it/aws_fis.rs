//! `fis.experiment` on AWS: against moto over HTTP (the inline template round trip, an existing
//! template, stop on abort, timeouts, the probe) and, for what moto cannot do (access denied,
//! throttling, the failed / cancelled / unknown states), against the SDK's own test support
//! (aws-smithy-mocks).
//!
//! The moto tests need `FIREDRILL_MOTO_URL` (`./scripts/test` starts moto_server and exports
//! it); without it they fail, they are never skipped. moto is reset at the start of each test
//! and the tests that use it run one at a time, under the moto lock of [`support`] that the
//! other AWS tests of this binary take too. They run on real time with a 10 ms poll interval: a
//! paused clock would auto-advance past the real HTTP exchanges with moto (except through
//! [`support::Bridge`], which the timeout tests use).

use crate::support::{self, Bridge};
use aws_sdk_fis::operation::create_experiment_template::{
    CreateExperimentTemplateError, CreateExperimentTemplateOutput,
};
use aws_sdk_fis::operation::delete_experiment_template::DeleteExperimentTemplateOutput;
use aws_sdk_fis::operation::get_experiment::{GetExperimentError, GetExperimentOutput};
use aws_sdk_fis::operation::start_experiment::{StartExperimentError, StartExperimentOutput};
use aws_sdk_fis::types::{
    Experiment, ExperimentAction, ExperimentActionState, ExperimentActionStatus, ExperimentError,
    ExperimentState, ExperimentStatus, ExperimentTemplate,
};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use firedrill::backend::aws::AwsSettings;
use firedrill::backend::aws::clients::Clients;
use firedrill::backend::aws::fis::FisCtx;
use firedrill::backend::aws::provider::CreatedResource;
use firedrill::backend::{EnvironmentEvent, ErrorKind, ProviderExt};
use firedrill::engine::clock::RunClock;
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `fis` entry points from a step's (or probe's) JSON parameters, decoded first as
/// validation does; what a step creates is tagged with the digest of its JSON parameters, as the
/// AWS provider does.
mod typed {
    use firedrill::backend::ProviderError;
    use firedrill::backend::aws::fis::{self, FisCtx};
    use firedrill::lang::action::{Action, FisQuery, Probe};
    use firedrill::lang::fis_template::{StepParams, params_digest};
    use serde_json::Value as Json;

    fn step(params: &Json) -> StepParams {
        match Action::decode("fis.experiment", params) {
            Ok(Action::FisExperiment(p)) => *p,
            other => panic!("fis.experiment {params} does not decode: {other:?}"),
        }
    }

    fn query(params: &Json) -> FisQuery {
        match Probe::decode("fis.experiment", params) {
            Ok(Probe::FisExperiment(q)) => q,
            other => panic!("fis.experiment probe {params} does not decode: {other:?}"),
        }
    }

    pub async fn inject(ctx: &FisCtx<'_>, params: &Json) -> Result<Json, ProviderError> {
        fis::inject(ctx, &step(params), &params_digest(params)).await
    }

    pub async fn revert(
        ctx: &FisCtx<'_>,
        params: &Json,
        output: &Json,
    ) -> Result<Json, ProviderError> {
        fis::revert(ctx, &step(params), &params_digest(params), output).await
    }

    pub async fn preflight(ctx: &FisCtx<'_>, params: &Json) -> Result<(), ProviderError> {
        fis::preflight(ctx, &step(params)).await
    }

    pub async fn describe(ctx: &FisCtx<'_>, params: &Json) -> Result<String, ProviderError> {
        fis::describe(ctx, &step(params)).await
    }

    pub async fn observe(ctx: &FisCtx<'_>, params: &Json) -> Result<Json, ProviderError> {
        fis::observe(ctx, &query(params)).await
    }
}

fn moto_url() -> String {
    std::env::var("FIREDRILL_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "FIREDRILL_MOTO_URL is not set: run the tests with ./scripts/test, which starts moto_server and exports FIREDRILL_MOTO_URL (these tests are never skipped)"
        )
    })
}

async fn moto_api(path: &str, body: Json) {
    firedrill::engine::generic::install_crypto_provider();
    let url = format!("{}/moto-api/{path}", moto_url());
    let r = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto at {url}: {e} (is moto_server running?)"));
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

/// Reset moto, and make FIS experiments advance one state every `times` GetExperiment calls.
async fn fresh_moto(times: u32) {
    moto_api("reset", json!({})).await;
    moto_api(
        "state-manager/set-transition",
        json!({"model_name": "fis::experiment", "transition": {"progression": "manual", "times": times}}),
    )
    .await;
}

async fn default_transitions() {
    moto_api(
        "state-manager/unset-transition",
        json!({"model_name": "fis::experiment"}),
    )
    .await;
}

type Note = Box<dyn Fn(String) + Send + Sync>;
type Created = Box<dyn Fn(CreatedResource, &str) + Send + Sync>;

struct Env {
    clients: Clients,
    events: Mutex<Vec<EnvironmentEvent>>,
    clock: RunClock,
    poll: Duration,
    /// `aws.retries`: attempts per call in all (the default, 4).
    attempts: u32,
    /// The retry notes `aws::call` wrote (the provider journals them).
    notes: Arc<Mutex<Vec<String>>>,
    note: Note,
    /// What was recorded in the ledger of created resources, with its fate.
    ledger: Arc<Mutex<Vec<(CreatedResource, String)>>>,
    created: Created,
}

impl Env {
    fn moto() -> Env {
        Env::with(
            Clients::for_endpoint(&moto_url(), "us-east-1", None),
            Duration::from_millis(10),
        )
    }

    fn with(clients: Clients, poll: Duration) -> Env {
        let notes: Arc<Mutex<Vec<String>>> = Arc::default();
        let ledger: Arc<Mutex<Vec<(CreatedResource, String)>>> = Arc::default();
        let (n, l) = (notes.clone(), ledger.clone());
        Env {
            clients,
            events: Mutex::new(Vec::new()),
            clock: RunClock::start_now(),
            poll,
            attempts: AwsSettings::for_region("us-east-1").retries,
            notes,
            note: Box::new(move |m| n.lock().unwrap().push(m)),
            ledger,
            created: Box::new(move |r, fate| l.lock().unwrap().push((r, fate.to_string()))),
        }
    }

    fn ctx(&self) -> FisCtx<'_> {
        FisCtx {
            clients: &self.clients,
            run_id: "run-1",
            clock: self.clock,
            events: &self.events,
            poll_interval: self.poll,
            attempts: self.attempts,
            note: &*self.note,
            created: &*self.created,
            account: None,
        }
    }

    fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }

    fn ledger(&self) -> Vec<(CreatedResource, String)> {
        self.ledger.lock().unwrap().clone()
    }

    fn messages(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| format!("{}: {}", e.component, e.message))
            .collect()
    }
}

/// The `with:` of the power-interruption sample's FIS step, validated and in canonical form:
/// exactly what a provider receives.
fn sample_params(wait: bool) -> Json {
    let path = format!(
        "{}/experiments/fis-az-power-interruption.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let exp = firedrill::lang::spec::parse_experiment(&path, &std::fs::read(&path).unwrap(), &[])
        .unwrap();
    let step = exp
        .steps
        .iter()
        .find(|s| s.action.value == "fis.experiment")
        .unwrap();
    let mut p = step.with.json();
    p["wait"] = json!(wait);
    p
}

fn small_params() -> Json {
    json!({"template": {
        "description": "wait a minute",
        "roleArn": "arn:aws:iam::123456789012:role/fis",
        "stopConditions": [{"source": "none"}],
        "actions": {"hold": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}}},
    }})
}

// ---------------------------------------------------------------------------------------------
// Against moto.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inline_template_round_trip_create_start_poll_delete() {
    let _g = support::moto().await;
    fresh_moto(1).await;
    let env = Env::moto();
    let params = sample_params(true);
    let out = typed::inject(&env.ctx(), &params).await.unwrap();
    assert_eq!(out["state"], "completed", "{out}");
    assert_eq!(out["template_created"], true);
    assert_eq!(out["template_deleted"], true);
    assert_eq!(out["waited"], true);
    for a in [
        "pause-network",
        "stop-instances",
        "failover-rds",
        "hold-after-restart",
    ] {
        assert_eq!(out["actions"][a]["state"], "completed", "{a}: {out}");
    }
    let id = out["experiment_id"].as_str().unwrap();
    let tid = out["template_id"].as_str().unwrap();
    // The experiment carries the run's tags; the template is gone.
    let e = env
        .clients
        .fis
        .get_experiment()
        .id(id)
        .send()
        .await
        .unwrap();
    let tags = e.experiment().unwrap().tags().unwrap();
    assert_eq!(tags["firedrill:run-id"], "run-1");
    assert_eq!(
        tags["firedrill:params"],
        firedrill::lang::fis_template::params_digest(&params)
    );
    let gone = env
        .clients
        .fis
        .get_experiment_template()
        .id(tid)
        .send()
        .await;
    assert!(gone.is_err(), "template {tid} should be deleted");
    // The journal saw every step, in order.
    let m = env.messages();
    let pos = |needle: &str| {
        m.iter()
            .position(|x| x.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {m:#?}"))
    };
    assert!(pos("created experiment template") < pos("started experiment"));
    assert!(pos("experiment initiating") < pos("experiment running"));
    assert!(
        pos("action `stop-instances` (aws:ec2:stop-instances) running")
            < pos("experiment completed")
    );
    assert!(pos("experiment completed") < pos("deleted experiment template"));
    assert!(m.iter().all(|x| x.starts_with("fis ")), "{m:#?}");
    // The template and the experiment are in the ledger of created resources, once each.
    let ledger = env.ledger();
    assert_eq!(ledger.len(), 2, "{ledger:#?}");
    let (t, fate) = &ledger[0];
    assert_eq!((t.kind, t.name.as_str()), ("fis experiment template", tid));
    assert!(
        t.arn.contains(&format!("experiment-template/{tid}")),
        "{t:?}"
    );
    assert_eq!(
        t.cleanup,
        format!("aws fis delete-experiment-template --id {tid} --region us-east-1")
    );
    assert!(fate.contains("firedrill deletes it"), "{fate}");
    let (e, _) = &ledger[1];
    assert_eq!((e.kind, e.name.as_str()), ("fis experiment", id));
    assert_eq!(
        e.cleanup,
        format!("aws fis stop-experiment --id {id} --region us-east-1")
    );
    assert!(env.notes().is_empty(), "no retry: {:#?}", env.notes());
    // Nothing left to roll back.
    let r = typed::revert(&env.ctx(), &params, &out).await.unwrap();
    assert_eq!(r["stopped"], json!([]));
    assert_eq!(r["already_ended"][0]["state"], "completed");
}

#[tokio::test]
async fn the_created_template_is_the_inline_one_with_the_run_tags() {
    let _g = support::moto().await;
    fresh_moto(1).await;
    let env = Env::moto();
    let mut params = sample_params(false);
    params["delete_template"] = json!(false);
    params["template"]["logConfiguration"] = json!({"logSchemaVersion": 2,
        "cloudWatchLogsConfiguration": {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:fis:*"}});
    let out = typed::inject(&env.ctx(), &params).await.unwrap();
    assert_eq!(out["waited"], false);
    let tid = out["template_id"].as_str().unwrap();
    let t = env
        .clients
        .fis
        .get_experiment_template()
        .id(tid)
        .send()
        .await
        .unwrap();
    let t = t.experiment_template().unwrap();
    let actions = t.actions().unwrap();
    assert_eq!(
        actions["hold-after-restart"].start_after(),
        &["stop-instances".to_string()][..]
    );
    assert_eq!(
        actions["stop-instances"].parameters().unwrap()["completeIfInstancesTerminated"],
        "true"
    );
    assert_eq!(
        actions["failover-rds"].targets().unwrap()["Clusters"],
        "zone-writer"
    );
    let targets = t.targets().unwrap();
    assert_eq!(
        targets["zone-writer"].parameters().unwrap()["writerAvailabilityZoneIdentifiers"],
        "us-east-1a"
    );
    assert_eq!(targets["zone-instances"].filters().len(), 2);
    // The log configuration went through to AWS as written.
    let log = t
        .log_configuration()
        .expect("logConfiguration passed through");
    assert_eq!(log.log_schema_version(), Some(2));
    assert_eq!(
        log.cloud_watch_logs_configuration()
            .and_then(|c| c.log_group_arn()),
        Some("arn:aws:logs:us-east-1:123456789012:log-group:fis:*")
    );
    let tags = t.tags().unwrap();
    assert_eq!(tags["firedrill:run-id"], "run-1");
    assert_eq!(tags["scenario"], "az-power-interruption");
    // The rollback stops the experiment and, as asked, keeps the template.
    let r = typed::revert(&env.ctx(), &params, &out).await.unwrap();
    assert_eq!(r["stopped"][0]["state"], "stopped", "{r}");
    assert_eq!(r["templates_deleted"], json!([]));
    assert!(
        env.clients
            .fis
            .get_experiment_template()
            .id(tid)
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_abort_mid_poll_is_rolled_back_by_stopping_the_experiment_and_deleting_the_template() {
    let _g = support::moto().await;
    // Ten polls per state: the experiment is still running when the abort comes, even if this
    // test is scheduled late on a loaded machine.
    fresh_moto(10).await;
    let env = Env::moto();
    let params = sample_params(true);
    let ctx = env.ctx();
    let running = async {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if env
                .messages()
                .iter()
                .any(|m| m.contains("experiment running"))
            {
                break;
            }
        }
    };
    // The executor drops the step's future when a drill aborts.
    tokio::select! {
        r = typed::inject(&ctx, &params) => panic!("the experiment ended before the abort: {r:?}"),
        _ = running => {}
    }
    // The rollback gets no output (the step never returned) and finds what the step created.
    let r = typed::revert(&ctx, &params, &Json::Null).await.unwrap();
    assert_eq!(r["stopped"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["stopped"][0]["state"], "stopped");
    assert_eq!(r["templates_deleted"].as_array().unwrap().len(), 1);
    let id = r["stopped"][0]["experiment_id"].as_str().unwrap();
    let e = env
        .clients
        .fis
        .get_experiment()
        .id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.experiment().unwrap().state().unwrap().status(),
        Some(&ExperimentStatus::Stopped)
    );
    let left = env
        .clients
        .fis
        .list_experiment_templates()
        .send()
        .await
        .unwrap();
    assert!(left.experiment_templates().is_empty());
    let m = env.messages();
    assert!(m.iter().any(|x| x.contains("stop requested")), "{m:#?}");
    assert!(m.iter().any(|x| x.contains("experiment stopped")), "{m:#?}");
    default_transitions().await;
}

#[tokio::test]
async fn an_existing_template_runs_by_id_and_is_never_deleted() {
    let _g = support::moto().await;
    fresh_moto(1).await;
    let env = Env::moto();
    let t = env
        .clients
        .fis
        .create_experiment_template()
        .client_token("by-hand")
        .description("made by the platform team")
        .role_arn("arn:aws:iam::123456789012:role/fis")
        .stop_conditions(
            aws_sdk_fis::types::CreateExperimentTemplateStopConditionInput::builder()
                .source("none")
                .build()
                .unwrap(),
        )
        .actions(
            "hold",
            aws_sdk_fis::types::CreateExperimentTemplateActionInput::builder()
                .action_id("aws:fis:wait")
                .parameters("duration", "PT1M")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let tid = t.experiment_template().unwrap().id().unwrap().to_string();
    let params = json!({"template_id": tid});
    typed::preflight(&env.ctx(), &params).await.unwrap();
    let d = typed::describe(&env.ctx(), &params).await.unwrap();
    assert!(
        d.contains("made by the platform team") && d.contains("hold (aws:fis:wait)"),
        "{d}"
    );
    let out = typed::inject(&env.ctx(), &params).await.unwrap();
    assert_eq!(out["state"], "completed");
    assert_eq!(out["template_created"], false);
    assert_eq!(out["template_deleted"], false);
    typed::revert(&env.ctx(), &params, &out).await.unwrap();
    assert!(
        env.clients
            .fis
            .get_experiment_template()
            .id(&tid)
            .send()
            .await
            .is_ok(),
        "a template firedrill did not create is never deleted"
    );
}

#[tokio::test]
async fn an_unknown_template_id_is_a_clear_error_everywhere() {
    let _g = support::moto().await;
    fresh_moto(1).await;
    let env = Env::moto();
    let params = json!({"template_id": "EXTdoesnotexist"});
    for e in [
        typed::preflight(&env.ctx(), &params).await.unwrap_err(),
        typed::describe(&env.ctx(), &params)
            .await
            .map(|_| ())
            .unwrap_err(),
        typed::inject(&env.ctx(), &params)
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!((e).kind == ErrorKind::NotFound, "{e:?}");
        let m = e.to_string();
        assert!(
            m.contains("experiment template EXTdoesnotexist does not exist in us-east-1"),
            "{m}"
        );
        assert!(m.contains("aws fis list-experiment-templates"), "{m}");
    }
}

#[tokio::test]
async fn a_timeout_stops_the_experiment_and_deletes_the_template() {
    let _g = support::moto().await;
    // Twenty polls per state: still pending when the 100ms timeout comes.
    fresh_moto(20).await;
    let env = Env::moto();
    let mut params = small_params();
    params["timeout"] = json!("100ms");
    let e = typed::inject(&env.ctx(), &params).await.unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("did not end within 100ms; it was stopped (stopped)"),
        "{m}"
    );
    assert!(m.contains("was deleted"), "{m}");
    let left = env
        .clients
        .fis
        .list_experiment_templates()
        .send()
        .await
        .unwrap();
    assert!(left.experiment_templates().is_empty());
    default_transitions().await;
}

#[tokio::test]
async fn the_probe_reports_the_newest_experiment_of_the_run() {
    let _g = support::moto().await;
    fresh_moto(2).await;
    let env = Env::moto();
    let none = typed::observe(&env.ctx(), &json!({})).await.unwrap();
    assert_eq!(none["state"], "none");
    assert_eq!(none["experiments"], 0);
    let params = sample_params(false);
    let out = typed::inject(&env.ctx(), &params).await.unwrap();
    let p = typed::observe(&env.ctx(), &json!({})).await.unwrap();
    assert_eq!(p["id"], out["experiment_id"]);
    assert_eq!(p["running"], true, "{p}");
    assert_eq!(p["experiments"], 1);
    let other = typed::observe(&env.ctx(), &json!({"template_id": "EXTother"}))
        .await
        .unwrap();
    assert_eq!(other["state"], "none");
    // Inline preflight and describe read only.
    typed::preflight(&env.ctx(), &params).await.unwrap();
    let d = typed::describe(&env.ctx(), &params).await.unwrap();
    assert!(
        d.contains(
            "create FIS template \"AZ Availability: Power Interruption in us-east-1a\" in us-east-1"
        ),
        "{d}"
    );
    assert!(d.contains("t+10m hold-after-restart (aws:fis:wait)"), "{d}");
    typed::revert(&env.ctx(), &params, &out).await.unwrap();
    default_transitions().await;
}

// ---------------------------------------------------------------------------------------------
// With aws-smithy-mocks: what moto cannot produce.
// ---------------------------------------------------------------------------------------------

fn mocked(rules: &[&Rule]) -> Env {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for r in rules {
        interceptor = interceptor.with_rule(r);
    }
    let conf = aws_sdk_fis::Config::builder()
        .behavior_version(aws_sdk_fis::config::BehaviorVersion::latest())
        .region(aws_sdk_fis::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_fis::config::Credentials::for_tests())
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        // SDK retries off, as in the clients firedrill builds: `aws::call` retries.
        .retry_config(aws_sdk_fis::config::retry::RetryConfig::disabled())
        .build();
    // No request of the other clients is made; they point nowhere.
    let mut clients = Clients::for_endpoint("http://127.0.0.1:9", "us-east-1", None);
    clients.fis = aws_sdk_fis::Client::from_conf(conf);
    Env::with(clients, Duration::from_secs(1))
}

fn experiment(status: ExperimentStatus, reason: &str, error: Option<&str>) -> Experiment {
    let mut state = ExperimentState::builder().status(status).reason(reason);
    if let Some(code) = error {
        state = state.error(ExperimentError::builder().code(code).build());
    }
    Experiment::builder()
        .id("EXP1")
        .experiment_template_id("EXT1")
        .state(state.build())
        .actions(
            "hold",
            ExperimentAction::builder()
                .action_id("aws:fis:wait")
                .state(
                    ExperimentActionState::builder()
                        .status(ExperimentActionStatus::Running)
                        .reason("running")
                        .build(),
                )
                .build(),
        )
        .build()
}

fn create_ok() -> Rule {
    mock!(aws_sdk_fis::Client::create_experiment_template).then_output(|| {
        CreateExperimentTemplateOutput::builder()
            .experiment_template(ExperimentTemplate::builder().id("EXT1").build())
            .build()
    })
}

fn delete_ok() -> Rule {
    mock!(aws_sdk_fis::Client::delete_experiment_template)
        .then_output(|| DeleteExperimentTemplateOutput::builder().build())
}

fn start_ok() -> Rule {
    mock!(aws_sdk_fis::Client::start_experiment).then_output(|| {
        StartExperimentOutput::builder()
            .experiment(experiment(ExperimentStatus::Pending, "pending", None))
            .build()
    })
}

fn meta(code: &str, msg: &str) -> aws_sdk_fis::error::ErrorMetadata {
    aws_sdk_fis::error::ErrorMetadata::builder()
        .code(code)
        .message(msg)
        .build()
}

#[tokio::test(start_paused = true)]
async fn access_denied_names_the_iam_action_and_cleans_up_what_was_created() {
    let denied_start = mock!(aws_sdk_fis::Client::start_experiment).then_error(|| {
        StartExperimentError::generic(meta(
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: fis:StartExperiment",
        ))
    });
    let (create, delete) = (create_ok(), delete_ok());
    let env = mocked(&[&create, &denied_start, &delete]);
    let e = typed::inject(&env.ctx(), &small_params())
        .await
        .unwrap_err();
    assert!((e).kind == ErrorKind::Denied, "{e:?}");
    let m = e.to_string();
    // Through `aws::call`: the IAM action and the template's ARN, then what else starting needs.
    assert!(
        m.contains("may not `fis:StartExperiment` on `arn:aws:fis:us-east-1:<account>:experiment-template/EXT1`"),
        "{m}"
    );
    assert!(m.contains("grant `fis:StartExperiment`"), "{m}");
    assert!(m.contains("`fis:TagResource`"), "{m}");
    assert_eq!(denied_start.num_calls(), 1, "a denial is not retried: {m}");
    assert!(
        m.contains("the template EXT1 it created was deleted"),
        "{m}"
    );
    assert_eq!(delete.num_calls(), 1);

    let denied_create = mock!(aws_sdk_fis::Client::create_experiment_template)
        .then_error(|| CreateExperimentTemplateError::generic(meta("AccessDeniedException", "no")));
    let env = mocked(&[&denied_create]);
    let m = typed::inject(&env.ctx(), &small_params())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("`fis:CreateExperimentTemplate`") && m.contains("`iam:PassRole`"),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_template_is_invalid_input_naming_fis_s_reason() {
    let invalid = mock!(aws_sdk_fis::Client::create_experiment_template).then_error(|| {
        CreateExperimentTemplateError::ValidationException(
            aws_sdk_fis::types::error::ValidationException::builder()
                .message("Role ARN arn:aws:iam::123456789012:role/nope is not valid")
                .build(),
        )
    });
    let env = mocked(&[&invalid]);
    let e = typed::inject(&env.ctx(), &small_params())
        .await
        .unwrap_err();
    // FIS rejected what we sent: invalid input, not a missing target.
    assert!((e).kind == ErrorKind::InvalidInput, "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("`fis:CreateExperimentTemplate` rejected the input for template \"wait a minute\" (ValidationException: Role ARN arn:aws:iam::123456789012:role/nope is not valid)"),
        "{m}"
    );
    assert!(
        m.contains("fix the template (ARNs, role, parameters) and run again"),
        "{m}"
    );
    assert_eq!(invalid.num_calls(), 1, "rejected input is not retried");
    assert!(env.ledger().is_empty(), "nothing was created");
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_with_backoff_then_reported() {
    let throttled_then_done = mock!(aws_sdk_fis::Client::get_experiment)
        .sequence()
        .error(|| GetExperimentError::generic(meta("ThrottlingException", "Rate exceeded")))
        .times(2)
        .output(|| {
            GetExperimentOutput::builder()
                .experiment(experiment(ExperimentStatus::Completed, "done", None))
                .build()
        })
        .build();
    let (create, start, delete) = (create_ok(), start_ok(), delete_ok());
    let env = mocked(&[&create, &start, &throttled_then_done, &delete]);
    let t0 = tokio::time::Instant::now();
    let out = typed::inject(&env.ctx(), &small_params()).await.unwrap();
    assert_eq!(out["state"], "completed");
    assert_eq!(throttled_then_done.num_calls(), 3);
    // One poll interval, then the `aws.retries` policy's backoffs of 1s and 2s (FIS used to
    // have its own: 0.5s, 1s, ... for 5 attempts).
    assert_eq!(t0.elapsed(), Duration::from_secs(1 + 1 + 2));
    // Each retry is a note for the journal, as for RDS and Route 53.
    let notes = env.notes();
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(
        notes[0].contains(
            "`fis:GetExperiment` on experiment EXP1 failed (attempt 1 of 4), retrying in 1s"
        ) && notes[0].contains("ThrottlingException: Rate exceeded"),
        "{notes:#?}"
    );
    assert!(
        notes[1].contains("(attempt 2 of 4), retrying in 2s"),
        "{notes:#?}"
    );

    let always = mock!(aws_sdk_fis::Client::get_experiment)
        .then_error(|| GetExperimentError::generic(meta("ThrottlingException", "Rate exceeded")));
    let (create, start, delete) = (create_ok(), start_ok(), delete_ok());
    let env = mocked(&[&create, &start, &always, &delete]);
    let e = typed::inject(&env.ctx(), &small_params())
        .await
        .unwrap_err();
    let m = e.to_string();
    // `aws.retries` (4) attempts in all, not FIS's former 5.
    assert_eq!(always.num_calls(), env.attempts as usize);
    assert!(
        m.contains("`fis:GetExperiment` on experiment EXP1 is throttled by AWS (ThrottlingException: Rate exceeded)"),
        "{m}"
    );
    assert!(m.contains("gave up after 4 attempts over 7s"), "{m}");
    assert_eq!(env.notes().len(), 3, "{:#?}", env.notes());
    assert!(
        m.contains("lost track of FIS experiment EXP1") && m.contains("the rollback stops it"),
        "{m}"
    );
    assert!(m.contains("deletes the template EXT1"), "{m}");
    assert_eq!(
        delete.num_calls(),
        0,
        "the experiment may still run: the rollback deletes it"
    );
}

#[tokio::test(start_paused = true)]
async fn every_terminal_state_maps_to_a_step_outcome() {
    let cases: [(ExperimentStatus, Option<&str>, Result<(), &str>); 5] = [
        (ExperimentStatus::Completed, None, Ok(())),
        (
            ExperimentStatus::Stopped,
            None,
            Err(
                "was stopped before it completed (a stop condition fired, or someone stopped it): why",
            ),
        ),
        (
            ExperimentStatus::Failed,
            Some("InsufficientPermissions"),
            Err("failed: why (InsufficientPermissions)"),
        ),
        (ExperimentStatus::Cancelled, None, Err("was cancelled: why")),
        (
            ExperimentStatus::from("paused"),
            None,
            Err("is in state `paused` (why), which this firedrill does not know"),
        ),
    ];
    for (status, code, expect) in cases {
        let s = status.clone();
        let get = mock!(aws_sdk_fis::Client::get_experiment).then_output(move || {
            GetExperimentOutput::builder()
                .experiment(experiment(s.clone(), "why", code))
                .build()
        });
        let (create, start, delete) = (create_ok(), start_ok(), delete_ok());
        let env = mocked(&[&create, &start, &get, &delete]);
        let r = typed::inject(&env.ctx(), &small_params()).await;
        match expect {
            Ok(()) => assert_eq!(r.unwrap()["state"], "completed"),
            Err(needle) => {
                let m = r.unwrap_err().to_string();
                assert!(
                    m.contains(&format!("FIS experiment EXP1 {needle}")) || m.contains(needle),
                    "{status:?}: {m}"
                );
            }
        }
        let journaled = env
            .messages()
            .iter()
            .any(|m| m.contains(&format!("experiment {}", status.as_str())));
        assert!(journaled, "{status:?}: {:#?}", env.messages());
        // Ended (known) states clean up the template; an unknown one leaves it to the rollback.
        let cleaned = delete.num_calls() == 1;
        assert_eq!(cleaned, status.as_str() != "paused", "{status:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_rollback_stops_an_experiment_in_a_state_it_does_not_know() {
    use aws_sdk_fis::operation::stop_experiment::StopExperimentOutput;
    let get = mock!(aws_sdk_fis::Client::get_experiment)
        .sequence()
        .output(|| {
            GetExperimentOutput::builder()
                .experiment(experiment(ExperimentStatus::from("paused"), "why", None))
                .build()
        })
        .output(|| {
            GetExperimentOutput::builder()
                .experiment(experiment(ExperimentStatus::Stopped, "stopped", None))
                .build()
        })
        .build();
    let stop = mock!(aws_sdk_fis::Client::stop_experiment).then_output(|| {
        StopExperimentOutput::builder()
            .experiment(experiment(ExperimentStatus::Stopping, "stopping", None))
            .build()
    });
    let delete = delete_ok();
    let env = mocked(&[&get, &stop, &delete]);
    let out = json!({"experiment_id": "EXP1", "template_id": "EXT1", "template_created": true, "template_deleted": false});
    let r = typed::revert(&env.ctx(), &small_params(), &out)
        .await
        .unwrap();
    assert_eq!(stop.num_calls(), 1);
    assert_eq!(
        r["stopped"],
        json!([{"experiment_id": "EXP1", "state": "stopped"}])
    );
    assert_eq!(r["templates_deleted"], json!(["EXT1"]));
}

// ---------------------------------------------------------------------------------------------
// Timeouts: moto through a `Bridge` that leaves chosen requests unanswered, on the paused clock
// (the SDK's attempt timeout fires at once).
// ---------------------------------------------------------------------------------------------

fn is_start(r: &aws_smithy_runtime_api::client::orchestrator::HttpRequest) -> bool {
    r.method() == "POST" && r.uri().trim_end_matches('/').ends_with("/experiments")
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_start_is_not_retried_and_says_its_outcome_is_unknown() {
    let m = support::moto().await;
    let bridge = Bridge::new();
    bridge.hang(is_start);
    let env = Env::with(
        support::clients(&m, &bridge, "us-east-1", None),
        Duration::from_millis(10),
    );
    let t0 = tokio::time::Instant::now();
    let e = typed::inject(&env.ctx(), &small_params())
        .await
        .unwrap_err();
    let msg = e.to_string();
    let starts = bridge
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("POST ") && l.trim_end_matches('/').ends_with("/experiments"))
        .count();
    // StartExperiment changes something: FIS may have started it, so it is sent once.
    assert_eq!(starts, 1, "{:#?}", bridge.log.lock().unwrap());
    assert!(env.notes().is_empty(), "no retry: {:#?}", env.notes());
    assert_eq!(
        t0.elapsed(),
        firedrill::backend::aws::clients::ATTEMPT_TIMEOUT,
        "one attempt, no backoff"
    );
    assert!(msg.contains("`fis:StartExperiment`"), "{msg}");
    assert!(
        msg.contains(
            "timed out after the request was sent, so AWS may or may not have acted on it"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("tagged firedrill:run-id=run-1 and the step's rollback finds and stops it"),
        "{msg}"
    );
    assert!(msg.contains("it created was deleted"), "{msg}");
    // The template was created (and recorded) before the start; no experiment is recorded.
    let ledger = env.ledger();
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    assert_eq!(ledger[0].0.kind, "fis experiment template");
    let left = env
        .clients
        .fis
        .list_experiment_templates()
        .send()
        .await
        .unwrap();
    assert!(left.experiment_templates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_read_is_retried_and_the_retry_is_noted() {
    let m = support::moto().await;
    let bridge = Bridge::new();
    let env = Env::with(
        support::clients(&m, &bridge, "us-east-1", None),
        Duration::from_millis(10),
    );
    // The first GetExperimentTemplate gets no answer; the second goes through.
    let hung = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = hung.clone();
    bridge.hang(move |r| {
        r.method() == "GET"
            && r.uri().contains("/experimentTemplates/")
            && !h.swap(true, std::sync::atomic::Ordering::SeqCst)
    });
    let t = env
        .clients
        .fis
        .create_experiment_template()
        .client_token("by-hand")
        .description("made by the platform team")
        .role_arn("arn:aws:iam::123456789012:role/fis")
        .stop_conditions(
            aws_sdk_fis::types::CreateExperimentTemplateStopConditionInput::builder()
                .source("none")
                .build()
                .unwrap(),
        )
        .actions(
            "hold",
            aws_sdk_fis::types::CreateExperimentTemplateActionInput::builder()
                .action_id("aws:fis:wait")
                .parameters("duration", "PT1M")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let tid = t.experiment_template().unwrap().id().unwrap().to_string();
    let t0 = tokio::time::Instant::now();
    typed::preflight(&env.ctx(), &json!({"template_id": tid}))
        .await
        .expect("retried after the timeout");
    assert_eq!(
        t0.elapsed(),
        firedrill::backend::aws::clients::ATTEMPT_TIMEOUT + Duration::from_secs(1),
        "one timed-out attempt, then the first backoff"
    );
    let notes = env.notes();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(
        notes[0].contains(&format!(
            "`fis:GetExperimentTemplate` on experiment template {tid} failed (attempt 1 of 4), retrying in 1s"
        )),
        "{notes:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Through the AWS provider (what the executor calls): dispatch, preflight, the run's tags and
// the FIS notes reaching `drain_events`.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_aws_provider_serves_fis_experiments_end_to_end() {
    use firedrill::backend::aws::{AwsProvider, AwsSettings};
    use firedrill::backend::{Call, Provider, RunContext};
    let _g = support::moto().await;
    fresh_moto(1).await;
    let mut settings = AwsSettings::for_region("us-east-1");
    settings.endpoint_url = Some(moto_url());
    settings.poll_interval = Duration::from_millis(10);
    let p = AwsProvider::from_clients(
        settings,
        Clients::for_endpoint(&moto_url(), "us-east-1", None),
    );
    p.start(&RunContext {
        clock: RunClock::start_now(),
        run_id: "run-provider".into(),
        experiment: "fis-az-power-interruption".into(),
    });
    assert!(p.supports("fis.experiment"));
    let params = small_params();
    let calls = [Call::new("step `fis`".into(), "fis.experiment", params.clone(), true).unwrap()];
    let problems = p.preflight(&calls).await;
    assert!(problems.is_empty(), "{problems:#?}");
    let described = p.describe_json("fis.experiment", &params).await.unwrap();
    assert!(!described.is_empty());
    let out = p.inject_json("fis.experiment", &params).await.unwrap();
    assert_eq!(out["state"], "completed", "{out}");
    let id = out["experiment_id"].as_str().unwrap();
    let clients = Clients::for_endpoint(&moto_url(), "us-east-1", None);
    let e = clients.fis.get_experiment().id(id).send().await.unwrap();
    assert_eq!(
        e.experiment().unwrap().tags().unwrap()["firedrill:run-id"],
        "run-provider"
    );
    let probe = p.observe_json("fis.experiment", &json!({})).await.unwrap();
    assert_eq!(probe["id"], id, "{probe}");
    let notes = p.drain_events();
    assert!(
        notes
            .iter()
            .any(|n| n.component.starts_with("fis ") && n.message.contains("started experiment")),
        "{notes:#?}"
    );
    assert!(p.drain_events().is_empty(), "drained once");
    // The template and the experiment are in the provider's ledger, journaled once each.
    let created: Vec<&Json> = notes
        .iter()
        .filter_map(|n| n.detail.as_ref())
        .filter(|d| d["kind"] == "aws_resource_created")
        .collect();
    assert_eq!(created.len(), 2, "{notes:#?}");
    assert_eq!(created[0]["resource_type"], "fis experiment template");
    assert_eq!(created[1]["resource_type"], "fis experiment");
    assert_eq!(created[1]["name"], id);
    let ledger = p.created_resources();
    assert_eq!(ledger.len(), 2, "{ledger:#?}");
    assert_eq!(ledger[1].name, id);
    let r = p
        .revert_json("fis.experiment", &params, &out)
        .await
        .unwrap();
    assert_eq!(r["stopped"], json!([]));
}

#[tokio::test(start_paused = true)]
async fn through_the_provider_fis_retries_follow_aws_retries_and_are_journaled() {
    use firedrill::backend::aws::AwsProvider;
    use firedrill::backend::{Provider, RunContext};
    let get = mock!(aws_sdk_fis::Client::get_experiment)
        .sequence()
        .error(|| GetExperimentError::generic(meta("ThrottlingException", "Rate exceeded")))
        .output(|| {
            GetExperimentOutput::builder()
                .experiment(experiment(ExperimentStatus::Completed, "done", None))
                .build()
        })
        .build();
    let (create, start, delete) = (create_ok(), start_ok(), delete_ok());
    let env = mocked(&[&create, &start, &get, &delete]);
    let mut settings = AwsSettings::for_region("us-east-1");
    settings.poll_interval = Duration::from_secs(1);
    settings.retries = 3;
    let p = AwsProvider::from_clients(settings, env.clients.clone());
    p.start(&RunContext {
        clock: RunClock::start_now(),
        run_id: "run-provider".into(),
        experiment: "fis".into(),
    });
    let out = p
        .inject_json("fis.experiment", &small_params())
        .await
        .unwrap();
    assert_eq!(out["state"], "completed");
    assert_eq!(get.num_calls(), 2);
    let events = p.drain_events();
    // The retry is an `aws` note, as for RDS and Route 53, with the `aws.retries` bound.
    let retries: Vec<&EnvironmentEvent> = events
        .iter()
        .filter(|e| e.message.contains("retrying in"))
        .collect();
    assert_eq!(retries.len(), 1, "{events:#?}");
    assert_eq!(retries[0].component, "aws");
    assert!(
        retries[0].message.contains(
            "`fis:GetExperiment` on experiment EXP1 failed (attempt 1 of 3), retrying in 1s"
        ),
        "{events:#?}"
    );
    // One FIS event and one ledger note per creation, nothing twice.
    let about = |needle: &str| events.iter().filter(|e| e.message.contains(needle)).count();
    assert_eq!(about("created experiment template EXT1"), 1, "{events:#?}");
    assert_eq!(
        about("created fis experiment template EXT1"),
        1,
        "{events:#?}"
    );
    assert_eq!(about("started experiment EXP1"), 1, "{events:#?}");
    assert_eq!(about("created fis experiment EXP1"), 1, "{events:#?}");
    let ledger = p.created_resources();
    assert_eq!(ledger.len(), 2, "{ledger:#?}");
    assert_eq!(
        ledger[0].arn,
        "arn:aws:fis:us-east-1:<account>:experiment-template/EXT1"
    );
    assert_eq!(
        ledger[1].cleanup,
        "aws fis stop-experiment --id EXP1 --region us-east-1"
    );
}

#[tokio::test]
async fn an_unknown_template_id_is_a_preflight_problem_through_the_provider() {
    use firedrill::backend::aws::{AwsProvider, AwsSettings};
    use firedrill::backend::{Call, Provider};
    let _g = support::moto().await;
    fresh_moto(1).await;
    let mut settings = AwsSettings::for_region("us-east-1");
    settings.endpoint_url = Some(moto_url());
    let p = AwsProvider::from_clients(
        settings,
        Clients::for_endpoint(&moto_url(), "us-east-1", None),
    );
    let calls = [Call::new(
        "step `fis`".into(),
        "fis.experiment",
        json!({"template_id": "EXT0000000000000"}),
        true,
    )
    .unwrap()];
    let problems = p.preflight(&calls).await;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].error.to_string().contains("EXT0000000000000"),
        "{}",
        problems[0].error
    );
}
