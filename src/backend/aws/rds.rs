//! `db.*` against RDS / Aurora: failovers, reboots, global database switchover / failover /
//! detach, point-in-time restore, cluster stop/start, and the cluster and instance probes.
//!
//! Every action returns once AWS reports the change complete (polling every
//! `aws.poll_interval`), so the step's duration is the operation's own duration.

use super::call::Op;
use super::clients::Clients;
use super::provider::{AwsProvider, rfc3339, to_chrono, to_smithy};
use crate::backend::{ErrorKind, ProviderError};
use crate::lang::action::{
    ClusterFailover, ClusterRef, DbClusterQuery, DetachAndPromote, GlobalFailover,
    Instance as InstanceQuery, InstanceReboot, PointInTimeRestore, RestoreTime,
};
use aws_sdk_rds::types::{DbCluster, DbInstance, Filter, GlobalCluster, Tag};
use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

/// A cluster as the probes and actions need it.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    pub id: String,
    pub region: String,
    pub arn: String,
    pub status: String,
    /// (instance, is writer)
    pub members: Vec<(String, bool)>,
    pub global_id: Option<String>,
    pub latest_restorable: Option<DateTime<Utc>>,
    pub earliest_restorable: Option<DateTime<Utc>>,
    pub engine: Option<String>,
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub endpoint: Option<String>,
}

impl Cluster {
    fn from_sdk(c: &DbCluster, region: &str) -> Cluster {
        Cluster {
            id: c.db_cluster_identifier().unwrap_or_default().to_string(),
            region: region.to_string(),
            arn: c.db_cluster_arn().unwrap_or_default().to_string(),
            status: c.status().unwrap_or("unknown").to_string(),
            members: c
                .db_cluster_members()
                .iter()
                .map(|m| {
                    (
                        m.db_instance_identifier().unwrap_or_default().to_string(),
                        m.is_cluster_writer().unwrap_or(false),
                    )
                })
                .collect(),
            global_id: c
                .global_cluster_identifier()
                .filter(|g| !g.is_empty())
                .map(str::to_string),
            latest_restorable: c.latest_restorable_time().and_then(to_chrono),
            earliest_restorable: c.earliest_restorable_time().and_then(to_chrono),
            engine: c.engine().map(str::to_string),
            subnet_group: c.db_subnet_group().map(str::to_string),
            security_groups: c
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
                .collect(),
            endpoint: c.endpoint().map(str::to_string),
        }
    }

    pub fn writer(&self) -> Option<&str> {
        self.members
            .iter()
            .find(|(_, w)| *w)
            .map(|(i, _)| i.as_str())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub id: String,
    pub region: String,
    pub arn: String,
    pub status: String,
    pub zone: Option<String>,
    pub class: Option<String>,
    pub cluster: Option<String>,
}

impl Instance {
    fn from_sdk(i: &DbInstance, region: &str) -> Instance {
        Instance {
            id: i.db_instance_identifier().unwrap_or_default().to_string(),
            region: region.to_string(),
            arn: i.db_instance_arn().unwrap_or_default().to_string(),
            status: i.db_instance_status().unwrap_or("unknown").to_string(),
            zone: i.availability_zone().map(str::to_string),
            class: i.db_instance_class().map(str::to_string),
            cluster: i.db_cluster_identifier().map(str::to_string),
        }
    }
}

/// A global database member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub arn: String,
    pub id: String,
    pub region: String,
    pub writer: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Global {
    pub id: String,
    pub arn: String,
    pub status: String,
    pub members: Vec<Member>,
    /// A switchover or failover in progress: (status, target ARN).
    pub failover: Option<(String, Option<String>)>,
}

impl Global {
    fn from_sdk(g: &GlobalCluster) -> Global {
        Global {
            id: g
                .global_cluster_identifier()
                .unwrap_or_default()
                .to_string(),
            arn: g.global_cluster_arn().unwrap_or_default().to_string(),
            status: g.status().unwrap_or("unknown").to_string(),
            members: g
                .global_cluster_members()
                .iter()
                .map(|m| {
                    let arn = m.db_cluster_arn().unwrap_or_default().to_string();
                    let (region, id) = split_cluster_arn(&arn)
                        .map(|(r, i)| (r.to_string(), i.to_string()))
                        .unwrap_or_default();
                    Member {
                        arn,
                        id,
                        region,
                        writer: m.is_writer().unwrap_or(false),
                    }
                })
                .collect(),
            failover: g.failover_state().and_then(|f| {
                let status = f.status()?.as_str().to_string();
                Some((status, f.to_db_cluster_arn().map(str::to_string)))
            }),
        }
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.arn == name || m.id.eq_ignore_ascii_case(name))
    }

    pub fn writer(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.writer)
    }

    fn in_progress(&self) -> bool {
        self.failover
            .as_ref()
            .is_some_and(|(s, _)| matches!(s.as_str(), "pending" | "failing-over" | "cancelling"))
    }

    fn member_names(&self) -> String {
        let v: Vec<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

/// (region, cluster id) of `arn:<partition>:rds:<region>:<account>:cluster:<id>`.
pub(crate) fn split_cluster_arn(arn: &str) -> Option<(&str, &str)> {
    split_rds_arn(arn, "cluster")
}

fn split_rds_arn<'a>(arn: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    (parts.len() == 7
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "rds"
        && !parts[3].is_empty()
        && parts[5] == kind
        && is_identifier(parts[6]))
    .then(|| (parts[3], parts[6]))
}

/// RDS identifiers: 1-63 letters, digits and hyphens, starting with a letter, no trailing or
/// double hyphen.
pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Resolve a cluster or instance name (identifier or ARN) to (identifier, regions to look in).
fn resolve(
    p: &AwsProvider,
    input: &str,
    kind: &str,
    arn_kind: &str,
) -> Result<(String, Vec<String>), ProviderError> {
    if input.starts_with("arn:") {
        let Some((region, id)) = split_rds_arn(input, arn_kind) else {
            return Err(ProviderError::not_found(format!(
                "`{input}` is not an RDS {kind} ARN (arn:aws:rds:REGION:ACCOUNT:{arn_kind}:NAME); give the {kind}'s ARN or its identifier"
            )));
        };
        if !p.settings.regions().contains(&region) {
            return Err(ProviderError::not_found(format!(
                "{kind} `{input}` is in {region}, which is neither `aws.region` ({}) nor `aws.dr_region` ({}); add it to the environment",
                p.settings.region,
                p.settings.dr_region.as_deref().unwrap_or("unset")
            )));
        }
        p.learn_account(input);
        return Ok((id.to_string(), vec![region.to_string()]));
    }
    if !is_identifier(input) {
        return Err(ProviderError::not_found(format!(
            "`{input}` is not a valid RDS {kind} identifier (1-63 letters, digits and hyphens, starting with a letter) nor an ARN"
        )));
    }
    let cached = p.state().cluster_regions.get(input).cloned();
    let regions = match cached {
        Some(r) => vec![r],
        None => p.settings.regions().iter().map(|r| r.to_string()).collect(),
    };
    Ok((input.to_string(), regions))
}

fn not_found(
    p: &AwsProvider,
    kind: &str,
    name: &str,
    regions: &[String],
    why: &str,
) -> ProviderError {
    let _ = p;
    ProviderError::not_found(format!(
        "{kind} `{name}` does not exist in {} ({why}); check the name, `aws.region` and `aws.dr_region`",
        regions.join(" or ")
    ))
}

pub(crate) fn describe_op(p: &AwsProvider, region: &str, id: &str) -> Op {
    Op {
        action: "rds:DescribeDBClusters",
        what: format!("cluster `{id}`"),
        arn: p.arn("rds", region, &format!("cluster:{id}")),
        region: region.to_string(),
        mutating: false,
    }
}

/// Describe a cluster in one region; `None` if it does not exist there.
pub(crate) async fn cluster_in(
    p: &AwsProvider,
    c: &Clients,
    region: &str,
    id: &str,
) -> Result<Option<Cluster>, ProviderError> {
    let client = c.rds_in(region);
    let op = describe_op(p, region, id);
    match p
        .call(&op, || {
            client
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
        })
        .await
    {
        Ok(out) => {
            let found = out
                .db_clusters()
                .iter()
                .find(|x| {
                    x.db_cluster_identifier()
                        .is_some_and(|i| i.eq_ignore_ascii_case(id))
                })
                .map(|x| Cluster::from_sdk(x, region));
            if let Some(cl) = &found {
                p.learn_account(&cl.arn);
                p.state()
                    .cluster_regions
                    .insert(id.to_string(), region.to_string());
            }
            Ok(found)
        }
        Err(ProviderError {
            kind: ErrorKind::NotFound,
            message: m,
            ..
        }) if m.contains("does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Find a cluster by identifier or ARN in the primary, then the DR region.
pub(crate) async fn find_cluster(
    p: &AwsProvider,
    c: &Clients,
    input: &str,
) -> Result<Cluster, ProviderError> {
    let (id, regions) = resolve(p, input, "cluster", "cluster")?;
    // One region's endpoint being down (a region outage) must not hide the other's clusters.
    let mut down: Option<ProviderError> = None;
    for r in &regions {
        match cluster_in(p, c, r, &id).await {
            Ok(Some(cl)) => return Ok(cl),
            Ok(None) => {}
            Err(
                e @ ProviderError {
                    kind: ErrorKind::Unavailable,
                    ..
                },
            ) => down = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = down {
        return Err(e);
    }
    Err(not_found(
        p,
        "cluster",
        input,
        &regions,
        "DescribeDBClusters: DBClusterNotFoundFault",
    ))
}

/// The instances of a cluster.
pub(crate) async fn instances_of(
    p: &AwsProvider,
    c: &Clients,
    cl: &Cluster,
) -> Result<Vec<Instance>, ProviderError> {
    let client = c.rds_in(&cl.region);
    let op = Op {
        action: "rds:DescribeDBInstances",
        what: format!("the instances of cluster `{}`", cl.id),
        arn: p.arn("rds", &cl.region, "db:*"),
        region: cl.region.clone(),
        mutating: false,
    };
    let out = p
        .call(&op, || {
            client
                .describe_db_instances()
                .filters(
                    Filter::builder()
                        .name("db-cluster-id")
                        .values(cl.id.clone())
                        .build(),
                )
                .send()
        })
        .await?;
    Ok(out
        .db_instances()
        .iter()
        .map(|i| Instance::from_sdk(i, &cl.region))
        .filter(|i| {
            i.cluster
                .as_deref()
                .is_none_or(|x| x.eq_ignore_ascii_case(&cl.id))
        })
        .collect())
}

/// Find an instance by identifier or ARN in the primary, then the DR region.
pub(crate) async fn find_instance(
    p: &AwsProvider,
    c: &Clients,
    input: &str,
) -> Result<Instance, ProviderError> {
    let (id, regions) = resolve(p, input, "instance", "db")?;
    for r in &regions {
        let client = c.rds_in(r);
        let op = Op {
            action: "rds:DescribeDBInstances",
            what: format!("instance `{id}`"),
            arn: p.arn("rds", r, &format!("db:{id}")),
            region: r.clone(),
            mutating: false,
        };
        match p
            .call(&op, || {
                client
                    .describe_db_instances()
                    .db_instance_identifier(&id)
                    .send()
            })
            .await
        {
            Ok(out) => {
                if let Some(i) = out.db_instances().first() {
                    let inst = Instance::from_sdk(i, r);
                    p.learn_account(&inst.arn);
                    return Ok(inst);
                }
            }
            Err(ProviderError {
                kind: ErrorKind::NotFound,
                message: m,
                ..
            }) if m.contains("does not exist") => {}
            Err(e) => return Err(e),
        }
    }
    Err(not_found(
        p,
        "instance",
        input,
        &regions,
        "DescribeDBInstances: DBInstanceNotFound",
    ))
}

/// Find a global database (DescribeGlobalClusters, primary region then DR region).
pub(crate) async fn find_global(
    p: &AwsProvider,
    c: &Clients,
    id: &str,
) -> Result<Global, ProviderError> {
    if !is_identifier(id) {
        return Err(ProviderError::not_found(format!(
            "`{id}` is not a valid global database identifier (letters, digits and hyphens, starting with a letter)"
        )));
    }
    let regions: Vec<String> = p.settings.regions().iter().map(|r| r.to_string()).collect();
    // A global database is visible from every region: if one region's endpoint is down (a region
    // outage), ask the other.
    let mut down: Option<ProviderError> = None;
    for r in &regions {
        let client = c.rds_in(r);
        let op = Op {
            action: "rds:DescribeGlobalClusters",
            what: format!("global database `{id}`"),
            arn: p.arn("rds", "", &format!("global-cluster:{id}")),
            region: r.clone(),
            mutating: false,
        };
        match p
            .call(&op, || {
                client
                    .describe_global_clusters()
                    .global_cluster_identifier(id)
                    .send()
            })
            .await
        {
            Ok(out) => {
                if let Some(g) = out.global_clusters().iter().find(|g| {
                    g.global_cluster_identifier()
                        .is_some_and(|x| x.eq_ignore_ascii_case(id))
                }) {
                    let g = Global::from_sdk(g);
                    p.learn_account(&g.arn);
                    return Ok(g);
                }
            }
            Err(ProviderError {
                kind: ErrorKind::NotFound,
                message: m,
                ..
            }) if m.contains("does not exist") => {}
            Err(
                e @ ProviderError {
                    kind: ErrorKind::Unavailable,
                    ..
                },
            ) => down = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = down {
        return Err(e);
    }
    Err(not_found(
        p,
        "global database",
        id,
        &regions,
        "DescribeGlobalClusters: GlobalClusterNotFoundFault",
    ))
}

/// `primary`, `secondary` or `standalone`, and the global database if the cluster is in one.
async fn role_of(
    p: &AwsProvider,
    c: &Clients,
    cl: &Cluster,
) -> Result<(&'static str, Option<Global>), ProviderError> {
    let Some(gid) = &cl.global_id else {
        return Ok(("standalone", None));
    };
    let g = match find_global(p, c, gid).await {
        Ok(g) => g,
        // The cluster names a global database that is gone: it stands alone.
        Err(ProviderError {
            kind: ErrorKind::NotFound,
            ..
        }) => return Ok(("standalone", None)),
        Err(e) => return Err(e),
    };
    let role = match g.members.iter().find(|m| m.arn == cl.arn) {
        Some(m) if m.writer => "primary",
        Some(_) => "secondary",
        None => "standalone",
    };
    Ok((role, Some(g)))
}

/// The `db.cluster` probe.
pub(crate) async fn cluster_probe(
    p: &AwsProvider,
    q: &DbClusterQuery,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let cl = find_cluster(p, &c, &q.cluster).await?;
    let instances = instances_of(p, &c, &cl).await?;
    let (role, global) = role_of(p, &c, &cl).await?;
    let writer = cl.writer().map(str::to_string);
    let writer_inst = writer
        .as_ref()
        .and_then(|w| instances.iter().find(|i| i.id.eq_ignore_ascii_case(w)));
    let writable = cl.status == "available"
        && role != "secondary"
        && writer_inst.is_some_and(|i| i.status == "available");
    let as_of = q.as_of;
    let restored = p.state().restore_points.get(&cl.id).copied();
    let (newest, source) = match restored {
        Some(rp) => (Some(rp), "restore_point"),
        None => (cl.latest_restorable, "latest_restorable_time"),
    };
    let latest_write = match (newest, as_of) {
        (Some(n), Some(a)) => Some(n.min(a)),
        (n, _) => n,
    };
    Ok(json!({
        "cluster": cl.id,
        "region": cl.region,
        "arn": cl.arn,
        "status": cl.status,
        "role": role,
        "global_cluster": global.map(|g| g.id),
        "writer": if role == "secondary" { Json::Null } else { json!(writer) },
        "writer_zone": if role == "secondary" { Json::Null } else { json!(writer_inst.and_then(|i| i.zone.clone())) },
        "writable": writable,
        "instances": instances.iter().map(|i| json!({"instance": i.id, "status": i.status, "zone": i.zone, "is_writer": Some(i.id.as_str()) == writer.as_deref()})).collect::<Vec<_>>(),
        "latest_write": rfc3339(latest_write),
        "latest_write_source": source,
        "latest_restorable_time": rfc3339(cl.latest_restorable),
    }))
}

/// The `db.instance` probe.
pub(crate) async fn instance_probe(
    p: &AwsProvider,
    q: &InstanceQuery,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let inst = find_instance(p, &c, &q.instance).await?;
    let is_writer = match &inst.cluster {
        Some(cid) => cluster_in(p, &c, &inst.region, cid)
            .await?
            .and_then(|cl| cl.writer().map(|w| w.eq_ignore_ascii_case(&inst.id)))
            .unwrap_or(false),
        None => true,
    };
    Ok(json!({
        "instance": inst.id,
        "region": inst.region,
        "arn": inst.arn,
        "cluster": inst.cluster,
        "status": inst.status,
        "available": inst.status == "available",
        "zone": inst.zone,
        "is_writer": is_writer,
    }))
}

/// Re-describe a cluster we know exists (during waits).
async fn cluster_now(p: &AwsProvider, c: &Clients, cl: &Cluster) -> Result<Cluster, ProviderError> {
    cluster_in(p, c, &cl.region, &cl.id).await?.ok_or_else(|| {
        ProviderError::invalid_state(format!(
            "cluster `{}` disappeared in {} while firedrill was waiting for it",
            cl.id, cl.region
        ))
    })
}

/// Journal status changes seen while waiting.
struct Watch(std::sync::Mutex<Option<String>>);

impl Watch {
    fn new() -> Watch {
        Watch(std::sync::Mutex::new(None))
    }

    fn see(&self, p: &AwsProvider, what: &str, now: String) {
        let mut last = self.0.lock().expect("watch poisoned");
        if last.as_deref() != Some(now.as_str()) {
            p.note(format!("{what}: {now}"), None);
            *last = Some(now);
        }
    }
}

/// `db.cluster_failover`: FailoverDBCluster, then wait until the writer changed (to the target,
/// if given) and the cluster and its new writer are available.
pub(crate) async fn cluster_failover(
    p: &AwsProvider,
    a: &ClusterFailover,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let cl = find_cluster(p, &c, &a.cluster).await?;
    let old = cl.writer().map(str::to_string);
    let target = a.target_instance.clone().filter(|t| !t.is_empty());
    if let Some(t) = &target {
        if !cl.members.iter().any(|(i, _)| i.eq_ignore_ascii_case(t)) {
            return Err(ProviderError::not_found(format!(
                "`{t}` is not an instance of cluster `{}` (its instances: {}); name one of them as `target_instance`",
                cl.id,
                cl.members
                    .iter()
                    .map(|(i, _)| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if old.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(t)) {
            return Err(ProviderError::invalid_state(format!(
                "`{t}` is already the writer of cluster `{}`; name a reader as `target_instance`",
                cl.id
            )));
        }
    }
    let client = c.rds_in(&cl.region);
    let op = Op {
        action: "rds:FailoverDBCluster",
        what: format!("cluster `{}`", cl.id),
        arn: cl.arn.clone(),
        region: cl.region.clone(),
        mutating: true,
    };
    p.call(&op, || {
        client
            .failover_db_cluster()
            .db_cluster_identifier(&cl.id)
            .set_target_db_instance_identifier(target.clone())
            .send()
    })
    .await?;
    p.note(
        format!(
            "FailoverDBCluster {} (writer was {}{})",
            cl.id,
            old.as_deref().unwrap_or("none"),
            target
                .as_deref()
                .map(|t| format!(", to {t}"))
                .unwrap_or_default()
        ),
        None,
    );
    let watch = Watch::new();
    let (now, zone) = p
        .wait_for(&format!("the failover of cluster `{}`", cl.id), || async {
            let now = cluster_now(p, &c, &cl).await?;
            let w = now.writer().map(str::to_string);
            watch.see(
                p,
                &format!("cluster {}", cl.id),
                format!("{} (writer {})", now.status, w.as_deref().unwrap_or("none")),
            );
            let moved = w.is_some()
                && w != old
                && target
                    .as_ref()
                    .is_none_or(|t| w.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(t)));
            if now.status != "available" || !moved {
                return Ok(None);
            }
            let inst = instances_of(p, &c, &now).await?;
            let wi = inst.iter().find(|i| Some(i.id.as_str()) == w.as_deref());
            Ok(match wi {
                Some(i) if i.status == "available" => Some((now.clone(), i.zone.clone())),
                _ => None,
            })
        })
        .await?;
    Ok(json!({
        "cluster": cl.id,
        "region": cl.region,
        "previous_writer": old,
        "new_writer": now.writer(),
        "new_writer_zone": zone,
    }))
}

/// `db.instance_reboot`: RebootDBInstance (ForceFailover when asked), then wait until the
/// instance is available again.
pub(crate) async fn instance_reboot(
    p: &AwsProvider,
    a: &InstanceReboot,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let inst = find_instance(p, &c, &a.instance).await?;
    let force = a.force_failover;
    let cluster = match &inst.cluster {
        Some(cid) => cluster_in(p, &c, &inst.region, cid).await?,
        None => None,
    };
    let writer_before = cluster
        .as_ref()
        .and_then(|cl| cl.writer().map(str::to_string));
    let client = c.rds_in(&inst.region);
    let op = Op {
        action: "rds:RebootDBInstance",
        what: format!("instance `{}`", inst.id),
        arn: inst.arn.clone(),
        region: inst.region.clone(),
        mutating: true,
    };
    p.call(&op, || {
        client
            .reboot_db_instance()
            .db_instance_identifier(&inst.id)
            .set_force_failover(force.then_some(true))
            .send()
    })
    .await?;
    p.note(
        format!(
            "RebootDBInstance {}{}",
            inst.id,
            if force { " with ForceFailover" } else { "" }
        ),
        None,
    );
    // The status turns `rebooting` shortly after the call: look after one interval.
    tokio::time::sleep(p.settings.poll_interval).await;
    let watch = Watch::new();
    p.wait_for(&format!("the reboot of instance `{}`", inst.id), || async {
        let now = find_instance(p, &c, &inst.id).await?;
        watch.see(p, &format!("instance {}", inst.id), now.status.clone());
        Ok((now.status == "available").then_some(()))
    })
    .await?;
    let writer_after = match &cluster {
        Some(cl) => cluster_now(p, &c, cl).await?.writer().map(str::to_string),
        None => None,
    };
    Ok(json!({
        "instance": inst.id,
        "region": inst.region,
        "cluster": inst.cluster,
        "force_failover": force,
        "writer_before": writer_before,
        "writer_after": writer_after,
    }))
}

/// `db.global_switchover` (loss = false) and `db.global_failover`: SwitchoverGlobalCluster, or
/// FailoverGlobalCluster with AllowDataLoss, sent to the target's region; then wait until the
/// target is the global writer, no failover is in progress and the target is available.
pub(crate) async fn global_change(
    p: &AwsProvider,
    a: &GlobalFailover,
    allow_data_loss: bool,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let g = find_global(p, &c, &a.global_cluster).await?;
    let target_name = a.target_cluster.as_str();
    let Some(target) = g.member(target_name).cloned() else {
        return Err(ProviderError::not_found(format!(
            "`{target_name}` is not a member of global database `{}` (members: {}); name one of its secondaries as `target_cluster`",
            g.id,
            g.member_names()
        )));
    };
    if target.writer {
        return Err(ProviderError::invalid_state(format!(
            "`{}` is already the primary of global database `{}`; name a secondary as `target_cluster`",
            target.id, g.id
        )));
    }
    if g.in_progress() {
        return Err(ProviderError::invalid_state(format!(
            "global database `{}` is already switching over or failing over ({}); wait until it finishes",
            g.id,
            g.failover
                .as_ref()
                .map(|f| f.0.as_str())
                .unwrap_or_default()
        )));
    }
    let from = g.writer().map(|m| m.id.clone());
    let region = if p.settings.regions().contains(&target.region.as_str()) {
        target.region.clone()
    } else {
        p.settings.region.clone()
    };
    let client = c.rds_in(&region);
    let (action, operation) = if allow_data_loss {
        ("rds:FailoverGlobalCluster", "failover")
    } else {
        ("rds:SwitchoverGlobalCluster", "switchover")
    };
    let op = Op {
        action,
        what: format!("global database `{}`", g.id),
        arn: g.arn.clone(),
        region: region.clone(),
        mutating: true,
    };
    if allow_data_loss {
        p.call(&op, || {
            client
                .failover_global_cluster()
                .global_cluster_identifier(&g.id)
                .target_db_cluster_identifier(&target.arn)
                .allow_data_loss(true)
                .send()
        })
        .await?;
    } else {
        p.call(&op, || {
            client
                .switchover_global_cluster()
                .global_cluster_identifier(&g.id)
                .target_db_cluster_identifier(&target.arn)
                .send()
        })
        .await?;
    }
    p.note(
        format!(
            "{} of global database {} from {} to {}{}",
            if allow_data_loss {
                "FailoverGlobalCluster (AllowDataLoss)"
            } else {
                "SwitchoverGlobalCluster"
            },
            g.id,
            from.as_deref().unwrap_or("none"),
            target.id,
            if allow_data_loss {
                ": writes not yet replicated are lost"
            } else {
                ""
            }
        ),
        None,
    );
    let watch = Watch::new();
    p.wait_for(
        &format!(
            "the {operation} of global database `{}` to `{}`",
            g.id, target.id
        ),
        || async {
            let now = find_global(p, &c, &g.id).await?;
            let w = now.writer().map(|m| m.id.clone());
            watch.see(
                p,
                &format!("global database {}", g.id),
                format!(
                    "{} (writer {}{})",
                    now.status,
                    w.as_deref().unwrap_or("none"),
                    now.failover
                        .as_ref()
                        .map(|f| format!(", failover {}", f.0))
                        .unwrap_or_default()
                ),
            );
            let done = now.member(&target.arn).is_some_and(|m| m.writer) && !now.in_progress();
            if !done {
                return Ok(None);
            }
            let cl = cluster_in(p, &c, &target.region, &target.id).await?;
            Ok(cl.filter(|cl| cl.status == "available").map(|_| ()))
        },
    )
    .await?;
    Ok(json!({
        "global_cluster": g.id,
        "operation": operation,
        "from": from,
        "to": target.id,
        "target_region": target.region,
        "allow_data_loss": allow_data_loss,
    }))
}

/// `db.detach_and_promote`: RemoveFromGlobalCluster (sent to the secondary's region), then wait
/// until the cluster is standalone, available and has an available writer.
pub(crate) async fn detach_and_promote(
    p: &AwsProvider,
    a: &DetachAndPromote,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let g = find_global(p, &c, &a.global_cluster).await?;
    let name = a.cluster.as_str();
    let Some(m) = g.member(name).cloned() else {
        return Err(ProviderError::not_found(format!(
            "`{name}` is not a member of global database `{}` (members: {}); name one of its secondaries as `cluster`",
            g.id,
            g.member_names()
        )));
    };
    if m.writer {
        return Err(ProviderError::not_found(format!(
            "`{}` is the primary of global database `{}`; detach a secondary (use db.global_failover to move the primary)",
            m.id, g.id
        )));
    }
    let region = if p.settings.regions().contains(&m.region.as_str()) {
        m.region.clone()
    } else {
        p.settings.region.clone()
    };
    let client = c.rds_in(&region);
    let op = Op {
        action: "rds:RemoveFromGlobalCluster",
        what: format!("cluster `{}` of global database `{}`", m.id, g.id),
        arn: g.arn.clone(),
        region: region.clone(),
        mutating: true,
    };
    p.call(&op, || {
        client
            .remove_from_global_cluster()
            .global_cluster_identifier(&g.id)
            .db_cluster_identifier(&m.arn)
            .send()
    })
    .await?;
    p.note(
        format!("RemoveFromGlobalCluster {} from {}: it becomes a standalone writer and stops replicating", m.id, g.id),
        None,
    );
    let watch = Watch::new();
    let writer = p
        .wait_for(&format!("cluster `{}` to stand alone", m.id), || async {
            let now = find_global(p, &c, &g.id).await?;
            let still = now.member(&m.arn).is_some();
            let cl = cluster_in(p, &c, &m.region, &m.id).await?.ok_or_else(|| {
                ProviderError::invalid_state(format!(
                    "cluster `{}` disappeared while being detached",
                    m.id
                ))
            })?;
            watch.see(
                p,
                &format!("cluster {}", m.id),
                format!(
                    "{}{}",
                    cl.status,
                    if still {
                        " (still in the global database)"
                    } else {
                        " (standalone)"
                    }
                ),
            );
            if still || cl.status != "available" {
                return Ok(None);
            }
            let Some(w) = cl.writer().map(str::to_string) else {
                return Ok(None);
            };
            let inst = instances_of(p, &c, &cl).await?;
            Ok(inst
                .iter()
                .any(|i| i.id == w && i.status == "available")
                .then_some(w))
        })
        .await?;
    Ok(json!({
        "cluster": m.id,
        "region": m.region,
        "detached_from": g.id,
        "writer": writer,
    }))
}

/// Prefix an error (keeping its kind) so a half-done action says what exists.
fn half_done(e: ProviderError, what: &str) -> ProviderError {
    e.map_message(|m| format!("{what}: {m}"))
}

fn tags(p: &AwsProvider, source: &str) -> Vec<Tag> {
    let st = p.state();
    let mut v = vec![
        Tag::builder()
            .key("firedrill:source-cluster")
            .value(source)
            .build(),
    ];
    if let Some(r) = &st.run_id {
        v.push(Tag::builder().key("firedrill:run").value(r).build());
    }
    if let Some(e) = &st.experiment {
        v.push(Tag::builder().key("firedrill:experiment").value(e).build());
    }
    v
}

/// `db.point_in_time_restore`: RestoreDBClusterToPointInTime (a time, or
/// UseLatestRestorableTime) into a new cluster with the source's subnet group and security
/// groups, then CreateDBInstance in it (the source writer's class and zone), then (unless
/// `wait: false`) wait until both are available. Nothing is deleted automatically: every created
/// resource is journaled with its cleanup command. `serve: true` cannot be done through AWS
/// APIs (the application's connection string is not AWS's): the output says so.
pub(crate) async fn point_in_time_restore(
    p: &AwsProvider,
    a: &PointInTimeRestore,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let src = find_cluster(p, &c, &a.source_cluster).await?;
    let target = a.target_cluster.clone();
    if !is_identifier(&target) {
        return Err(ProviderError::not_found(format!(
            "`{target}` is not a valid cluster identifier for `target_cluster` (1-63 letters, digits and hyphens, starting with a letter)"
        )));
    }
    if let Some(existing) = cluster_in(p, &c, &src.region, &target).await? {
        return Err(ProviderError::invalid_state(format!(
            "cluster `{target}` already exists in {} ({}); pick another `target_cluster` or delete it first",
            src.region, existing.arn
        )));
    }
    let requested = match a.restore_time {
        RestoreTime::Latest => None,
        RestoreTime::At(t) => Some(t),
    };
    if let Some(t) = requested {
        let (lo, hi) = (src.earliest_restorable, src.latest_restorable);
        if lo.is_some_and(|lo| t < lo) || hi.is_some_and(|hi| t > hi) {
            return Err(ProviderError::not_found(format!(
                "restore_time {} is outside the restorable window of `{}` ({} to {}); pick a time inside it or `latest`",
                t.to_rfc3339(),
                src.id,
                lo.map_or("?".into(), |t| t.to_rfc3339()),
                hi.map_or("?".into(), |t| t.to_rfc3339())
            )));
        }
    }
    let point = requested.or(src.latest_restorable);
    let instances = instances_of(p, &c, &src).await?;
    let model = src
        .writer()
        .and_then(|w| instances.iter().find(|i| i.id == w))
        .or(instances.first())
        .cloned();
    let Some(class) = model.as_ref().and_then(|m| m.class.clone()) else {
        return Err(ProviderError::not_found(format!(
            "cluster `{}` has no instance to copy the instance class from; the restored cluster needs one",
            src.id
        )));
    };
    let zone = model.as_ref().and_then(|m| m.zone.clone());
    let client = c.rds_in(&src.region);
    let op = Op {
        action: "rds:RestoreDBClusterToPointInTime",
        what: format!("cluster `{target}` (restore of `{}`)", src.id),
        arn: p.arn("rds", &src.region, &format!("cluster:{target}")),
        region: src.region.clone(),
        mutating: true,
    };
    let tag_list = tags(p, &src.id);
    let out = p
        .call(&op, || {
            let mut b = client
                .restore_db_cluster_to_point_in_time()
                .db_cluster_identifier(&target)
                .source_db_cluster_identifier(&src.id)
                .set_db_subnet_group_name(src.subnet_group.clone())
                .set_vpc_security_group_ids(
                    (!src.security_groups.is_empty()).then(|| src.security_groups.clone()),
                )
                .set_tags(Some(tag_list.clone()));
            b = match requested {
                Some(t) => b.restore_to_time(to_smithy(t)),
                None => b.use_latest_restorable_time(true),
            };
            b.send()
        })
        .await?;
    let arn = out
        .db_cluster()
        .and_then(|x| x.db_cluster_arn())
        .map(str::to_string)
        .unwrap_or_else(|| p.arn("rds", &src.region, &format!("cluster:{target}")));
    let instance = instance_name(&target);
    let cleanup_cluster = format!(
        "aws rds delete-db-cluster --region {} --db-cluster-identifier {target} --skip-final-snapshot",
        src.region
    );
    p.created(
        "cluster",
        &target,
        &arn,
        &src.region,
        cleanup_cluster.clone(),
    );
    {
        let mut st = p.state();
        st.cluster_regions
            .insert(target.clone(), src.region.clone());
        if let Some(pt) = point {
            st.restore_points.insert(target.clone(), pt);
        }
    }
    let iop = Op {
        action: "rds:CreateDBInstance",
        what: format!("instance `{instance}` in cluster `{target}`"),
        arn: p.arn("rds", &src.region, &format!("db:{instance}")),
        region: src.region.clone(),
        mutating: true,
    };
    let created = p
        .call(&iop, || {
            client
                .create_db_instance()
                .db_instance_identifier(&instance)
                .db_cluster_identifier(&target)
                .set_engine(src.engine.clone())
                .db_instance_class(&class)
                .set_availability_zone(zone.clone())
                .set_tags(Some(tag_list.clone()))
                .send()
        })
        .await;
    let inst_arn = match created {
        Ok(o) => o
            .db_instance()
            .and_then(|i| i.db_instance_arn())
            .map(str::to_string)
            .unwrap_or_else(|| p.arn("rds", &src.region, &format!("db:{instance}"))),
        Err(e) => {
            let what = format!(
                "point-in-time restore half done: cluster `{target}` ({arn}) was created and still exists, but its instance `{instance}` could not be created; rollback owed: delete the cluster (`{cleanup_cluster}`) or add an instance to it"
            );
            p.note(
                format!("half done: cluster {target} exists without an instance; cleanup owed: {cleanup_cluster}"),
                Some(json!({
                    "kind": "aws_rollback_owed",
                    "action": "db.point_in_time_restore",
                    "exists": [arn],
                    "cleanup": [cleanup_cluster],
                })),
            );
            return Err(half_done(e, &what));
        }
    };
    let cleanup_instance = format!(
        "aws rds delete-db-instance --region {} --db-instance-identifier {instance} --skip-final-snapshot",
        src.region
    );
    p.created(
        "instance",
        &instance,
        &inst_arn,
        &src.region,
        cleanup_instance.clone(),
    );
    let wait = a.wait;
    let mut endpoint = None;
    if wait {
        let watch = Watch::new();
        let done = p
            .wait_for(&format!("restored cluster `{target}` to be available"), || async {
                let Some(cl) = cluster_in(p, &c, &src.region, &target).await? else {
                    return Ok(None);
                };
                let inst = instances_of(p, &c, &cl).await?;
                let is = inst.iter().find(|i| i.id == instance).map(|i| i.status.clone()).unwrap_or_else(|| "missing".into());
                watch.see(p, &format!("restored cluster {target}"), format!("{}, instance {instance} {is}", cl.status));
                Ok((cl.status == "available" && is == "available").then_some(cl))
            })
            .await
            .map_err(|e| {
                half_done(
                    e,
                    &format!("restore of `{target}` started (cluster and instance exist: `{cleanup_instance}`; `{cleanup_cluster}`)"),
                )
            })?;
        endpoint = done.endpoint;
    }
    let serve = a.serve;
    if serve {
        p.note(
            format!("serve: true is not done by the aws backend: point the application at {target} ({}) yourself", endpoint.as_deref().unwrap_or("its cluster endpoint")),
            None,
        );
    }
    Ok(json!({
        "source_cluster": src.id,
        "target_cluster": target,
        "region": src.region,
        "arn": arn,
        "instance": instance,
        "instance_class": class,
        "restore_point": rfc3339(point),
        "restore_type": if requested.is_some() { "time" } else { "latest" },
        "waited": wait,
        "endpoint": endpoint,
        "serve": if serve { json!("not performed: repoint the application at the restored cluster yourself") } else { json!(false) },
        "created": [arn, inst_arn],
        "cleanup": [cleanup_instance, cleanup_cluster],
    }))
}

/// The instance a restore creates in cluster `target`.
pub(crate) fn instance_name(target: &str) -> String {
    let mut base: String = target.chars().take(61).collect();
    while base.ends_with('-') {
        base.pop();
    }
    format!("{base}-1")
}

/// `db.cluster_outage`: StopDBCluster. The cluster is unavailable from the call on; AWS
/// finishes stopping within minutes. (AWS has no "break storage" call; a stopped cluster is the
/// honest, reversible stand-in: unavailable to clients, data intact.)
pub(crate) async fn cluster_stop(p: &AwsProvider, a: &ClusterRef) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let cl = find_cluster(p, &c, &a.cluster).await?;
    if cl.status != "available" {
        return Err(ProviderError::invalid_state(format!(
            "cluster `{}` is `{}`, not available; a cluster outage starts from an available cluster",
            cl.id, cl.status
        )));
    }
    let client = c.rds_in(&cl.region);
    let op = Op {
        action: "rds:StopDBCluster",
        what: format!("cluster `{}`", cl.id),
        arn: cl.arn.clone(),
        region: cl.region.clone(),
        mutating: true,
    };
    let out = p
        .call(&op, || {
            client
                .stop_db_cluster()
                .db_cluster_identifier(&cl.id)
                .send()
        })
        .await?;
    let status = out
        .db_cluster()
        .and_then(|x| x.status())
        .unwrap_or("stopping")
        .to_string();
    p.note(
        format!(
            "StopDBCluster {}: unavailable until started again (revert: StartDBCluster)",
            cl.id
        ),
        None,
    );
    Ok(json!({
        "cluster": cl.id,
        "region": cl.region,
        "previous_status": cl.status,
        "status": status,
        "revert": "StartDBCluster",
    }))
}

/// Revert of `db.cluster_outage`: wait until the cluster has stopped, StartDBCluster, wait until
/// it is available.
pub(crate) async fn cluster_start(p: &AwsProvider, a: &ClusterRef) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let cl = find_cluster(p, &c, &a.cluster).await?;
    let watch = Watch::new();
    let status = p
        .wait_for(
            &format!("cluster `{}` to finish stopping", cl.id),
            || async {
                let now = cluster_now(p, &c, &cl).await?;
                watch.see(p, &format!("cluster {}", cl.id), now.status.clone());
                Ok(matches!(now.status.as_str(), "stopped" | "available").then_some(now.status))
            },
        )
        .await?;
    if status == "available" {
        return Ok(json!({"cluster": cl.id, "status": "available", "started": false}));
    }
    let client = c.rds_in(&cl.region);
    let op = Op {
        action: "rds:StartDBCluster",
        what: format!("cluster `{}`", cl.id),
        arn: cl.arn.clone(),
        region: cl.region.clone(),
        mutating: true,
    };
    p.call(&op, || {
        client
            .start_db_cluster()
            .db_cluster_identifier(&cl.id)
            .send()
    })
    .await?;
    p.note(format!("StartDBCluster {}", cl.id), None);
    p.wait_for(
        &format!("cluster `{}` to be available again", cl.id),
        || async {
            let now = cluster_now(p, &c, &cl).await?;
            watch.see(p, &format!("cluster {}", cl.id), now.status.clone());
            Ok((now.status == "available").then_some(()))
        },
    )
    .await?;
    Ok(json!({"cluster": cl.id, "status": "available", "started": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_arns() {
        assert!(is_identifier("orders-db"));
        assert!(is_identifier("a"));
        for bad in ["", "1db", "db-", "d--b", "db_1", &"a".repeat(64)] {
            assert!(!is_identifier(bad), "{bad}");
        }
        assert_eq!(
            split_cluster_arn("arn:aws:rds:us-west-2:123456789012:cluster:orders-db-dr"),
            Some(("us-west-2", "orders-db-dr"))
        );
        assert_eq!(
            split_cluster_arn("arn:aws:rds:us-west-2:123456789012:db:x"),
            None
        );
        assert_eq!(split_cluster_arn("arn:aws:s3:::bucket"), None);
        assert_eq!(split_cluster_arn("orders-db"), None);
        assert_eq!(instance_name("orders-db-restored"), "orders-db-restored-1");
        assert_eq!(instance_name(&"a".repeat(63)).len(), 63);
    }
}
