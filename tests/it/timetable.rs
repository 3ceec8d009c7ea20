//! The game-day scheduler on virtual time (`tokio::time::pause`): missed runs and the starting
//! deadline, overlap under forbid / replace, restart without repeating or forgetting a run, stop
//! (what SIGTERM does), pause, windows, and state files that are corrupt or from a newer version.

use chrono::{DateTime, TimeZone, Utc};
use firedrill::engine::timetable::{self, Entrant, Launched, Launcher, State, What};
use firedrill::lang::playbook::parse_playbook;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn playbook(schedule: &str) -> Entrant {
    let text = format!(
        "apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: gd}}\nschedule:\n{schedule}drills:\n  - experiment: a.yaml\n"
    );
    let pb = parse_playbook("gd.yaml", text.as_bytes()).expect("valid playbook");
    Entrant {
        file: "gd.yaml".into(),
        name: pb.metadata.name.clone(),
        schedule: pb.schedule.expect("a schedule"),
    }
}

/// Game days that take `took` unless stopped (then they exit 5, as an interrupted drill does).
struct Fake {
    took: Duration,
    launches: Mutex<Vec<DateTime<Utc>>>,
    stops: Arc<AtomicUsize>,
}

impl Launcher for Fake {
    fn launch(&self, _: &Path, at: DateTime<Utc>) -> Result<Launched, String> {
        self.launches.lock().unwrap().push(at);
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let took = self.took;
        let stops = self.stops.clone();
        Ok(Launched {
            pid: None,
            done: Box::pin(async move {
                tokio::select! {
                    _ = tokio::time::sleep(took) => 0,
                    _ = rx.wait_for(|s| *s) => 5,
                }
            }),
            stop: Box::new(move || {
                stops.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(true);
            }),
        })
    }
}

fn utc(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
}

/// Run the scheduler from `start` for `span` of virtual time, then stop it.
async fn serve(
    runs: &Path,
    e: Entrant,
    fake: Arc<Fake>,
    start: DateTime<Utc>,
    span: Duration,
) -> Result<(), timetable::StateError> {
    let origin = tokio::time::Instant::now();
    let now =
        move || start + chrono::Duration::from_std(tokio::time::Instant::now() - origin).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let runs = runs.to_path_buf();
    let task = tokio::spawn(async move {
        timetable::run(vec![e], &runs, fake, &now, rx, &|l| eprintln!("{l}")).await
    });
    tokio::time::sleep(span).await;
    let _ = tx.send(true);
    task.await.unwrap()
}

fn state(runs: &Path) -> State {
    timetable::load(&timetable::state_path(runs, "gd"))
        .unwrap()
        .expect("a state file")
}

fn kinds(s: &State) -> Vec<(String, What)> {
    s.history
        .iter()
        .map(|e| (e.scheduled_for.format("%H:%M").to_string(), e.what))
        .collect()
}

fn fake(took: Duration) -> Arc<Fake> {
    Arc::new(Fake {
        took,
        launches: Mutex::new(Vec::new()),
        stops: Arc::new(AtomicUsize::new(0)),
    })
}

fn hhmm(v: &[DateTime<Utc>]) -> Vec<String> {
    v.iter().map(|t| t.format("%H:%M").to_string()).collect()
}

const HOURLY: &str = "  cron: \"0 * * * *\"\n  starting_deadline: 30m\n";

#[tokio::test(start_paused = true)]
async fn only_the_most_recent_missed_time_starts_and_only_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let e = playbook(HOURLY);
    // The scheduler last handled 07:00 and comes back at 10:10: 08:00 and 09:00 are missed,
    // 10:00 is 10 minutes late (within 30m) and starts.
    let mut st = State::new("gd", &e.schedule, utc(7, 0));
    st.last_scheduled = utc(7, 0);
    timetable::save(&timetable::state_path(dir.path(), "gd"), &st).unwrap();
    let f = fake(Duration::from_secs(20 * 60));
    serve(
        dir.path(),
        e,
        f.clone(),
        utc(10, 10),
        Duration::from_secs(2 * 3600 + 20 * 60),
    )
    .await
    .unwrap();
    assert_eq!(
        hhmm(&f.launches.lock().unwrap()),
        ["10:00", "11:00", "12:00"]
    );
    let s = state(dir.path());
    let k = kinds(&s);
    assert_eq!(
        &k[..4],
        [
            ("08:00".into(), What::Missed),
            ("09:00".into(), What::Missed),
            ("10:00".into(), What::Started),
            ("10:00".into(), What::Finished)
        ]
    );
    assert!(s.running.is_empty());
    assert_eq!(s.last_scheduled, utc(12, 0));

    // Back at 13:40: 13:00 is 40 minutes late, past the deadline: missed, nothing starts.
    let f = fake(Duration::from_secs(60));
    serve(
        dir.path(),
        playbook(HOURLY),
        f.clone(),
        utc(13, 40),
        Duration::from_secs(10 * 60),
    )
    .await
    .unwrap();
    assert!(f.launches.lock().unwrap().is_empty());
    let last = state(dir.path()).history.pop().unwrap();
    assert_eq!((last.scheduled_for, last.what), (utc(13, 0), What::Missed));
    assert_eq!(last.detail, "40m late, past the starting deadline of 30m");
}

#[tokio::test(start_paused = true)]
async fn forbid_skips_a_time_while_a_game_day_runs_and_replace_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    // 90-minute game days, hourly: 11:00 runs until 12:30, so 12:00 is skipped and 13:00 starts.
    let f = fake(Duration::from_secs(90 * 60));
    serve(
        dir.path(),
        playbook(HOURLY),
        f.clone(),
        utc(10, 59),
        Duration::from_secs(2 * 3600 + 10 * 60),
    )
    .await
    .unwrap();
    assert_eq!(hhmm(&f.launches.lock().unwrap()), ["11:00", "13:00"]);
    let k = kinds(&state(dir.path()));
    assert!(k.contains(&("12:00".into(), What::SkippedRunning)), "{k:?}");
    // Stopping the scheduler at 13:10 stopped the 13:00 game day (as SIGTERM would).
    assert_eq!(k.last().unwrap(), &("13:00".into(), What::Stopped));
    assert_eq!(f.stops.load(Ordering::SeqCst), 1);

    let dir = tempfile::tempdir().unwrap();
    let f = fake(Duration::from_secs(90 * 60));
    let replace = format!("{HOURLY}  concurrency: replace\n");
    serve(
        dir.path(),
        playbook(&replace),
        f.clone(),
        utc(10, 59),
        Duration::from_secs(3600 + 10 * 60),
    )
    .await
    .unwrap();
    assert_eq!(hhmm(&f.launches.lock().unwrap()), ["11:00", "12:00"]);
    let k = kinds(&state(dir.path()));
    assert_eq!(
        k,
        [
            ("11:00".into(), What::Started),
            ("12:00".into(), What::Replaced),
            ("11:00".into(), What::Stopped),
            ("12:00".into(), What::Started),
            ("12:00".into(), What::Stopped),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_neither_repeats_nor_forgets_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let f = fake(Duration::from_secs(20 * 60));
    // Stopped at 11:05 while the 11:00 game day runs; restarted at 11:10.
    serve(
        dir.path(),
        playbook(HOURLY),
        f.clone(),
        utc(10, 59),
        Duration::from_secs(6 * 60),
    )
    .await
    .unwrap();
    assert!(
        state(dir.path()).running.is_empty(),
        "the stopped game day is not left as running"
    );
    serve(
        dir.path(),
        playbook(HOURLY),
        f.clone(),
        utc(11, 10),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    assert_eq!(
        hhmm(&f.launches.lock().unwrap()),
        ["11:00", "12:00"],
        "11:00 is not started twice"
    );

    // A game day whose process died while no scheduler ran: recorded as interrupted, not lost.
    let mut s = state(dir.path());
    s.running.push(timetable::Running {
        scheduled_for: utc(13, 0),
        started: utc(13, 0),
        pid: Some(0x3fff_fff0),
        scheduler_pid: 1,
    });
    s.last_scheduled = utc(13, 0);
    timetable::save(&timetable::state_path(dir.path(), "gd"), &s).unwrap();
    serve(
        dir.path(),
        playbook(HOURLY),
        f.clone(),
        utc(13, 30),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let s = state(dir.path());
    let e = s
        .history
        .iter()
        .find(|e| e.what == What::Interrupted)
        .expect("recorded");
    assert_eq!(e.scheduled_for, utc(13, 0));
    assert!(e.detail.contains("firedrill recover --all"), "{}", e.detail);
    assert!(s.running.is_empty());
}

#[tokio::test(start_paused = true)]
async fn paused_and_out_of_window_times_are_recorded_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let paused = timetable::paused_path(dir.path(), "gd");
    std::fs::create_dir_all(paused.parent().unwrap()).unwrap();
    std::fs::write(&paused, "").unwrap();
    let f = fake(Duration::from_secs(60));
    let windowed = format!("{HOURLY}  windows: [{{days: mon-fri, hours: \"09:00-12:00\"}}]\n");
    serve(
        dir.path(),
        playbook(&windowed),
        f.clone(),
        utc(9, 30),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    assert!(f.launches.lock().unwrap().is_empty());
    std::fs::remove_file(&paused).unwrap();
    serve(
        dir.path(),
        playbook(&windowed),
        f.clone(),
        utc(10, 59),
        Duration::from_secs(2 * 3600 + 5 * 60),
    )
    .await
    .unwrap();
    assert_eq!(hhmm(&f.launches.lock().unwrap()), ["11:00"]);
    let k = kinds(&state(dir.path()));
    assert!(k.contains(&("10:00".into(), What::SkippedPaused)), "{k:?}");
    assert!(k.contains(&("12:00".into(), What::SkippedWindow)), "{k:?}");
    assert!(k.contains(&("13:00".into(), What::SkippedWindow)), "{k:?}");
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_or_newer_state_file_stops_the_scheduler_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = timetable::state_path(dir.path(), "gd");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{\n  \"version\": 1,\n  \"playbook\": gd\n}\n").unwrap();
    let f = fake(Duration::from_secs(60));
    let err = serve(
        dir.path(),
        playbook(HOURLY),
        f.clone(),
        utc(10, 59),
        Duration::from_secs(3600),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, timetable::StateError::Corrupt { line: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("gd.json:3:"), "{err}");
    assert!(err.help().contains("left as it is"), "{}", err.help());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\n  \"version\": 1,\n  \"playbook\": gd\n}\n"
    );
    std::fs::write(&path, "{\"version\": 7, \"something\": \"new\"}").unwrap();
    let err = serve(
        dir.path(),
        playbook(HOURLY),
        f.clone(),
        utc(10, 59),
        Duration::from_secs(3600),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, timetable::StateError::Newer { found: 7, .. }),
        "{err}"
    );
    assert!(f.launches.lock().unwrap().is_empty(), "nothing ran");
}
