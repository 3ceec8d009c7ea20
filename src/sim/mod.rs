//! Embedded simulated estate: a pure, synchronous, deterministic discrete-event model of an
//! estate like our users' (a healthcare SaaS on EKS + Aurora PostgreSQL Global Database +
//! Route 53 failover). No async, no IO, no wall clock.
//!
//! Time is a [`std::time::Duration`] offset from the estate's start. Every public action and
//! observation of [`model::Estate`] takes the time `at` first and advances the model to it
//! (processing queued events in `(time, seq)` order; it never goes backwards). Outcomes follow
//! from [`model::SimParams`], never from canned answers. Randomness (a seeded SplitMix64) is
//! used only for pod start-up jitter, the health-check phase offset and which pods a kill picks,
//! so the same seed gives identical results.
//!
//! # Model rules
//!
//! **Pods.** A pod belongs to a deployment and is Pending (no capacity), Starting (until its
//! start-up ends) or Ready. The scheduler places a pod on a Ready, schedulable node with a free
//! slot (`pods_per_node`), preferring the zone with the fewest pods of that deployment, then the
//! node with the fewest pods, then the first node (deterministic). Pending pods are retried when
//! capacity returns (uncordon, zone restored, scale down). A pod serves only while Ready on a
//! Ready node. Start-up = `startup` + uniform jitter in ±`startup_jitter` (never negative).
//! At time 0 every desired pod is already Ready.
//!
//! **Pod deletion** (kill, drain, eviction): pods go at once; the ReplicaSet creates replacements
//! after `reschedule_delay`, Ready after start-up. `restarts` counts replacement pods created.
//!
//! **Zone loss** (power interruption): the zone's nodes are NotReady and their pods stop serving
//! at once. After `node_failure_detection` the nodes are noticed NotReady (logged); after a further
//! `pod_eviction_timeout` their pods are evicted (and replaced as above on other zones' nodes, or
//! Pending if there is no capacity). DB instances in the zone go down; if one was a writer, after
//! `failure_detection` the first healthy reader (instance order) is promoted, which takes
//! `failover_time`. Writes fail from the loss until the promotion completes. Storage is shared:
//! no data loss. With no healthy reader the cluster stays unavailable until the writer's zone is
//! back. Zone restore: nodes Ready (pods not yet evicted serve again), instances back (as readers
//! unless still the writer), Pending pods scheduled.
//!
//! **Region loss**: every zone of the region is lost (as above) and the region's endpoint is
//! unreachable. There is no automatic cross-region failover. Restore reverses it; a cluster that
//! was detached by a global failover meanwhile comes back as a standalone writer holding the
//! data it had (nothing writes to it any more).
//!
//! **Cordon / drain**: cordon makes the zone's nodes unschedulable; drain cordons and evicts the
//! pods (replacements elsewhere after `reschedule_delay`). Scale returns the previous replica count;
//! scale-down removes Pending, then Starting, then newest pods.
//!
//! **In-cluster DB failover** (manual, optional target): the cluster is `failing-over` (not
//! writable) for `failover_time`, then the target (or the first healthy reader) is the writer; an
//! error if there is no eligible reader. `db_reboot` with `force_failover` on the writer behaves
//! like a failover; otherwise the instance is down for [`model::DB_REBOOT_TIME`] (20s; the writer's
//! cluster is unwritable meanwhile, no automatic failover).
//!
//! **Global database**: a secondary holds the primary's writes up to
//! `min(time the primary stopped taking writes, now) − replication_lag`.
//! *Unplanned failover* (`allow_data_loss: true`): the secondary becomes the global primary, is
//! `promoting` (not writable) for the global `failover_time`, and keeps the data replicated at the
//! failover start; later writes are lost. The old primary is detached as a standalone cluster.
//! *Planned switchover* (`allow_data_loss: false`) needs a healthy (writable) primary, else an
//! error that says to use `allow_data_loss`; takes `switchover_time`, writes fail meanwhile, no
//! data loss; the old primary becomes a secondary. *Detach and promote*: the secondary leaves the
//! global database and is a standalone writer after `detach_promote_time` (data as in an
//! unplanned failover). After any of these the service writes to the new writer.
//!
//! **Backups**: `cluster_outage` (storage lost) makes a cluster unavailable with no failover;
//! `cluster_repair` rolls it back. Point-in-time restore needs a point within
//! `[max(created, now − retention), now − restorable_lag]` (default: the latest); the new cluster
//! (one instance in the source writer's zone) is `creating` for
//! `restore_base + size_gib × restore_per_gib`, then a standalone writer holding the source's
//! writes up to the restore point. With `serve: true` the services that wrote to the source switch
//! to it once it is available.
//!
//! **Newest surviving write**: a cluster takes writes while it is writable and a service writing
//! to it is reachable (its serving region is reachable and has Ready pods); the newest write is
//! `floor(t / write_interval) × write_interval` of the last instant it took writes.
//!
//! **DNS**: health checks run every `interval` from a seeded phase in `(0, interval]`. A check
//! fails if the primary region is unreachable or has no Ready pods of the service's deployment.
//! After `failure_threshold` consecutive failures the primary is unhealthy and the authoritative
//! answer is the secondary (unless the secondary region is unreachable too); after
//! `failure_threshold` consecutive successes it fails back. Resolvers see an authoritative change
//! `ttl` later. A manual DNS failover forces the answer (until reset), also seen after `ttl`.
//! So a failover after region loss is seen `≈ interval × (threshold − 1) + phase + ttl` later, i.e.
//! within one interval below `interval × threshold + ttl`.
//!
//! **Service metrics** (region clients resolve to): if it is unreachable or has no Ready pods:
//! availability 0, error rate 1, p99 = `timeout`. Else capacity = Ready pods × `rps_per_pod`,
//! served = min(1, capacity / rps); if the database the service writes to is not writable, the
//! `write_ratio` share of served requests fails too; error rate = 1 − availability. p99 latency =
//! `base_latency × (1 + 9u³)` for utilization u = rps / capacity ≤ 1 (capped at `timeout`), and
//! `timeout` when requests are dropped (u > 1).
//!
//! **Memory utilization** of a cluster = memory of pods on Ready nodes / memory of Ready nodes
//! (0 when no node is Ready).
//!
//! **Alerts**: metrics only change at events and actions, so conditions are re-evaluated after
//! each; when a condition turns true the alert is `pending` since then and fires exactly `for`
//! later if still true; when it turns false the alert resets to `inactive`.
//!
//! Every notable controller reaction is appended to [`model::Estate::log`] in plain English.

pub mod kube_api;
pub mod model;
pub mod provider;
