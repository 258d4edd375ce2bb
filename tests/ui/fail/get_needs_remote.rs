// `Node::get` hands out clients that may talk to other processes: the server must be `remote`.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Player {
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

async fn ada(node: &peeper::cluster::Node) {
    let _ = node.get::<Player>("ada").await;
}

fn main() {
    let _ = ada;
}
