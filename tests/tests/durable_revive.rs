//! A process revives everything it has stored: `peeper::revivable!` registers durable kinds with
//! `inventory`, and `store::revive_all` starts each stored server of a registered kind by name.
#![allow(clippy::unwrap_used)] // a test: failing loudly is the point

use peeper::store::{Key, Memory, Redb, Storage, StoreError, revive_all};
use peeper::{OnStop, StartError};

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
    const KIND: &'static str = "revive-player";
}

fn player(name: &str) -> peeper::Builder<Player, PlayerClient> {
    Player::builder(Player::default())
        .name(name)
        .on_stop(OnStop::Keep)
}

peeper::revivable!(Player, player);

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Lobby {
    players: Vec<String>,
}

#[peeper::server]
impl Lobby {
    #[call]
    fn join(&mut self, player: String) -> usize {
        self.players.push(player);
        self.players.len()
    }
}

impl peeper::Persist for Lobby {
    const KIND: &'static str = "revive-lobby";
}

fn lobby(name: &str) -> peeper::Builder<Lobby, LobbyClient> {
    Lobby::builder(Lobby::default())
        .name(name)
        .on_stop(OnStop::Keep)
}

peeper::revivable!(Lobby, lobby);

/// Each "process" is a runtime of its own: dropping it drops every task, and with them the
/// database handle, as a process exit would.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_stored_server_of_a_registered_kind_comes_back_from_a_redb_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    // The first process: three players and a lobby, stopped with their state kept.
    runtime().block_on(async {
        let storage = Storage::new(Redb::open(&path).unwrap());
        for (name, points) in [("ada", 3), ("grace", 5), ("linus", 8)] {
            let player = player(name).store(storage.clone()).start().await.unwrap();
            player.won(points).await.unwrap();
            player.stop().await.unwrap();
        }
        let hall = lobby("hall").store(storage.clone()).start().await.unwrap();
        hall.join("ada".to_owned()).await.unwrap();
        hall.stop().await.unwrap();
    });

    // The next process: the same file, nothing running.
    runtime().block_on(async {
        let storage = Storage::new(Redb::open(&path).unwrap());
        let mut revived = revive_all(&storage).await;
        revived.sort_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<_> = revived.iter().map(|(key, _)| key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "revive-lobby/hall",
                "revive-player/ada",
                "revive-player/grace",
                "revive-player/linus"
            ]
        );
        assert!(revived.iter().all(|(_, started)| started.is_ok()));

        assert_eq!(Player::whereis("ada").unwrap().won(1).await.unwrap(), 4);
        assert_eq!(Player::whereis("grace").unwrap().won(1).await.unwrap(), 6);
        assert_eq!(Player::whereis("linus").unwrap().won(1).await.unwrap(), 9);
        assert_eq!(
            Lobby::whereis("hall")
                .unwrap()
                .join("bob".to_owned())
                .await
                .unwrap(),
            2
        );
        for name in ["ada", "grace", "linus"] {
            Player::whereis(name).unwrap().stop().await.unwrap();
        }
        Lobby::whereis("hall").unwrap().stop().await.unwrap();
    });
}

#[tokio::test]
async fn unknown_kinds_are_left_alone_and_corrupt_ones_are_reported_untouched() {
    let memory = Memory::new();
    let storage = Storage::new(memory.clone());
    memory.put_raw(Key::new("some-other-kind", "x"), b"whatever".to_vec());
    memory.put_raw(
        Key::new("revive-player", "broken"),
        b"not an envelope".to_vec(),
    );

    let revived = revive_all(&storage).await;
    assert_eq!(
        revived.len(),
        1,
        "the unknown kind is not listed: {revived:?}"
    );
    let (key, started) = &revived[0];
    assert_eq!(key, &Key::new("revive-player", "broken"));
    assert!(matches!(
        started,
        Err(StartError::Store(StoreError::Corrupt { .. }))
    ));
    assert_eq!(
        storage
            .read(&Key::new("revive-player", "broken"))
            .await
            .unwrap(),
        Some(b"not an envelope".to_vec())
    );
}
