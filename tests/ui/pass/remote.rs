// A remote server: serde on every message and reply, `peeper::Remote`, the same typed client.
use std::time::Duration;

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Player {
    score: u64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ping;

#[peeper::server(remote)]
impl Player {
    #[call]
    fn won(&mut self, points: u64) -> u64 {
        self.score += points;
        self.score
    }

    #[call]
    fn score(&self) -> u64 {
        self.score
    }

    #[call]
    fn later(&self, reply: peeper::ReplyTo<u64>) {
        reply.send(self.score);
    }

    #[cast]
    fn reset(&mut self) {
        self.score = 0;
    }

    #[info]
    fn ping(&mut self, ping: Ping) {
        let _ = ping;
    }
}

impl peeper::Persist for Player {
    const KIND: &'static str = "player";
}

fn remote<S: peeper::Remote>() {}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    remote::<Player>();
    let bytes = peeper::remote::encode(&PlayerCall::Won { points: 3 })?;
    assert!(matches!(peeper::remote::decode::<PlayerCall>(&bytes), Ok(PlayerCall::Won { points: 3 })));
    let player: PlayerClient = Player::start(Player::default()).await?;
    assert_eq!(player.won(2).await?, 2);
    assert_eq!(player.with_timeout(Duration::from_secs(1)).later().await?, 2);
    player.reset()?;
    player.send(Ping)?;
    assert_eq!(player.score().await?, 0);
    Ok(())
}
