//! Every example runs as a user would run it, and prints what it promises: each test starts the
//! example's binary, waits for it to exit successfully (or kills it after [`DEADLINE`]), and
//! checks the lines of its stdout that make its point, in the order the example prints them.
//!
//! Only lines that are the same on every run are checked: not timings, not the `ERROR` events
//! `tracing` prints for the crashes (which interleave with the example's own lines), not lines
//! printed by a worker task while the example's main task prints (their order is a race).
//!
//! The binaries are the ones `cargo test` builds next to this test (`target/<profile>/examples/`),
//! so run these tests through `cargo test -p peeper-examples` (or `--workspace`), not with
//! `--test run_examples` alone, which builds no example.
//!
//! `rolling` needs this crate's `postgres` feature (`cargo test --workspace --all-features`) and
//! PostgreSQL (`PEEPER_PG_URL`, set by `scripts/with-postgres`): without either, its test says
//! `skipped` on stderr and passes, except under CI (`CI=true`), where it fails.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long an example may run before it is killed and its test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Every example the tests below run: a new `[[example]]` needs a test and a place here.
const TESTED: [&str; 13] = [
    "counter",
    "dont_lose",
    "game",
    "cache",
    "rolling",
    "getting_started",
    "tutorial_step1",
    "tutorial_step2",
    "tutorial_step3",
    "tutorial_step4",
    "tutorial_step5",
    "tutorial_step6",
    "shutdown",
];

#[test]
fn every_example_has_a_test() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut declared = Vec::new();
    let mut in_example = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_example = line == "[[example]]";
        } else if in_example && let Some(name) = line.strip_prefix("name = ") {
            declared.push(name.trim_matches('"').to_owned());
        }
    }
    let mut tested: Vec<String> = TESTED.iter().map(|name| (*name).to_owned()).collect();
    declared.sort();
    tested.sort();
    assert_eq!(
        declared, tested,
        "the `[[example]]`s of examples/Cargo.toml and the examples this file runs differ"
    );
}

#[test]
fn counter_keeps_its_count_across_a_panic_and_a_kill() {
    let run = Example::new("counter").run();
    run.prints_in_order(&[
        r#"starting a counter named "counter""#,
        "  [worker 0] init with count = 0",
        "after 3 casts: count = 3",
        "crashing it with a handler that adds 100 and panics",
        "  the caller was told: the counter refuses to count to 103",
        "after the crash: count = 3 (the +100 was not kept)",
        "2 casts, then the worker is killed at once (handled or still queued, none is lost)",
        // 3 or 5: the kill lands before or after the two casts were handled (the example says
        // so); the next line is the point, none of them is lost.
        "  [worker 2] init with count = *",
        "after the kill: count = 5 (worker incarnation 2)",
        "found by name: count = 5, restarts = 2",
        "  [terminate] stopped normally, count = 5",
        "stopped; the name is free again: true",
    ]);
    // The restarted worker prints this while `main` prints the caller's error: either comes first.
    run.prints_in_order(&["  [worker 1] init with count = 3"]);
}

#[test]
fn dont_lose_counts_to_nine_through_three_kills() {
    let run = Example::new("dont_lose").run();
    run.prints_in_order(&[
        "1",
        "2",
        "3",
        "-- cycle 1: worker killed, incarnation 1 took over",
        "4",
        "5",
        "6",
        "-- cycle 2: worker killed, incarnation 2 took over",
        "7",
        "8",
        "9",
        "-- cycle 3: worker killed, incarnation 3 took over",
    ]);
}

#[test]
fn game_players_hibernate_and_keep_their_scores_across_runs() {
    // `std::env::temp_dir()` of the example, where it keeps its store: a folder of this test's
    // own, so that neither a user's scores nor another run of this test get in the way.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("game-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let game = || {
        let mut example = Example::new("game");
        for var in ["TMPDIR", "TMP", "TEMP"] {
            example.command.env(var, &dir);
        }
        example
    };

    let first = game().run();
    first.prints_in_order(&[
        "stored players: []",
        "ada: score 0 after 0 games",
        "grace: score 0 after 0 games",
        "linus: score 0 after 0 games",
        "playing a round",
        "  ada wins 3: score 3",
        "  grace wins 5: score 5",
        "  linus wins 8: score 8",
        "waiting for the players to go idle and hibernate...",
        "all hibernating: no tasks, state only in the store",
        "asking ada for her score (the call wakes her up)",
        "    (a player woke up with score 3)",
        "ada: score 3 after 1 games, awake again: true",
    ]);
    let store = dir.join("peeper-example-game.redb");
    assert!(store.exists(), "no store at {}", store.display());

    // The point of the example: a second run goes on from the first run's scores.
    let second = game().run();
    second.prints_in_order(&[
        r#"stored players: ["ada", "grace", "linus"]"#,
        "ada: score 3 after 1 games",
        "grace: score 5 after 1 games",
        "linus: score 8 after 1 games",
        "playing a round",
        "  ada wins 3: score 6",
        "  grace wins 5: score 10",
        "  linus wins 8: score 16",
        "all hibernating: no tasks, state only in the store",
        "    (a player woke up with score 6)",
        "ada: score 6 after 2 games, awake again: true",
    ]);

    let mut reset = game();
    reset.command.arg("--reset");
    reset.run().prints_in_order(&["scores deleted"]);
    assert!(!store.exists(), "`--reset` left {}", store.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cache_stays_warm_and_connected_across_a_panic_and_a_kill() {
    let run = Example::new("cache").run();
    run.prints_in_order(&[
        r#"starting a dictionary named "dictionary""#,
        "  [worker 0] connecting to the backend (once for the whole branch)",
        "  [worker 0] init: 0 answered, the cache (*) holds 0 entries",
        "warming the cache",
        "  cache miss in * peeper: a word with 6 letters",
        "  cache miss in * keeper: a word with 6 letters",
        "  cache hit  in * peeper: a word with 6 letters",
        "crashing it with a handler that panics",
        "  the caller was told: the dictionary tripped over a typo",
        "after the crash, the cache is still warm",
        "  cache hit  in * peeper: a word with 6 letters",
        "  cache hit  in * keeper: a word with 6 letters",
        "killing the worker",
        "  [worker 2] init: 5 answered, the cache (*) holds 2 entries",
        "  cache hit  in * keeper: a word with 6 letters",
        "  cache miss in * worker: a word with 6 letters",
        "the backend was called 3 times for 7 lookups, on the connection worker 0 opened",
        "another task reads the cache by name (it is protected: others may read it)",
        "  3 cached words: keeper, peeper, worker",
        "stopped; the table went with the branch: *",
    ]);
    // Printed by the restarted worker while `main` prints the caller's error. 3 answered: the
    // crashing handler's 1,000,000 was not kept.
    run.prints_in_order(&["  [worker 1] init: 3 answered, the cache (*) holds 2 entries"]);
}

#[test]
fn rolling_hands_the_players_over_to_the_next_node_and_their_clients_follow() {
    if !cfg!(feature = "postgres") {
        skip_or_fail(
            "the `rolling` example needs this crate's `postgres` feature, and it is off: run \
             `cargo test --workspace --all-features` (or `-p peeper-examples --features postgres`)",
        );
        return;
    }
    let Some(url) = pg_url() else { return };
    let mut example = Example::new("rolling");
    example.command.env("PEEPER_PG_URL", url);
    let run = example.run();
    run.prints_in_order(&[
        "1. node a and node b connect; b takes over what other nodes hand off",
        "2. the players start on node a (`get` starts what runs nowhere, here) and score",
        "   ada: 10 points",
        "   grace: 20 points",
        "   who owns ada? node a",
        "   node b claiming ada: `player/ada` is owned by node `a`",
        "3. node a shuts down (a deploy): *",
        "   handed off: *",
        "4. node b hears it and revives them from the store",
        "   who owns ada now? node b",
        "5. the clients taken on node a before the deploy follow their players to node b",
        "   ada: 11 points after 1 more",
        "   grace: 21 points after 1 more",
        "6. and `get` on node b hands out the local client",
        "   ada: 11 points",
        "   grace: 21 points",
        "7. done: node b stops its players (which deletes their stored state)",
    ]);
    // Node a hands its players off, and node b takes them over, in any order.
    let handed = run.line_starting("   handed off: ");
    let mut handed: Vec<&str> = handed.split(", ").collect();
    handed.sort_unstable();
    assert_eq!(handed, ["player/ada", "player/grace"], "{run}");
    run.prints_in_order(&["   node b took over player/ada"]);
    run.prints_in_order(&["   node b took over player/grace"]);
}

#[test]
fn getting_started_counts_visits_across_runs() {
    let dir = fresh_dir("getting-started");
    let run = || {
        let mut example = Example::new("getting_started");
        for var in ["TMPDIR", "TMP", "TEMP"] {
            example.command.env(var, &dir);
        }
        example.run()
    };
    run().prints_in_order(&[
        "visit number 1",
        "the bad visit failed: the worker crashed while handling this call: the worker panicked: \
         a bug",
        "1 visits so far",
        "stored in *hello-peeper.redb",
    ]);
    run().prints_in_order(&["visit number 2", "2 visits so far"]);
}

/// The tutorial's steps assert what they show; each must run to its end.
#[test]
fn the_tutorial_steps_run() {
    for name in [
        "tutorial_step1",
        "tutorial_step2",
        "tutorial_step3",
        "tutorial_step4",
        "tutorial_step5",
        "tutorial_step6",
    ] {
        Example::new(name).run();
    }
}

#[test]
fn shutdown_stores_the_scores_on_sigterm() {
    let dir = fresh_dir("shutdown");
    let run = || {
        let mut example = Example::new("shutdown");
        example.command.env("DATA_DIR", &dir);
        example.run_until_signalled("ready: stop with Ctrl-C")
    };
    run().prints_in_order(&[
        "ada: score 1",
        "grace: score 1",
        "ready: stop with Ctrl-C or `kill -TERM *`",
        "shutting down",
        "stopped; the state is in *peeper-example-shutdown.redb",
    ]);
    run().prints_in_order(&["ada: score 2", "grace: score 2", "shutting down"]);
}

/// A folder of this test's own under the target directory, empty.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------

/// An example's binary, about to run: its stdin empty, its environment this test's without
/// `RUST_LOG` (which would add `tracing`'s lines to stdout).
struct Example {
    name: &'static str,
    command: Command,
}

impl Example {
    fn new(name: &'static str) -> Example {
        let binary = binary(name);
        let mut command = Command::new(&binary);
        command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Example { name, command }
    }

    /// Runs it to its end; panics unless it exits successfully within [`DEADLINE`].
    fn run(self) -> Run {
        self.run_with(None)
    }

    /// Runs it, sends it SIGTERM (as `kill -TERM` would) once it has printed a line starting
    /// with `ready`, and waits for its end as [`run`](Example::run) does.
    fn run_until_signalled(self, ready: &'static str) -> Run {
        self.run_with(Some(ready))
    }

    fn run_with(mut self, signal_when: Option<&'static str>) -> Run {
        let mut child = self.command.spawn().unwrap();
        let (ready, readied) = std::sync::mpsc::channel();
        let stdout = read_lines_in_background(child.stdout.take().unwrap(), signal_when, ready);
        let stderr = read_in_background(child.stderr.take().unwrap());
        let started = Instant::now();
        let status = loop {
            if readied.try_recv().is_ok() {
                let pid = child.id().to_string();
                let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
                assert!(sent.success(), "`kill -TERM {pid}` failed: {sent}");
            }
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > DEADLINE {
                child.kill().unwrap();
                child.wait().unwrap();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let run = Run {
            name: self.name,
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        };
        match run.status {
            None => panic!(
                "example `{}` still ran after {DEADLINE:?}: killed\n{run}",
                run.name
            ),
            Some(status) if !status.success() => {
                panic!("example `{}` failed: {status}\n{run}", run.name)
            }
            Some(_) => run,
        }
    }
}

/// `target/<profile>/examples/<name>`, built by `cargo test` next to this test's own binary
/// (`target/<profile>/deps/run_examples-<hash>`).
fn binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().unwrap();
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/<profile>/deps");
    let binary = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let hint = "run the examples' tests through `cargo test -p peeper-examples` (or \
                `--workspace`), which builds the examples; `--test run_examples` alone does not";
    let built = std::fs::metadata(&binary)
        .and_then(|binary| binary.modified())
        .unwrap_or_else(|_| {
            panic!(
                "example `{name}` is not built at {}: {hint}",
                binary.display()
            )
        });
    // A binary older than its source is from an earlier build: its output proves nothing.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{name}.rs"));
    let written = std::fs::metadata(&source).unwrap().modified().unwrap();
    assert!(
        built >= written,
        "example `{name}` at {} is older than {}: {hint}",
        binary.display(),
        source.display()
    );
    binary
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Reads `pipe` to its end on a thread, as [`read_in_background`] does, and says on `ready` when
/// a line starting with `marker` has been read.
fn read_lines_in_background(
    pipe: impl Read + Send + 'static,
    marker: Option<&'static str>,
    ready: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufReader::new(pipe).lines() {
            let line = line.unwrap();
            if marker.is_some_and(|marker| line.starts_with(marker)) {
                let _ = ready.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    })
}

/// How an example ended and what it printed.
struct Run {
    name: &'static str,
    /// `None`: killed at the deadline.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Each of `expected` is a whole line of stdout, found after the previous one; other lines
    /// may come between them. A `*` in an expected line stands for any text (a timing, an id).
    fn prints_in_order(&self, expected: &[&str]) {
        let mut lines = self.stdout.lines();
        for want in expected {
            assert!(
                lines.any(|line| matches(line, want)),
                "example `{}` did not print {want:?} (in this order after the lines before it)\n{self}",
                self.name
            );
        }
    }

    /// The rest of the first stdout line that starts with `prefix`.
    fn line_starting(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line starts with {prefix:?}\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout of `{}`:\n{}--- stderr:\n{}---",
            self.name, self.stdout, self.stderr
        )
    }
}

/// `line` is `pattern`, where one `*` in `pattern` stands for any text.
fn matches(line: &str, pattern: &str) -> bool {
    match pattern.split_once('*') {
        None => line == pattern,
        Some((start, end)) => {
            line.len() >= start.len() + end.len() && line.starts_with(start) && line.ends_with(end)
        }
    }
}

/// The database's URL (`PEEPER_PG_URL`), or `None` with `skipped: ...` on stderr when the tests
/// run without one; under CI (`CI=true`), a panic: a skip there would hide that nothing was
/// tested. The same rule as `pg_url()` in `tests/tests/cluster_common`, which this crate cannot
/// share.
fn pg_url() -> Option<String> {
    if let Ok(url) = std::env::var("PEEPER_PG_URL")
        && !url.is_empty()
    {
        return Some(url);
    }
    skip_or_fail(
        "PEEPER_PG_URL is not set (the PostgreSQL database the `rolling` example runs against): \
         run the tests through `scripts/with-postgres` (`scripts/with-postgres cargo test \
         --workspace --all-features`), which installs PostgreSQL if it is missing, starts a \
         throwaway server and sets it",
    );
    None
}

/// Says `skipped: why` on stderr; under CI (`CI=true`), panics instead: a skip there would hide
/// that nothing was tested.
fn skip_or_fail(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; under CI (`CI=true`) this test must run, not be skipped");
    }
    eprintln!("skipped: {why}");
}
