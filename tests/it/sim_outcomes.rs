//! The simulated estate through the whole engine: outcomes follow from parameters.

use firedrill::backend::sim::SimProvider;
use firedrill::engine::drill::Drill;
use firedrill::engine::events::VerdictKind;
use firedrill::engine::executor::Outcome;
use firedrill::sim::model::SimParams;
use std::sync::Arc;
use std::time::Duration;

async fn drill(file: &str, sets: &[(&str, &str)]) -> Outcome {
    let path = format!("{}/experiments/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let exp = firedrill::lang::spec::parse_experiment(&path, &bytes, &[]).unwrap();
    let sets: Vec<(String, String)> = sets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = firedrill::lang::environment::builtin(&sets).unwrap();
    let provider = SimProvider::new(&env, None).unwrap();
    Drill::new(exp, Arc::new(provider))
        .run_id("test")
        .environment(env.name.clone())
        .seed(42)
        .run()
        .await
}

fn measured(o: &Outcome, name: &str) -> Option<Duration> {
    o.measurements
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| m.measured_ms)
        .map(Duration::from_millis)
}

#[test]
fn sim_yaml_is_the_default_estate() {
    let env = firedrill::lang::environment::builtin(&[]).unwrap();
    let params: SimParams =
        serde_json::from_value(env.settings(firedrill::lang::environment::Backend::Sim)).unwrap();
    assert_eq!(params, SimParams::default());
}

#[test]
fn an_empty_sim_section_is_the_reference_estate_and_a_partial_one_overrides_only_its_sections() {
    let parse = |sim: &str| {
        let src = format!(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {{name: e}}\nbackend: sim\nsim: {sim}\n"
        );
        let env =
            firedrill::lang::environment::parse_environment("e.yaml", src.as_bytes(), &[]).unwrap();
        serde_json::from_value::<SimParams>(
            env.settings(firedrill::lang::environment::Backend::Sim),
        )
        .unwrap()
    };
    assert_eq!(parse("{}"), SimParams::default());
    let p = parse("{seed: 7}");
    assert_eq!(p.seed, 7);
    assert_eq!(p.kubernetes, SimParams::default().kubernetes);
}

/// Region failover: clients reach DR once the health check has failed `threshold` times (at a
/// seeded phase within one interval) and the TTL has expired, so with a long TTL
/// RTO ∈ [interval × (threshold − 1) + TTL, interval × threshold + TTL + one poll interval].
#[tokio::test(start_paused = true)]
async fn dns_failover_rto_follows_interval_threshold_and_ttl() {
    let (interval, poll) = (30u64, 15u64);
    let mut last = Duration::ZERO;
    for (ttl, threshold) in [(300u64, 3u64), (600, 3), (300, 5)] {
        let ttl_s = format!("{ttl}s");
        let thr = threshold.to_string();
        let o = drill(
            "region-failover.yaml",
            &[
                ("sim.dns[0].ttl", &ttl_s),
                ("sim.dns[0].health_check.failure_threshold", &thr),
            ],
        )
        .await;
        let rto = measured(&o, "rto").expect("recovered").as_secs();
        let low = interval * (threshold - 1) + ttl;
        let high = interval * threshold + ttl + poll;
        assert!(
            (low..=high).contains(&rto),
            "ttl {ttl}s threshold {threshold}: RTO {rto}s not in [{low}, {high}]"
        );
        assert_eq!(o.verdict, VerdictKind::Pass);
        if threshold == 3 {
            assert!(
                Duration::from_secs(rto) > last,
                "a longer TTL must lengthen the RTO"
            );
            last = Duration::from_secs(rto);
        }
    }
    // A 1h TTL cannot meet a 15m RTO.
    let o = drill("region-failover.yaml", &[("sim.dns[0].ttl", "1h")]).await;
    assert_eq!(o.verdict, VerdictKind::Missed);
    assert_eq!(measured(&o, "rto"), None);
}

/// Point-in-time restore: RTO ≈ restore_base + size × per_gib; RPO = the restorable-time lag.
#[tokio::test(start_paused = true)]
async fn pitr_figures_follow_restore_parameters() {
    for (size, lag) in [(50u64, 300u64), (100, 120)] {
        let (size_s, lag_s) = (size.to_string(), format!("{lag}s"));
        let o = drill(
            "pitr-restore.yaml",
            &[
                ("sim.databases[0].backups.size_gib", &size_s),
                ("sim.databases[0].backups.restorable_lag", &lag_s),
            ],
        )
        .await;
        let restore = 8 * 60 + size * 5;
        let rto = measured(&o, "rto").unwrap().as_secs();
        assert!(
            (restore..=restore + 10 + 10).contains(&rto),
            "size {size}: RTO {rto}s, restore {restore}s"
        );
        let rpo = measured(&o, "rpo").unwrap().as_secs();
        assert!((lag - 1..=lag + 1).contains(&rpo), "lag {lag}s: RPO {rpo}s");
    }
}

/// Unplanned global failover loses the replication lag.
#[tokio::test(start_paused = true)]
async fn region_failover_rpo_is_the_replication_lag() {
    for lag in [1u64, 20] {
        let l = format!("{lag}s");
        let o = drill(
            "region-failover.yaml",
            &[("sim.databases[0].global.replication_lag", &l)],
        )
        .await;
        let rpo = measured(&o, "rpo").unwrap().as_secs();
        assert!((lag..=lag + 1).contains(&rpo), "lag {lag}s: RPO {rpo}s");
    }
}
