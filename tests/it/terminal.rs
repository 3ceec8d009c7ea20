//! The terminal display with the real binary: in a real terminal (tmux), a wall-clock drill's
//! status line ticks every second between events (elapsed time, phase, RTO countdown, running
//! steps); outside a terminal (CI logs), plain event lines with one timestamp format.

use std::process::Command;
use std::time::Duration;

const SLOW: &str = "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {name: slow-wall}\nobjectives: {rto: 1m}\nsteady_state:\n  probes:\n    - name: api-available\n      type: service.metrics\n      with: {service: api}\n      tolerance: {path: availability, min: 0.99}\n  before: [api-available]\nsteps:\n  - id: fault\n    action: command\n    with: {run: [sleep, \"1\"]}\n  - id: hold\n    action: command\n    after: [fault]\n    with: {run: [sleep, \"5\"]}\nrecovery:\n  fault: fault\n  probes: [api-available]\n  interval: 1s\n  deadline: 2m\n";

fn status_line(pane: &str) -> Option<String> {
    pane.lines()
        .rev()
        .find(|l| l.trim_start().starts_with('▸'))
        .map(|l| l.trim().to_string())
}

#[test]
fn a_wall_clock_drill_shows_a_ticking_status_line_in_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("slow.yaml");
    std::fs::write(&exp, SLOW).unwrap();
    let session = format!("firedrill-test-{}", std::process::id());
    let cmd = format!(
        "{} run {} --runs-dir {} --lessons-dir {}; sleep 30",
        env!("CARGO_BIN_EXE_firedrill"),
        exp.display(),
        dir.path().join("runs").display(),
        dir.path().join("lessons").display()
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "30",
            &cmd,
        ])
        .status()
        .expect("tmux (Debian's tmux; ./scripts/test installs it)");
    assert!(ok.success());
    let capture = || {
        String::from_utf8_lossy(
            &Command::new("tmux")
                .args(["capture-pane", "-p", "-t", &session])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    };
    // Wait for the long step, then read the status line twice, 2 s apart, with no event between.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !capture().contains("step hold (command) started") {
        assert!(
            std::time::Instant::now() < deadline,
            "the drill did not reach its long step:\n{}",
            capture()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let first = capture();
    std::thread::sleep(Duration::from_millis(2000));
    let second = capture();
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let (a, b) = (
        status_line(&first).expect("a status line"),
        status_line(&second).expect("a status line"),
    );
    assert_ne!(
        a, b,
        "the status line did not tick:\n{first}\n---\n{second}"
    );
    for s in [&a, &b] {
        assert!(
            s.contains(" method │ RTO 1m: ") && s.contains("s left │ running hold"),
            "{s}"
        );
    }
    let secs = |s: &str| -> u64 {
        s.split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches('+')
            .split(':')
            .map(|x| x.parse::<u64>().unwrap())
            .fold(0, |acc, x| acc * 60 + x)
    };
    assert!(secs(&b) > secs(&a), "{a} then {b}");
    // The countdown is the RTO less the time since the fault (injected at +0.05s; both figures
    // shown in whole seconds, so they add up to 59 or 60 s).
    for s in [&a, &b] {
        let left: u64 = s
            .split("RTO 1m: ")
            .nth(1)
            .unwrap()
            .split('s')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let total = secs(s) + left;
        assert!(
            (59..=60).contains(&total),
            "{s}: elapsed + left = {total}s, not the 1m RTO"
        );
    }
    // Event lines between the two captures: none (it ticked on its own).
    let events = |p: &str| p.lines().filter(|l| l.starts_with("[+")).count();
    assert_eq!(events(&first), events(&second), "{first}\n---\n{second}");
    // Every line fits the 120-column terminal.
    assert!(second.lines().all(|l| l.chars().count() <= 120));
}

#[test]
fn outside_a_terminal_the_lines_are_plain_and_stamped_alike() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .arg("run")
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("experiments/region-failover.yaml"),
        )
        .arg("--runs-dir")
        .arg(dir.path().join("runs"))
        .arg("--lessons-dir")
        .arg(dir.path().join("lessons"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\r') && !err.contains("\x1b[") && !err.contains('▸'),
        "{err}"
    );
    let stamp = regex::Regex::new(r"^\[\+\d{2}:\d{2}:\d{2}\.\d{3}\] ").unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() > 10, "{err}");
    assert!(lines.iter().all(|l| stamp.is_match(l)), "{err}");
    // Stamps are in the order printed (an environment event reported late says when it happened).
    let t: Vec<&str> = lines.iter().map(|l| &l[..15]).collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "{err}");
    assert!(
        err.contains(" (at +00:00:"),
        "late-reported events carry their own time: {err}"
    );
}
