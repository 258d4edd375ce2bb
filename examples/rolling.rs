//! A rolling deploy on PostgreSQL, step by step, with clients that follow their servers: two
//! nodes share one database and call each other over gRPC; the players run on node `a`; `a`
//! shuts down gracefully and hands them off; node `b` takes them over from their last stored
//! state, and a client taken on `a` before the deploy keeps working: its calls follow the
//! player to `b`.
//!
//! Both nodes run in this one process to keep the example short (plaintext between them, on
//! loopback); in production each is a process (a pod, a VM) of its own, with the same code, and
//! `.tls(ClusterTls::from_pem(..))` instead of `.insecure_plaintext_between_nodes()`.
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

/// `remote`: its messages can cross process boundaries, so `Node::get` works for it anywhere.
#[peeper::server(remote)]
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
        .listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .insecure_plaintext_between_nodes()
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

    println!("2. the players start on node a (`get` starts what runs nowhere, here) and score");
    let names = ["ada", "grace"];
    let mut clients = Vec::new();
    for (points, name) in [10, 20].into_iter().zip(names) {
        let client: PlayerClient = a.get::<Player>(name).await?;
        println!("   {name}: {} points", client.won(points).await?);
        clients.push(client);
    }
    let ada = Key::new("player", "ada");
    println!("   who owns ada? node {}", shown(a.owner(&ada).await?));
    // What starting ada on node b does first: claim its lease, which node a holds.
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

    println!("5. the clients taken on node a before the deploy follow their players to node b");
    for (name, client) in names.iter().zip(&clients) {
        println!("   {name}: {} points after 1 more", client.won(1).await?);
    }

    println!("6. and `get` on node b hands out the local client");
    for name in names {
        let client = b.get::<Player>(name).await?;
        println!("   {name}: {} points", client.score().await?);
    }

    println!("7. done: node b stops its players (which deletes their stored state)");
    for name in names {
        b.get::<Player>(name).await?.stop().await?;
    }
    // Node a lived until here: the clients it handed out reach other nodes through it.
    drop(a);
    Ok(())
}

fn shown(node: Option<NodeId>) -> String {
    node.map_or_else(|| "none".to_owned(), |node| node.to_string())
}
