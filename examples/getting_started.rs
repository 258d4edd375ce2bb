//! The durable program of the book's getting-started chapter.
//!
//! Generated from book/src/getting-started.md, block 2 (with its hidden lines shown) by
//! `python3 scripts/check-book.py --write-examples`; `scripts/book` checks that the two agree.

use peeper::store::{Redb, Storage};

/// The state. `Serialize` and `Deserialize`: it is written to the store.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Visits {
    count: u64,
}

#[peeper::server]
impl Visits {
    /// Counts a visit; the reply comes once the new count is committed to the file.
    #[call]
    fn visit(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    /// The count: a `&self` handler reads, so it neither copies nor writes anything.
    #[call]
    fn count(&self) -> u64 {
        self.count
    }

    /// A bug: it changes the state, then panics. The change is neither kept nor stored.
    #[call]
    fn visit_badly(&mut self) {
        self.count += 100;
        panic!("a bug");
    }
}

/// How the state is keyed in the store: (`KIND`, the server's name).
impl peeper::Persist for Visits {
    const KIND: &'static str = "visits";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One store for the whole program, shared by every server (clones are cheap).
    let path = std::env::temp_dir().join("hello-peeper.redb");
    let storage = Storage::new(Redb::open(&path)?);

    // Starts from the stored state when there is one, from `Visits::default()` otherwise.
    let visits = Visits::builder(Visits::default())
        .name("home")
        .store(storage.clone())
        .on_stop(peeper::OnStop::Keep)
        .start()
        .await?;

    println!("visit number {}", visits.visit().await?);
    if let Err(error) = visits.visit_badly().await {
        println!("the bad visit failed: {error}");
    }
    println!("{} visits so far", visits.count().await?);

    // Stop the server (its state stays stored: `OnStop::Keep`), then close the store.
    visits.stop().await?;
    storage.close().await?;
    println!("stored in {}", path.display());
    Ok(())
}
