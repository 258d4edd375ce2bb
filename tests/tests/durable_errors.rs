//! What goes wrong with stored state, and how it surfaces: older versions migrate; newer versions,
//! corrupt bytes and failed migrations are typed start errors that leave the bytes untouched; a
//! store that fails to write is a typed error for the caller, and the server keeps running.
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::time::Duration;

use durable_common::{Tally, key, stored_tally, unique};
use peeper::store::{BoxFuture, Key, Memory, Storage, Store, StoreError, Stored, Write};
use peeper::{CallError, OnStop, StartError, WritePolicy};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Three versions of one server kind
// ---------------------------------------------------------------------------------------------

/// Version 1: a `u32` score.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ProfileV1 {
    score: u32,
}

#[peeper::server]
impl ProfileV1 {
    #[call]
    fn score(&self) -> u32 {
        self.score
    }

    #[call]
    fn set(&mut self, score: u32) {
        self.score = score;
    }
}

impl peeper::Persist for ProfileV1 {
    const KIND: &'static str = "profile";
}

/// Version 2: `score` became `points` (ten per old point, and wider), and a level appeared.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ProfileV2 {
    points: u64,
    #[serde(default)]
    level: u8,
}

#[peeper::server]
impl ProfileV2 {
    #[call]
    fn view(&self) -> (u64, u8) {
        (self.points, self.level)
    }

    #[call]
    fn level_up(&mut self) -> u8 {
        self.level += 1;
        self.level
    }
}

impl peeper::Persist for ProfileV2 {
    const KIND: &'static str = "profile";
    const VERSION: u32 = 2;

    fn migrate(old: Stored<'_>) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct V1 {
            score: u32,
        }
        match old.version() {
            1 => {
                let v1: V1 = old.decode()?;
                Ok(ProfileV2 {
                    points: u64::from(v1.score) * 10,
                    level: 1,
                })
            }
            other => Err(format!("no migration from version {other}")),
        }
    }
}

/// Version 3, whose migration refuses everything.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ProfileV3 {
    points: u64,
}

#[peeper::server]
impl ProfileV3 {
    #[call]
    fn points(&self) -> u64 {
        self.points
    }
}

impl peeper::Persist for ProfileV3 {
    const KIND: &'static str = "profile";
    const VERSION: u32 = 3;

    fn migrate(old: Stored<'_>) -> Result<Self, String> {
        Err(format!("version {} is too old to read", old.version()))
    }
}

/// A version 2 that never learnt a migration (the default `migrate`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ProfileNoMigration {
    points: u64,
}

#[peeper::server]
impl ProfileNoMigration {
    #[call]
    fn points(&self) -> u64 {
        self.points
    }
}

impl peeper::Persist for ProfileNoMigration {
    const KIND: &'static str = "profile";
    const VERSION: u32 = 2;
}

fn profile(name: &str) -> Key {
    Key::new("profile", name)
}

/// Stores a version 1 profile with this score under `name`, through a version 1 server.
async fn store_v1(storage: &Storage, name: &str, score: u32) -> Vec<u8> {
    let v1 = ProfileV1::builder(ProfileV1::default())
        .name(name)
        .store(storage.clone())
        .on_stop(OnStop::Keep)
        .start()
        .await
        .unwrap();
    v1.set(score).await.unwrap();
    v1.stop().await.unwrap();
    let bytes = storage.read(&profile(name)).await.unwrap().unwrap();
    assert_eq!(&bytes[6..10], &1u32.to_le_bytes(), "schema version 1");
    bytes
}

/// Stores a version 2 profile under `name`, through a version 2 server.
async fn store_v2(storage: &Storage, name: &str) -> Vec<u8> {
    let v2 = ProfileV2::builder(ProfileV2 {
        points: 5,
        level: 2,
    })
    .name(name)
    .store(storage.clone())
    .on_stop(OnStop::Keep)
    .start()
    .await
    .unwrap();
    v2.stop().await.unwrap();
    let bytes = storage.read(&profile(name)).await.unwrap().unwrap();
    assert_eq!(&bytes[6..10], &2u32.to_le_bytes(), "schema version 2");
    bytes
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn version_1_state_is_migrated_to_version_2() {
    let name = unique("migrate");
    let storage = Storage::new(Memory::new());
    store_v1(&storage, &name, 7).await;

    let start_v2 = || {
        ProfileV2::builder(ProfileV2::default())
            .name(&name)
            .store(storage.clone())
            .on_stop(OnStop::Keep)
            .start()
    };
    let v2 = start_v2().await.unwrap();
    assert_eq!(v2.view().await, Ok((70, 1)));
    // The start wrote the migrated state back, as version 2.
    let bytes = storage.read(&profile(&name)).await.unwrap().unwrap();
    assert_eq!(&bytes[6..10], &2u32.to_le_bytes());
    assert_eq!(v2.level_up().await, Ok(2));
    v2.stop().await.unwrap();

    // The next start reads version 2 directly: no second migration.
    let v2 = start_v2().await.unwrap();
    assert_eq!(v2.view().await, Ok((70, 2)));
    v2.stop().await.unwrap();
}

/// Version 1 bytes put straight into a store (as if copied from an old deployment's file).
#[tokio::test]
async fn raw_version_1_bytes_are_migrated() {
    let old = Storage::new(Memory::new());
    let bytes = store_v1(&old, &unique("old"), 3).await;
    let memory = Memory::new();
    let name = unique("copied");
    memory.put_raw(profile(&name), bytes);
    let v2 = ProfileV2::builder(ProfileV2::default())
        .name(&name)
        .store(Storage::new(memory))
        .start()
        .await
        .unwrap();
    assert_eq!(v2.view().await, Ok((30, 1)));
    v2.stop().await.unwrap();
}

#[tokio::test]
async fn newer_version_data_is_a_typed_error_and_the_bytes_are_untouched() {
    let name = unique("newer");
    let storage = Storage::new(Memory::new());
    let bytes = store_v2(&storage, &name).await;

    let started = ProfileV1::builder(ProfileV1::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await;
    assert_eq!(
        started.unwrap_err(),
        StartError::Store(StoreError::NewerVersion {
            key: profile(&name),
            stored: 2,
            known: 1,
        })
    );
    assert_eq!(storage.read(&profile(&name)).await.unwrap(), Some(bytes));
    assert!(ProfileV1::whereis(&name).is_none(), "nothing started");

    // The build that knows version 2 still reads it.
    let v2 = ProfileV2::builder(ProfileV2::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(v2.view().await, Ok((5, 2)));
    v2.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_migration_is_a_typed_error_and_the_bytes_are_untouched() {
    let name = unique("no-way");
    let storage = Storage::new(Memory::new());
    let bytes = store_v1(&storage, &name, 9).await;

    let started = ProfileV3::builder(ProfileV3::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await;
    assert_eq!(
        started.unwrap_err(),
        StartError::Store(StoreError::Migration {
            key: profile(&name),
            from: 1,
            reason: "version 1 is too old to read".to_owned(),
        })
    );
    assert_eq!(
        storage.read(&profile(&name)).await.unwrap(),
        Some(bytes.clone())
    );

    // Without a `migrate` at all: the default one refuses, naming the kind and the version.
    let started = ProfileNoMigration::builder(ProfileNoMigration::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await;
    match started.unwrap_err() {
        StartError::Store(StoreError::Migration { key, from, reason }) => {
            assert_eq!((key, from), (profile(&name), 1));
            assert!(reason.contains("no migration from version 1"), "{reason}");
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert_eq!(storage.read(&profile(&name)).await.unwrap(), Some(bytes));

    // A migration whose old data does not decode is a migration error too.
    let memory = Memory::new();
    let mut garbled = store_v1(&Storage::new(Memory::new()), &unique("x"), 1).await;
    garbled.truncate(10);
    garbled.extend_from_slice(&[0xc1, 0xc1]);
    memory.put_raw(profile(&name), garbled.clone());
    let started = ProfileV2::builder(ProfileV2::default())
        .name(&name)
        .store(Storage::new(memory.clone()))
        .start()
        .await;
    assert!(matches!(
        started,
        Err(StartError::Store(StoreError::Migration { from: 1, .. }))
    ));
    assert_eq!(memory.read(&profile(&name)).await.unwrap(), Some(garbled));
}

// ---------------------------------------------------------------------------------------------
// Corrupt bytes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn corrupt_bytes_are_a_typed_error_and_are_left_untouched() {
    // A valid version 2 header, and a valid version 1 payload, to build bad envelopes from.
    let header = store_v2(&Storage::new(Memory::new()), &unique("h")).await[..10].to_vec();
    let v1_payload = store_v1(&Storage::new(Memory::new()), &unique("p"), 4).await[10..].to_vec();
    let with_header = |payload: &[u8]| [header.as_slice(), payload].concat();
    let mut unknown_codec = header.clone();
    unknown_codec[5] = 99;
    let mut unknown_envelope = header.clone();
    unknown_envelope[4] = 7;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"definitely not an envelope".to_vec()),
        ("truncated magic", b"PEE".to_vec()),
        ("truncated header", header[..8].to_vec()),
        ("header only", header.clone()),
        ("header and garbage", with_header(&[0xc1, 0xff, 0x00, 0x13])),
        (
            "header and a truncated payload",
            with_header(&v1_payload[..v1_payload.len() - 1]),
        ),
        (
            "header and a payload of another shape",
            with_header(&v1_payload),
        ),
        (
            "unknown codec",
            [unknown_codec.as_slice(), &v1_payload].concat(),
        ),
        (
            "unknown envelope version",
            [unknown_envelope.as_slice(), &v1_payload].concat(),
        ),
    ];
    for (case, bytes) in cases {
        let memory = Memory::new();
        let name = unique("corrupt");
        memory.put_raw(profile(&name), bytes.clone());
        let started = ProfileV2::builder(ProfileV2::default())
            .name(&name)
            .store(Storage::new(memory.clone()))
            .start()
            .await;
        match started {
            Err(StartError::Store(StoreError::Corrupt { key, reason })) => {
                assert_eq!(key, profile(&name), "{case}");
                assert!(!reason.is_empty(), "{case}");
            }
            other => panic!("{case}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(
            memory.read(&profile(&name)).await.unwrap(),
            Some(bytes),
            "{case}: the bytes were touched"
        );
        assert!(ProfileV2::whereis(&name).is_none(), "{case}");
    }
}

/// A backend whose reads fail.
#[derive(Clone, Default)]
struct Unreadable(Memory);

impl Store for Unreadable {
    fn read<'a>(&'a self, _: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async { Err(StoreError::backend("I/O error: unreadable sector")) })
    }

    fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
        self.0.commit(batch)
    }

    fn keys<'a>(&'a self, kind: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
        self.0.keys(kind)
    }
}

#[tokio::test]
async fn a_store_that_cannot_be_read_fails_the_start_typed() {
    let name = unique("unreadable");
    let started = Tally::builder(Tally::default())
        .name(&name)
        .store(Storage::new(Unreadable::default()))
        .start()
        .await;
    assert_eq!(
        started.unwrap_err(),
        StartError::Store(StoreError::backend("I/O error: unreadable sector"))
    );
    assert!(Tally::whereis(&name).is_none());
}

// ---------------------------------------------------------------------------------------------
// Failing writes
// ---------------------------------------------------------------------------------------------

/// A full disk: the call that changed the state hears it as a typed error; the server keeps
/// running on its state in memory; once the store works again the next change is written, and a
/// restart restores it.
#[tokio::test]
async fn a_failing_store_fails_changing_calls_typed_and_the_server_keeps_running() {
    let name = unique("full");
    let memory = Memory::new();
    let storage = Storage::new(memory.clone());
    let start = || {
        Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .on_stop(OnStop::Keep)
            .start()
    };
    let tally = start().await.unwrap();
    assert_eq!(tally.add(1).await, Ok(1));

    memory.fail_writes(Some("disk full"));
    let full = CallError::Store(StoreError::backend("disk full"));
    assert_eq!(tally.add(2).await, Err(full.clone()));
    assert_eq!(
        full.to_string(),
        "the state could not be stored: the store failed: disk full"
    );
    // Still running, on its state in memory (ahead of the store), without a restart.
    assert!(tally.branch().is_running());
    assert_eq!(tally.get().await, Ok(3), "a read needs no write");
    assert_eq!(tally.branch().restarts(), 0);
    // A cast's failed write has nobody to tell: it is logged, and the server goes on.
    tally.push("while full".to_owned()).unwrap();
    assert_eq!(tally.log().await.unwrap(), ["while full"]);
    assert!(matches!(tally.add(1).await, Err(CallError::Store(_))));
    assert_eq!(stored_tally(&storage, &name).await, Some(1));

    memory.fail_writes(None);
    assert_eq!(tally.add(1).await, Ok(5));
    assert_eq!(stored_tally(&storage, &name).await, Some(5));
    tally.stop().await.unwrap();

    let again = start().await.unwrap();
    assert_eq!(again.get().await, Ok(5));
    assert_eq!(again.log().await.unwrap(), ["while full"]);
    again.stop().await.unwrap();
}

/// Batched writes reply at once, so a failing store cannot fail the call; the pending state is
/// written by the end once the store works again.
#[tokio::test(start_paused = true)]
async fn a_failing_store_under_batched_writes_is_caught_up_by_the_end() {
    const PERIOD: Duration = Duration::from_secs(1);
    let name = unique("batched-full");
    let memory = Memory::new();
    let storage = Storage::new(memory.clone());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .write_policy(WritePolicy::Batched(PERIOD))
        .on_stop(OnStop::Keep)
        .start()
        .await
        .unwrap();
    memory.fail_writes(Some("read-only file system"));
    assert_eq!(tally.add(4).await, Ok(4));
    tokio::time::sleep(PERIOD * 3).await; // paused clock: the failed flush happens meanwhile
    assert_eq!(tally.get().await, Ok(4));
    memory.fail_writes(None);
    assert_eq!(stored_tally(&storage, &name).await, Some(0));
    tally.stop().await.unwrap();
    assert_eq!(stored_tally(&storage, &name).await, Some(4));
}

/// The wipe of a normal stop that fails leaves the state stored; the stop itself completes.
#[tokio::test]
async fn a_failing_wipe_does_not_block_the_stop() {
    let name = unique("wipe-fails");
    let memory = Memory::new();
    let storage = Storage::new(memory.clone());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    tally.add(2).await.unwrap();
    memory.fail_writes(Some("disk gone"));
    tally.stop().await.unwrap();
    assert!(Tally::whereis(&name).is_none());
    memory.fail_writes(None);
    assert_eq!(storage.keys(None).await.unwrap(), [key(&name)]);
}
