//! What the `durable_*` test files share: a durable server, a count of its `init` runs that
//! survives hibernation (it is not part of the stored state), and storage helpers.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use peeper::store::{Key, Memory, Storage};
use serde::{Deserialize, Serialize};

/// A name no other test uses (the registry is process-wide, and a file's tests share a process).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static INITS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Mutex::default);
static FAILING_INITS: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// How many times `init` ran for the `Tally` named `name`, over every incarnation, revival and
/// new start: outside the state, so that it survives hibernation and restarts.
pub fn inits(name: &str) -> usize {
    lock(&INITS).get(name).copied().unwrap_or(0)
}

/// Makes every later `init` of the `Tally` named `name` fail (or stop failing).
pub fn fail_inits(name: &str, fail: bool) {
    if fail {
        lock(&FAILING_INITS).insert(name.to_owned());
    } else {
        lock(&FAILING_INITS).remove(name);
    }
}

/// A one-shot callback run when any copy of the state that carries it is dropped, after it was
/// armed. It is not stored: a state loaded from the store carries a fresh, unarmed one.
///
/// Used to act at an exact point inside the runtime: a hibernating branch drops its state right
/// after its tasks ended and right before it decides whether to go to sleep.
#[derive(Clone, Default)]
pub struct DropHook(Arc<Mutex<Option<Hook>>>);

type Hook = Box<dyn FnOnce() + Send>;

impl DropHook {
    pub fn arm(&self, hook: impl FnOnce() + Send + 'static) {
        *lock(&self.0) = Some(Box::new(hook));
    }
}

impl Drop for DropHook {
    fn drop(&mut self) {
        let hook = lock(&self.0).take();
        if let Some(hook) = hook {
            hook();
        }
    }
}

impl fmt::Debug for DropHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DropHook")
    }
}

/// A durable counter with a log of what its casts and infos brought.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub log: Vec<String>,
    #[serde(skip)]
    pub hook: DropHook,
}

/// An info message for `Tally`.
#[derive(Debug)]
pub struct Note(pub String);

#[peeper::server]
impl Tally {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), String> {
        let name = ctx.client().branch().name().unwrap_or_default().to_owned();
        *lock(&INITS).entry(name.clone()).or_default() += 1;
        if lock(&FAILING_INITS).contains(&name) {
            return Err(format!("init of `{name}` fails on purpose"));
        }
        Ok(())
    }

    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    #[call]
    fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }

    #[call]
    fn log(&self) -> Vec<String> {
        self.log.clone()
    }

    #[call]
    fn incarnation(&self, ctx: &mut peeper::Context<Self>) -> u64 {
        ctx.incarnation()
    }

    #[call]
    fn boom(&mut self) -> u64 {
        self.count += 1_000; // never kept: the handler panics
        panic!("boom")
    }

    #[cast]
    fn push(&mut self, entry: String) {
        self.log.push(entry);
    }

    #[info]
    fn note(&mut self, note: Note) {
        self.log.push(format!("note {}", note.0));
    }
}

impl peeper::Persist for Tally {
    const KIND: &'static str = "tally";
}

/// The key of the `Tally` named `name`.
pub fn key(name: &str) -> Key {
    Key::new("tally", name)
}

/// The count a stored `Tally` envelope holds, decoded the way peeper decodes it: the bytes are
/// copied into a fresh in-memory store under another name, and a second server starts from them.
pub async fn decode_tally(bytes: Vec<u8>) -> u64 {
    assert!(bytes.starts_with(b"PEEP"), "not an envelope: {bytes:?}");
    let memory = Memory::new();
    let name = unique("decoded");
    memory.put_raw(key(&name), bytes);
    let copy = Tally::builder(Tally::default())
        .name(&name)
        .store(Storage::new(memory))
        .start()
        .await
        .unwrap();
    let count = copy.get().await.unwrap();
    copy.stop().await.unwrap();
    count
}

/// The count stored for the `Tally` named `name`, if any.
pub async fn stored_tally(storage: &Storage, name: &str) -> Option<u64> {
    match storage.read(&key(name)).await.unwrap() {
        Some(bytes) => Some(decode_tally(bytes).await),
        None => None,
    }
}
