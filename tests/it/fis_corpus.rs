//! The public FIS templates of `tests/corpus/fis-templates/` (written by others, as teams have
//! them), each validated as an inline `fis.experiment` template: every template FIS accepts is
//! accepted, and the ones FIS itself rejects (`INVALID.tsv`) are rejected for that reason. The
//! directory is a copy of the shared corpus (MIT-0; each file's origin in `SOURCES.tsv`).

use firedrill::lang::diag::render_all;
use firedrill::lang::spec::parse_experiment;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/fis-templates")
}

/// An experiment whose one step runs `template` (JSON is YAML) inline.
fn experiment(template: &str) -> String {
    let indented: String = template.lines().map(|l| format!("        {l}\n")).collect();
    format!(
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {{name: corpus}}\nsteps:\n  - id: fis\n    action: fis.experiment\n    with:\n      template:\n{indented}"
    )
}

/// (file, rendered diagnostics or None when accepted)
fn validate_all() -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(corpus()).expect("the corpus directory") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let yaml = experiment(&text);
        let verdict = match parse_experiment(&name, yaml.as_bytes(), &[]) {
            Ok(_) => None,
            Err(d) => Some(render_all(&d, Some(&yaml))),
        };
        out.insert(name, verdict);
    }
    out
}

#[test]
fn every_template_fis_accepts_is_accepted_and_the_rest_are_refused_for_their_reason() {
    let invalid: BTreeMap<String, String> = std::fs::read_to_string(corpus().join("INVALID.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('\t'))
        .map(|(f, why)| (f.to_string(), why.to_string()))
        .collect();
    // Each template FIS refuses, and a phrase of the reason firedrill must give.
    let reasons: BTreeMap<&str, &str> = BTreeMap::from([
        (
            "aws-samples__aws-fault-injection-simulator-workshop-v2__az-app-slowdown-experiment_templates_fis-az-app-slowdown-template.json",
            "description must be 1 to 512 characters",
        ),
        (
            "aws-samples__aws-fault-injection-simulator-workshop-v2__cross-az-traffic-slowdown-experiment_templates_fis-cross-az-traffic-slowdown-template.json",
            "description must be 1 to 512 characters",
        ),
        (
            "aws-samples__aws-fault-injection-simulator-workshop__workshop_content_030_basic_content_090_scenarios_010_simulating_az_issues_020_impact_ec2-asg_fis-template.json",
            "maxDuration",
        ),
    ]);
    assert_eq!(
        invalid.keys().map(String::as_str).collect::<Vec<_>>(),
        reasons.keys().copied().collect::<Vec<_>>(),
        "INVALID.tsv changed: say which reason each new entry must be refused with"
    );
    let results = validate_all();
    assert!(results.len() >= 50, "{} templates", results.len());
    let mut failures = Vec::new();
    for (name, verdict) in &results {
        match (invalid.get(name), verdict) {
            (None, Some(d)) => failures.push(format!("{name}: refused, FIS accepts it:\n{d}")),
            (Some(why), None) => failures.push(format!("{name}: accepted, FIS refuses it: {why}")),
            (Some(why), Some(d)) if !d.contains(reasons[name.as_str()]) => failures.push(format!(
                "{name}: refused, but not for FIS's reason ({why}); expected `{}` in:\n{d}",
                reasons[name.as_str()]
            )),
            _ => {}
        }
    }
    println!(
        "{} templates: {} accepted, {} refused",
        results.len(),
        results.values().filter(|v| v.is_none()).count(),
        results.values().filter(|v| v.is_some()).count()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
