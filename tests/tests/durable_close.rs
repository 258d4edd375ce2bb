//! Closing a `Storage`: once `close` returns, or once the last clone (and every server on it) is
//! dropped with no commit in flight, the redb file can be opened again at once, with every
//! committed state in it.
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::path::Path;

use durable_common::{Tally, decode_tally, key, unique};
use peeper::OnStop;
use peeper::store::{Key, Redb, Storage, Store, StoreError, Write};

const ROUNDS: u64 = 100;

/// What the file holds for `name`, read through a fresh `Redb` (no `Storage`, no writer).
async fn stored(redb: &Redb, name: &str) -> Option<u64> {
    match redb.read(&key(name)).await.unwrap() {
        Some(bytes) => Some(decode_tally(bytes).await),
        None => None,
    }
}

/// One "process": opens the file (which must be free), checks what the previous round left,
/// runs a server that adds 1 and stops with its state kept, and returns its storage.
async fn round(path: &Path, name: &str, round: u64) -> Storage {
    let redb = Redb::open(path)
        .unwrap_or_else(|error| panic!("round {round}: the file is still held: {error}"));
    let expected = (round > 0).then_some(round);
    assert_eq!(stored(&redb, name).await, expected, "round {round}");

    let storage = Storage::new(redb);
    let tally = Tally::builder(Tally::default())
        .name(name)
        .store(storage.clone())
        .on_stop(OnStop::Keep)
        .start()
        .await
        .unwrap();
    assert_eq!(tally.get().await, Ok(round));
    assert_eq!(tally.add(1).await, Ok(round + 1));
    tally.stop().await.unwrap();
    storage
}

/// `close` releases the file: reopened right after, 100 times, each time with the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_reopens_right_after_close_x100() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let name = unique("closed");
    for i in 0..ROUNDS {
        let storage = round(&path, &name, i).await;
        let clone = storage.clone(); // kept across the reopen: `close` closed it too
        storage.close().await.unwrap();
        assert_eq!(clone.keys(None).await, Err(StoreError::Closed));
        assert_eq!(clone.delete(&key(&name)).await, Err(StoreError::Closed));
        clone.close().await.unwrap();
    }
    let redb = Redb::open(&path).unwrap();
    assert_eq!(stored(&redb, &name).await, Some(ROUNDS));
}

/// Without `close`: once every clone is dropped and no commit is in flight, dropping the last
/// clone releases the file at once (the writer task holds the backend only while it commits).
/// Writes go through the writer (`delete`); what each round checks was put by the previous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_reopens_right_after_the_last_storage_is_dropped_x100() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let round_key = |i: u64| Key::new("round", i.to_string());
    for i in 0..ROUNDS {
        let redb = Redb::open(&path)
            .unwrap_or_else(|error| panic!("round {i}: the file is still held: {error}"));
        if i > 0 {
            assert_eq!(redb.keys(Some("round")).await.unwrap(), [round_key(i - 1)]);
        }
        redb.commit(vec![Write::put(round_key(i), i.to_le_bytes().to_vec())])
            .await
            .unwrap();
        let storage = Storage::new(redb);
        let clone = storage.clone();
        if i > 0 {
            clone.delete(&round_key(i - 1)).await.unwrap();
        }
        assert_eq!(
            storage.read(&round_key(i)).await.unwrap(),
            Some(i.to_le_bytes().to_vec())
        );
        drop(clone);
        drop(storage);
    }
    assert!(Redb::open(&path).is_ok());
}

/// With servers, on a current-thread runtime: a stopped server's tasks have ended by the time
/// the test runs again, so once it drops its own clone the file is free, with the state in it.
#[tokio::test]
async fn the_file_reopens_after_the_servers_and_the_storage_are_dropped_x100() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let name = unique("dropped");
    for i in 0..ROUNDS {
        drop(round(&path, &name, i).await);
    }
    let redb = Redb::open(&path).unwrap();
    assert_eq!(stored(&redb, &name).await, Some(ROUNDS));
}

/// The same on a multi-thread runtime: `stop` (and `ended`) resolve only after the branch has
/// let go of its `Storage` clone, so nothing on another thread holds the file a moment longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_reopens_after_the_servers_and_the_storage_are_dropped_x100_multi_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let name = unique("dropped-mt");
    for i in 0..ROUNDS {
        drop(round(&path, &name, i).await);
    }
}

/// `close` with a server still running: its state as of the close is in the file, and its
/// later writes answer `Closed` instead of being lost silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_under_a_running_server_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let name = unique("running");
    let storage = Storage::new(Redb::open(&path).unwrap());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(7).await, Ok(7));
    storage.close().await.unwrap();

    let redb = Redb::open(&path).unwrap();
    assert_eq!(stored(&redb, &name).await, Some(7));
    assert!(
        tally.add(1).await.is_err(),
        "a write after the close cannot be kept"
    );
}
