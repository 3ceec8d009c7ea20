//! `dns.*` against Route 53 failover routing: force a failover record pair to its primary or
//! secondary, restore it, and the record and health-check probes.
//!
//! Forcing never swaps the roles (so a second `to: secondary`, e.g. by a later drill while an
//! earlier one still owes its rollback, cannot flip the answer back): `to: secondary` UPSERTs the
//! PRIMARY record with the SECONDARY's target (values or alias) and no health check; `to:
//! primary` UPSERTs the PRIMARY without its health check. An answer is named by the set
//! identifier of the record whose target it is.
//!
//! What Route 53 answers (the `authoritative` field) follows its failover rules: the PRIMARY
//! record while it is healthy (no health check = always healthy; a health check is healthy when
//! more than 18% of its checkers say so), else the SECONDARY if healthy, else the PRIMARY. What a
//! resolver answers (`answer`) can lag: resolvers may serve a cached answer for up to the TTL
//! after a change. We cannot see resolver caches, so `answer` is a model: the previous answer
//! until `ttl` after the last change firedrill made or observed (a change made by health checks
//! between two probes is dated at the probe that saw it, up to one poll late).
//!
//! Records are named by their set identifier: name them after their regions (`us-east-1`,
//! `us-west-2`) and `answer` reads like the simulated estate's.

use super::call::Op;
use super::clients::Clients;
use super::provider::{AwsProvider, Ledger};
use crate::backend::ProviderError;
use crate::lang::action::{DnsFailover, DnsSide, HealthCheckRef, Record};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use serde_json::{Value as Json, json};
use std::time::Duration;

/// TTL assumed for alias records (their TTL is the target's; 60s is Route 53's alias default).
pub const ALIAS_TTL: Duration = Duration::from_secs(60);

/// Lower-case FQDN with a trailing dot.
pub(crate) fn fqdn(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase().replace("\\052", "*");
    if n.ends_with('.') { n } else { format!("{n}.") }
}

fn zone_id(id: &str) -> String {
    id.trim_start_matches("/hostedzone/").to_string()
}

fn list_op(p: &AwsProvider, action: &'static str, what: String, arn: String) -> Op {
    Op {
        action,
        what,
        arn,
        region: p.settings.region.clone(),
        mutating: false,
    }
}

/// The hosted zone holding `record`: `aws.hosted_zone_id`, else the longest zone name that ends
/// the record's (a single public zone wins over private ones of the same name).
pub(crate) async fn zone_for(
    p: &AwsProvider,
    c: &Clients,
    record: &str,
) -> Result<String, ProviderError> {
    if let Some(z) = &p.settings.hosted_zone_id {
        return Ok(zone_id(z));
    }
    let name = fqdn(record);
    if let Some(z) = p.state().zones.get(&name) {
        return Ok(z.clone());
    }
    let op = list_op(
        p,
        "route53:ListHostedZones",
        "the hosted zones".into(),
        "*".into(),
    );
    let mut zones: Vec<(String, String, bool)> = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = p
            .call(&op, || {
                c.route53
                    .list_hosted_zones()
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
        for z in out.hosted_zones() {
            zones.push((
                zone_id(z.id()),
                fqdn(z.name()),
                z.config().is_some_and(|c| c.private_zone()),
            ));
        }
        match out.next_marker() {
            Some(m) if out.is_truncated() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    let holds = |zname: &str| name == zname || name.ends_with(&format!(".{zname}"));
    let best = zones
        .iter()
        .filter(|(_, zn, _)| holds(zn))
        .map(|(_, zn, _)| zn.len())
        .max();
    let Some(best) = best else {
        return Err(ProviderError::not_found(format!(
            "no hosted zone of this account holds `{record}` (ListHostedZones found {}); check the record name or set `aws.hosted_zone_id`",
            if zones.is_empty() {
                "none".to_string()
            } else {
                zones
                    .iter()
                    .map(|z| z.1.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    };
    let candidates: Vec<&(String, String, bool)> = zones
        .iter()
        .filter(|(_, zn, _)| holds(zn) && zn.len() == best)
        .collect();
    let public: Vec<&&(String, String, bool)> = candidates.iter().filter(|z| !z.2).collect();
    let chosen = match (candidates.len(), public.len()) {
        (1, _) => candidates[0].0.clone(),
        (_, 1) => public[0].0.clone(),
        _ => {
            return Err(ProviderError::not_found(format!(
                "several hosted zones named `{}` could hold `{record}` ({}); set `aws.hosted_zone_id` to the one to use",
                candidates[0].1,
                candidates
                    .iter()
                    .map(|z| z.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    p.state().zones.insert(name, chosen.clone());
    Ok(chosen)
}

/// Every record set named `record` in `zone`.
pub(crate) async fn records_of(
    p: &AwsProvider,
    c: &Clients,
    zone: &str,
    record: &str,
) -> Result<Vec<ResourceRecordSet>, ProviderError> {
    let name = fqdn(record);
    let op = list_op(
        p,
        "route53:ListResourceRecordSets",
        format!("record `{record}` in hosted zone `{zone}`"),
        format!("arn:aws:route53:::hostedzone/{zone}"),
    );
    let mut out_sets = Vec::new();
    let mut next: (Option<String>, Option<RrType>, Option<String>) =
        (Some(name.clone()), None, None);
    loop {
        let out = p
            .call(&op, || {
                c.route53
                    .list_resource_record_sets()
                    .hosted_zone_id(zone)
                    .set_start_record_name(next.0.clone())
                    .set_start_record_type(next.1.clone())
                    .set_start_record_identifier(next.2.clone())
                    .send()
            })
            .await?;
        let mut past = false;
        for r in out.resource_record_sets() {
            let n = fqdn(r.name());
            if n == name {
                out_sets.push(r.clone());
            } else if !out_sets.is_empty() {
                past = true;
            }
        }
        if past || !out.is_truncated() {
            break;
        }
        next = (
            out.next_record_name().map(str::to_string),
            out.next_record_type().cloned(),
            out.next_record_identifier().map(str::to_string),
        );
        if next.0.is_none() {
            break;
        }
    }
    Ok(out_sets)
}

/// The PRIMARY and SECONDARY records of one type.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub primary: ResourceRecordSet,
    pub secondary: ResourceRecordSet,
}

/// The failover pairs of a record, by type (A before AAAA before CNAME).
pub(crate) fn pairs(
    record: &str,
    zone: &str,
    sets: &[ResourceRecordSet],
) -> Result<Vec<Pair>, ProviderError> {
    let mut types: Vec<RrType> = Vec::new();
    for r in sets.iter().filter(|r| r.failover().is_some()) {
        if !types.contains(r.r#type()) {
            types.push(r.r#type().clone());
        }
    }
    let rank = |t: &RrType| match t.as_str() {
        "A" => 0,
        "AAAA" => 1,
        "CNAME" => 2,
        _ => 3,
    };
    types.sort_by_key(rank);
    let mut out = Vec::new();
    for t in types {
        let of = |f: ResourceRecordSetFailover| {
            sets.iter()
                .find(|r| r.r#type() == &t && r.failover() == Some(&f))
                .cloned()
        };
        match (
            of(ResourceRecordSetFailover::Primary),
            of(ResourceRecordSetFailover::Secondary),
        ) {
            (Some(primary), Some(secondary)) => out.push(Pair { primary, secondary }),
            (a, _) => {
                return Err(ProviderError::not_found(format!(
                    "`{record}` ({}) in hosted zone `{zone}` has a {} failover record but no {}; failover routing needs both",
                    t.as_str(),
                    if a.is_some() { "PRIMARY" } else { "SECONDARY" },
                    if a.is_some() { "SECONDARY" } else { "PRIMARY" }
                )));
            }
        }
    }
    if out.is_empty() {
        let kinds: Vec<&str> = sets.iter().map(|r| r.r#type().as_str()).collect();
        return Err(ProviderError::not_found(format!(
            "`{record}` has no failover records (PRIMARY/SECONDARY) in hosted zone `{zone}` (found {}); dns.* works on failover routing records",
            if kinds.is_empty() {
                "no record of that name".to_string()
            } else {
                format!("records of type {}", kinds.join(", "))
            }
        )));
    }
    Ok(out)
}

fn label(r: &ResourceRecordSet) -> String {
    r.set_identifier().unwrap_or_else(|| r.name()).to_string()
}

/// The target a record answers with: its sorted values, or its alias target.
fn target(r: &ResourceRecordSet) -> Vec<String> {
    let mut v = values(r);
    v.sort();
    v
}

/// The name of what `answering` (a record of `pair`) answers: the secondary's set identifier
/// when the primary carries the secondary's target (forced by `dns.failover`), else its own.
fn answer_label(pair: &Pair, answering: &ResourceRecordSet) -> String {
    if answering == &pair.primary && target(&pair.primary) == target(&pair.secondary) {
        label(&pair.secondary)
    } else {
        label(answering)
    }
}

fn ttl(r: &ResourceRecordSet) -> Duration {
    r.ttl()
        .map(|t| Duration::from_secs(t.max(0) as u64))
        .unwrap_or(ALIAS_TTL)
}

/// A health check's status: (healthy, checkers, healthy checkers, a status report).
pub(crate) async fn check_status(
    p: &AwsProvider,
    c: &Clients,
    id: &str,
) -> Result<(bool, usize, usize, Option<String>), ProviderError> {
    let op = list_op(
        p,
        "route53:GetHealthCheckStatus",
        format!("health check `{id}`"),
        format!("arn:aws:route53:::healthcheck/{id}"),
    );
    let out = p
        .call(&op, || {
            c.route53
                .get_health_check_status()
                .health_check_id(id)
                .send()
        })
        .await?;
    let obs = out.health_check_observations();
    let statuses: Vec<&str> = obs
        .iter()
        .filter_map(|o| o.status_report().and_then(|r| r.status()))
        .collect();
    let ok = statuses.iter().filter(|s| s.starts_with("Success")).count();
    let n = statuses.len();
    // Route 53: healthy when more than 18% of the checkers report healthy.
    let healthy = n == 0 || ok * 100 > 18 * n;
    let report = statuses
        .iter()
        .find(|s| s.starts_with("Failure") != healthy)
        .or(statuses.first())
        .map(|s| s.to_string());
    Ok((healthy, n, ok, report))
}

/// Whether a record counts as healthy for failover routing.
async fn record_healthy(
    p: &AwsProvider,
    c: &Clients,
    r: &ResourceRecordSet,
) -> Result<bool, ProviderError> {
    match r.health_check_id() {
        Some(id) => Ok(check_status(p, c, id).await?.0),
        // An alias evaluating its target's health cannot be evaluated from here: assumed healthy.
        None => Ok(true),
    }
}

/// (authoritative record, primary healthy, secondary healthy).
async fn evaluate<'a>(
    p: &AwsProvider,
    c: &Clients,
    pair: &'a Pair,
) -> Result<(&'a ResourceRecordSet, bool, bool), ProviderError> {
    let ph = record_healthy(p, c, &pair.primary).await?;
    let sh = record_healthy(p, c, &pair.secondary).await?;
    let auth = if ph || !sh {
        &pair.primary
    } else {
        &pair.secondary
    };
    Ok((auth, ph, sh))
}

/// Update what resolvers may have cached, and return what they answer now.
fn remember(
    p: &AwsProvider,
    record: &str,
    authoritative: &str,
    ttl: Duration,
) -> (String, Option<Duration>) {
    let now = p.clock().elapsed();
    let mut st = p.state();
    let m = st.dns.entry(fqdn(record)).or_default();
    if m.current.as_deref() != Some(authoritative) {
        if m.current.is_some() {
            m.previous = m.current.take();
            m.changed_at = Some(now);
        }
        m.current = Some(authoritative.to_string());
    }
    match (&m.previous, m.changed_at) {
        (Some(prev), Some(at)) if now < at + ttl => (prev.clone(), Some(at + ttl)),
        _ => (authoritative.to_string(), None),
    }
}

/// The `dns.record` probe.
pub(crate) async fn record_probe(p: &AwsProvider, q: &Record) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let record = q.record.as_str();
    let zone = zone_for(p, &c, record).await?;
    let sets = records_of(p, &c, &zone, record).await?;
    let pairs = pairs(record, &zone, &sets)?;
    let pair = &pairs[0];
    let (auth, ph, sh) = evaluate(p, &c, pair).await?;
    let t = ttl(auth);
    let (answer, stale_until) = remember(p, record, &answer_label(pair, auth), t);
    let clock = p.clock();
    Ok(json!({
        "record": record,
        "zone_id": zone,
        "type": pair.primary.r#type().as_str(),
        "authoritative": answer_label(pair, auth),
        "answer": answer,
        "primary": label(&pair.primary),
        "secondary": label(&pair.secondary),
        "primary_healthy": ph,
        "secondary_healthy": sh,
        "values": values(auth),
        "ttl_seconds": t.as_secs_f64(),
        "answer_model": "resolvers may serve the previous answer until TTL after the last change firedrill made or saw",
        "resolvers_may_be_stale_until": stale_until.map(|d| clock.at(d).to_rfc3339()),
    }))
}

fn values(r: &ResourceRecordSet) -> Vec<String> {
    match r.alias_target() {
        Some(a) => vec![a.dns_name().to_string()],
        None => r
            .resource_records()
            .iter()
            .map(|v| v.value().to_string())
            .collect(),
    }
}

/// The `dns.health_check` probe: a health check by id, or the one of a record's primary.
pub(crate) async fn health_check_probe(
    p: &AwsProvider,
    q: &HealthCheckRef,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let (record, id) = match health_check_ref(q) {
        (Some(id), _) => (None, id.to_string()),
        (None, Some(record)) => {
            let zone = zone_for(p, &c, record).await?;
            let sets = records_of(p, &c, &zone, record).await?;
            let pair = pairs(record, &zone, &sets)?.remove(0);
            let Some(id) = pair.primary.health_check_id() else {
                return Err(ProviderError::not_found(format!(
                    "the PRIMARY record of `{record}` has no health check; attach one, or name one with `health_check_id`"
                )));
            };
            (Some(record.to_string()), id.to_string())
        }
        (None, None) => {
            return Err(ProviderError::not_found(
                "dns.health_check needs `record` or `health_check_id`".into(),
            ));
        }
    };
    let (healthy, n, ok, report) = check_status(p, &c, &id).await?;
    Ok(json!({
        "record": record,
        "health_check_id": id,
        "healthy": healthy,
        "checkers": n,
        "healthy_checkers": ok,
        "status": report,
    }))
}

/// (health check id, record) of a `dns.health_check` probe; an empty name counts as absent, so
/// `record: ""` meets the same "needs `record` or `health_check_id`" error as no name at all.
pub(crate) fn health_check_ref(q: &HealthCheckRef) -> (Option<&str>, Option<&str>) {
    match q {
        HealthCheckRef::Id(id) if !id.is_empty() => (Some(id), None),
        HealthCheckRef::Record(r) if !r.is_empty() => (None, Some(r)),
        HealthCheckRef::Id(_) | HealthCheckRef::Record(_) => (None, None),
    }
}

/// JSON form of a record set (for the journal and as the revert's fallback).
pub(crate) fn to_json(r: &ResourceRecordSet) -> Json {
    json!({
        "name": r.name(),
        "type": r.r#type().as_str(),
        "set_identifier": r.set_identifier(),
        "failover": r.failover().map(|f| f.as_str()),
        "weight": r.weight(),
        "ttl": r.ttl(),
        "values": r.resource_records().iter().map(|v| v.value()).collect::<Vec<_>>(),
        "health_check_id": r.health_check_id(),
        "alias": r.alias_target().map(|a| json!({
            "hosted_zone_id": a.hosted_zone_id(),
            "dns_name": a.dns_name(),
            "evaluate_target_health": a.evaluate_target_health(),
        })),
    })
}

/// Inverse of [`to_json`].
pub(crate) fn from_json(v: &Json) -> Option<ResourceRecordSet> {
    let g = |k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
    let records: Option<Vec<ResourceRecord>> = v
        .get("values")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .filter_map(|x| ResourceRecord::builder().value(x).build().ok())
                .collect()
        })
        .filter(|a: &Vec<ResourceRecord>| !a.is_empty());
    let alias = v.get("alias").filter(|a| a.is_object()).and_then(|a| {
        AliasTarget::builder()
            .hosted_zone_id(a.get("hosted_zone_id")?.as_str()?)
            .dns_name(a.get("dns_name")?.as_str()?)
            .evaluate_target_health(a.get("evaluate_target_health")?.as_bool()?)
            .build()
            .ok()
    });
    ResourceRecordSet::builder()
        .name(g("name")?)
        .r#type(RrType::from(g("type")?.as_str()))
        .set_set_identifier(g("set_identifier"))
        .set_failover(g("failover").map(|f| ResourceRecordSetFailover::from(f.as_str())))
        .set_weight(v.get("weight").and_then(Json::as_i64))
        .set_ttl(v.get("ttl").and_then(Json::as_i64))
        .set_resource_records(records)
        .set_health_check_id(g("health_check_id"))
        .set_alias_target(alias)
        .build()
        .ok()
}

/// A copy of `r` with another failover role and, when `force`, no health check (an alias stops
/// evaluating its target's health): it always answers while it is the PRIMARY.
fn with_role(
    r: &ResourceRecordSet,
    role: ResourceRecordSetFailover,
    force: bool,
) -> ResourceRecordSet {
    let (hc, alias) = if force {
        let alias = r.alias_target().map(|a| {
            AliasTarget::builder()
                .hosted_zone_id(a.hosted_zone_id())
                .dns_name(a.dns_name())
                .evaluate_target_health(false)
                .build()
                .unwrap_or_else(|_| a.clone())
        });
        (None, alias)
    } else {
        (
            r.health_check_id().map(str::to_string),
            r.alias_target().cloned(),
        )
    };
    ResourceRecordSet::builder()
        .name(r.name())
        .r#type(r.r#type().clone())
        .set_set_identifier(r.set_identifier().map(str::to_string))
        .set_weight(r.weight())
        .set_region(r.region().cloned())
        .set_geo_location(r.geo_location().cloned())
        .failover(role)
        .set_multi_value_answer(r.multi_value_answer())
        .set_ttl(r.ttl())
        .set_resource_records(
            (!r.resource_records().is_empty()).then(|| r.resource_records().to_vec()),
        )
        .set_alias_target(alias)
        .set_health_check_id(hc)
        .set_traffic_policy_instance_id(r.traffic_policy_instance_id().map(str::to_string))
        .set_cidr_routing_config(r.cidr_routing_config().cloned())
        .set_geo_proximity_location(r.geo_proximity_location().cloned())
        .build()
        .unwrap_or_else(|_| r.clone())
}

/// The PRIMARY record answering with the SECONDARY's target, always (no health check).
fn with_target_of(primary: &ResourceRecordSet, secondary: &ResourceRecordSet) -> ResourceRecordSet {
    let alias = secondary.alias_target().map(|a| {
        AliasTarget::builder()
            .hosted_zone_id(a.hosted_zone_id())
            .dns_name(a.dns_name())
            .evaluate_target_health(false)
            .build()
            .unwrap_or_else(|_| a.clone())
    });
    ResourceRecordSet::builder()
        .name(primary.name())
        .r#type(primary.r#type().clone())
        .set_set_identifier(primary.set_identifier().map(str::to_string))
        .failover(ResourceRecordSetFailover::Primary)
        .set_ttl(if alias.is_some() {
            None
        } else {
            primary.ttl().or(secondary.ttl())
        })
        .set_resource_records(
            (!secondary.resource_records().is_empty())
                .then(|| secondary.resource_records().to_vec()),
        )
        .set_alias_target(alias)
        .build()
        .unwrap_or_else(|_| primary.clone())
}

/// UPSERT record sets and wait until the change is INSYNC; returns the change id.
async fn upsert(
    p: &AwsProvider,
    c: &Clients,
    zone: &str,
    record: &str,
    sets: Vec<ResourceRecordSet>,
    comment: String,
) -> Result<String, ProviderError> {
    let changes: Vec<Change> = sets
        .into_iter()
        .filter_map(|r| {
            Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(r)
                .build()
                .ok()
        })
        .collect();
    let batch = ChangeBatch::builder()
        .set_changes(Some(changes))
        .comment(comment)
        .build()
        .map_err(|e| ProviderError::failed(format!("cannot build the Route 53 change: {e}")))?;
    let op = Op {
        action: "route53:ChangeResourceRecordSets",
        what: format!("record `{record}` in hosted zone `{zone}`"),
        arn: format!("arn:aws:route53:::hostedzone/{zone}"),
        region: p.settings.region.clone(),
        mutating: true,
    };
    let out = p
        .call(&op, || {
            c.route53
                .change_resource_record_sets()
                .hosted_zone_id(zone)
                .change_batch(batch.clone())
                .send()
        })
        .await?;
    let id = out
        .change_info()
        .map(|i| i.id().trim_start_matches("/change/").to_string())
        .unwrap_or_default();
    Ok(id)
}

async fn wait_insync(p: &AwsProvider, c: &Clients, id: &str) -> Result<(), ProviderError> {
    let op = Op {
        action: "route53:GetChange",
        what: format!("change `{id}`"),
        arn: format!("arn:aws:route53:::change/{id}"),
        region: p.settings.region.clone(),
        mutating: false,
    };
    p.wait_for(&format!("Route 53 change `{id}` to be INSYNC"), || async {
        let out = p.call(&op, || c.route53.get_change().id(id).send()).await?;
        Ok(out
            .change_info()
            .is_some_and(|i| *i.status() == ChangeStatus::Insync)
            .then_some(()))
    })
    .await
}

/// `dns.failover`: UPSERT the failover pair so that `to` answers regardless of health (`to:
/// secondary` swaps the roles and drops the new PRIMARY's health check; `to: primary` drops the
/// PRIMARY's health check), then wait until the change is INSYNC. The records as they were are
/// kept (ledger and output) for the revert.
pub(crate) async fn failover(p: &AwsProvider, a: &DnsFailover) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let record = a.record.as_str();
    let to = a.to.as_str();
    let zone = zone_for(p, &c, record).await?;
    let sets = records_of(p, &c, &zone, record).await?;
    let pairs = pairs(record, &zone, &sets)?;
    let (before, _, _) = evaluate(p, &c, &pairs[0]).await?;
    let before_label = answer_label(&pairs[0], before);
    let before_ttl = ttl(before);
    let mut new_sets = Vec::new();
    let mut previous = Vec::new();
    for pair in &pairs {
        let forced = if a.to == DnsSide::Secondary {
            with_target_of(&pair.primary, &pair.secondary)
        } else {
            with_role(&pair.primary, ResourceRecordSetFailover::Primary, true)
        };
        if forced != pair.primary {
            new_sets.push(forced);
            previous.push(pair.primary.clone());
        }
    }
    let forced = if a.to == DnsSide::Secondary {
        label(&pairs[0].secondary)
    } else {
        label(&pairs[0].primary)
    };
    if new_sets.is_empty() {
        p.note(
            format!("{record} already answers {forced} regardless of health: nothing to change"),
            None,
        );
        return Ok(json!({
            "record": record,
            "zone_id": zone,
            "to": to,
            "answers": forced,
            "change_id": Json::Null,
            "status": "unchanged",
            "previous": [],
        }));
    }
    let run = p.state().run_id.clone().unwrap_or_default();
    let id = upsert(
        p,
        &c,
        &zone,
        record,
        new_sets.clone(),
        format!("firedrill {run}: dns.failover {record} to {to}"),
    )
    .await?;
    let previous_json: Vec<Json> = previous.iter().map(to_json).collect();
    p.state().ledger.push(Ledger::DnsChanged {
        record: fqdn(record),
        zone_id: zone.clone(),
        previous: previous.clone(),
    });
    p.note(
        format!("UPSERT {record} in {zone} (change {id}): {forced} answers regardless of health; the revert restores the records as they were"),
        Some(json!({"kind": "aws_dns_changed", "record": record, "zone_id": zone, "change_id": id, "previous": previous_json})),
    );
    if let Err(e) = wait_insync(p, &c, &id).await {
        return Err(e.map_message(|m| format!(
            "records of `{record}` were changed (change {id}) but not confirmed: {m}; the rollback restores them"
        )));
    }
    // Resolvers keep the old answer for up to its TTL from now.
    set_changed(p, record, &before_label, &forced, before_ttl);
    Ok(json!({
        "record": record,
        "zone_id": zone,
        "to": to,
        "answers": forced,
        "change_id": id,
        "status": "INSYNC",
        "previous": previous_json,
    }))
}

fn set_changed(p: &AwsProvider, record: &str, from: &str, to: &str, _ttl: Duration) {
    let now = p.clock().elapsed();
    let mut st = p.state();
    let m = st.dns.entry(fqdn(record)).or_default();
    if from != to {
        m.previous = Some(from.to_string());
        m.changed_at = Some(now);
    }
    m.current = Some(to.to_string());
}

/// Revert of `dns.failover`: UPSERT the records as they were (from the ledger, or the step's
/// output when the provider restarted) and wait until INSYNC.
pub(crate) async fn restore(
    p: &AwsProvider,
    a: &DnsFailover,
    output: &Json,
) -> Result<Json, ProviderError> {
    let c = p.clients().await;
    let record = a.record.as_str();
    let key = fqdn(record);
    let from_ledger = p.state().ledger.iter().rev().find_map(|l| match l {
        Ledger::DnsChanged {
            record,
            zone_id,
            previous,
        } if *record == key => Some((zone_id.clone(), previous.clone())),
        _ => None,
    });
    let (zone, previous) = match from_ledger {
        Some(x) => x,
        None => {
            let prev: Vec<ResourceRecordSet> = output
                .get("previous")
                .and_then(Json::as_array)
                .map(|a| a.iter().filter_map(from_json).collect())
                .unwrap_or_default();
            match output.get("zone_id").and_then(Json::as_str) {
                Some(z) if !prev.is_empty() => (z.to_string(), prev),
                _ => {
                    return Ok(
                        json!({"record": record, "restored": false, "reason": "the step changed nothing"}),
                    );
                }
            }
        }
    };
    let current = records_of(p, &c, &zone, record).await?;
    let before = pairs(record, &zone, &current).ok().map(|v| v[0].clone());
    let before_label = match &before {
        Some(pair) => Some(answer_label(pair, evaluate(p, &c, pair).await?.0)),
        None => None,
    };
    let run = p.state().run_id.clone().unwrap_or_default();
    let id = upsert(
        p,
        &c,
        &zone,
        record,
        previous.clone(),
        format!("firedrill {run}: restore {record}"),
    )
    .await
    .map_err(|e| restore_failed(e, record, &previous))?;
    wait_insync(p, &c, &id)
        .await
        .map_err(|e| restore_failed(e, record, &previous))?;
    p.state()
        .ledger
        .retain(|l| !matches!(l, Ledger::DnsChanged { record, .. } if *record == key));
    let restored = records_of(p, &c, &zone, record).await?;
    if let (Ok(pp), Some(from)) = (pairs(record, &zone, &restored), before_label) {
        let (auth, _, _) = evaluate(p, &c, &pp[0]).await?;
        set_changed(p, record, &from, &answer_label(&pp[0], auth), ttl(auth));
    }
    p.note(
        format!("restored the records of {record} (change {id})"),
        None,
    );
    Ok(json!({
        "record": record,
        "zone_id": zone,
        "restored": true,
        "change_id": id,
        "records": previous.iter().map(to_json).collect::<Vec<_>>(),
    }))
}

fn restore_failed(e: ProviderError, record: &str, previous: &[ResourceRecordSet]) -> ProviderError {
    let wanted = serde_json::to_string(&previous.iter().map(to_json).collect::<Vec<_>>())
        .unwrap_or_default();
    let m = format!(
        "the records of `{record}` are still forced by the drill; restore them by hand (UPSERT): {wanted}"
    );
    e.map_message(|x| format!("{x}; {m}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(set: &str, role: ResourceRecordSetFailover, hc: Option<&str>) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name("api.example.com.")
            .r#type(RrType::A)
            .set_identifier(set)
            .failover(role)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value("10.0.0.1").build().unwrap())
            .set_health_check_id(hc.map(str::to_string))
            .build()
            .unwrap()
    }

    #[test]
    fn record_sets_round_trip_through_json() {
        let r = rr(
            "us-east-1",
            ResourceRecordSetFailover::Primary,
            Some("hc-1"),
        );
        assert_eq!(from_json(&to_json(&r)), Some(r));
        let alias = ResourceRecordSet::builder()
            .name("api.example.com.")
            .r#type(RrType::A)
            .set_identifier("us-west-2")
            .failover(ResourceRecordSetFailover::Secondary)
            .alias_target(
                AliasTarget::builder()
                    .hosted_zone_id("Z35SXDOTRQ7X7K")
                    .dns_name("lb.us-west-2.elb.amazonaws.com.")
                    .evaluate_target_health(true)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert_eq!(from_json(&to_json(&alias)), Some(alias));
        assert_eq!(from_json(&json!({"type": "A"})), None);
    }

    #[test]
    fn pairs_need_both_roles() {
        let p = rr("us-east-1", ResourceRecordSetFailover::Primary, None);
        let s = rr("us-west-2", ResourceRecordSetFailover::Secondary, None);
        let ok = pairs("api.example.com", "Z1", &[s.clone(), p.clone()]).unwrap();
        assert_eq!(label(&ok[0].primary), "us-east-1");
        let e = pairs("api.example.com", "Z1", &[p])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no SECONDARY"), "{e}");
        let e = pairs("api.example.com", "Z1", &[]).unwrap_err().to_string();
        assert!(e.contains("no failover records"), "{e}");
    }

    #[test]
    fn forcing_the_secondary_gives_the_primary_its_target() {
        let p = rr(
            "us-east-1",
            ResourceRecordSetFailover::Primary,
            Some("hc-1"),
        );
        let mut s = rr("us-west-2", ResourceRecordSetFailover::Secondary, None);
        s.resource_records = Some(vec![
            ResourceRecord::builder().value("10.1.0.1").build().unwrap(),
        ]);
        let f = with_target_of(&p, &s);
        assert_eq!(
            f.set_identifier(),
            Some("us-east-1"),
            "same record, same role"
        );
        assert_eq!(f.failover(), Some(&ResourceRecordSetFailover::Primary));
        assert_eq!(f.health_check_id(), None);
        assert_eq!(values(&f), vec!["10.1.0.1".to_string()]);
        let pair = Pair {
            primary: p.clone(),
            secondary: s.clone(),
        };
        assert_eq!(answer_label(&pair, &p), "us-east-1");
        let forced = Pair {
            primary: f.clone(),
            secondary: s,
        };
        assert_eq!(answer_label(&forced, &f), "us-west-2");
        // Forcing again changes nothing.
        assert_eq!(with_target_of(&f, &forced.secondary), f);
    }

    #[test]
    fn forcing_drops_the_health_check() {
        let s = rr(
            "us-west-2",
            ResourceRecordSetFailover::Secondary,
            Some("hc-2"),
        );
        let f = with_role(&s, ResourceRecordSetFailover::Primary, true);
        assert_eq!(f.failover(), Some(&ResourceRecordSetFailover::Primary));
        assert_eq!(f.health_check_id(), None);
        assert_eq!(f.set_identifier(), Some("us-west-2"));
        let kept = with_role(&s, ResourceRecordSetFailover::Primary, false);
        assert_eq!(kept.health_check_id(), Some("hc-2"));
    }

    #[test]
    fn names_normalize() {
        assert_eq!(fqdn("API.example.com"), "api.example.com.");
        assert_eq!(fqdn("\\052.example.com."), "*.example.com.");
    }
}
