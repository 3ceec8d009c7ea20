//! Drill benchmark: for every sample experiment, parse + plan + execute against the built-in
//! simulated estate on a paused (virtual-time) runtime, the same path as `firedrill run` minus
//! the files. Prints figures; asserts nothing. Run with `cargo bench --bench drills`.

use firedrill::backend::Provider;
use firedrill::backend::sim::SimProvider;
use firedrill::engine::clock::RunClock;
use firedrill::engine::executor::{self, Emitter, MemorySink, RollbackPolicy, RunOptions, Sink};
use firedrill::report::summary::RunSummary;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 20;
const VALIDATIONS: usize = 200;

/// `experiments/` of this crate, or the directory in `FIREDRILL_BENCH_EXPERIMENTS`.
fn samples() -> Vec<PathBuf> {
    let dir = std::env::var_os("FIREDRILL_BENCH_EXPERIMENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments"));
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("experiments/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    v
}

/// One drill, end to end in memory: (simulated span, verdict).
fn drill(file: &str, bytes: &[u8]) -> (Duration, String) {
    let exp = firedrill::lang::spec::parse_experiment(file, bytes, &[]).expect("valid sample");
    let plan = firedrill::lang::plan::plan(&exp);
    let env = firedrill::lang::environment::builtin(&[]).expect("built-in sim");
    let provider = SimProvider::new(&env, None).expect("sim provider");
    let seed = provider.seed();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let clock = RunClock::start_now();
        let memory = MemorySink::default();
        let sinks: Vec<Box<dyn Sink>> = vec![Box::new(memory.clone())];
        let emitter = Emitter::new(clock, sinks);
        let (_int_tx, int_rx) = tokio::sync::watch::channel(0u32);
        let opts = RunOptions {
            run_id: format!("bench-{}", exp.metadata.name),
            concurrency: 8,
            rollback: RollbackPolicy::Always,
            approve: true,
            approver: None,
            environment: env.name.clone(),
            backend: provider.backend().to_string(),
            clock_kind: "virtual".into(),
            seed: Some(seed),
            environment_doc: None,
            overrides: Default::default(),
        };
        let outcome = executor::execute(
            Arc::new(exp),
            Arc::new(plan),
            Arc::new(provider),
            emitter,
            clock,
            opts,
            int_rx,
        )
        .await;
        let records = memory.0.lock().expect("memory sink").clone();
        let summary = RunSummary::from_records(&records);
        (
            Duration::from_millis(summary.duration_ms),
            format!("{:?}", outcome.verdict),
        )
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "n/a".into())
}

fn main() {
    let files: Vec<(String, Vec<u8>)> = samples()
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read sample");
            (p.display().to_string(), bytes)
        })
        .collect();
    if files.is_empty() {
        println!("no sample experiments in experiments/");
        return;
    }

    println!("firedrill drills: {RUNS} runs each, built-in sim, virtual clock\n");
    println!(
        "{:<20} {:>10} {:>12} {:>12} {:>12}  verdict",
        "drill", "span", "median wall", "p95 wall", "speed-up"
    );
    for (file, bytes) in &files {
        let name = Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut walls = Vec::with_capacity(RUNS);
        let mut span = Duration::ZERO;
        let mut verdict = String::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            let (s, v) = drill(file, bytes);
            walls.push(t.elapsed());
            span = s;
            verdict = v;
        }
        walls.sort();
        let median = percentile(&walls, 0.5);
        let speedup = span.as_secs_f64() / median.as_secs_f64().max(1e-9);
        println!(
            "{:<20} {:>10} {:>12} {:>12} {:>11.0}x  {}",
            name,
            firedrill::lang::duration::format(span),
            ms(median),
            ms(percentile(&walls, 0.95)),
            speedup,
            verdict
        );
    }

    let mut times = Vec::with_capacity(VALIDATIONS);
    for _ in 0..VALIDATIONS {
        let t = Instant::now();
        for (file, bytes) in &files {
            let exp = firedrill::lang::spec::parse_experiment(file, bytes, &[]);
            std::hint::black_box(exp.is_ok());
        }
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "\nvalidate all {} sample(s): median {}, p95 {} ({VALIDATIONS} rounds)",
        files.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95))
    );
    println!("peak RSS (VmHWM): {}", peak_rss());
}
