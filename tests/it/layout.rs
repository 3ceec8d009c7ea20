//! The layout's invariants, checked on the source tree: the front end (`src/lang/`) is pure.

use std::path::{Path, PathBuf};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable source dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Paths the front end must never name: async runtimes, HTTP, Kubernetes, AWS, and IO.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "tokio_postgres",
    "tokio_postgres_rustls",
    "reqwest",
    "hyper",
    "hyper_util",
    "kube",
    "k8s_openapi",
    "aws_config",
    "aws_sdk_rds",
    "aws_sdk_route53",
    "aws_sdk_fis",
    "aws_sdk_sts",
    "aws_smithy_types",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "std::fs",
    "std::net",
    "std::process",
    "std::thread",
    "std::env",
    "std::io::stdin",
    "crate::engine",
    "crate::backend",
    "crate::sim",
    "crate::cli",
    "crate::report",
];

fn violations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for f in FORBIDDEN {
            // A path use: `tokio::`, `use tokio;`, `std::fs::read`, `crate::sim::...`.
            let hit = code.match_indices(f).any(|(at, _)| {
                let before = code[..at].chars().last();
                let after = &code[at + f.len()..];
                !before.is_some_and(|c| c.is_alphanumeric() || "_\"`:".contains(c))
                    && (after.starts_with("::")
                        || after.starts_with(';')
                        || after.starts_with(" as"))
            });
            if hit {
                found.push(format!("line {}: `{f}`: {}", i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_front_end_does_no_io_and_imports_no_runtime() {
    let mut files = Vec::new();
    rust_files(&Path::new(MANIFEST).join("src/lang"), &mut files);
    assert!(
        files.len() >= 10,
        "expected the front end's files, found {files:?}"
    );
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        for v in violations(&text) {
            problems.push(format!("{}: {v}", f.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "the front end must stay pure:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_purity_check_catches_what_it_should() {
    assert_eq!(violations("use tokio::time::sleep;").len(), 1);
    assert_eq!(violations("let s = std::fs::read_to_string(p)?;").len(), 1);
    assert_eq!(violations("use crate::sim::model::Estate;").len(), 1);
    assert_eq!(
        violations("use crate::backend::k8s::KubeProvider;").len(),
        1
    );
    assert_eq!(violations("// tokio::spawn in a comment").len(), 0);
    assert_eq!(violations("let doc = \"`kube::Api`\";").len(), 0);
    assert_eq!(violations("use crate::lang::yaml::Node;").len(), 0);
    assert_eq!(
        violations("use super::kube::{self, ParamProblem};").len(),
        0
    );
}

/// The README's format reference is the vocabulary, as `firedrill vocab` prints it.
#[test]
fn the_readme_vocabulary_is_the_vocabulary() {
    let readme = std::fs::read_to_string(Path::new(MANIFEST).join("README.md")).expect("README");
    let start = readme
        .find("<!-- vocab:start -->\n")
        .expect("vocab:start marker")
        + 21;
    let end = readme.find("<!-- vocab:end -->").expect("vocab:end marker");
    let generated = firedrill::lang::vocab::markdown();
    assert!(
        readme[start..end] == generated,
        "README.md's vocabulary differs from src/lang/vocab.rs: replace the block between the markers with the output of `cargo run -- vocab`"
    );
    for a in firedrill::lang::vocab::ACTIONS {
        assert!(generated.contains(&format!("| `{}`", a.name)), "{}", a.name);
    }
}
