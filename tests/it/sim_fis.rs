//! FIS experiments on the simulated estate through the whole engine (virtual time): the sample
//! power-interruption drill passes with its recovery measured while the experiment still runs,
//! and an abort during a waiting FIS step is rolled back by stopping the experiment.

use firedrill::backend::ProviderExt;
use firedrill::backend::sim::SimProvider;
use firedrill::engine::drill::Drill;
use firedrill::engine::events::{Event, Record, VerdictKind};
use firedrill::engine::executor::Outcome;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const SAMPLE: &str = "experiments/fis-az-power-interruption.yaml";

fn sample() -> String {
    std::fs::read_to_string(format!("{}/{SAMPLE}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn drill(text: &str) -> (Outcome, Vec<Record>, Arc<SimProvider>) {
    let exp = firedrill::lang::spec::parse_experiment(SAMPLE, text.as_bytes(), &[])
        .unwrap_or_else(|d| panic!("{}", firedrill::lang::diag::render_all(&d, Some(text))));
    let env = firedrill::lang::environment::builtin(&[]).unwrap();
    let provider = Arc::new(SimProvider::new(&env, None).unwrap());
    let (outcome, records) = Drill::new(exp, provider.clone())
        .run_id("test")
        .environment(env.name.clone())
        .seed(42)
        .run_recorded()
        .await;
    (outcome, records, provider)
}

fn measured(o: &Outcome, name: &str) -> Option<Duration> {
    o.measurements
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| m.measured_ms)
        .map(Duration::from_millis)
}

fn env_messages(records: &[Record]) -> Vec<(u64, String, String)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::EnvironmentEvent {
                at_ms,
                component,
                message,
                ..
            } => Some((*at_ms, component.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_power_interruption_sample_passes_and_journals_every_fis_action() {
    let (o, records, provider) = drill(&sample()).await;
    assert_eq!(o.verdict, VerdictKind::Pass, "{:?}", o.reasons);
    // Recovery is measured while the experiment holds the zone down (wait: false): pods are
    // rescheduled after node detection (40s) + eviction (1m) + start-up, well before the
    // instances come back at 10m.
    let rto = measured(&o, "rto").unwrap();
    assert!(
        rto > Duration::from_secs(100) && rto < Duration::from_secs(240),
        "{rto:?}"
    );
    // The writer was failed over by FIS (35s), and the alert fired after 30s of no writes.
    assert_eq!(measured(&o, "mttd"), Some(Duration::from_secs(30)));
    let ev = env_messages(&records);
    let fis: Vec<&(u64, String, String)> = ev
        .iter()
        .filter(|(_, c, _)| c.starts_with("fis "))
        .collect();
    let at = |needle: &str| {
        fis.iter()
            .find(|(_, _, m)| m.contains(needle))
            .map(|(t, _, _)| *t)
            .unwrap_or_else(|| panic!("no `{needle}` in {fis:#?}"))
    };
    assert_eq!(
        at("action `pause-network` (aws:network:disrupt-connectivity) running"),
        0
    );
    assert_eq!(
        at("action `pause-network` (aws:network:disrupt-connectivity) completed"),
        120_000
    );
    assert_eq!(
        at("action `stop-instances` (aws:ec2:stop-instances) completed"),
        600_000
    );
    assert_eq!(
        at("action `hold-after-restart` (aws:fis:wait) running"),
        600_000
    );
    assert_eq!(at("experiment completed"), 900_000);
    let restored = ev
        .iter()
        .find(|(_, c, m)| c == "zone us-east-1a" && m.starts_with("power restored"))
        .unwrap();
    assert_eq!(
        restored.0, 600_000,
        "the zone is held until the instances restart"
    );
    let probe = provider
        .observe_json("fis.experiment", &json!({}))
        .await
        .unwrap();
    assert_eq!(probe["state"], "completed");
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_waiting_on_the_experiment_stops_it_in_the_rollback() {
    // Wait on the experiment, and abort as soon as writes fail for 20s.
    let text = sample()
        .replace("      wait: false\n", "      wait: true\n")
        .replace(
            "{probe: api-error-rate, above: 0.05, for: 5m}",
            "{probe: api-error-rate, above: 0.05, for: 20s}",
        );
    let (o, records, provider) = drill(&text).await;
    assert_eq!(o.verdict, VerdictKind::Aborted, "{:?}", o.reasons);
    let rollback = records
        .iter()
        .find_map(|r| match &r.event {
            Event::RollbackFinished { step, ok, .. } if step == "power-interruption" => Some(*ok),
            _ => None,
        })
        .expect("the FIS step is rolled back");
    assert!(rollback, "the rollback stopped the experiment");
    let probe = provider
        .observe_json("fis.experiment", &json!({}))
        .await
        .unwrap();
    assert_eq!(probe["state"], "stopped", "{probe}");
    assert_eq!(probe["actions"]["stop-instances"], "stopped");
    assert_eq!(probe["actions"]["hold-after-restart"], "cancelled");
    let ev = env_messages(&records);
    let stopped = ev
        .iter()
        .find(|(_, _, m)| m.starts_with("experiment stopped"))
        .expect("the stop is journaled");
    let restored = ev
        .iter()
        .find(|(_, c, m)| c == "zone us-east-1a" && m.starts_with("power restored"))
        .expect("the stop restored the zone");
    assert_eq!(stopped.0, restored.0);
    assert!(
        stopped.0 < 600_000,
        "stopped before the instances would restart"
    );
}
