//! The child process of `tests/tests/durable_kill.rs`, which SIGKILLs it at random moments.
//!
//! `durable-child count <file> <name>`: opens the redb file, starts a durable counter named
//! `<name>` on it (restoring what an earlier child stored), prints `start <count>`, then calls
//! `add(1)` forever, printing every acknowledged count on its own line, flushed before the next
//! call is sent. A printed count is therefore a promise: that state was committed durably.
//!
//! `durable-child keyed <file> <name> <key>`: the same server, one `add(1)` with the idempotency
//! key `<key>`, on a store that prints `committed` once a commit carrying a keyed call's record
//! is durable and then never answers the writer: the reply never comes, and the parent SIGKILLs
//! the process between the commit and the reply. `durable-child retry <file> <name> <key>`: the
//! same call on a plain store; prints `reply <n>`, then `count <n>` from `get`.
//!
//! `durable-child grow <file> <name>`: the same server, growing its state by 32 KiB per call and
//! printing `ok <len>` or `err <message>` for each, for 40 calls, then `alive <len>` from a call
//! that changes nothing. Run under a file-size limit, it shows redb failures reaching callers.

use std::error::Error;
use std::io::Write as _;

use peeper::store::{BoxFuture, Key, Records, Redb, Storage, Store, StoreError, Write};

/// A redb store that stalls forever right after it commits a keyed call's record.
struct StallAfterRecord(Redb);

impl Store for StallAfterRecord {
    fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        self.0.read(key)
    }

    fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
        let recorded = batch.iter().any(|write| !write.retained.is_empty());
        Box::pin(async move {
            self.0.commit(batch).await?;
            if recorded {
                {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "committed");
                    let _ = out.flush();
                }
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }

    fn keys<'a>(&'a self, kind: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
        self.0.keys(kind)
    }

    fn retained<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Records, StoreError>> {
        self.0.retained(key)
    }
}

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
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
    fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }

    #[call]
    fn grow(&mut self, by: usize) -> usize {
        self.blob.extend(std::iter::repeat_n('z', by));
        self.blob.len()
    }

    #[call]
    fn len(&self) -> usize {
        self.blob.len()
    }
}

impl peeper::Persist for KillCounter {
    const KIND: &'static str = "kill-counter";
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, file, name, key) =
        match args.as_slice() {
            [mode, file, name] => (mode, file, name, None),
            [mode, file, name, key] => (mode, file, name, Some(key.as_str())),
            _ => return Err(
                "usage: durable-child count|grow <file> <name> | keyed|retry <file> <name> <key>"
                    .into(),
            ),
        };
    let redb = Redb::open(file)?;
    let storage = match mode.as_str() {
        "keyed" => Storage::new(StallAfterRecord(redb)),
        _ => Storage::new(redb),
    };
    let counter = KillCounter::builder(KillCounter::default())
        .name(name.as_str())
        .store(storage)
        .start()
        .await?;
    let mut out = std::io::stdout().lock();
    match mode.as_str() {
        "count" => {
            writeln!(out, "start {}", counter.get().await?)?;
            out.flush()?;
            loop {
                let count = counter.add(1).await?;
                // One `write` of a short line: the parent reads whole lines or nothing.
                writeln!(out, "{count}")?;
                out.flush()?;
            }
        }
        "keyed" | "retry" => {
            let key = key.ok_or("a keyed call needs a key")?;
            let reply = counter.idempotent(key).add(1).await?;
            writeln!(out, "reply {reply}")?;
            writeln!(out, "count {}", counter.get().await?)?;
            out.flush()?;
            Ok(())
        }
        "grow" => {
            for _ in 0..40 {
                match counter.grow(32 * 1024).await {
                    Ok(len) => writeln!(out, "ok {len}")?,
                    Err(error) => writeln!(out, "err {error}")?,
                }
                out.flush()?;
            }
            writeln!(out, "alive {}", counter.len().await?)?;
            out.flush()?;
            Ok(())
        }
        other => Err(format!("unknown mode `{other}`").into()),
    }
}
