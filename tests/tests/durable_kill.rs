//! Process restarts on a redb file: a child process (`tests/bin/durable_child.rs`) writes through
//! the redb store and is SIGKILLed at random moments, round after round; after every kill the file
//! holds every acknowledged write, and the next child carries on from it. And a redb file that
//! cannot grow (a file-size limit: the same `EFBIG` as a full disk) fails the callers with typed
//! errors while the server keeps running.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::io::{BufRead, BufReader, Lines};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::time::Instant;

use durable_common::unique;
use peeper::store::{Key, Memory, Redb, Storage};
use rand::RngExt;
use serde::{Deserialize, Serialize};

const CHILD: &str = env!("CARGO_BIN_EXE_durable-child");

/// The child's server, as this process decodes it: the same kind, version and fields.
#[derive(Clone, Default, Serialize, Deserialize)]
struct KillCounter {
    count: u64,
    #[serde(default)]
    blob: String,
}

#[peeper::server]
impl KillCounter {
    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    #[call]
    fn len(&self) -> usize {
        self.blob.len()
    }
}

impl peeper::Persist for KillCounter {
    const KIND: &'static str = "kill-counter";
}

/// Opens the file in this process (the child is dead, so its lock is gone), reads the stored
/// state and closes the file again, then decodes the state as peeper does (a server started on a
/// copy of the bytes): `(count, blob length)`.
fn stored(runtime: &tokio::runtime::Runtime, path: &Path, name: &str) -> (u64, usize) {
    runtime.block_on(async {
        let bytes = {
            let storage = Storage::new(Redb::open(path).unwrap());
            storage.read(&Key::new("kill-counter", name)).await.unwrap()
        }; // the file is closed here, for the next child
        let bytes = bytes.expect("a state is stored");
        let memory = Memory::new();
        let copy = unique("decoded");
        memory.put_raw(Key::new("kill-counter", &copy), bytes);
        let counter = KillCounter::builder(KillCounter::default())
            .name(&copy)
            .store(Storage::new(memory))
            .start()
            .await
            .unwrap();
        let state = (counter.get().await.unwrap(), counter.len().await.unwrap());
        counter.stop().await.unwrap();
        state
    })
}

fn next_count(lines: &mut Lines<BufReader<ChildStdout>>, round: usize) -> Option<u64> {
    let line = lines.next()?.unwrap();
    Some(
        line.parse()
            .unwrap_or_else(|_| panic!("round {round}: not a count: {line:?}")),
    )
}

/// The process-restart test, 100 rounds.
///
/// What may be stored after a kill: the child sends `add(1)`, waits for the reply, prints the
/// count, and only then sends the next one, so at most **one** call is in flight when the kill
/// lands. Its commit may have reached the file before the kill (the reply never made it to
/// stdout), so the stored count is the last acknowledged one, or one more. Anything less would be
/// a lost acknowledged write; anything more, a write nobody made.
#[test]
fn sigkill_at_random_moments_never_loses_an_acknowledged_write() {
    const ROUNDS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.redb");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rng();
    let began = Instant::now();
    let (mut count, mut acks, mut in_flight_kept) = (0, 0, 0);
    for round in 0..ROUNDS {
        let mut child = Command::new(CHILD)
            .args(["count".as_ref(), path.as_os_str(), "counter".as_ref()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let start = lines.next().expect("the child started").unwrap();
        assert_eq!(
            start,
            format!("start {count}"),
            "round {round}: the child starts from the stored state"
        );

        // A random moment: after 0 to 20 acknowledgements, while the child keeps calling.
        let mut acked = count;
        for _ in 0..rng.random_range(0..=20) {
            let ack = next_count(&mut lines, round).expect("the child is alive");
            assert_eq!(ack, acked + 1, "round {round}");
            acked = ack;
        }
        child.kill().unwrap(); // SIGKILL on unix
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "round {round}: {status}");
        // What the child printed before it died was acknowledged too.
        while let Some(ack) = next_count(&mut lines, round) {
            assert_eq!(ack, acked + 1, "round {round}");
            acked = ack;
        }

        let (now, _) = stored(&runtime, &path, "counter");
        assert!(
            now == acked || now == acked + 1,
            "round {round}: stored {now}, last acknowledged {acked}"
        );
        in_flight_kept += u64::from(now == acked + 1);
        acks += acked - count;
        count = now;
    }
    println!(
        "{ROUNDS} SIGKILL rounds in {:.1?}: {acks} acknowledged writes, none lost; {in_flight_kept} \
         rounds also kept the unacknowledged call in flight",
        began.elapsed()
    );
}

/// Retried calls across a process kill (`client.idempotent(key)`): each round a child makes one
/// keyed `add(1)` on a store that stalls right after the commit carrying its record, the parent
/// SIGKILLs it there (committed, never answered), and a new child retries with the same key. The
/// retry gets the reply the killed child never saw (the count after that add, not one more), and
/// the effect is applied once: after 50 rounds the count is 50.
#[test]
fn a_keyed_call_killed_between_its_commit_and_its_reply_is_applied_once_when_retried() {
    const ROUNDS: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyed.redb");
    let began = Instant::now();
    let run = |mode: &str, key: &str| {
        Command::new(CHILD)
            .args([
                mode.as_ref(),
                path.as_os_str(),
                "keyed".as_ref(),
                key.as_ref(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    for round in 1..=ROUNDS {
        let key = format!("request-{round}");
        let mut child = run("keyed", &key);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("the child printed").unwrap();
        assert_eq!(line, "committed", "round {round}");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "round {round}: SIGKILLed");

        let retry = run("retry", &key).wait_with_output().unwrap();
        assert!(retry.status.success(), "round {round}: {retry:?}");
        let printed = String::from_utf8(retry.stdout).unwrap();
        assert_eq!(
            printed,
            format!("reply {round}\ncount {round}\n"),
            "round {round}: the first reply, applied once"
        );
    }
    println!(
        "{ROUNDS} keyed calls SIGKILLed between commit and reply in {:.1?}: every retry got the \
         first reply, each applied once",
        began.elapsed()
    );
}

/// A redb file that cannot grow: the child runs under a file-size limit (`ulimit -f`, with
/// `SIGXFSZ` ignored, so a write past it fails with `EFBIG`, as on a full disk; root is not
/// exempt, unlike file permissions) and grows its state by 32 KiB a call. The calls past the
/// limit fail with a typed store error, the server keeps answering, and the file keeps the last
/// acknowledged state.
#[test]
fn a_redb_file_that_cannot_grow_fails_callers_typed_and_the_server_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.redb");
    let output = Command::new("sh")
        .arg("-c")
        // 2,500 blocks of 512 bytes: redb's initial file fits, a state of ~300 KiB does not.
        .arg("trap '' XFSZ; ulimit -f 2500; exec \"$0\" grow \"$1\" grower")
        .arg(CHILD)
        .arg(&path)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", output.status);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 41, "{stdout}");

    let oks: Vec<usize> = lines
        .iter()
        .map_while(|line| line.strip_prefix("ok "))
        .map(|len| len.parse().unwrap())
        .collect();
    assert!(!oks.is_empty() && oks.len() < 40, "{stdout}");
    let errors = &lines[oks.len()..40];
    assert!(
        errors[0].starts_with("err the state could not be stored: the store failed: ")
            && errors[0].contains("File too large"),
        "{}",
        errors[0]
    );
    // redb refuses to write again after an I/O error until the database is reopened: every later
    // change fails too, with a typed error each time.
    for error in errors {
        assert!(
            error.starts_with("err the state could not be stored: the store failed: "),
            "{error}"
        );
    }
    // The server kept running all along, on its state in memory, ahead of the file.
    assert_eq!(lines[40], format!("alive {}", 40 * 32 * 1024));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, len) = stored(&runtime, &path, "grower");
    assert_eq!(
        len,
        *oks.last().unwrap(),
        "the file holds the last acknowledged state"
    );
}
