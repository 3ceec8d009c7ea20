//! Before anything runs: the credentials work, every named resource exists, and the IAM actions
//! each call needs (listed by the dry run; we do not simulate IAM policies, which would need
//! `iam:SimulatePrincipalPolicy` and another SDK: a denied read here, or a denied action at run
//! time, names the exact IAM action instead).

use super::call::Op;
use super::provider::AwsProvider;
use super::{rds, route53};
use crate::backend::{Call, ErrorKind, PreflightProblem, ProviderError, Typed};
use crate::lang::action::{Action, DnsSide, Probe, RestoreTime};
use chrono::SecondsFormat;
use std::collections::{HashMap, HashSet};

/// The IAM actions an action or probe needs (besides `sts:GetCallerIdentity` for preflight, and
/// `sts:AssumeRole` on `aws.role_arn` when set).
pub fn iam_actions(name: &str) -> &'static [&'static str] {
    match name {
        "db.cluster_failover" => &[
            "rds:FailoverDBCluster",
            "rds:DescribeDBClusters",
            "rds:DescribeDBInstances",
        ],
        "db.instance_reboot" => &[
            "rds:RebootDBInstance",
            "rds:DescribeDBInstances",
            "rds:DescribeDBClusters",
        ],
        "db.global_switchover" => &[
            "rds:SwitchoverGlobalCluster",
            "rds:DescribeGlobalClusters",
            "rds:DescribeDBClusters",
        ],
        "db.global_failover" => &[
            "rds:FailoverGlobalCluster (allow_data_loss: true) or rds:SwitchoverGlobalCluster",
            "rds:DescribeGlobalClusters",
            "rds:DescribeDBClusters",
        ],
        "db.detach_and_promote" => &[
            "rds:RemoveFromGlobalCluster",
            "rds:DescribeGlobalClusters",
            "rds:DescribeDBClusters",
            "rds:DescribeDBInstances",
        ],
        "db.point_in_time_restore" => &[
            "rds:RestoreDBClusterToPointInTime",
            "rds:CreateDBInstance",
            "rds:AddTagsToResource",
            "rds:DescribeDBClusters",
            "rds:DescribeDBInstances",
        ],
        "db.cluster_outage" => &[
            "rds:StopDBCluster",
            "rds:StartDBCluster (rollback)",
            "rds:DescribeDBClusters",
        ],
        "dns.failover" => &[
            "route53:ChangeResourceRecordSets",
            "route53:GetChange",
            "route53:ListResourceRecordSets",
            "route53:ListHostedZones (unless aws.hosted_zone_id)",
            "route53:GetHealthCheckStatus",
        ],
        "db.cluster" => &[
            "rds:DescribeDBClusters",
            "rds:DescribeDBInstances",
            "rds:DescribeGlobalClusters",
        ],
        "db.instance" => &["rds:DescribeDBInstances", "rds:DescribeDBClusters"],
        "dns.record" => &[
            "route53:ListResourceRecordSets",
            "route53:GetHealthCheckStatus",
            "route53:ListHostedZones (unless aws.hosted_zone_id)",
        ],
        "dns.health_check" => &[
            "route53:GetHealthCheckStatus",
            "route53:ListResourceRecordSets (with `record`)",
        ],
        "fis.experiment" => &[
            "fis:CreateExperimentTemplate (inline templates)",
            "fis:StartExperiment",
            "fis:GetExperiment",
            "fis:StopExperiment (rollback)",
            "fis:DeleteExperimentTemplate (inline templates)",
            "fis:GetExperimentTemplate (existing templates, preflight)",
            "fis:ListExperiments (rollback without the step's output, probe)",
            "fis:ListExperimentTemplates (rollback without the step's output)",
            "fis:TagResource",
            "iam:PassRole (the template's roleArn)",
        ],
        _ => &[],
    }
}

fn iam(name: &str) -> String {
    format!("[IAM: {}]", iam_actions(name).join(", "))
}

/// Preflight: one STS identity check, then every resource each call names.
pub(crate) async fn preflight(p: &AwsProvider, calls: &[Call]) -> Vec<PreflightProblem> {
    let c = p.clients().await;
    let whole = |error: ProviderError| {
        vec![PreflightProblem {
            owner: "environment section `aws`".into(),
            error,
        }]
    };
    let op = Op {
        action: "sts:GetCallerIdentity",
        what: "the caller's identity".into(),
        arn: "*".into(),
        region: p.settings.region.clone(),
        mutating: false,
    };
    match p.call(&op, || c.sts.get_caller_identity().send()).await {
        Ok(out) => {
            if let Some(a) = out.account() {
                p.state().account = Some(a.to_string());
            }
        }
        Err(e) => return whole(e),
    }
    // Clusters the drill itself creates are not expected to exist yet.
    let created: HashSet<String> = calls
        .iter()
        .filter_map(|c| match &c.typed {
            Typed::Action(Action::DbPointInTimeRestore(r)) => Some(r.target_cluster.clone()),
            _ => None,
        })
        .collect();
    let mut cache: HashMap<String, Result<(), ProviderError>> = HashMap::new();
    let mut problems = Vec::new();
    for call in calls {
        match check(p, &c, call, &created, &mut cache).await {
            Ok(()) => {}
            Err(
                e @ ProviderError {
                    kind: ErrorKind::Unavailable,
                    ..
                },
            ) => return whole(e),
            Err(error) => problems.push(PreflightProblem {
                owner: call.owner.clone(),
                error,
            }),
        }
    }
    problems
}

async fn cached<F, Fut>(
    cache: &mut HashMap<String, Result<(), ProviderError>>,
    key: String,
    f: F,
) -> Result<(), ProviderError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), ProviderError>>,
{
    if let Some(r) = cache.get(&key) {
        return r.clone();
    }
    let r = f().await;
    cache.insert(key, r.clone());
    r
}

use std::future::Future;

async fn check(
    p: &AwsProvider,
    c: &super::clients::Clients,
    call: &Call,
    created: &HashSet<String>,
    cache: &mut HashMap<String, Result<(), ProviderError>>,
) -> Result<(), ProviderError> {
    let cluster = |name: String| async move { rds::find_cluster(p, c, &name).await.map(|_| ()) };
    let instance = |name: String| async move { rds::find_instance(p, c, &name).await.map(|_| ()) };
    match &call.typed {
        Typed::Action(Action::DbClusterFailover(a)) => {
            let cl = rds::find_cluster(p, c, &a.cluster).await?;
            if let Some(t) = a.target_instance.as_deref().filter(|t| !t.is_empty())
                && !cl.members.iter().any(|(i, _)| i.eq_ignore_ascii_case(t))
            {
                return Err(ProviderError::not_found(format!(
                    "`{t}` is not an instance of cluster `{}` (its instances: {})",
                    cl.id,
                    cl.members
                        .iter()
                        .map(|(i, _)| i.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Ok(())
        }
        Typed::Action(Action::DbInstanceReboot(a)) => {
            let name = a.instance.clone();
            cached(cache, format!("instance:{name}"), || instance(name.clone())).await
        }
        Typed::Probe(Probe::DbInstance(q)) => {
            let name = q.instance.clone();
            cached(cache, format!("instance:{name}"), || instance(name.clone())).await
        }
        Typed::Action(Action::DbGlobalSwitchover(a) | Action::DbGlobalFailover(a)) => {
            global_member(p, c, &a.global_cluster, &a.target_cluster, "target_cluster").await
        }
        Typed::Action(Action::DbDetachAndPromote(a)) => {
            global_member(p, c, &a.global_cluster, &a.cluster, "cluster").await
        }
        Typed::Action(Action::DbPointInTimeRestore(a)) => {
            let src = rds::find_cluster(p, c, &a.source_cluster).await?;
            let target = a.target_cluster.as_str();
            if rds::cluster_in(p, c, &src.region, target).await?.is_some() {
                return Err(ProviderError::invalid_state(format!(
                    "the restore's `target_cluster` `{target}` already exists in {}; pick another name or delete it first",
                    src.region
                )));
            }
            Ok(())
        }
        Typed::Action(Action::DbClusterOutage(a)) => {
            let name = a.cluster.clone();
            cached(cache, format!("cluster:{name}"), || cluster(name.clone())).await
        }
        Typed::Probe(Probe::DbCluster(q)) => {
            let name = q.cluster.clone();
            if created.contains(&name) {
                return Ok(());
            }
            cached(cache, format!("cluster:{name}"), || cluster(name.clone())).await
        }
        Typed::Action(Action::DnsFailover(a)) => failover_record(p, c, &a.record, cache).await,
        Typed::Probe(Probe::DnsRecord(q)) => failover_record(p, c, &q.record, cache).await,
        Typed::Probe(Probe::DnsHealthCheck(q)) => match route53::health_check_ref(q) {
            (Some(id), _) => route53::check_status(p, c, id).await.map(|_| ()),
            (None, Some(record)) => {
                let zone = route53::zone_for(p, c, record).await?;
                let sets = route53::records_of(p, c, &zone, record).await?;
                let pair = route53::pairs(record, &zone, &sets)?.remove(0);
                match pair.primary.health_check_id() {
                    Some(_) => Ok(()),
                    None => Err(ProviderError::not_found(format!(
                        "the PRIMARY record of `{record}` has no health check"
                    ))),
                }
            }
            (None, None) => Err(ProviderError::not_found(
                "dns.health_check needs `record` or `health_check_id`".into(),
            )),
        },
        Typed::Action(Action::FisExperiment(sp)) => {
            p.with_fis_ctx(async |ctx| super::fis::preflight(ctx, sp).await)
                .await
        }
        _ => Ok(()),
    }
}

/// `name` is a secondary of global database `global` (`key`: the parameter naming it).
async fn global_member(
    p: &AwsProvider,
    c: &super::clients::Clients,
    global: &str,
    name: &str,
    key: &str,
) -> Result<(), ProviderError> {
    let g = rds::find_global(p, c, global).await?;
    match g.member(name) {
        None => Err(ProviderError::not_found(format!(
            "`{name}` is not a member of global database `{}` (members: {})",
            g.id,
            g.members
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Some(m) if m.writer => Err(ProviderError::invalid_state(format!(
            "`{name}` is already the primary of global database `{}`; `{key}` must be a secondary",
            g.id
        ))),
        Some(_) => Ok(()),
    }
}

/// `record` has a failover pair (once per record name).
async fn failover_record(
    p: &AwsProvider,
    c: &super::clients::Clients,
    record: &str,
    cache: &mut HashMap<String, Result<(), ProviderError>>,
) -> Result<(), ProviderError> {
    let record = record.to_string();
    cached(cache, format!("record:{record}"), || async move {
        let zone = route53::zone_for(p, c, &record).await?;
        let sets = route53::records_of(p, c, &zone, &record).await?;
        route53::pairs(&record, &zone, &sets).map(|_| ())
    })
    .await
}

/// What an action would do, resolving its targets with read-only calls, and the IAM actions it
/// needs.
pub(crate) async fn describe(p: &AwsProvider, action: &Action) -> Result<String, ProviderError> {
    let c = p.clients().await;
    let what = match action {
        Action::DbClusterFailover(a) => {
            let cl = rds::find_cluster(p, &c, &a.cluster).await?;
            let readers: Vec<&str> = cl
                .members
                .iter()
                .filter(|(_, w)| !w)
                .map(|(i, _)| i.as_str())
                .collect();
            format!(
                "FailoverDBCluster {} ({}): writer {} -> {}; wait until the new writer is available",
                cl.id,
                cl.region,
                cl.writer().unwrap_or("none"),
                a.target_instance
                    .clone()
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| format!("a reader chosen by RDS ({})", readers.join(", ")))
            )
        }
        Action::DbInstanceReboot(a) => {
            let i = rds::find_instance(p, &c, &a.instance).await?;
            format!(
                "RebootDBInstance {} ({}, {}){}; wait until it is available",
                i.id,
                i.region,
                i.status,
                if a.force_failover {
                    " with ForceFailover"
                } else {
                    ""
                }
            )
        }
        Action::DbGlobalSwitchover(a) | Action::DbGlobalFailover(a) => {
            let g = rds::find_global(p, &c, &a.global_cluster).await?;
            let loss = matches!(action, Action::DbGlobalFailover(_)) && a.allow_data_loss;
            let target = a.target_cluster.as_str();
            let m = g.member(target).ok_or_else(|| {
                ProviderError::not_found(format!(
                    "`{target}` is not a member of global database `{}`",
                    g.id
                ))
            })?;
            format!(
                "{} {}: primary {} -> {} ({}){}; wait until it is the writer",
                if loss {
                    "FailoverGlobalCluster --allow-data-loss"
                } else {
                    "SwitchoverGlobalCluster"
                },
                g.id,
                g.writer().map(|w| w.id.as_str()).unwrap_or("none"),
                m.id,
                m.region,
                if loss {
                    "; writes not yet replicated are lost"
                } else {
                    ""
                }
            )
        }
        Action::DbDetachAndPromote(a) => {
            let g = rds::find_global(p, &c, &a.global_cluster).await?;
            let name = a.cluster.as_str();
            let m = g.member(name).ok_or_else(|| {
                ProviderError::not_found(format!(
                    "`{name}` is not a member of global database `{}`",
                    g.id
                ))
            })?;
            format!(
                "RemoveFromGlobalCluster {} from {} ({}): it becomes a standalone writer",
                m.id, g.id, m.region
            )
        }
        Action::DbPointInTimeRestore(a) => {
            let src = rds::find_cluster(p, &c, &a.source_cluster).await?;
            let target = a.target_cluster.as_str();
            format!(
                "RestoreDBClusterToPointInTime {} -> new cluster {target} ({}, to {}), then CreateDBInstance {}; creates resources firedrill does not delete{}",
                src.id,
                src.region,
                match a.restore_time {
                    RestoreTime::Latest => format!(
                        "the latest restorable time, now {}",
                        src.latest_restorable
                            .map_or("unknown".into(), |t| t.to_rfc3339())
                    ),
                    // As written in the usual form (`2026-12-01T10:00:00Z`).
                    RestoreTime::At(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                },
                rds::instance_name(target),
                if a.serve {
                    "; `serve: true` is not done on AWS (repoint the application yourself)"
                } else {
                    ""
                }
            )
        }
        Action::DbClusterOutage(a) => {
            let cl = rds::find_cluster(p, &c, &a.cluster).await?;
            format!(
                "StopDBCluster {} ({}, now {}); rollback: StartDBCluster",
                cl.id, cl.region, cl.status
            )
        }
        Action::DnsFailover(a) => {
            let record = a.record.as_str();
            let zone = route53::zone_for(p, &c, record).await?;
            let sets = route53::records_of(p, &c, &zone, record).await?;
            let pairs = route53::pairs(record, &zone, &sets)?;
            let pair = &pairs[0];
            let answer = if a.to == DnsSide::Secondary {
                &pair.secondary
            } else {
                &pair.primary
            };
            format!(
                "UPSERT {record} in hosted zone {zone}: {} answers regardless of health ({} record set(s)); wait until INSYNC; rollback: restore the records as they were",
                answer.set_identifier().unwrap_or(record),
                if a.to == DnsSide::Secondary {
                    pairs.len() * 2
                } else {
                    pairs.len()
                }
            )
        }
        other => {
            return Err(ProviderError::unsupported("aws", other.name()));
        }
    };
    Ok(format!("{what} {}", iam(action.name())))
}
