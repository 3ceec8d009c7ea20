//! `Drill`: the one way to run an experiment against a provider, for the CLI, the game-day
//! runner and tests. It wires the plan, the event emitter and its sinks, the run options and the
//! interrupt channel, and calls [`executor::execute`]; every knob has the CLI's default.
//!
//! ```ignore
//! let outcome = Drill::new(exp, provider).seed(42).sink(memory.clone()).run().await;
//! ```

use super::clock::RunClock;
use super::executor::{
    self, Approver, Emitter, MemorySink, Outcome, RollbackPolicy, RunOptions, Sink,
};
use crate::backend::Provider;
use crate::lang::spec::Experiment;
use std::sync::Arc;
use tokio::sync::watch;

/// A drill ready to run: an experiment, the provider it runs against, and its options.
pub struct Drill {
    exp: Arc<Experiment>,
    provider: Arc<dyn Provider>,
    clock: Option<RunClock>,
    sinks: Vec<Box<dyn Sink>>,
    interrupts: Option<watch::Receiver<u32>>,
    opts: RunOptions,
}

impl Drill {
    /// A drill with the CLI's defaults: run id `drill`, 8 steps at once, rollbacks always,
    /// nothing pre-approved and no operator (approvals fail closed), virtual-clock labels.
    pub fn new(exp: impl Into<Arc<Experiment>>, provider: Arc<dyn Provider>) -> Drill {
        let backend = provider.backend().to_string();
        Drill {
            exp: exp.into(),
            provider,
            clock: None,
            sinks: Vec::new(),
            interrupts: None,
            opts: RunOptions {
                run_id: "drill".into(),
                concurrency: 8,
                rollback: RollbackPolicy::Always,
                approve: false,
                approver: None,
                environment: "sim".into(),
                backend,
                clock_kind: "virtual".into(),
                seed: None,
                environment_doc: None,
                overrides: Default::default(),
            },
        }
    }

    pub fn run_id(mut self, id: impl Into<String>) -> Drill {
        self.opts.run_id = id.into();
        self
    }
    pub fn concurrency(mut self, n: usize) -> Drill {
        self.opts.concurrency = n;
        self
    }
    pub fn rollback(mut self, policy: RollbackPolicy) -> Drill {
        self.opts.rollback = policy;
        self
    }
    /// `--approve`: pre-approve every approval step.
    pub fn approve(mut self, yes: bool) -> Drill {
        self.opts.approve = yes;
        self
    }
    /// Ask an operator at approval steps.
    pub fn approver(mut self, ask: Option<Approver>) -> Drill {
        self.opts.approver = ask;
        self
    }
    /// The environment's name, for the journal.
    pub fn environment(mut self, name: impl Into<String>) -> Drill {
        self.opts.environment = name.into();
        self
    }
    /// The environment's document and `--set` overrides, journaled so that `firedrill recover`
    /// can reach the environment again after a crash.
    pub fn environment_doc(mut self, doc: Option<super::events::EnvironmentDoc>) -> Drill {
        self.opts.environment_doc = doc;
        self
    }
    /// `--var` and `--seed` given for this run, for the journal.
    pub fn overrides(mut self, o: super::events::Overrides) -> Drill {
        self.opts.overrides = o;
        self
    }
    /// `virtual` or `wall`, for the journal.
    pub fn clock_kind(mut self, kind: impl Into<String>) -> Drill {
        self.opts.clock_kind = kind.into();
        self
    }
    /// The simulated estate's seed, for the journal.
    pub fn seed(mut self, seed: u64) -> Drill {
        self.opts.seed = Some(seed);
        self
    }
    /// The run clock (default: started when the drill runs).
    pub fn clock(mut self, clock: RunClock) -> Drill {
        self.clock = Some(clock);
        self
    }
    /// Another consumer of the event stream (journal, progress, memory).
    pub fn sink(mut self, sink: impl Sink + 'static) -> Drill {
        self.sinks.push(Box::new(sink));
        self
    }
    pub fn sinks(mut self, sinks: Vec<Box<dyn Sink>>) -> Drill {
        self.sinks.extend(sinks);
        self
    }
    /// The interrupt counter (Ctrl-C): 1 rolls back gracefully, 2 stops at once.
    pub fn interrupts(mut self, rx: watch::Receiver<u32>) -> Drill {
        self.interrupts = Some(rx);
        self
    }

    /// Run it to its verdict.
    pub async fn run(self) -> Outcome {
        self.run_with_emitter().await.0
    }

    /// Run it; also hand back the emitter (its sink errors).
    pub async fn run_with_emitter(self) -> (Outcome, Emitter) {
        let clock = self.clock.unwrap_or_else(RunClock::start_now);
        let emitter = Emitter::new(clock, self.sinks)
            .with_redactor(crate::lang::secrets::Redactor::new(&self.exp.secrets));
        let plan = Arc::new(crate::lang::plan::plan(&self.exp));
        // With no interrupt channel, one that never fires (its sender lives as long as the run).
        let (tx, rx) = watch::channel(0u32);
        let rx = self.interrupts.unwrap_or(rx);
        let outcome = executor::execute(
            self.exp,
            plan,
            self.provider,
            emitter.clone(),
            clock,
            self.opts,
            rx,
        )
        .await;
        drop(tx);
        (outcome, emitter)
    }

    /// Run it with an in-memory journal; returns the verdict and every record.
    pub async fn run_recorded(self) -> (Outcome, Vec<super::events::Record>) {
        let memory = MemorySink::default();
        let (outcome, _) = self.sink(memory.clone()).run_with_emitter().await;
        let records = memory.0.lock().expect("memory sink").clone();
        (outcome, records)
    }
}
