//! A rolling deploy on PostgreSQL, step by step: two nodes share one database; the players run on
//! node `a`; `a` shuts down gracefully and hands them off; node `b` takes them over from their
//! last stored state, and a client still holding a handle on `a` is told where they went.
//!
//! Both nodes run in this one process to keep the example short; in production each is a process
//! (a pod, a VM) of its own, with the same code.
//!
//! ```sh
//! scripts/with-postgres cargo run --example rolling --features postgres   # a throwaway PostgreSQL
//! PEEPER_PG_URL=postgres://user:password@host/db cargo run --example rolling --features postgres
//! ```

use peeper::cluster::{Node, NodeEvent, NodeId, Postgres};
use peeper::store::{Key, Store};

/// A player's state, stored in PostgreSQL.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Player {
    score: u64,
}

#[peeper::server]
impl Player {
    /// Adds `points`; returns the new score (once it is committed).
    #[call]
    fn won(&mut self, points: u64) -> u64 {
        self.score += points;
        self.score
    }

    #[call]
    fn score(&self) -> u64 {
        self.score
    }
}

impl peeper::Persist for Player {
    const KIND: &'static str = "player";
}

/// What a node needs to revive a player it takes over: the state to use if none is stored, and
/// the options.
fn player(_name: &str) -> peeper::Builder<Player, PlayerClient> {
    Player::builder(Player::default())
}

async fn node(url: &str, id: &str, take_over: bool) -> Result<Node, peeper::cluster::NodeError> {
    let postgres = Postgres::builder(url)
        .node(NodeId::new(id))
        .schema("rolling_example")
        .connect()
        .await?;
    Node::builder(postgres)
        .host(player)
        .take_over(take_over)
        .start()
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("PEEPER_PG_URL") else {
        println!(
            "PEEPER_PG_URL is not set: run `scripts/with-postgres cargo run --example rolling --features postgres`"
        );
        return Ok(());
    };

    println!("1. node a and node b connect; b takes over what other nodes hand off");
    let a = node(&url, "a", false).await?;
    let b = node(&url, "b", true).await?;
    let mut b_events = b.events();

    println!("2. the players start on node a and score");
    let names = ["ada", "grace"];
    let mut on_a = Vec::new();
    for (points, name) in [10, 20].into_iter().zip(names) {
        let client = a.start(player(name).name(name)).await?;
        println!("   {name}: {} points", client.won(points).await?);
        on_a.push(client);
    }
    let ada = Key::new("player", "ada");
    println!("   who owns ada? node {}", shown(a.owner(&ada).await?));
    // What starting ada on node b does first (in this one process, the name registry would
    // refuse it even earlier): claim its lease.
    match b.postgres().claim(&ada).await {
        Err(owned) => println!("   node b claiming ada: {owned}"),
        Ok(_) => return Err("node b claimed a server that node a owns".into()),
    }

    println!(
        "3. node a shuts down (a deploy): it stops taking messages, finishes them, writes the last states, releases the leases and notifies"
    );
    let handed = a.shutdown().await?;
    println!(
        "   handed off: {}",
        handed
            .iter()
            .map(Key::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );

    println!("4. node b hears it and revives them from the store");
    let mut revived = 0;
    while revived < names.len() {
        if let NodeEvent::TookOver { key } = b_events.recv().await? {
            println!("   node b took over {key}");
            revived += 1;
        }
    }
    println!("   who owns ada now? node {}", shown(b.owner(&ada).await?));

    println!("5. clients on node b go on where node a left off");
    for name in names {
        let client = PlayerClient::whereis(name).ok_or("revived on node b")?;
        println!("   {name}: {} points after 1 more", client.won(1).await?);
    }

    println!("6. a client still holding node a's handle is told where the player went");
    match on_a[0].score().await {
        Err(moved) => println!("   {moved}"),
        Ok(_) => return Err("node a still answered for a player it handed off".into()),
    }

    println!("7. done: node b stops its players (which deletes their stored state)");
    for name in names {
        if let Some(client) = PlayerClient::whereis(name) {
            client.stop().await?;
        }
    }
    Ok(())
}

fn shown(node: Option<NodeId>) -> String {
    node.map_or_else(|| "none".to_owned(), |node| node.to_string())
}
