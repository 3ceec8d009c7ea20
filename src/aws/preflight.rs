//! Before anything runs: the credentials work, every named resource exists, and the IAM actions
//! each call needs (listed by the dry run; we do not simulate IAM policies, which would need
//! `iam:SimulatePrincipalPolicy` and another SDK: a denied read here, or a denied action at run
//! time, names the exact IAM action instead).

use super::call::Op;
use super::provider::{AwsProvider, opt, s};
use super::{rds, route53};
use crate::provider::{Call, ErrorKind, PreflightProblem, ProviderError};
use serde_json::Value as Json;
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
        .filter(|c| c.name == "db.point_in_time_restore")
        .map(|c| s(&c.params, "target_cluster").to_string())
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
    let prm = &call.params;
    let cluster = |name: String| async move { rds::find_cluster(p, c, &name).await.map(|_| ()) };
    match call.name.as_str() {
        "db.cluster_failover" => {
            let cl = rds::find_cluster(p, c, s(prm, "cluster")).await?;
            if let Some(t) = opt(prm, "target_instance")
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
        "db.instance_reboot" | "db.instance" => {
            let name = s(prm, "instance").to_string();
            cached(cache, format!("instance:{name}"), || async move {
                rds::find_instance(p, c, &name).await.map(|_| ())
            })
            .await
        }
        "db.global_switchover" | "db.global_failover" | "db.detach_and_promote" => {
            let g = rds::find_global(p, c, s(prm, "global_cluster")).await?;
            let key = if call.name == "db.detach_and_promote" {
                "cluster"
            } else {
                "target_cluster"
            };
            let name = s(prm, key);
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
        "db.point_in_time_restore" => {
            let src = rds::find_cluster(p, c, s(prm, "source_cluster")).await?;
            let target = s(prm, "target_cluster");
            if rds::cluster_in(p, c, &src.region, target).await?.is_some() {
                return Err(ProviderError::invalid_state(format!(
                    "the restore's `target_cluster` `{target}` already exists in {}; pick another name or delete it first",
                    src.region
                )));
            }
            Ok(())
        }
        "db.cluster_outage" | "db.cluster" => {
            let name = s(prm, "cluster").to_string();
            if call.name == "db.cluster" && created.contains(&name) {
                return Ok(());
            }
            cached(cache, format!("cluster:{name}"), || cluster(name.clone())).await
        }
        "dns.failover" | "dns.record" => {
            let record = s(prm, "record").to_string();
            cached(cache, format!("record:{record}"), || async move {
                let zone = route53::zone_for(p, c, &record).await?;
                let sets = route53::records_of(p, c, &zone, &record).await?;
                route53::pairs(&record, &zone, &sets).map(|_| ())
            })
            .await
        }
        "dns.health_check" => match (opt(prm, "health_check_id"), opt(prm, "record")) {
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
        "fis.experiment" if call.is_action => {
            p.with_fis_ctx(async |ctx| super::fis::preflight(ctx, prm).await)
                .await
        }
        _ => Ok(()),
    }
}

/// What an action would do, resolving its targets with read-only calls, and the IAM actions it
/// needs.
pub(crate) async fn describe(
    p: &AwsProvider,
    action: &str,
    prm: &Json,
) -> Result<String, ProviderError> {
    let c = p.clients().await;
    let what = match action {
        "db.cluster_failover" => {
            let cl = rds::find_cluster(p, &c, s(prm, "cluster")).await?;
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
                opt(prm, "target_instance")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("a reader chosen by RDS ({})", readers.join(", ")))
            )
        }
        "db.instance_reboot" => {
            let i = rds::find_instance(p, &c, s(prm, "instance")).await?;
            format!(
                "RebootDBInstance {} ({}, {}){}; wait until it is available",
                i.id,
                i.region,
                i.status,
                if super::provider::flag(prm, "force_failover", false) {
                    " with ForceFailover"
                } else {
                    ""
                }
            )
        }
        "db.global_switchover" | "db.global_failover" => {
            let g = rds::find_global(p, &c, s(prm, "global_cluster")).await?;
            let loss = action == "db.global_failover"
                && super::provider::flag(prm, "allow_data_loss", false);
            let target = s(prm, "target_cluster");
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
        "db.detach_and_promote" => {
            let g = rds::find_global(p, &c, s(prm, "global_cluster")).await?;
            let name = s(prm, "cluster");
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
        "db.point_in_time_restore" => {
            let src = rds::find_cluster(p, &c, s(prm, "source_cluster")).await?;
            let target = s(prm, "target_cluster");
            format!(
                "RestoreDBClusterToPointInTime {} -> new cluster {target} ({}, to {}), then CreateDBInstance {}; creates resources firedrill does not delete{}",
                src.id,
                src.region,
                match opt(prm, "restore_time") {
                    None | Some("latest") => format!(
                        "the latest restorable time, now {}",
                        src.latest_restorable
                            .map_or("unknown".into(), |t| t.to_rfc3339())
                    ),
                    Some(t) => t.to_string(),
                },
                rds::instance_name(target),
                if super::provider::flag(prm, "serve", false) {
                    "; `serve: true` is not done on AWS (repoint the application yourself)"
                } else {
                    ""
                }
            )
        }
        "db.cluster_outage" => {
            let cl = rds::find_cluster(p, &c, s(prm, "cluster")).await?;
            format!(
                "StopDBCluster {} ({}, now {}); rollback: StartDBCluster",
                cl.id, cl.region, cl.status
            )
        }
        "dns.failover" => {
            let record = s(prm, "record");
            let zone = route53::zone_for(p, &c, record).await?;
            let sets = route53::records_of(p, &c, &zone, record).await?;
            let pairs = route53::pairs(record, &zone, &sets)?;
            let to = s(prm, "to");
            let pair = &pairs[0];
            let answer = if to == "secondary" {
                &pair.secondary
            } else {
                &pair.primary
            };
            format!(
                "UPSERT {record} in hosted zone {zone}: {} answers regardless of health ({} record set(s)); wait until INSYNC; rollback: restore the records as they were",
                answer.set_identifier().unwrap_or(record),
                if to == "secondary" {
                    pairs.len() * 2
                } else {
                    pairs.len()
                }
            )
        }
        other => {
            return Err(ProviderError::unsupported("aws", other));
        }
    };
    Ok(format!("{what} {}", iam(action)))
}
