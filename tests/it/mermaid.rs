//! Every sample's report timeline, rendered by the real Mermaid (npm, 11.17.2) in a real headless
//! browser (Debian's Chromium): each bar starts and ends, and each milestone sits, where the
//! journal's offsets say, read against the drawn axis ticks (which must read as offsets). The
//! encoding Mermaid 11 draws wrong (`dateFormat X` with bare numbers) fails the same check, so
//! the check can fail.

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn chromium() -> String {
    std::env::var("FIREDRILL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn mermaid_js() -> String {
    std::env::var("FIREDRILL_MERMAID_JS").unwrap_or_else(|_| {
        panic!("FIREDRILL_MERMAID_JS is not set: run the tests with ./scripts/test, which installs mermaid@11.17.2 from npm and Debian's chromium")
    })
}

/// Render the diagrams in Chromium; per diagram, the drawn ticks and tasks (screen coordinates).
fn render(dir: &Path, diagrams: &[String], tz: &str) -> Vec<Json> {
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><script src=\"file://{}\"></script></head><body>\n",
        mermaid_js()
    );
    for (i, d) in diagrams.iter().enumerate() {
        let escaped = d
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        page.push_str(&format!(
            "<pre id=\"src{i}\">{escaped}</pre><div id=\"out{i}\"></div>\n"
        ));
    }
    page.push_str(&format!(
        r#"<pre id="result">pending</pre>
<script>
(async () => {{
  const all = [];
  try {{
    mermaid.initialize({{ startOnLoad: false, gantt: {{ useWidth: 1600 }} }});
    for (let i = 0; i < {n}; i++) {{
      const code = document.getElementById('src' + i).textContent;
      const {{ svg }} = await mermaid.render('g' + i, code);
      const div = document.getElementById('out' + i);
      div.innerHTML = svg;
      const ticks = [...div.querySelectorAll('g.tick')].map(t => {{
        const r = (t.querySelector('line') || t).getBoundingClientRect();
        return {{ label: t.textContent.trim(), x: r.left + r.width / 2 }};
      }});
      const tasks = [...div.querySelectorAll('rect.task')].map(r => {{
        const b = r.getBoundingClientRect();
        return {{ id: r.id.replace('g' + i + '-', ''), cls: r.getAttribute('class'), left: b.left, right: b.right, cx: b.left + b.width / 2 }};
      }});
      all.push({{ ticks, tasks }});
    }}
    document.getElementById('result').textContent = JSON.stringify(all);
  }} catch (e) {{ document.getElementById('result').textContent = 'ERROR ' + e; }}
}})();
</script></body></html>"#,
        n = diagrams.len()
    ));
    let file = dir.join(format!("page-{}.html", tz.replace('/', "-")));
    std::fs::write(&file, page).unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1800,1200",
            "--virtual-time-budget=60000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join(format!("chromium-{}", tz.replace('/', "-")))
                .display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .env("TZ", tz)
        .output()
        .expect("run chromium (Debian's chromium; ./scripts/test installs it)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start =
        dom.find("<pre id=\"result\">").expect("the page's result") + "<pre id=\"result\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"");
    assert!(
        !text.starts_with("ERROR") && text != "pending",
        "Mermaid failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str::<Json>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The first gantt block of a report.
fn gantt_of(report: &str) -> String {
    let start = report.find("```mermaid\ngantt").expect("a gantt block") + "```mermaid\n".len();
    let end = start + report[start..].find("```").unwrap();
    report[start..end].to_string()
}

/// What the journal says should be drawn: (task id, start ms, end ms).
fn expected(s: &Json) -> Vec<(String, u64, u64)> {
    let id = |x: &str| {
        x.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    let duration = s["duration_ms"].as_u64().unwrap();
    let mut out = Vec::new();
    for st in s["steps"].as_array().unwrap() {
        if let Some(start) = st["started_at_ms"].as_u64() {
            out.push((
                format!("step_{}", id(st["id"].as_str().unwrap())),
                start,
                st["finished_at_ms"].as_u64().unwrap_or(duration),
            ));
        }
    }
    let at = |k: &str| s[k]["at_ms"].as_u64();
    if let Some(f) = s["fault_at_ms"].as_u64() {
        out.push(("fault".into(), f, f));
    }
    for (key, name) in [
        ("impact", "impact"),
        ("no_impact", "no_impact"),
        ("detection", "detected"),
        ("recovered", "recovered"),
        ("deadline_exceeded", "deadline"),
    ] {
        if let Some(t) = at(key) {
            out.push((name.into(), t, t));
        }
    }
    for (i, r) in s["rollbacks"].as_array().unwrap().iter().enumerate() {
        let start = r["started_at_ms"].as_u64().unwrap();
        out.push((
            format!("rb_{}_{i}", id(r["step"].as_str().unwrap())),
            start,
            start + r["duration_ms"].as_u64().unwrap_or(0),
        ));
    }
    out
}

/// Screen x of a run offset, fitted to the drawn ticks (labels `HH:MM:SS` must read as offsets).
fn scale(ticks: &[Json]) -> Result<(f64, f64), String> {
    let pts: Vec<(f64, f64)> = ticks
        .iter()
        .filter_map(|t| {
            let l = t["label"].as_str()?;
            let p: Vec<f64> = l.split(':').filter_map(|x| x.parse().ok()).collect();
            (p.len() == 3).then(|| {
                (
                    (p[0] * 3600.0 + p[1] * 60.0 + p[2]) * 1000.0,
                    t["x"].as_f64().unwrap(),
                )
            })
        })
        .collect();
    if pts.len() < 2 {
        return Err(format!("fewer than two readable ticks: {ticks:?}"));
    }
    let (t0, x0) = pts[0];
    let (t1, x1) = pts[pts.len() - 1];
    let k = (x1 - x0) / (t1 - t0);
    for (t, x) in &pts {
        if ((x0 + (t - t0) * k) - x).abs() > 1.0 {
            return Err(format!("ticks are not evenly spaced: {pts:?}"));
        }
    }
    Ok((x0 - t0 * k, k))
}

/// Every expected task where the journal puts it (within 2 px); the first problem otherwise.
fn check(name: &str, drawn: &Json, want: &[(String, u64, u64)]) -> Result<(), String> {
    let ticks = drawn["ticks"].as_array().unwrap();
    let (a, k) = scale(ticks)?;
    let x = |ms: u64| a + ms as f64 * k;
    let tasks = drawn["tasks"].as_array().unwrap();
    for (id, start, end) in want {
        let t = tasks
            .iter()
            .find(|t| t["id"] == id.as_str())
            .ok_or_else(|| format!("{name}: `{id}` is not drawn"))?;
        let f = |k: &str| t[k].as_f64().unwrap();
        if t["cls"].as_str().unwrap().contains("milestone") {
            if (f("cx") - x(*start)).abs() > 2.0 {
                return Err(format!(
                    "{name}: milestone `{id}` at x {:.1}, the journal's {start} ms is at {:.1}",
                    f("cx"),
                    x(*start)
                ));
            }
            // Only what is too short to see is a milestone.
            if (x(*end) - x(*start)) > 3.0 {
                return Err(format!(
                    "{name}: `{id}` ({start}-{end} ms) is drawn as a milestone, not a bar"
                ));
            }
        } else {
            if (f("left") - x(*start)).abs() > 2.0 || (f("right") - x(*end)).abs() > 2.0 {
                return Err(format!(
                    "{name}: bar `{id}` drawn from x {:.1} to {:.1}; the journal's {start}-{end} ms is {:.1} to {:.1}",
                    f("left"),
                    f("right"),
                    x(*start),
                    x(*end)
                ));
            }
            if f("right") - f("left") < 2.0 {
                return Err(format!("{name}: bar `{id}` is too thin to see"));
            }
        }
    }
    Ok(())
}

fn run_dirs(runs: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .collect();
    v.sort();
    v
}

#[test]
fn every_sample_timeline_is_drawn_at_the_journals_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let mut samples: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST).join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    samples.sort();
    let mut runs_args: Vec<Vec<String>> = samples
        .iter()
        .map(|p| vec![p.display().to_string()])
        .collect();
    runs_args.push(vec![
        Path::new(MANIFEST)
            .join("experiments/region-failover.yaml")
            .display()
            .to_string(),
        "--set".into(),
        "sim.dns[0].ttl=1h".into(),
    ]);
    for args in &runs_args {
        let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .arg("run")
            .args(args)
            .args(["-q", "--runs-dir"])
            .arg(&runs)
            .arg("--lessons-dir")
            .arg(dir.path().join("lessons"))
            .output()
            .unwrap();
        assert!(
            [0, 4].contains(&out.status.code().unwrap()),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dirs = run_dirs(&runs);
    assert_eq!(dirs.len(), runs_args.len());
    let mut diagrams = Vec::new();
    let mut wants = Vec::new();
    for d in &dirs {
        let report = std::fs::read_to_string(d.join("report.md")).unwrap();
        let summary: Json =
            serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        let g = gantt_of(&report);
        assert!(g.contains("todayMarker off"), "{g}");
        diagrams.push(g);
        wants.push((
            d.file_name().unwrap().to_string_lossy().into_owned(),
            expected(&summary),
        ));
    }
    // The control: the encoding Mermaid 11 draws wrong, for the first diagram with a bar that
    // does not start at 0 (every bar is drawn from 0).
    let (ci, control) = wants
        .iter()
        .enumerate()
        .find(|(_, (_, w))| {
            w.iter()
                .any(|(id, s, e)| id.starts_with("step_") && *s >= 10_000 && e - s >= 10_000)
        })
        .map(|(i, (_, w))| {
            let mut g = String::from(
                "gantt\n    dateFormat X\n    axisFormat %H:%M:%S\n    section Steps\n",
            );
            for (id, s, e) in w.iter().filter(|(id, ..)| id.starts_with("step_")) {
                g.push_str(&format!(
                    "    {id} :{id}, {}, {}\n",
                    s / 1000,
                    (e.div_ceil(1000)).max(s / 1000 + 1)
                ));
            }
            (i, g)
        })
        .expect("a sample with a late, long step");
    // In two zones: the axis must read run offsets wherever the reader is.
    for tz in ["America/New_York", "Asia/Kolkata"] {
        let drawn = render(dir.path(), &diagrams, tz);
        assert_eq!(drawn.len(), diagrams.len());
        for (i, (name, want)) in wants.iter().enumerate() {
            if let Err(e) = check(&format!("{name} ({tz})"), &drawn[i], want) {
                panic!("{e}\n{}", diagrams[i]);
            }
            assert!(want.len() >= 3, "{name}: too little to check: {want:?}");
        }
    }
    // In UTC the old encoding's axis reads as offsets, and its bars are still wrong.
    let drawn = render(dir.path(), &[control], "UTC");
    let steps_only: Vec<_> = wants[ci]
        .1
        .iter()
        .filter(|(id, s, e)| id.starts_with("step_") && *s >= 10_000 && e - s >= 10_000)
        .cloned()
        .collect();
    let err = check("control", &drawn[0], &steps_only)
        .expect_err("the old encoding passed the check: the check cannot fail");
    assert!(
        err.contains("bar `step_"),
        "the old encoding fails for its bars: {err}"
    );
}
