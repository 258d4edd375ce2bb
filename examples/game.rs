//! Players as durable servers: they hibernate when idle, come back on the next message, and keep
//! their score across runs of this program.
//!
//! Run it twice with `cargo run --example game`: the second run starts from the first run's
//! scores. `cargo run --example game -- --reset` deletes them.

use std::time::Duration;

use peeper::store::{Redb, Storage};

/// A player's state: what is stored, as MessagePack with field names.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Player {
    score: u64,
    games: u32,
}

#[peeper::server]
impl Player {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) {
        if ctx.incarnation() > 0 {
            println!("    (a player woke up with score {})", self.score);
        }
    }

    /// Records a game; returns the new score.
    #[call]
    fn won(&mut self, points: u64) -> u64 {
        self.score += points;
        self.games += 1;
        self.score
    }

    #[call]
    fn score(&self) -> (u64, u32) {
        (self.score, self.games)
    }
}

impl peeper::Persist for Player {
    /// The name of this kind of server in the store: keep it stable.
    const KIND: &'static str = "player";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("peeper-example-game.redb");
    if std::env::args().any(|arg| arg == "--reset") {
        std::fs::remove_file(&path).ok();
        println!("scores deleted");
        return Ok(());
    }
    let storage = Storage::new(Redb::open(&path)?);
    println!("store: {}", path.display());
    println!(
        "stored players: {:?}",
        storage
            .keys(Some("player"))
            .await?
            .iter()
            .map(|k| &k.name)
            .collect::<Vec<_>>()
    );

    let names = ["ada", "grace", "linus"];
    let mut players = Vec::new();
    for name in names {
        let player = Player::builder(Player::default())
            .name(name)
            .store(storage.clone())
            .idle_after(Duration::from_millis(200))
            .start()
            .await?;
        let (score, games) = player.score().await?;
        println!("{name}: score {score} after {games} games");
        players.push(player);
    }

    println!("\nplaying a round");
    for (points, (name, player)) in [3, 5, 8].into_iter().zip(names.iter().zip(&players)) {
        println!(
            "  {name} wins {points}: score {}",
            player.won(points).await?
        );
    }

    println!("\nwaiting for the players to go idle and hibernate...");
    for player in &players {
        player.branch().hibernated().await?;
    }
    println!("all hibernating: no tasks, state only in the store");

    println!("\nasking ada for her score (the call wakes her up)");
    let ada = Player::whereis("ada").ok_or("ada is registered even while asleep")?;
    let (score, games) = ada.score().await?;
    println!(
        "ada: score {score} after {games} games, awake again: {}",
        !ada.branch().is_hibernating()
    );

    // No `stop()`: a normal stop would wipe the stored state (the default `OnStop::Wipe`).
    println!("\nrun this example again: the scores go on from here");
    Ok(())
}
