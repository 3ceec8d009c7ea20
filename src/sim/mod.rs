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
//! **Workloads and pods.** A workload is a Deployment (default), a StatefulSet or a DaemonSet.
//! Pods are Pending (no capacity), Starting (until their start-up ends) or Ready, and carry
//! created / scheduled / Ready timestamps, a container restart count and an owner: a ReplicaSet
//! named `api-<template-hash>` (pods `api-<template-hash>-<suffix>`), the StatefulSet (pods
//! `db-0`, `db-1`, ...), or the DaemonSet (one pod per node, pinned to it). The scheduler places
//! a pod on a Ready node with a free slot (`pods_per_node`; Terminating pods hold theirs) that is
//! not cordoned and has no NoSchedule/NoExecute taint (DaemonSet pods tolerate everything and
//! ignore cordons), preferring nodes without PreferNoSchedule taints, then the zone with the fewest
//! live pods of that workload, then the node with the fewest pods, then the first node
//! (deterministic). Pending pods are retried when capacity returns (uncordon, untaint, zone
//! restored, a pod gone). A pod serves only while Ready, not Terminating, on a Ready node.
//! Start-up = `startup` + uniform jitter in ±`startup_jitter` (never negative). At time 0 every
//! desired pod is already Ready.
//!
//! **Pod deletion** (kill, eviction, drain, NoExecute taint, node-controller eviction, scale-down,
//! rollout): the pod is Terminating for its grace period (the delete's, else the workload's
//! `termination_grace`; 0 or an unscheduled pod: gone at once; on a node that is down: until the
//! node is back). A Deployment's ReplicaSet creates replacements `reschedule_delay` after the
//! delete (Terminating pods do not count), Ready after start-up; a StatefulSet recreates a pod
//! under the same name `reschedule_delay` after it is gone, in ordinal order, each once the lower
//! ordinals are Ready (OrderedReady); a DaemonSet recreates its pod on the same node after it is
//! gone. `restarts` counts replacement pods created for disrupted pods plus container restarts;
//! each replaced pod's recovery (scheduled after, Ready after the delete) is recorded.
//!
//! **Evictions** honour PodDisruptionBudgets (`pdb: max_unavailable | min_available`): healthy =
//! pods whose Ready condition holds; a Ready pod may go while healthy > desired healthy; a pod
//! that is not Ready may go while the budget is met. Refusals are the API's 429.
//!
//! **What the API shows** lags reality as a real control plane does: a node that lost power keeps
//! its Ready condition until the node controller notices (`node_failure_detection`), then it is
//! Unknown with the `node.kubernetes.io/unreachable` taints and its pods' Ready condition is false.
//! The `k8s.pods` / `k8s.nodes` probes report that view; service metrics follow the true state.
//!
//! **Rollout restart** (a pod template annotation change): pods are replaced one at a time
//! (maxUnavailable 1, no surge): once every replica exists and is Ready and nothing is
//! Terminating, the next pod of the old revision is deleted (StatefulSets: highest ordinal first).
//!
//! **Zone loss** (power interruption): the zone's nodes are NotReady and their pods stop serving
//! at once. After `node_failure_detection` the nodes are noticed NotReady (logged); after a further
//! `pod_eviction_timeout` their pods (not DaemonSet pods) are evicted: they stay Terminating while
//! the node is down, and are replaced as above on other zones' nodes, or Pending if there is no
//! capacity (a StatefulSet pod is not replaced until its node is back: at most one pod per name). DB instances in the zone go down; if one was a writer, after
//! `failure_detection` the first healthy reader (instance order) is promoted, which takes
//! `failover_time`. Writes fail from the loss until the promotion completes. Storage is shared:
//! no data loss. With no healthy reader the cluster stays unavailable until the writer's zone is
//! back. Zone restore: nodes Ready; pods deleted meanwhile are gone at last; the containers of the
//! others restart (restart count + 1, Ready again after their start-up); instances back (as readers
//! unless still the writer), Pending pods scheduled.
//!
//! **Region loss**: every zone of the region is lost (as above) and the region's endpoint is
//! unreachable. There is no automatic cross-region failover. Restore reverses it; a cluster that
//! was detached by a global failover meanwhile comes back as a standalone writer holding the
//! data it had (nothing writes to it any more).
//!
//! **Cordon / drain / taint**: cordon makes nodes unschedulable; a drain cordons and evicts their
//! pods through the budgets (DaemonSet pods skipped); a NoExecute taint evicts every pod that does
//! not tolerate it (no budgets). Scale returns the previous replica count; scale-down deletes
//! Pending, then Starting, then newest pods (StatefulSets: highest ordinals).
//!
//! **Change feed**: every change of a Kubernetes object gets the next resource version
//! ([`model::Estate::changes_since`]), so the served API ([`kube_api`]) can answer watches in
//! order; [`model::Estate::next_event_at`] tells a watch how long nothing will change.
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

pub mod fis;
pub mod kube_api;
pub mod model;
pub mod shared;
