//! A durable server with `keep = projection` stores what it keeps: a field marked
//! `#[keep(skip)]` never reaches the store, and a revival (a start from the store, or a wake from
//! hibernation) rebuilds it as a restart after a crash does, before `#[init]` runs.
#![allow(clippy::unwrap_used)] // a test: failing loudly is the point

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use peeper::store::{Key, Memory, Storage};
use peeper::{OnStop, Persist as _};

/// How many connections were opened: each rebuild of the skipped field opens one.
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Not a serde type, and not to be stored: only `#[keep(skip)]` makes the state storable.
#[derive(Debug, Default, PartialEq)]
pub struct Connection {
    id: u64,
}

fn connect() -> Connection {
    Connection {
        id: CONNECTIONS.fetch_add(1, Ordering::SeqCst) + 1,
    }
}

#[derive(Debug, Default, peeper::State)]
pub struct Session {
    cart: Vec<String>,
    #[keep(skip, with = connect)]
    connection: Connection,
    /// What `#[init]` saw of the connection: the skipped field is rebuilt before it runs.
    #[keep(skip)]
    seen_at_init: Option<u64>,
}

#[peeper::server(keep = projection)]
impl Session {
    #[init]
    fn init(&mut self) {
        self.seen_at_init = Some(self.connection.id);
    }

    #[cast]
    fn add(&mut self, item: String) {
        self.cart.push(item);
    }

    /// The cart, the connection's id and what `init` saw of it.
    #[call]
    fn look(&self) -> (Vec<String>, u64, Option<u64>) {
        (self.cart.clone(), self.connection.id, self.seen_at_init)
    }
}

impl peeper::Persist for Session {
    const KIND: &'static str = "projection-session";
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn builder(name: &str, storage: &Storage) -> peeper::Builder<Session, SessionClient> {
    let first = Session {
        connection: connect(),
        ..Session::default()
    };
    Session::builder(first)
        .name(name)
        .store(storage.clone())
        .on_stop(OnStop::Keep)
}

/// The envelope's header: magic, envelope version, codec id, schema version.
const HEADER: usize = 10;

/// A store holding, under `key`, `whole` as an earlier build stored it: in the envelope (version
/// 1, codec 1: MessagePack with named fields, schema version 1).
fn stored_whole(key: Key, whole: &impl serde::Serialize) -> Storage {
    let payload = rmp_serde::to_vec_named(whole).unwrap();
    let bytes = [b"PEEP".as_slice(), &[1, 1], &1u32.to_le_bytes(), &payload].concat();
    let memory = Memory::new();
    memory.put_raw(key, bytes);
    Storage::new(memory)
}

/// The field names of the stored payload (MessagePack with named fields, after the envelope's
/// header).
async fn stored_fields(storage: &Storage, name: &str) -> Vec<String> {
    let bytes = storage
        .read(&Key::new(Session::KIND, name))
        .await
        .unwrap()
        .expect("the state is stored");
    let fields: BTreeMap<String, serde::de::IgnoredAny> = rmp_serde::from_slice(&bytes[HEADER..])
        .unwrap_or_else(|error| panic!("not a map of named fields ({error}): {bytes:?}"));
    fields.into_keys().collect()
}

#[tokio::test]
async fn a_skipped_field_never_reaches_the_store() {
    let (name, storage) = (unique("skip"), Storage::new(Memory::new()));
    let session = builder(&name, &storage).start().await.unwrap();
    session.add("book".into()).unwrap();
    session.look().await.unwrap(); // the cast's state is stored before this reply

    assert_eq!(stored_fields(&storage, &name).await, ["cart"]);
    session.stop().await.unwrap();
    assert_eq!(stored_fields(&storage, &name).await, ["cart"]);
}

#[tokio::test]
async fn a_start_from_the_store_rebuilds_the_skipped_fields_before_init() {
    let (name, storage) = (unique("revive"), Storage::new(Memory::new()));
    let session = builder(&name, &storage).start().await.unwrap();
    session.add("book".into()).unwrap();
    let (cart, first, seen) = session.look().await.unwrap();
    assert_eq!((cart.len(), seen), (1, Some(first)));
    session.stop().await.unwrap();

    // The state given to this start is replaced by the stored one, rebuilt: a new connection.
    let again = builder(&name, &storage).start().await.unwrap();
    let (cart, connection, seen) = again.look().await.unwrap();
    assert_eq!(cart, ["book"]);
    assert!(connection > first, "the connection is opened again");
    assert_eq!(seen, Some(connection), "`init` sees the rebuilt field");
    again.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_wake_from_hibernation_rebuilds_the_skipped_fields_before_init() {
    let (name, storage) = (unique("wake"), Storage::new(Memory::new()));
    let session = builder(&name, &storage)
        .idle_after(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    session.add("book".into()).unwrap();
    let (_, first, _) = session.look().await.unwrap();

    session.branch().hibernated().await.unwrap();
    assert_eq!(stored_fields(&storage, &name).await, ["cart"]);
    let (cart, connection, seen) = session.look().await.unwrap();
    assert_eq!(cart, ["book"]);
    assert!(connection > first, "the connection is opened again");
    assert_eq!(seen, Some(connection), "`init` sees the rebuilt field");
    session.stop().await.unwrap();
}

/// A state stored whole (as the same server stored it before `#[keep(skip)]` kept fields out of
/// the store) is read as its kept fields: the others are ignored and rebuilt.
#[tokio::test]
async fn a_state_stored_whole_is_read_as_its_kept_fields() {
    #[derive(serde::Serialize)]
    struct Whole {
        cart: Vec<String>,
        connection: String,
        seen_at_init: Option<u64>,
    }

    let name = unique("whole");
    let whole = Whole {
        cart: vec!["pen".into()],
        connection: "stored by an older build".into(),
        seen_at_init: Some(7),
    };
    let storage = stored_whole(Key::new(Session::KIND, &name), &whole);

    let session = builder(&name, &storage).start().await.unwrap();
    let (cart, connection, seen) = session.look().await.unwrap();
    assert_eq!(cart, ["pen"]);
    assert_eq!(seen, Some(connection));
    session.stop().await.unwrap();
}

/// A state that derives serde itself, with a container `rename_all`: its kept fields are stored
/// under the names its own derive gives them, so what it stored whole (as a `Snapshot` server,
/// or by an earlier build) is read back as its kept fields.
#[derive(Clone, Debug, Default, peeper::State, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Basket {
    item_count: u64,
    #[serde(default)]
    last_item: Option<String>,
    #[keep(skip)]
    #[serde(skip)]
    scratch: Vec<u8>,
}

#[peeper::server(keep = projection)]
impl Basket {
    #[call]
    fn look(&self) -> (u64, Option<String>, usize) {
        (self.item_count, self.last_item.clone(), self.scratch.len())
    }

    #[call]
    fn add(&mut self, item: String) -> u64 {
        self.item_count += 1;
        self.last_item = Some(item);
        self.item_count
    }
}

impl peeper::Persist for Basket {
    const KIND: &'static str = "projection-basket";
}

#[tokio::test]
async fn a_renamed_state_stored_whole_is_read_under_its_own_names() {
    let name = unique("renamed");
    // What the whole state's own derive stores: camelCase names.
    let whole = Basket {
        item_count: 2,
        last_item: Some("pen".into()),
        scratch: vec![1, 2, 3],
    };
    let key = Key::new(Basket::KIND, &name);
    let storage = stored_whole(key.clone(), &whole);

    let basket = Basket::builder(Basket::default())
        .name(&name)
        .store(storage.clone())
        .on_stop(OnStop::Keep)
        .start()
        .await
        .unwrap();
    assert_eq!(basket.look().await.unwrap(), (2, Some("pen".to_owned()), 0));
    assert_eq!(basket.add("ink".into()).await.unwrap(), 3);
    basket.stop().await.unwrap();

    // Stored again under the same names: the state's own derive reads the kept fields back.
    let bytes = storage.read(&key).await.unwrap().unwrap();
    let stored: Basket = rmp_serde::from_slice(&bytes[HEADER..]).unwrap();
    assert_eq!(
        (stored.item_count, stored.last_item),
        (3, Some("ink".to_owned()))
    );
}
