//! Mutation fuzzing of the front end on stable Rust (proptest): the YAML loader, the decoder and
//! the validator, seeded from every sample experiment, every bad-input fixture and the
//! environments. Each case mutates a seed (bytes, lines, scalars, YAML syntax) and parses it:
//! the front end must never panic, and every rejection must be a diagnostic naming the file and
//! saying what to do.
//!
//! Bounded for the test suite (`FIREDRILL_FUZZ_CASES`, default 64 cases per seed and strategy);
//! a longer run for developers: `FIREDRILL_FUZZ_CASES=20000 cargo test --test it fuzz -- --nocapture`.

use firedrill::lang::diag::Diagnostic;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::{Path, PathBuf};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn seeds(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(Path::new(MANIFEST).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {dir}");
    out
}

fn cases() -> u32 {
    std::env::var("FIREDRILL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// Scalars that stress the decoders: numbers out of range, odd durations, YAML specials.
const NASTY: &[&str] = &[
    "-1",
    "0",
    "1e309",
    "18446744073709551616",
    "99999999999999999999d",
    "0s",
    "-5m",
    "1h1h",
    "NaN",
    ".inf",
    "~",
    "null",
    "''",
    "\"\"",
    "[]",
    "{}",
    "[[[[",
    "{{{",
    "*a",
    "&a x",
    "!!binary aGVsbG8=",
    "!custom x",
    "\"\\u0000\"",
    "${",
    "${nope}",
    "${env:}",
    "${env:X",
    "$${x}",
    "true",
    "yes",
    "🙂",
    "a: b: c",
    "- - -",
    "|",
    ">-",
    "%YAML 1.2",
    "---",
    "...",
];

/// One mutation of a text.
#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(usize, u8),
    InsertByte(usize, u8),
    DeleteRange(usize, usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize, bool),
    ReplaceScalar(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::InsertByte(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::DeleteRange(i, n)),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), any::<bool>()).prop_map(|(i, more)| Mutation::Indent(i, more)),
        (any::<usize>(), 0..NASTY.len()).prop_map(|(i, k)| Mutation::ReplaceScalar(i, k)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(src: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = src.to_vec();
    let n = b.len().max(1);
    let lines =
        |b: &[u8]| -> Vec<Vec<u8>> { b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect() };
    let join = |ls: Vec<Vec<u8>>| ls.join(&b'\n');
    match *m {
        Mutation::FlipByte(i, v) if !b.is_empty() => b[i % n] = v,
        Mutation::InsertByte(i, v) => b.insert(i % (b.len() + 1), v),
        Mutation::DeleteRange(i, len) if !b.is_empty() => {
            let at = i % n;
            let end = (at + len).min(b.len());
            b.drain(at..end);
        }
        Mutation::DeleteLine(i) => {
            let mut ls = lines(&b);
            let k = i % ls.len();
            ls.remove(k);
            b = join(ls);
        }
        Mutation::DuplicateLine(i) => {
            let mut ls = lines(&b);
            let k = i % ls.len();
            let l = ls[k].clone();
            ls.insert(k, l);
            b = join(ls);
        }
        Mutation::SwapLines(x, y) => {
            let mut ls = lines(&b);
            let len = ls.len();
            ls.swap(x % len, y % len);
            b = join(ls);
        }
        Mutation::Indent(i, more) => {
            let mut ls = lines(&b);
            let k = i % ls.len();
            if more {
                ls[k].splice(0..0, *b"  ");
            } else if ls[k].starts_with(b"  ") {
                ls[k].drain(0..2);
            }
            b = join(ls);
        }
        Mutation::ReplaceScalar(i, k) => {
            // The value after a `key: ` on some line.
            let mut ls = lines(&b);
            let with_value: Vec<usize> = (0..ls.len())
                .filter(|&j| ls[j].windows(2).any(|w| w == b": "))
                .collect();
            if !with_value.is_empty() {
                let j = with_value[i % with_value.len()];
                let at = ls[j].windows(2).position(|w| w == b": ").unwrap() + 2;
                ls[j].truncate(at);
                ls[j].extend_from_slice(NASTY[k].as_bytes());
                b = join(ls);
            }
        }
        Mutation::Truncate(i) => b.truncate(i % (b.len() + 1)),
        _ => {}
    }
    b
}

/// Every rejection names the file and says what to do; located unless it is about the whole
/// document.
fn check_rejection(file: &str, diags: &[Diagnostic], input: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(!diags.is_empty(), "rejected without a diagnostic");
    for d in diags {
        prop_assert_eq!(&d.file, file);
        prop_assert!(!d.message.is_empty(), "empty message");
        prop_assert!(!d.help.is_empty(), "no help for {:?}", d.message);
        if let Some(l) = d.loc {
            prop_assert!(l.line >= 1 && l.col >= 1, "bad location {:?}", l);
            // Lines as YAML counts them (a lone `\r` ends one too).
            let lines =
                firedrill::lang::diag::source_lines(&String::from_utf8_lossy(input)).count();
            prop_assert!(
                (l.line as usize) <= lines + 1,
                "line {} beyond the input's {} lines: {}",
                l.line,
                lines,
                d.message
            );
        }
        // Rendering (caret under the source line) must not panic either.
        let _ = firedrill::lang::diag::render_all(diags, std::str::from_utf8(input).ok());
    }
    Ok(())
}

/// A front-end entry point: file name and bytes in, accepted or its diagnostics.
type Parse<'a> = &'a dyn Fn(&str, &[u8]) -> Result<(), Vec<Diagnostic>>;

fn fuzz(dir: &str, parse: Parse) {
    let accepted = std::cell::Cell::new(0u64);
    let rejected = std::cell::Cell::new(0u64);
    for (path, seed) in seeds(dir) {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&proptest::collection::vec(mutation(), 1..4), |ms| {
            let mut input = seed.clone();
            for m in &ms {
                input = apply(&input, m);
            }
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&file, &input)));
            match outcome {
                Err(_) => {
                    return Err(TestCaseError::fail(format!(
                        "panic on {}",
                        String::from_utf8_lossy(&input)
                    )));
                }
                Ok(Ok(())) => accepted.set(accepted.get() + 1),
                Ok(Err(d)) => {
                    rejected.set(rejected.get() + 1);
                    check_rejection(&file, &d, &input)?;
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{}: {e}", path.display());
        }
    }
    let (accepted, rejected) = (accepted.get(), rejected.get());
    println!(
        "fuzz {dir}: {accepted} mutants accepted, {rejected} rejected with diagnostics, 0 panics"
    );
    assert!(
        rejected > 0,
        "mutations that never break anything test nothing"
    );
}

#[test]
fn fuzz_experiments_never_panic_and_every_rejection_is_a_diagnostic() {
    let parse = |file: &str, input: &[u8]| {
        firedrill::lang::spec::parse_experiment_with_env(file, input, &[], &|_| None).map(|_| ())
    };
    fuzz("experiments", &parse);
    fuzz("tests/fixtures", &parse);
}

#[test]
fn fuzz_environments_never_panic_and_every_rejection_is_a_diagnostic() {
    fuzz("environments", &|file: &str, input: &[u8]| {
        firedrill::lang::environment::parse_environment(file, input, &[]).map(|_| ())
    });
}

#[test]
fn fuzz_playbooks_never_panic_and_every_rejection_is_a_diagnostic() {
    fuzz("playbooks", &|file: &str, input: &[u8]| {
        firedrill::lang::playbook::parse_playbook(file, input).map(|_| ())
    });
}
