//! The AWS FIS action and resource-type catalog: every action id FIS documents, the target key
//! and resource type each acts on, and its parameters with their kinds and ranges (from the FIS
//! actions reference and the targets page of the FIS user guide). moto knows none of this and
//! accepts anything, so [`crate::lang::fis_template`] checks templates against this table.
//!
//! Invariant: data only; a new FIS action is one row here.

use std::time::Duration;

/// What a parameter value must look like (FIS parameters are all strings on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ISO 8601 duration (`PT10M`) within a range.
    Duration { min: Duration, max: Duration },
    /// A whole number within a range (percentages are `Int { 1, 100 }` or `Int { 0, 100 }`).
    Int { min: u64, max: u64 },
    /// `true` or `false`.
    Bool,
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// Any non-empty string.
    Text,
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub required: bool,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    pub id: &'static str,
    /// The `targets:` key and the resource type the referenced target must have; `None` for
    /// actions without targets (`aws:fis:wait`...).
    pub target: Option<(&'static str, &'static str)>,
    pub params: &'static [Param],
}

#[derive(Debug, Clone, Copy)]
pub struct ResourceType {
    pub name: &'static str,
    /// The service segment of the ARNs of this resource type (`None`: several services).
    pub arn_service: Option<&'static str>,
    /// Target `parameters:` this resource type accepts.
    pub params: &'static [Param],
}

const fn req(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        required: true,
        kind,
    }
}
const fn opt(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        required: false,
        kind,
    }
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
const MIN: Duration = secs(60);
const H12: Duration = secs(12 * 3600);
/// "from one minute to 12 hours", the common FIS range.
const D1M_12H: Kind = Kind::Duration { min: MIN, max: H12 };
/// Ranges the reference does not state: anything positive up to FIS's 12-hour limit.
const D_ANY: Kind = Kind::Duration {
    min: secs(1),
    max: H12,
};
const PCT: Kind = Kind::Int { min: 1, max: 100 };
const PCT0: Kind = Kind::Int { min: 0, max: 100 };
const COUNT: Kind = Kind::Int {
    min: 0,
    max: u32::MAX as u64,
};
const MS: Kind = Kind::Int {
    min: 0,
    max: 3_600_000,
};
const TRAFFIC: Kind = Kind::Enum(&["ingress", "egress"]);
const PROTOCOL: Kind = Kind::Enum(&["tcp", "udp"]);
const POD_POLICY: Kind = Kind::Enum(&["privileged", "baseline", "restricted"]);

const INJECT_API: &[Param] = &[
    req("duration", D1M_12H),
    req("service", Kind::Enum(&["ec2", "kinesis"])),
    req("percentage", PCT),
    req("operations", Kind::Text),
];
const DURATION_ONLY: &[Param] = &[req("duration", D1M_12H)];
const DURATION_ANY: &[Param] = &[req("duration", D_ANY)];

macro_rules! pod_params {
    ($($p:expr),* $(,)?) => {
        &[
            $($p,)*
            req("kubernetesServiceAccount", Kind::Text),
            opt("fisPodContainerImage", Kind::Text),
            opt("maxErrorsPercent", PCT0),
            opt("fisPodLabels", Kind::Text),
            opt("fisPodAnnotations", Kind::Text),
            opt("fisPodSecurityPolicy", POD_POLICY),
        ]
    };
}

const TASK_STRESS: &[Param] = &[
    req("duration", D_ANY),
    opt("percent", PCT0),
    opt("workers", COUNT),
    opt("installDependencies", Kind::Bool),
];

const ROLES: Option<(&str, &str)> = Some(("Roles", "aws:iam:role"));
const INSTANCES: Option<(&str, &str)> = Some(("Instances", "aws:ec2:instance"));
const TASKS: Option<(&str, &str)> = Some(("Tasks", "aws:ecs:task"));
const PODS: Option<(&str, &str)> = Some(("Pods", "aws:eks:pod"));
const FUNCTIONS: Option<(&str, &str)> = Some(("Functions", "aws:lambda:function"));
const SUBNETS: Option<(&str, &str)> = Some(("Subnets", "aws:ec2:subnet"));
const STREAMS: Option<(&str, &str)> = Some(("KinesisStreams", "aws:kinesis:stream"));

/// Every FIS action id, in the reference's order.
pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        id: "aws:fis:inject-api-internal-error",
        target: ROLES,
        params: INJECT_API,
    },
    ActionSpec {
        id: "aws:fis:inject-api-throttle-error",
        target: ROLES,
        params: INJECT_API,
    },
    ActionSpec {
        id: "aws:fis:inject-api-unavailable-error",
        target: ROLES,
        params: INJECT_API,
    },
    ActionSpec {
        id: "aws:arc:start-zonal-autoshift",
        target: Some(("ManagedResources", "aws:arc:zonal-shift-managed-resource")),
        params: &[
            req("duration", D_ANY),
            req("availabilityZoneIdentifier", Kind::Text),
            opt("managedResourceTypes", Kind::Text),
            opt(
                "zonalAutoshiftStatus",
                Kind::Enum(&["ENABLED", "DISABLED", "ANY"]),
            ),
        ],
    },
    ActionSpec {
        id: "aws:fis:wait",
        target: None,
        params: DURATION_ONLY,
    },
    ActionSpec {
        id: "aws:cloudwatch:assert-alarm-state",
        target: None,
        params: &[req("alarmArns", Kind::Text), req("alarmStates", Kind::Text)],
    },
    ActionSpec {
        id: "aws:dynamodb:global-table-pause-replication",
        target: Some(("Tables", "aws:dynamodb:global-table")),
        params: DURATION_ANY,
    },
    ActionSpec {
        id: "aws:dsql:cluster-connection-failure",
        target: Some(("Clusters", "aws:dsql:cluster")),
        params: &[req("duration", D1M_12H), req("percentage", PCT)],
    },
    ActionSpec {
        id: "aws:ebs:pause-volume-io",
        target: Some(("Volumes", "aws:ec2:ebs-volume")),
        params: &[req(
            "duration",
            Kind::Duration {
                min: secs(1),
                max: H12,
            },
        )],
    },
    ActionSpec {
        id: "aws:ebs:volume-io-latency",
        target: Some(("Volumes", "aws:ec2:ebs-volume")),
        params: &[
            req(
                "duration",
                Kind::Duration {
                    min: secs(1),
                    max: H12,
                },
            ),
            opt("readIOPercentage", Kind::Text),
            opt("readIOLatencyMilliseconds", MS),
            opt("writeIOPercentage", Kind::Text),
            opt("writeIOLatencyMilliseconds", MS),
        ],
    },
    ActionSpec {
        id: "aws:ec2:api-insufficient-instance-capacity-error",
        target: ROLES,
        params: &[
            req("duration", D_ANY),
            req("availabilityZoneIdentifiers", Kind::Text),
            req("percentage", PCT),
        ],
    },
    ActionSpec {
        id: "aws:ec2:asg-insufficient-instance-capacity-error",
        target: Some(("AutoScalingGroups", "aws:ec2:autoscaling-group")),
        params: &[
            req("duration", D_ANY),
            req("availabilityZoneIdentifiers", Kind::Text),
            opt("percentage", PCT),
        ],
    },
    ActionSpec {
        id: "aws:ec2:reboot-instances",
        target: INSTANCES,
        params: &[],
    },
    ActionSpec {
        id: "aws:ec2:send-spot-instance-interruptions",
        target: Some(("SpotInstances", "aws:ec2:spot-instance")),
        params: &[req(
            "durationBeforeInterruption",
            Kind::Duration {
                min: secs(120),
                max: secs(900),
            },
        )],
    },
    ActionSpec {
        id: "aws:ec2:stop-instances",
        target: INSTANCES,
        params: &[
            opt("startInstancesAfterDuration", D1M_12H),
            opt("completeIfInstancesTerminated", Kind::Bool),
        ],
    },
    ActionSpec {
        id: "aws:ec2:terminate-instances",
        target: INSTANCES,
        params: &[],
    },
    ActionSpec {
        id: "aws:ecs:drain-container-instances",
        target: Some(("Clusters", "aws:ecs:cluster")),
        params: &[req("drainagePercentage", PCT), req("duration", D1M_12H)],
    },
    ActionSpec {
        id: "aws:ecs:stop-task",
        target: TASKS,
        params: &[],
    },
    ActionSpec {
        id: "aws:ecs:task-cpu-stress",
        target: TASKS,
        params: TASK_STRESS,
    },
    ActionSpec {
        id: "aws:ecs:task-io-stress",
        target: TASKS,
        params: TASK_STRESS,
    },
    ActionSpec {
        id: "aws:ecs:task-kill-process",
        target: TASKS,
        params: &[
            req("processName", Kind::Text),
            opt("signal", Kind::Enum(&["SIGTERM", "SIGKILL"])),
            opt("installDependencies", Kind::Bool),
        ],
    },
    ActionSpec {
        id: "aws:ecs:task-network-blackhole-port",
        target: TASKS,
        params: &[
            req("duration", D_ANY),
            req("port", Kind::Int { min: 0, max: 65535 }),
            req("trafficType", TRAFFIC),
            opt("protocol", PROTOCOL),
            opt("installDependencies", Kind::Bool),
            opt("useEcsFaultInjectionEndpoints", Kind::Bool),
        ],
    },
    ActionSpec {
        id: "aws:ecs:task-network-latency",
        target: TASKS,
        params: &[
            req("duration", D_ANY),
            opt("delayMilliseconds", MS),
            opt("jitterMilliseconds", MS),
            opt("flowsPercent", PCT),
            opt("sources", Kind::Text),
            opt("installDependencies", Kind::Bool),
            opt("useEcsFaultInjectionEndpoints", Kind::Bool),
        ],
    },
    ActionSpec {
        id: "aws:ecs:task-network-packet-loss",
        target: TASKS,
        params: &[
            req("duration", D_ANY),
            opt("lossPercent", PCT0),
            opt("flowsPercent", PCT),
            opt("sources", Kind::Text),
            opt("installDependencies", Kind::Bool),
            opt("useEcsFaultInjectionEndpoints", Kind::Bool),
        ],
    },
    ActionSpec {
        id: "aws:eks:inject-kubernetes-custom-resource",
        target: Some(("Cluster", "aws:eks:cluster")),
        params: &[
            req(
                "kubernetesApiVersion",
                Kind::Enum(&["chaos-mesh.org/v1alpha1", "litmuschaos.io/v1alpha1"]),
            ),
            req("kubernetesKind", Kind::Text),
            req("kubernetesNamespace", Kind::Text),
            req("kubernetesSpec", Kind::Text),
            req("maxDuration", D1M_12H),
        ],
    },
    ActionSpec {
        id: "aws:eks:pod-cpu-stress",
        target: PODS,
        params: pod_params![
            req("duration", D_ANY),
            opt("percent", PCT0),
            opt("workers", COUNT)
        ],
    },
    ActionSpec {
        id: "aws:eks:pod-delete",
        target: PODS,
        params: pod_params![opt(
            "gracePeriodSeconds",
            Kind::Int {
                min: 0,
                max: 86_400
            }
        )],
    },
    ActionSpec {
        id: "aws:eks:pod-io-stress",
        target: PODS,
        params: pod_params![
            req("duration", D_ANY),
            opt("workers", COUNT),
            opt("percent", PCT0)
        ],
    },
    ActionSpec {
        id: "aws:eks:pod-memory-stress",
        target: PODS,
        params: pod_params![
            req("duration", D_ANY),
            opt("workers", COUNT),
            opt("percent", PCT0)
        ],
    },
    ActionSpec {
        id: "aws:eks:pod-network-blackhole-port",
        target: PODS,
        params: pod_params![
            req("duration", D_ANY),
            req("protocol", PROTOCOL),
            req("trafficType", TRAFFIC),
            req("port", Kind::Int { min: 0, max: 65535 })
        ],
    },
    ActionSpec {
        id: "aws:eks:pod-network-latency",
        target: PODS,
        params: pod_params![
            req("duration", D_ANY),
            opt("interface", Kind::Text),
            opt("delayMilliseconds", MS),
            opt("jitterMilliseconds", MS),
            opt("flowsPercent", PCT),
            opt("sources", Kind::Text)
        ],
    },
    ActionSpec {
        id: "aws:eks:pod-network-packet-loss",
        target: PODS,
        params: pod_params![
            req("duration", D_ANY),
            opt("interface", Kind::Text),
            opt("lossPercent", PCT0),
            opt("flowsPercent", PCT),
            opt("sources", Kind::Text)
        ],
    },
    ActionSpec {
        id: "aws:eks:terminate-nodegroup-instances",
        target: Some(("Nodegroups", "aws:eks:nodegroup")),
        params: &[req("instanceTerminationPercentage", PCT)],
    },
    ActionSpec {
        id: "aws:elasticache:replicationgroup-interrupt-az-power",
        target: Some(("ReplicationGroups", "aws:elasticache:replicationgroup")),
        params: DURATION_ONLY,
    },
    ActionSpec {
        // The earlier id of the same fault, still used by the scenario library.
        id: "aws:elasticache:interrupt-cluster-az-power",
        target: Some((
            "ReplicationGroups",
            "aws:elasticache:redis-replicationgroup",
        )),
        params: DURATION_ONLY,
    },
    ActionSpec {
        id: "aws:kinesis:stream-provisioned-throughput-exception",
        target: STREAMS,
        params: &[req("duration", D1M_12H), req("percentage", PCT)],
    },
    ActionSpec {
        id: "aws:kinesis:stream-expired-iterator-exception",
        target: STREAMS,
        params: &[req("duration", D1M_12H), req("percentage", PCT)],
    },
    ActionSpec {
        id: "aws:lambda:invocation-add-delay",
        target: FUNCTIONS,
        params: &[
            req("duration", D_ANY),
            opt("invocationPercentage", PCT),
            opt(
                "startupDelayMilliseconds",
                Kind::Int {
                    min: 0,
                    max: 900_000,
                },
            ),
        ],
    },
    ActionSpec {
        id: "aws:lambda:invocation-error",
        target: FUNCTIONS,
        params: &[
            req("duration", D_ANY),
            opt("invocationPercentage", PCT),
            req("preventExecution", Kind::Bool),
        ],
    },
    ActionSpec {
        id: "aws:lambda:invocation-http-integration-response",
        target: FUNCTIONS,
        params: &[
            req("contentTypeHeader", Kind::Text),
            req("duration", D_ANY),
            opt("invocationPercentage", PCT),
            req("preventExecution", Kind::Bool),
            req("statusCode", Kind::Int { min: 0, max: 999 }),
        ],
    },
    ActionSpec {
        id: "aws:memorydb:multi-region-cluster-pause-replication",
        target: Some(("MultiRegionClusters", "aws:memorydb:multi-region-cluster")),
        params: DURATION_ONLY,
    },
    ActionSpec {
        id: "aws:network:disrupt-connectivity",
        target: SUBNETS,
        params: &[
            req(
                "scope",
                Kind::Enum(&[
                    "all",
                    "availability-zone",
                    "dynamodb",
                    "prefix-list",
                    "s3",
                    "s3express",
                    "vpc",
                ]),
            ),
            req("duration", D1M_12H),
            opt("prefixListIdentifier", Kind::Text),
        ],
    },
    ActionSpec {
        id: "aws:network:route-table-disrupt-cross-region-connectivity",
        target: SUBNETS,
        params: &[req("region", Kind::Text), req("duration", D_ANY)],
    },
    ActionSpec {
        id: "aws:network:transit-gateway-disrupt-cross-region-connectivity",
        target: Some(("TransitGateways", "aws:ec2:transit-gateway")),
        params: &[req("region", Kind::Text), req("duration", D_ANY)],
    },
    ActionSpec {
        id: "aws:network:disrupt-vpc-endpoint",
        target: Some(("VPCEndpoints", "aws:ec2:vpc-endpoint")),
        params: DURATION_ANY,
    },
    ActionSpec {
        id: "aws:rds:failover-db-cluster",
        target: Some(("Clusters", "aws:rds:cluster")),
        params: &[],
    },
    ActionSpec {
        id: "aws:rds:reboot-db-instances",
        target: Some(("DBInstances", "aws:rds:db")),
        params: &[opt("forceFailover", Kind::Bool)],
    },
    ActionSpec {
        id: "aws:s3:bucket-pause-replication",
        target: Some(("Buckets", "aws:s3:bucket")),
        params: &[
            req("duration", D1M_12H),
            req("region", Kind::Text),
            opt("destinationBuckets", Kind::Text),
            opt("prefixes", Kind::Text),
        ],
    },
    ActionSpec {
        id: "aws:ssm:send-command",
        target: INSTANCES,
        params: &[
            req("documentArn", Kind::Text),
            opt("documentVersion", Kind::Text),
            opt("documentParameters", Kind::Text),
            req("duration", D1M_12H),
        ],
    },
    ActionSpec {
        id: "aws:ssm:start-automation-execution",
        target: None,
        params: &[
            req("documentArn", Kind::Text),
            opt("documentVersion", Kind::Text),
            opt("documentParameters", Kind::Text),
            req("maxDuration", D1M_12H),
        ],
    },
    ActionSpec {
        id: "aws:directconnect:virtual-interface-disconnect",
        target: Some(("VirtualInterfaces", "aws:directconnect:virtual-interface")),
        params: &[req(
            "duration",
            Kind::Duration {
                min: secs(600),
                max: H12,
            },
        )],
    },
];

const AZ: Param = opt("availabilityZoneIdentifier", Kind::Text);

/// Every FIS target resource type and the target `parameters:` it accepts.
pub const RESOURCE_TYPES: &[ResourceType] = &[
    ResourceType {
        name: "aws:arc:zonal-shift-managed-resource",
        arn_service: None,
        params: &[],
    },
    ResourceType {
        name: "aws:directconnect:virtual-interface",
        arn_service: Some("directconnect"),
        params: &[],
    },
    ResourceType {
        name: "aws:dsql:cluster",
        arn_service: Some("dsql"),
        params: &[],
    },
    ResourceType {
        name: "aws:dynamodb:global-table",
        arn_service: Some("dynamodb"),
        params: &[],
    },
    ResourceType {
        name: "aws:ec2:autoscaling-group",
        arn_service: Some("autoscaling"),
        params: &[],
    },
    ResourceType {
        name: "aws:ec2:ebs-volume",
        arn_service: Some("ec2"),
        params: &[AZ],
    },
    ResourceType {
        name: "aws:ec2:instance",
        arn_service: Some("ec2"),
        params: &[],
    },
    ResourceType {
        name: "aws:ec2:spot-instance",
        arn_service: Some("ec2"),
        params: &[],
    },
    ResourceType {
        name: "aws:ec2:subnet",
        arn_service: Some("ec2"),
        params: &[AZ, opt("vpc", Kind::Text)],
    },
    ResourceType {
        name: "aws:ec2:transit-gateway",
        arn_service: Some("ec2"),
        params: &[],
    },
    ResourceType {
        name: "aws:ec2:vpc-endpoint",
        arn_service: Some("ec2"),
        params: &[],
    },
    ResourceType {
        name: "aws:ecs:cluster",
        arn_service: Some("ecs"),
        params: &[],
    },
    ResourceType {
        name: "aws:ecs:task",
        arn_service: Some("ecs"),
        params: &[opt("cluster", Kind::Text), opt("service", Kind::Text)],
    },
    ResourceType {
        name: "aws:eks:cluster",
        arn_service: Some("eks"),
        params: &[],
    },
    ResourceType {
        name: "aws:eks:nodegroup",
        arn_service: Some("eks"),
        params: &[],
    },
    ResourceType {
        name: "aws:eks:pod",
        arn_service: Some("eks"),
        params: &[
            AZ,
            req("clusterIdentifier", Kind::Text),
            req("namespace", Kind::Text),
            req(
                "selectorType",
                Kind::Enum(&["labelSelector", "deploymentName", "podName"]),
            ),
            req("selectorValue", Kind::Text),
            opt("targetContainerName", Kind::Text),
        ],
    },
    ResourceType {
        name: "aws:elasticache:replicationgroup",
        arn_service: Some("elasticache"),
        params: &[req("availabilityZoneIdentifier", Kind::Text)],
    },
    ResourceType {
        name: "aws:elasticache:redis-replicationgroup",
        arn_service: Some("elasticache"),
        params: &[req("availabilityZoneIdentifier", Kind::Text)],
    },
    ResourceType {
        name: "aws:iam:role",
        arn_service: Some("iam"),
        params: &[],
    },
    ResourceType {
        name: "aws:kinesis:stream",
        arn_service: Some("kinesis"),
        params: &[],
    },
    ResourceType {
        name: "aws:lambda:function",
        arn_service: Some("lambda"),
        params: &[opt("functionQualifier", Kind::Text)],
    },
    ResourceType {
        name: "aws:memorydb:multi-region-cluster",
        arn_service: Some("memorydb"),
        params: &[],
    },
    ResourceType {
        name: "aws:rds:cluster",
        arn_service: Some("rds"),
        params: &[opt("writerAvailabilityZoneIdentifiers", Kind::Text)],
    },
    ResourceType {
        name: "aws:rds:db",
        arn_service: Some("rds"),
        params: &[opt("availabilityZoneIdentifiers", Kind::Text)],
    },
    ResourceType {
        name: "aws:s3:bucket",
        arn_service: Some("s3"),
        params: &[],
    },
];

pub fn action(id: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.id == id)
}

pub fn resource_type(name: &str) -> Option<&'static ResourceType> {
    RESOURCE_TYPES.iter().find(|r| r.name == name)
}

pub fn action_ids() -> Vec<&'static str> {
    ACTIONS.iter().map(|a| a.id).collect()
}

pub fn resource_type_names() -> Vec<&'static str> {
    RESOURCE_TYPES.iter().map(|r| r.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_targets_name_known_resource_types() {
        let mut ids = action_ids();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate action id");
        for a in ACTIONS {
            if let Some((_, rt)) = a.target {
                assert!(resource_type(rt).is_some(), "{}: unknown {rt}", a.id);
            }
            let mut names: Vec<&str> = a.params.iter().map(|p| p.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), a.params.len(), "{}: duplicate parameter", a.id);
        }
    }
}
