//! Every diagnostic the experiment front end can emit, data-driven: a YAML snippet and the
//! substrings its rendered message must contain (position `file:line:col`, YAML path, help).

use firedrill::lang::diag::render_all;
use firedrill::lang::spec::parse_experiment;

const FILE: &str = "drill.yaml";

/// A valid experiment; cases derive from it by replacing one exact fragment.
const BASE: &str = "\
apiVersion: firedrill.dev/v1
kind: Experiment
metadata:
  name: base
objectives:
  rto: 15m
  rpo: 1h
variables:
  zone: us-east-1a
steady_state:
  probes:
    - name: ready
      type: k8s.pods
      with: {namespace: web, selector: {app: api}}
      tolerance: {path: ready_ratio, min: 1}
    - name: errors
      type: service.metrics
      with: {service: api}
      tolerance: {path: error_rate, max: 0.01}
  before: [ready]
  during:
    interval: 10s
    probes: [errors]
    abort_when:
      - {probe: errors, above: 0.05, for: 5m}
  after: [ready]
steps:
  - id: cordon
    action: k8s.cordon_zone
    with: {zone: us-east-1a}
  - id: kill
    action: k8s.pod_kill
    after: [cordon]
    with: {namespace: web, selector: {app: api}, mode: fixed, value: 1}
  - id: observe
    action: wait
    after: [kill]
    with: {duration: 1m}
recovery:
  fault: kill
  probes: [ready]
  interval: 10s
";

/// A valid experiment with an inline AWS FIS template; FIS cases derive from it.
const FIS_BASE: &str = "\
apiVersion: firedrill.dev/v1
kind: Experiment
metadata:
  name: fis-base
steps:
  - id: power
    action: fis.experiment
    with:
      template:
        description: Power interruption in us-east-1a
        roleArn: arn:aws:iam::123456789012:role/fis
        stopConditions: [{source: none}]
        targets:
          az-instances:
            resourceType: aws:ec2:instance
            filters: [{path: Placement.AvailabilityZone, values: [us-east-1a]}]
            selectionMode: ALL
        actions:
          stop-instances:
            actionId: aws:ec2:stop-instances
            parameters: {startInstancesAfterDuration: PT10M}
            targets: {Instances: az-instances}
          hold:
            actionId: aws:fis:wait
            parameters: {duration: PT5M}
            startAfter: [stop-instances]
";

/// FIS_BASE with `from` replaced by `to` (exactly once).
fn fis_with(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(
        FIS_BASE.matches(from).count(),
        1,
        "fragment `{from}` must occur once"
    );
    FIS_BASE.replacen(from, to, 1).into_bytes()
}

/// BASE with `from` replaced by `to` (exactly once).
fn with(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "fragment `{from}` must occur once"
    );
    BASE.replacen(from, to, 1).into_bytes()
}

fn render(bytes: &[u8], vars: &[(&str, &str)]) -> (usize, String) {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match parse_experiment(FILE, bytes, &vars) {
        Ok(_) => (0, String::new()),
        Err(d) => (d.len(), render_all(&d, std::str::from_utf8(bytes).ok())),
    }
}

struct Case {
    name: &'static str,
    yaml: Vec<u8>,
    vars: &'static [(&'static str, &'static str)],
    expect: &'static [&'static str],
}

fn case(name: &'static str, yaml: Vec<u8>, expect: &'static [&'static str]) -> Case {
    Case {
        name,
        yaml,
        vars: &[],
        expect,
    }
}

fn cases() -> Vec<Case> {
    let deep = format!("{}1{}\n", "[".repeat(300), "]".repeat(300));
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("b{}", i - 1)
        };
        bomb.push_str(&format!(
            "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    let mut huge = BASE.to_string();
    huge.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
    let mut non_utf8 = BASE.as_bytes().to_vec();
    non_utf8.extend_from_slice(b"# caf\xe9\n");
    let mut nul = BASE.as_bytes().to_vec();
    nul.extend_from_slice(b"\0\0\0");

    vec![
        case(
            "syntax",
            with("  rto: 15m\n", "  rto: [15m\n"),
            &["drill.yaml:7:", "YAML syntax error", "= help:"],
        ),
        case("empty", Vec::new(), &["drill.yaml:1:1: file is empty"]),
        case(
            "comment_only",
            b"# nothing here\n# at all\n".to_vec(),
            &["drill.yaml:1:1:", "no YAML document"],
        ),
        case(
            "binary_nul",
            nul,
            &["drill.yaml: file looks binary (NUL byte"],
        ),
        case(
            "non_utf8",
            non_utf8,
            &["drill.yaml: file is not valid UTF-8"],
        ),
        case(
            "too_big",
            huge.into_bytes(),
            &["drill.yaml: file is", "over the 1048576 byte limit"],
        ),
        case(
            "deeply_nested",
            deep.into_bytes(),
            &["drill.yaml:1:", "recursion limit"],
        ),
        case(
            "alias_bomb",
            bomb.into_bytes(),
            &["drill.yaml:", "alias bomb"],
        ),
        case(
            "multiple_documents",
            format!("{BASE}---\n{BASE}").into_bytes(),
            &["drill.yaml:43:1: more than one YAML document"],
        ),
        case(
            "wrong_api_version",
            with("firedrill.dev/v1", "firedrill.dev/v2"),
            &[
                "drill.yaml:1:13: unsupported apiVersion `firedrill.dev/v2` (at `apiVersion`)",
                "write `apiVersion: firedrill.dev/v1`",
            ],
        ),
        case(
            "wrong_kind",
            with("kind: Experiment", "kind: Experimnet"),
            &["drill.yaml:2:7: expected `kind: Experiment`, found `Experimnet` (at `kind`)"],
        ),
        case(
            "environment_as_experiment",
            with("kind: Experiment", "kind: Environment"),
            &[
                "drill.yaml:2:7:",
                "found `Environment`",
                "pass it with `--env`",
            ],
        ),
        case(
            "unknown_top_level_key",
            with("recovery:\n", "recovry:\n"),
            &[
                "drill.yaml:39:1: unknown key `recovry`",
                "(at `recovry`)",
                "did you mean `recovery`?",
            ],
        ),
        case(
            "abort_wen",
            with("    abort_when:\n", "    abort_wen:\n"),
            &[
                "drill.yaml:24:5: unknown key `abort_wen`",
                "(at `steady_state.during.abort_wen`)",
                "did you mean `abort_when`?",
            ],
        ),
        case(
            "unknown_key_in_abort_condition",
            with("above: 0.05, for: 5m", "above: 0.05, fro: 5m"),
            &[
                "drill.yaml:25:38: unknown key `fro`",
                "(at `steady_state.during.abort_when[0].fro`)",
                "did you mean `for`?",
            ],
        ),
        case(
            "string_for_number",
            with("max: 0.01", "max: low"),
            &[
                "drill.yaml:19:42: expected a number, found `low`",
                "(at `steady_state.probes[1].tolerance.max`)",
            ],
        ),
        case(
            "list_for_map",
            with("with: {service: api}", "with: [service, api]"),
            &[
                "drill.yaml:18:13: expected a mapping",
                "found a list",
                "(at `steady_state.probes[1].with`)",
            ],
        ),
        case(
            "duration_bare_number",
            with("rto: 15m", "rto: 15"),
            &[
                "drill.yaml:6:8: bad duration `15` (at `objectives.rto`)",
                "has no unit",
            ],
        ),
        case(
            "duration_negative",
            with("rto: 15m", "rto: -5m"),
            &[
                "drill.yaml:6:8: bad duration `-5m` (at `objectives.rto`)",
                "negative",
            ],
        ),
        case(
            "duration_words",
            with("rto: 15m", "rto: 15 minutes"),
            &[
                "drill.yaml:6:8: bad duration `15 minutes` (at `objectives.rto`)",
                "not a duration",
            ],
        ),
        case(
            "duration_overflow",
            with("rto: 15m", "rto: 99999d"),
            &[
                "drill.yaml:6:8: bad duration `99999d` (at `objectives.rto`)",
                "30-day limit",
            ],
        ),
        case(
            "zero_rto",
            with("rto: 15m", "rto: 0s"),
            &["drill.yaml:6:8: the RTO must be positive (at `objectives.rto`)"],
        ),
        case(
            "duplicate_step_id",
            with("  - id: observe", "  - id: cordon"),
            &[
                "drill.yaml:35:9: duplicate step id `cordon` (at `steps[2].id`)",
                "the first is steps[0]",
            ],
        ),
        case(
            "duplicate_probe_name",
            with("    - name: errors", "    - name: ready"),
            &["drill.yaml:16:13: duplicate probe name `ready` (at `steady_state.probes[1].name`)"],
        ),
        case(
            "dangling_after",
            with("after: [kill]", "after: [kil]"),
            &[
                "drill.yaml:37:13: no step `kil` to run after (at `steps[2].after[0]`)",
                "did you mean `kill`?",
            ],
        ),
        case(
            "self_dependency",
            with("after: [kill]", "after: [observe]"),
            &["drill.yaml:37:13: step `observe` runs after itself (at `steps[2].after[0]`)"],
        ),
        case(
            "cycle",
            with(
                "  - id: cordon\n    action: k8s.cordon_zone\n",
                "  - id: cordon\n    action: k8s.cordon_zone\n    after: [observe]\n",
            ),
            &[
                "drill.yaml:36:9: dependency cycle: observe -> cordon -> kill -> observe (at `steps[2].after`)",
            ],
        ),
        case(
            "unknown_action",
            with("action: k8s.pod_kill", "action: k8s.pod_kil"),
            &[
                "drill.yaml:32:13: unknown action `k8s.pod_kil` (at `steps[1].action`)",
                "did you mean `k8s.pod_kill`?",
            ],
        ),
        case(
            "missing_required_param",
            with("with: {duration: 1m}", "with: {}"),
            &[
                "drill.yaml:38:11: action `wait` needs parameter `duration`",
                "(at `steps[2]`)",
            ],
        ),
        case(
            "unknown_param",
            with("with: {duration: 1m}", "with: {duration: 1m, durtion: 2m}"),
            &[
                "drill.yaml:38:26: action `wait` has no parameter `durtion` (at `steps[2].with.durtion`)",
                "did you mean `duration`?",
            ],
        ),
        case(
            "ill_typed_param",
            with("value: 1}", "value: lots}"),
            &[
                "drill.yaml:34:70: parameter `value` must be a whole number, found `lots` (at `steps[1].with.value`)",
            ],
        ),
        case(
            "bad_enum",
            with("mode: fixed,", "mode: fixd,"),
            &[
                "drill.yaml:34:56: `fixd` is not a valid `mode` (at `steps[1].with.mode`)",
                "did you mean `fixed`?",
            ],
        ),
        case(
            "unknown_probe_type",
            with("type: service.metrics", "type: service.metric"),
            &[
                "drill.yaml:17:13: unknown probe type `service.metric` (at `steady_state.probes[1].type`)",
                "did you mean `service.metrics`?",
            ],
        ),
        case(
            "dangling_probe_before",
            with("  before: [ready]", "  before: [reddy]"),
            &[
                "drill.yaml:20:12: no probe named `reddy` (at `steady_state.before[0]`)",
                "did you mean `ready`?",
            ],
        ),
        case(
            "dangling_probe_after",
            with("  after: [ready]", "  after: [reddy]"),
            &[
                "drill.yaml:26:11: no probe named `reddy` (at `steady_state.after[0]`)",
                "did you mean `ready`?",
            ],
        ),
        case(
            "dangling_probe_during",
            with("probes: [errors]", "probes: [eror]"),
            &[
                "drill.yaml:23:14: no probe named `eror` (at `steady_state.during.probes[0]`)",
                "did you mean `errors`?",
            ],
        ),
        case(
            "dangling_probe_abort",
            with("{probe: errors,", "{probe: erors,"),
            &[
                "drill.yaml:25:17: no probe named `erors` (at `steady_state.during.abort_when[0].probe`)",
                "did you mean `errors`?",
            ],
        ),
        case(
            "dangling_probe_recovery",
            with(
                "  probes: [ready]\n  interval",
                "  probes: [redy]\n  interval",
            ),
            &[
                "drill.yaml:41:12: no probe named `redy` (at `recovery.probes[0]`)",
                "did you mean `ready`?",
            ],
        ),
        case(
            "unknown_variable",
            with("with: {zone: us-east-1a}", "with: {zone: \"${zon}\"}"),
            &[
                "drill.yaml:30:18: unknown variable `${zon}` (at `steps[0].with.zone`)",
                "did you mean `zone`?",
            ],
        ),
        case(
            "retry_zero",
            with(
                "    with: {duration: 1m}\n",
                "    with: {duration: 1m}\n    retry: {attempts: 0}\n",
            ),
            &["drill.yaml:39:23: 0 attempts is out of range (at `steps[2].retry.attempts`)"],
        ),
        case(
            "retry_thousand",
            with(
                "    with: {duration: 1m}\n",
                "    with: {duration: 1m}\n    retry: {attempts: 1000}\n",
            ),
            &["drill.yaml:39:23: 1000 attempts is out of range (at `steps[2].retry.attempts`)"],
        ),
        case(
            "deadline_below_rto",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  deadline: 5m\n",
            ),
            &["deadline 5m is shorter than the RTO 15m (at `recovery.deadline`)"],
        ),
        case(
            "invalid_regex",
            with(
                "{path: error_rate, max: 0.01}",
                "{path: error_rate, regex: \"([a-z\"}",
            ),
            &[
                "drill.yaml:19:44: invalid regex",
                "(at `steady_state.probes[1].tolerance.regex`)",
            ],
        ),
        case(
            "two_kinds_of_check",
            with(
                "{path: error_rate, max: 0.01}",
                "{path: error_rate, max: 0.01, equals: 0}",
            ),
            &[
                "drill.yaml:19:18: a tolerance has more than one kind of check (at `steady_state.probes[1].tolerance`)",
            ],
        ),
        case(
            "fis_cycle",
            fis_with(
                "            actionId: aws:ec2:stop-instances\n",
                "            actionId: aws:ec2:stop-instances\n            startAfter: [hold]\n",
            ),
            &[
                "drill.yaml:19:11: startAfter cycle: stop-instances -> hold -> stop-instances (at `steps[0].with.template.actions.stop-instances.startAfter`)",
                "remove one of these `startAfter` references",
            ],
        ),
        case(
            "fis_dangling_start_after",
            fis_with(
                "startAfter: [stop-instances]",
                "startAfter: [stop-instance]",
            ),
            &[
                "drill.yaml:26:26: no action `stop-instance` to start after (at `steps[0].with.template.actions.hold.startAfter[0]`)",
                "did you mean `stop-instances`?",
            ],
        ),
        case(
            "fis_unknown_action_id",
            fis_with(
                "actionId: aws:ec2:stop-instances",
                "actionId: aws:ec2:stop-instance",
            ),
            &[
                "drill.yaml:20:23: unknown FIS action id `aws:ec2:stop-instance` (at `steps[0].with.template.actions.stop-instances.actionId`)",
                "did you mean `aws:ec2:stop-instances`?",
            ],
        ),
        case(
            "fis_bad_selection_mode",
            fis_with("selectionMode: ALL", "selectionMode: PERCENT(150)"),
            &[
                "drill.yaml:17:28: `PERCENT(150)`: PERCENT needs a whole number from 1 to 100",
                "(at `steps[0].with.template.targets.az-instances.selectionMode`)",
            ],
        ),
        case(
            "fis_missing_duration",
            fis_with("parameters: {duration: PT5M}", "parameters: {}"),
            &[
                "drill.yaml:25:25: action `hold` (aws:fis:wait) needs parameter `duration` (at `steps[0].with.template.actions.hold.parameters`)",
                "ISO 8601 duration from PT1M to PT12H",
            ],
        ),
        case(
            "fis_human_duration",
            fis_with("{duration: PT5M}", "{duration: 5m}"),
            &[
                "drill.yaml:25:36: parameter `duration`: `5m` is not an ISO 8601 duration",
                "(at `steps[0].with.template.actions.hold.parameters.duration`)",
            ],
        ),
        case(
            "fis_unknown_target",
            fis_with("{Instances: az-instances}", "{Instances: az-instance}"),
            &[
                "drill.yaml:22:34: no target named `az-instance` (at `steps[0].with.template.actions.stop-instances.targets.Instances`)",
                "did you mean `az-instances`?",
            ],
        ),
        case(
            "fis_bad_role_arn",
            fis_with(
                "roleArn: arn:aws:iam::123456789012:role/fis",
                "roleArn: fis-role",
            ),
            &[
                "drill.yaml:11:18: `fis-role` is not an IAM role ARN (at `steps[0].with.template.roleArn`)",
            ],
        ),
        case(
            "fis_template_and_id",
            fis_with("    with:\n", "    with:\n      template_id: EXT123\n"),
            &["`fis.experiment` takes `template_id` or `template`, not both"],
        ),
        case(
            "fis_unknown_template_key",
            fis_with("        stopConditions:", "        stopCondition:"),
            &[
                "drill.yaml:12:9: unknown key `stopCondition` in an FIS experiment template",
                "did you mean `stopConditions`?",
            ],
        ),
        // Rules between parameters (lang::kubernetes, lang::rules): refused at validate, located.
        case(
            "pod_kill_fixed_without_value",
            with("mode: fixed, value: 1}", "mode: fixed}"),
            &[
                "drill.yaml:34:56: k8s.pod_kill: `mode: fixed` needs `value`: how many pods to kill (at `steps[1].with.mode`)",
                "add e.g. `value: 2`",
            ],
        ),
        case(
            "pod_kill_percent_over_100",
            with("mode: fixed, value: 1}", "mode: fixed-percent, value: 150}"),
            &[
                "drill.yaml:34:78: k8s.pod_kill: `value: 150` is not a percentage from 1 to 100 (at `steps[1].with.value`)",
            ],
        ),
        case(
            "pod_kill_zero_count",
            with("mode: fixed, value: 1}", "mode: fixed, value: 0}"),
            &[
                "k8s.pod_kill: `mode: fixed` with `value: 0` kills no pod (at `steps[1].with.value`)",
            ],
        ),
        case(
            "pod_kill_zero_cap",
            with(
                "mode: fixed, value: 1}",
                "mode: fixed, value: 1, max_pods: 0}",
            ),
            &[
                "k8s.pod_kill: `max_pods: 0` refuses every pod",
                "(at `steps[1].with.max_pods`)",
            ],
        ),
        case(
            "pod_kill_namespace_and_namespaces",
            with(
                "with: {namespace: web, selector: {app: api}, mode",
                "with: {namespace: web, namespaces: [api], selector: {app: api}, mode",
            ),
            &[
                "k8s.pod_kill: give `namespace` or `namespaces`, not both (at `steps[1].with.namespaces`)",
            ],
        ),
        case(
            "pod_kill_cap_below_count",
            with(
                "mode: fixed, value: 1}",
                "mode: fixed, value: 5, max_pods: 2}",
            ),
            &["`value: 5` asks for more pods than `max_pods: 2` allows"],
        ),
        case(
            "command_with_empty_run",
            with(
                "action: wait\n    after: [kill]\n    with: {duration: 1m}",
                "action: command\n    after: [kill]\n    with: {run: []}",
            ),
            &[
                "drill.yaml:38:17: command: `run` is empty: there is no program to run (at `steps[2].with.run`)",
            ],
        ),
        case(
            "http_with_bad_url",
            with(
                "action: wait\n    after: [kill]\n    with: {duration: 1m}",
                "action: http\n    after: [kill]\n    with: {url: \"not a url\"}",
            ),
            &[
                "drill.yaml:38:17: http: `not a url` is not a URL",
                "(at `steps[2].with.url`)",
                "write an absolute URL",
            ],
        ),
        case(
            "node_target_both",
            with(
                "action: k8s.cordon_zone\n    with: {zone: us-east-1a}",
                "action: k8s.node_cordon\n    with: {node: n1, selector: {a: b}}",
            ),
            &["k8s.node_cordon: give `node` or `selector`, not both (at `steps[0].with.selector`)"],
        ),
        case(
            "probe_rules_are_checked_too",
            with(
                "with: {namespace: web, selector: {app: api}}\n      tolerance: {path: ready_ratio",
                "with: {namespace: web, selector: {app: api}, field_selector: \"spec.node=x\"}\n      tolerance: {path: ready_ratio",
            ),
            &[
                "k8s.pods: `spec.node` is not a pod field a selector can use",
                "(at `steady_state.probes[0].with.field_selector`)",
            ],
        ),
        case(
            "fault_is_a_wait",
            with("  fault: kill\n", "  fault: observe\n"),
            &[
                "drill.yaml:40:10: fault step `observe` is a `wait` step: it injects nothing",
                "(at `recovery.fault`)",
                "a backend action, or a `command` or `http` step",
            ],
        ),
        case(
            "expect_impact_not_a_duration",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  expect_impact: soon\n",
            ),
            &[
                "drill.yaml:43:18: expected true, false or a duration, found `soon`",
                "(at `recovery.expect_impact`)",
                "`expect_impact: 1m`",
            ],
        ),
        case(
            "expect_impact_past_the_deadline",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  expect_impact: 1h\n",
            ),
            &[
                "`expect_impact: 1h` is longer than the recovery deadline 30m",
                "(at `recovery.expect_impact`)",
                "raise `recovery.deadline`",
            ],
        ),
        case(
            "expect_impact_zero",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  expect_impact: 0s\n",
            ),
            &["`expect_impact: 0s` gives the fault no time to show"],
        ),
        case(
            "prometheus_empty_query",
            with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus\n      with: {query: ' '}\n",
            ),
            &[
                "drill.yaml:18:",
                "the query is empty",
                "write a PromQL expression",
            ],
        ),
        case(
            "prometheus_bad_reduce",
            with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus\n      with: {query: up, reduce: maximum}\n",
            ),
            &[
                "drill.yaml:18:",
                "`maximum` is not a valid `reduce`",
                "choices: `max`, `min`, `sum`, `avg`, `count`, `each`",
            ],
        ),
        case(
            "prometheus_bad_on_empty",
            with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus\n      with: {query: up, on_empty: pass}\n",
            ),
            &[
                "drill.yaml:18:",
                "`pass` is not a valid `on_empty`",
                "choices: `fail`, `zero`",
            ],
        ),
        case(
            "prometheus_unknown_param",
            with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus\n      with: {query: up, reduse: max}\n",
            ),
            &["drill.yaml:18:", "reduse", "did you mean `reduce`?"],
        ),
        case(
            "prometheus_query_missing",
            with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus\n      with: {reduce: max}\n",
            ),
            &["drill.yaml:", "query"],
        ),
        case(
            "prometheus_alert_without_alertname",
            with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus.alert\n      with: {matchers: {job: api}}\n",
            ),
            &["drill.yaml:", "alertname"],
        ),
        case(
            "prometheus_alert_bad_matchers",
            with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus.alert\n      with: {alertname: ApiDown, matchers: {9x: a, alertstate: firing}}\n",
            ),
            &[
                "drill.yaml:18:",
                "`9x` is not a Prometheus label name",
                "`alertstate` cannot be a matcher: the probe sets it",
            ],
        ),
        case(
            "prometheus_alert_bad_source",
            with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus.alert\n      with: {alertname: ApiDown, source: grafana}\n",
            ),
            &[
                "drill.yaml:18:",
                "`grafana` is not a valid `source`",
                "choices: `prometheus`, `alertmanager`",
            ],
        ),
        case(
            "increase_above_on_reduce_each",
            String::from_utf8(with(
                "      type: service.metrics\n      with: {service: api}\n",
                "      type: prometheus\n      with: {query: up, reduce: each}\n",
            ))
            .unwrap()
            .replace(
                "{probe: errors, above: 0.05, for: 5m}",
                "{probe: errors, increase_above: 2, within: 5m}",
            )
            .into_bytes(),
            &[
                "`increase_above` follows one value, and probe `errors` has `reduce: each`",
                "(at `steady_state.during.abort_when[0]`)",
                "e.g. `max`",
            ],
        ),
        case(
            "canary_bad_dsn",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  data_loss:\n    canary: {type: postgres, write_dsn: \"mysql://u@h/db\"}\n",
            ),
            &[
                "a `mysql://` URL is not a PostgreSQL DSN",
                "(at `recovery.data_loss.canary.write_dsn`)",
                "postgres://user@host:5432/dbname",
            ],
        ),
        case(
            "canary_dsn_without_user",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  data_loss:\n    canary: {type: postgres, write_dsn: \"host=db1 password=hunter2\"}\n",
            ),
            &[
                "drill.yaml:44:41:",
                "names no user",
                "(at `recovery.data_loss.canary.write_dsn`)",
            ],
        ),
        case(
            "canary_interval_not_below_rpo",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  data_loss:\n    canary: {type: postgres, write_dsn: \"postgres://u@db1/app\", interval: 1h}\n",
            ),
            &[
                "the canary interval 1h is not below the RPO objective 1h",
                "(at `recovery.data_loss.canary.interval`)",
                "a tenth of it",
            ],
        ),
        case(
            "canary_interval_too_short",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  data_loss:\n    canary: {type: postgres, write_dsn: \"postgres://u@db1/app\", interval: 50ms}\n",
            ),
            &["canary interval 50ms is below 100ms", "`interval: 200ms`"],
        ),
        case(
            "canary_bad_table",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  data_loss:\n    canary: {type: postgres, write_dsn: \"postgres://u@db1/app\", table: \"Canary;drop\"}\n",
            ),
            &[
                "`Canary;drop` is not a plain table name",
                "(at `recovery.data_loss.canary.table`)",
            ],
        ),
        case(
            "canary_bad_type",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  data_loss:\n    canary: {type: mysql, write_dsn: \"postgres://u@db1/app\"}\n",
            ),
            &[
                "`mysql` is not a valid canary type",
                "(at `recovery.data_loss.canary.type`)",
            ],
        ),
        case(
            "canary_unknown_key",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  data_loss:\n    canary: {type: postgres, write_dsn: \"postgres://u@db1/app\", intervall: 1s}\n",
            ),
            &[
                "unknown key `intervall` in the canary",
                "did you mean `interval`?",
            ],
        ),
        case(
            "canary_and_probe",
            with(
                "  probes: [ready]\n  interval: 10s\n",
                "  probes: [ready]\n  interval: 10s\n  data_loss:\n    probe: ready\n    field: x\n    canary: {type: postgres, write_dsn: \"postgres://u@db1/app\"}\n",
            ),
            &["`recovery.data_loss` has both `canary` and `probe`/`field`"],
        ),
        case(
            "postgres_probe_bad_dsn",
            with(
                "type: service.metrics\n      with: {service: api}",
                "type: postgres\n      with: {dsn: \"postgres://u:hunter2@db1:0/app\", query: \"select 1\"}",
            ),
            &[
                "drill.yaml:18:",
                "is not a TCP port",
                "(at `steady_state.probes[1].with.dsn`)",
            ],
        ),
        case(
            "postgres_probe_empty_query",
            with(
                "type: service.metrics\n      with: {service: api}",
                "type: postgres\n      with: {dsn: \"postgres://u@db1/app\", query: \" ; \"}",
            ),
            &[
                "the query is empty",
                "(at `steady_state.probes[1].with.query`)",
            ],
        ),
        case(
            "secret_bad_env_name",
            with(
                "variables:\n  zone: us-east-1a\n",
                "variables:\n  zone: us-east-1a\nsecrets:\n  token: {env: API-TOKEN}\n",
            ),
            &[
                "drill.yaml:11:16: `API-TOKEN` is not an environment variable name",
                "(at `secrets.token.env`)",
                "`env: PGPASSWORD`",
            ],
        ),
        case(
            "secret_unknown_key",
            with(
                "variables:\n  zone: us-east-1a\n",
                "variables:\n  zone: us-east-1a\nsecrets:\n  token: {env: TOKEN, file: /x}\n",
            ),
            &["unknown key `file`", "(at `secrets.token"],
        ),
        case(
            "secret_is_also_a_variable",
            with(
                "variables:\n  zone: us-east-1a\n",
                "variables:\n  zone: us-east-1a\nsecrets:\n  zone: {env: ZONE}\n",
            ),
            &["`zone` is both a variable and a secret", "(at `secrets`)"],
        ),
        case(
            "inline_env_bad_name",
            with("with: {zone: us-east-1a}", "with: {zone: \"${env:1ZONE}\"}"),
            &[
                "`${env:1ZONE}`: `1ZONE` is not an environment variable name",
                "`${env:API_TOKEN}`",
            ],
        ),
        case(
            "unknown_reference_suggests_a_secret",
            String::from_utf8(with(
                "variables:\n  zone: us-east-1a\n",
                "variables:\n  zone: us-east-1a\nsecrets:\n  api_token: {env: API_TOKEN}\n",
            ))
            .unwrap()
            .replace("with: {zone: us-east-1a}", "with: {zone: \"${api_tokn}\"}")
            .into_bytes(),
            &[
                "unknown variable `${api_tokn}`",
                "did you mean `api_token`?",
            ],
        ),
        Case {
            name: "unknown_var_flag",
            yaml: BASE.as_bytes().to_vec(),
            vars: &[("zon", "b")],
            expect: &[
                "--var zon=b: the experiment declares no variable `zon` (at `variables`)",
                "did you mean `zone`?",
            ],
        },
    ]
}

#[test]
fn base_is_valid() {
    let (n, text) = render(BASE.as_bytes(), &[]);
    assert_eq!(n, 0, "{text}");
    let (n, text) = render(FIS_BASE.as_bytes(), &[]);
    assert_eq!(n, 0, "{text}");
}

#[test]
fn every_diagnostic() {
    let mut failures = Vec::new();
    for c in cases() {
        let (n, text) = render(&c.yaml, c.vars);
        if n == 0 {
            failures.push(format!("{}: accepted", c.name));
            continue;
        }
        for e in c.expect {
            if !text.contains(e) {
                failures.push(format!("{}: missing `{e}` in:\n{text}", c.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Apply several fragment replacements to BASE, parse, and check every problem is reported
/// once, in line order, with a location.
fn assert_all_reported(edits: &[(&str, &str)], needles: &[&str]) {
    let mut text = BASE.to_string();
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text = text.replacen(from, to, 1);
    }
    let diags = parse_experiment(FILE, text.as_bytes(), &[]).expect_err("must be rejected");
    let rendered = render_all(&diags, Some(&text));
    assert!(diags.len() >= 5, "{rendered}");
    assert!(rendered.contains(&format!("{} problems found; nothing was run.", diags.len())));
    let lines: Vec<u32> = diags
        .iter()
        .map(|d| d.loc.expect("every problem here has a location").line)
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "{rendered}");
    for needle in needles {
        assert!(rendered.contains(needle), "missing {needle} in\n{rendered}");
    }
}

#[test]
fn many_structural_problems_reported_in_one_pass_sorted_by_line() {
    assert_all_reported(
        &[
            ("firedrill.dev/v1", "firedrill.dev/v2"),
            ("rto: 15m", "rto: 15"),
            ("    abort_when:\n", "    abort_wen:\n"),
            ("action: k8s.pod_kill", "action: k8s.pod_kil"),
            ("with: {duration: 1m}", "with: {duration: 1m, durtion: 2m}"),
            (
                "    with: {zone: us-east-1a}\n",
                "    with: {zone: us-east-1a}\n    retry: {attempts: 0}\n",
            ),
        ],
        &[
            "`firedrill.dev/v2`",
            "`15`",
            "`abort_wen`",
            "`k8s.pod_kil`",
            "`durtion`",
            "0 attempts",
        ],
    );
}

#[test]
fn many_reference_problems_reported_in_one_pass_sorted_by_line() {
    assert_all_reported(
        &[
            ("  before: [ready]", "  before: [reddy]"),
            ("probes: [errors]", "probes: [eror]"),
            ("  after: [ready]", "  after: [redy]"),
            ("    after: [cordon]\n", "    after: [cordn]\n"),
            ("after: [kill]", "after: [observe]"),
            (
                "  probes: [ready]\n  interval",
                "  probes: [rdy]\n  interval",
            ),
        ],
        &[
            "`reddy`",
            "`eror`",
            "`redy`",
            "`cordn`",
            "runs after itself",
            "`rdy`",
        ],
    );
}

/// `command` and `http` steps may be the fault (a script or an API call is how teams drill what
/// no backend models); `expect_impact` takes `true` or a duration.
#[test]
fn command_and_http_steps_can_be_the_fault() {
    let command = with(
        "  - id: observe\n    action: wait\n    after: [kill]\n    with: {duration: 1m}\nrecovery:\n  fault: kill\n",
        "  - id: observe\n    action: command\n    after: [kill]\n    with: {run: [systemctl, stop, api]}\nrecovery:\n  fault: observe\n  expect_impact: true\n",
    );
    let (n, text) = render(&command, &[]);
    assert_eq!(n, 0, "{text}");
    let http = with(
        "  - id: observe\n    action: wait\n    after: [kill]\n    with: {duration: 1m}\nrecovery:\n  fault: kill\n",
        "  - id: observe\n    action: http\n    after: [kill]\n    with: {url: \"http://127.0.0.1:9/fail\", method: POST}\nrecovery:\n  fault: observe\n  expect_impact: 2m\n",
    );
    let (n, text) = render(&http, &[]);
    assert_eq!(n, 0, "{text}");
}

/// Secrets come from the environment lookup handed in, always as strings, never in `variables`
/// and never in the experiment's `Debug`; short ones and unset ones are warnings.
#[test]
fn secrets_are_read_through_the_lookup_as_strings() {
    let yaml = String::from_utf8(with(
        "variables:\n  zone: us-east-1a\n",
        "variables:\n  zone: us-east-1a\nsecrets:\n  pin: {env: FD_PIN}\n",
    ))
    .unwrap()
    .replace(
        "with: {duration: 1m}",
        "with: {duration: 1m}\n  - id: show\n    action: command\n    after: [observe]\n    with:\n      run:\n        - echo\n        - ${pin}\n        - \"${env:FD_OTHER}\"",
    );
    let env = |k: &str| match k {
        "FD_PIN" => Some("000123".to_string()),
        "FD_OTHER" => Some("abc".to_string()),
        _ => None,
    };
    let exp =
        firedrill::lang::spec::parse_experiment_with_env(FILE, yaml.as_bytes(), &[], &env).unwrap();
    let show = exp.steps.iter().find(|s| s.id.value == "show").unwrap();
    assert_eq!(
        show.with.json()["run"],
        serde_json::json!(["echo", "000123", "abc"]),
        "a secret stays a string (no YAML typing of `000123`)"
    );
    assert_eq!(exp.secrets.len(), 2);
    assert!(exp.variables.iter().all(|(k, _)| k == "zone"));
    let dbg = format!("{:?}", exp.secrets);
    assert!(!dbg.contains("000123") && !dbg.contains("abc"), "{dbg}");
    let warnings: Vec<&str> = exp.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("`env:FD_OTHER` (from FD_OTHER) is only 3 characters long"));
    // Without the environment: both unset, each a warning naming its variable.
    let exp = parse_experiment(FILE, yaml.as_bytes(), &[]).unwrap();
    assert!(exp.secrets.iter().all(|s| s.value.is_none()));
    let warnings: Vec<String> = exp.warnings.iter().map(|w| w.message.clone()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("FD_PIN, which is not set")),
        "{warnings:?}"
    );
}
