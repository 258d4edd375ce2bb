//! Damaged stored data is a typed error, never a panic, and is left as it was: envelopes that are
//! truncated, bit-flipped or foreign (read when a durable server starts), and redb files that are
//! truncated, bit-flipped or foreign (at `Redb::open`, and at the reads after it).
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use durable_common::{Tally, key, unique};
use peeper::store::{Key, Memory, Redb, Storage, Store, StoreError};
use peeper::{OnStop, StartError};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The envelope header: magic, envelope version, codec id, schema version (store/codec.rs).
const HEADER: usize = 10;
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A `Tally`'s state with a count and a log, as peeper stores it.
async fn valid_envelope() -> Vec<u8> {
    let memory = Memory::new();
    let name = unique("valid");
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(Storage::new(memory.clone()))
        .on_stop(OnStop::Keep)
        .start()
        .await
        .unwrap();
    tally.add(123_456).await.unwrap();
    for entry in ["first", "second", "a longer third entry"] {
        tally.push(entry.to_owned()).unwrap();
    }
    tally.get().await.unwrap(); // after the casts
    tally.stop().await.unwrap();
    memory.read(&key(&name)).await.unwrap().unwrap()
}

/// Damaged versions of `valid`, and bytes that never were an envelope.
fn damaged_envelope(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let truncated = {
        let valid = valid.clone();
        any::<Index>().prop_map(move |at| valid[..at.index(valid.len())].to_vec())
    };
    let flipped = {
        let valid = valid.clone();
        prop::collection::vec((any::<Index>(), 0..8u8), 1..4).prop_map(move |flips| {
            let mut bytes = valid.clone();
            for (at, bit) in flips {
                bytes[at.index(valid.len())] ^= 1 << bit;
            }
            bytes
        })
    };
    let header_byte = {
        let valid = valid.clone();
        (0..HEADER, any::<u8>()).prop_map(move |(at, byte)| {
            let mut bytes = valid.clone();
            bytes[at] = byte;
            bytes
        })
    };
    let foreign_payload = {
        let header = valid[..HEADER].to_vec();
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(move |payload| [header.as_slice(), &payload].concat())
    };
    let any_version = (any::<u32>(), 0..3u8).prop_map(move |(version, codec)| {
        let mut bytes = valid.clone();
        bytes[5] = codec;
        bytes[6..HEADER].copy_from_slice(&version.to_le_bytes());
        bytes
    });
    prop_oneof![
        truncated,
        flipped,
        header_byte,
        foreign_payload,
        any_version,
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(|tail| [PNG, &tail].concat()),
        (0..64usize).prop_map(|len| vec![0; len]),
    ]
}

/// Starts a `Tally` from `bytes` stored under its key: it starts (the bytes decoded as some
/// state), or fails with a typed store error about that key and leaves the bytes as they were.
async fn start_from(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let memory = Memory::new();
    let name = unique("corrupt");
    let key = key(&name);
    memory.put_raw(key.clone(), bytes.clone());
    let starting = Tally::builder(Tally::default())
        .name(&name)
        .store(Storage::new(memory.clone()))
        .start();
    let started = tokio::time::timeout(Duration::from_secs(10), starting)
        .await
        .map_err(|_| TestCaseError::fail("the start hung"))?;
    match started {
        Ok(tally) => {
            // Whatever it decoded to is a state the server runs with.
            prop_assert!(tally.get().await.is_ok());
            tally.stop().await.unwrap();
        }
        Err(StartError::Store(
            StoreError::Corrupt { key: read, .. }
            | StoreError::NewerVersion { key: read, .. }
            | StoreError::Migration { key: read, .. },
        )) => {
            prop_assert_eq!(read, key.clone());
            prop_assert_eq!(
                memory.read(&key).await,
                Ok(Some(bytes)),
                "the bytes were touched"
            );
            prop_assert!(Tally::whereis(&name).is_none());
        }
        Err(other) => prop_assert!(false, "not a typed store error: {other:?}"),
    }
    Ok(())
}

/// Truncated, bit-flipped and foreign envelopes never panic the decoder: a durable server's
/// start fails with `Corrupt`, `NewerVersion` or `Migration` and the bytes stay as they were (or
/// the bytes still decode, and it starts).
#[test]
fn damaged_envelopes_are_typed_errors_and_left_untouched() {
    let runtime = runtime();
    let valid = runtime.block_on(valid_envelope());
    assert!(valid.len() > HEADER + 20, "a payload worth damaging");
    TestRunner::new(config(256))
        .run(&damaged_envelope(valid), |bytes| {
            runtime.block_on(start_from(bytes))
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Damaged redb files
// ---------------------------------------------------------------------------------------------

/// How a copy of a valid file is damaged.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut at this many bytes (at least 1: an empty file is a new database to redb).
    Truncate(Index),
    /// Bits flipped in the bytes that hold something (most of a fresh file is free space).
    Flip(Vec<(Index, u8)>),
    /// Bits flipped in the header page, or in and around the stored states.
    FlipLive(Vec<(Index, u8)>),
    /// The file's first bytes, then noise.
    NoiseAfter(Index, Vec<u8>),
    /// A PNG header and noise.
    Png(Vec<u8>),
    /// Zeros.
    Zeros(usize),
    /// Noise only.
    Noise(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        prop::collection::vec((any::<Index>(), 0..8u8), 1..4).prop_map(Damage::Flip),
        prop::collection::vec((any::<Index>(), 0..8u8), 1..4).prop_map(Damage::FlipLive),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..4096))
            .prop_map(|(at, noise)| Damage::NoiseAfter(at, noise)),
        prop::collection::vec(any::<u8>(), 0..4096).prop_map(Damage::Png),
        (1..65_536usize).prop_map(Damage::Zeros),
        prop::collection::vec(any::<u8>(), 1..4096).prop_map(Damage::Noise),
    ]
}

impl Damage {
    fn apply(&self, valid: &[u8], used: &[usize], live: &[usize]) -> Vec<u8> {
        let flip = |flips: &[(Index, u8)], at: &[usize]| {
            let mut bytes = valid.to_vec();
            for (index, bit) in flips {
                bytes[at[index.index(at.len())]] ^= 1 << bit;
            }
            bytes
        };
        match self {
            Damage::Truncate(at) => valid[..1 + at.index(valid.len() - 1)].to_vec(),
            Damage::Flip(flips) => flip(flips, used),
            Damage::FlipLive(flips) => flip(flips, live),
            Damage::NoiseAfter(at, noise) => [&valid[..at.index(valid.len())], noise].concat(),
            Damage::Png(noise) => [PNG, noise].concat(),
            Damage::Zeros(len) => vec![0; *len],
            Damage::Noise(noise) => noise.clone(),
        }
    }
}

/// A redb file holding the states of a few servers, closed: their keys and envelopes.
async fn valid_file(path: &Path) -> Vec<(Key, Vec<u8>)> {
    let storage = Storage::new(Redb::open(path).unwrap());
    let mut keys = Vec::new();
    for i in 0..8 {
        let name = unique("stored");
        let tally = Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .on_stop(OnStop::Keep)
            .start()
            .await
            .unwrap();
        tally.add(i * 1_000).await.unwrap();
        tally.push(format!("entry {i}")).unwrap();
        tally.stop().await.unwrap();
        let envelope = storage.read(&key(&name)).await.unwrap().unwrap();
        keys.push((key(&name), envelope));
    }
    storage.close().await.unwrap();
    keys
}

/// The offsets of the header page, and of every copy of the stored envelopes with the 64 bytes
/// around it (page headers, key bytes, lengths).
fn live_offsets(file: &[u8], stored: &[(Key, Vec<u8>)]) -> Vec<usize> {
    let mut live: Vec<usize> = (0..file.len().min(4096)).collect();
    for (_, envelope) in stored {
        for start in 0..file.len().saturating_sub(envelope.len()) {
            if file[start..].starts_with(envelope) {
                live.extend(
                    start.saturating_sub(64)..(start + envelope.len() + 64).min(file.len()),
                );
            }
        }
    }
    live.sort_unstable();
    live.dedup();
    live
}

/// What opening a damaged file came to.
#[derive(Debug)]
enum Opened {
    /// `Redb::open` refused it.
    Refused(StoreError),
    /// It opened; what reading the keys it lists (or, if listing failed, the keys it held)
    /// gave.
    Read(Vec<Result<Option<Vec<u8>>, StoreError>>),
}

async fn open_and_read(path: &Path, known: &[Key]) -> Opened {
    let redb = match Redb::open(path) {
        Ok(redb) => redb,
        Err(error) => return Opened::Refused(error),
    };
    let keys = redb.keys(None).await;
    let mut reads = Vec::new();
    for key in keys.as_deref().unwrap_or(known) {
        reads.push(redb.read(key).await);
    }
    Opened::Read(reads)
}

/// Damaged copies of a valid redb file never panic: `Redb::open` refuses them with a typed error
/// and leaves them byte for byte as they were, or opens them, and every later call answers data
/// or a typed error (and the data, given to a server, decodes or is a typed error).
///
/// A file that opens is not compared byte for byte: redb writes its header and allocator state
/// at every open and close, even of an undamaged file.
#[test]
fn damaged_redb_files_are_typed_errors_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    let stored = runtime().block_on(valid_file(&good));
    let known: Vec<Key> = stored.iter().map(|(key, _)| key.clone()).collect();
    let valid = std::fs::read(&good).unwrap();
    let used: Vec<usize> = (0..valid.len()).filter(|&at| valid[at] != 0).collect();
    let live = live_offsets(&valid, &stored);
    assert!(live.len() > 4096, "the stored states are in the file");
    static CASE: AtomicU64 = AtomicU64::new(0);

    TestRunner::new(config(128))
        .run(&damage(), |damage| {
            let bytes = damage.apply(&valid, &used, &live);
            let path = dir.path().join(format!(
                "case-{}.redb",
                CASE.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, &bytes).unwrap();

            let opened = catch_unwind(AssertUnwindSafe(|| {
                runtime().block_on(open_and_read(&path, &known))
            }));
            let after = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            let Ok(opened) = opened else {
                return Err(TestCaseError::fail("a panic escaped"));
            };
            match opened {
                Opened::Refused(error) => {
                    prop_assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
                    prop_assert!(after == bytes, "a refused file was written to");
                }
                // Listing and reading answered (a typed error, if not data); what was read must
                // not panic the decoder either.
                Opened::Read(reads) => {
                    for read in reads {
                        if let Ok(Some(envelope)) = read {
                            runtime().block_on(start_from(envelope))?;
                        }
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}
