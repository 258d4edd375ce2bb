//! The child process of `tests/tests/durable_kill.rs`, which SIGKILLs it at random moments.
//!
//! `durable-child count <file> <name>`: opens the redb file, starts a durable counter named
//! `<name>` on it (restoring what an earlier child stored), prints `start <count>`, then calls
//! `add(1)` forever, printing every acknowledged count on its own line, flushed before the next
//! call is sent. A printed count is therefore a promise: that state was committed durably.
//!
//! `durable-child grow <file> <name>`: the same server, growing its state by 32 KiB per call and
//! printing `ok <len>` or `err <message>` for each, for 40 calls, then `alive <len>` from a call
//! that changes nothing. Run under a file-size limit, it shows redb failures reaching callers.

use std::error::Error;
use std::io::Write;

use peeper::store::{Redb, Storage};

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
    let [mode, file, name] = args.as_slice() else {
        return Err("usage: durable-child count|grow <file> <name>".into());
    };
    let storage = Storage::new(Redb::open(file)?);
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
