//! One node that shuts down cleanly on Ctrl-C or SIGTERM, from the book's deploying chapter.
//!
//! Generated from book/src/deploying.md, block 1 (with its hidden lines shown) by
//! `python3 scripts/check-book.py --write-examples`; `scripts/book` checks that the two agree.

use std::path::PathBuf;

use peeper::DynamicSupervisor;
use peeper::store::{Redb, Storage};

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Player {
    score: u64,
}

#[peeper::server]
impl Player {
    #[call]
    fn won(&mut self, points: u64) -> u64 {
        self.score += points;
        self.score
    }
}

impl peeper::Persist for Player {
    const KIND: &'static str = "player";
}

/// Resolves on Ctrl-C, and on SIGTERM where there are signals.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            pressed = tokio::signal::ctrl_c() => pressed,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A persistent volume in production; the temp folder when `DATA_DIR` is not set.
    let dir = std::env::var_os("DATA_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let path = dir.join("peeper-example-shutdown.redb");
    let storage = Storage::new(Redb::open(&path)?);
    let supervisor = DynamicSupervisor::new();

    for name in ["ada", "grace"] {
        // Started by name: each comes back from its stored state, if it has one.
        let player = Player::builder(Player::default())
            .name(name)
            .store(storage.clone())
            .supervisor(&supervisor)
            .start()
            .await?;
        println!("{name}: score {}", player.won(1).await?);
    }

    let pid = std::process::id();
    println!("ready: stop with Ctrl-C or `kill -TERM {pid}`");
    shutdown_signal().await?;

    println!("shutting down");
    // Every server handles what was queued before, runs `#[terminate]`, writes its last state
    // and ends (`Exit::Shutdown`, which keeps the stored state); then the file is closed.
    supervisor.shutdown().await;
    storage.close().await?;
    println!("stopped; the state is in {}", path.display());
    Ok(())
}
