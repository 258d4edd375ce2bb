//! `store::Postgres` on its own, in one process: the schema it creates and migrates, state
//! written through it, claims, releases and fencing at the `Store` level, credentials kept out of
//! `Debug` and errors, and TLS.
//!
//! Every test has a schema of its own. Without `PEEPER_PG_URL` (set by `scripts/with-postgres`)
//! each test says `skipped` on stderr and passes, except under CI (`CI=true`), where it fails.
#![allow(clippy::unwrap_used)]

mod cluster_common;

use std::time::Duration;

use cluster_common::{connect, drop_schema, expire, lease, pg_ca, pg_url, schema, sql};
use peeper::store::{Key, NodeId, Postgres, PostgresTls, Storage, Store, StoreError, Write};
use peeper::{CallError, Exit, OnStop};
use serde::{Deserialize, Serialize};

const LEASE: Duration = Duration::from_secs(30);

#[derive(Clone, Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
}

#[peeper::server]
impl Tally {
    #[call]
    fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }

    #[call]
    fn get(&self) -> u64 {
        self.count
    }
}

impl peeper::Persist for Tally {
    const KIND: &'static str = "tally";
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_created_once_by_nodes_starting_together_and_versioned() {
    let Some(url) = pg_url() else { return };
    let schema = schema("schema");
    // Four nodes at once: the advisory lock makes the migration run exactly once.
    let ids: Vec<String> = (0..4).map(|i| format!("n{i}")).collect();
    let nodes =
        futures::future::join_all(ids.iter().map(|id| connect(&url, &schema, id, LEASE))).await;
    assert_eq!(nodes.len(), 4);
    let client = sql(&url).await;
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM {schema}.peeper_schema_version ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3]);

    // A schema from a newer build is refused, and left as it is.
    client
        .execute(
            &format!("INSERT INTO {schema}.peeper_schema_version (version) VALUES (99)"),
            &[],
        )
        .await
        .unwrap();
    let newer = Postgres::builder(&url)
        .schema(&schema)
        .connect()
        .await
        .unwrap_err();
    assert!(
        newer
            .to_string()
            .contains("is at version 99, newer than this build's 3"),
        "{newer}"
    );
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_server_writes_through_and_comes_back_from_postgres() {
    let Some(url) = pg_url() else { return };
    let schema = schema("through");
    let postgres = connect(&url, &schema, "a", LEASE).await;
    let storage = Storage::new(postgres.clone());
    let start = || {
        Tally::builder(Tally::default())
            .name("t1")
            .store(storage.clone())
            .on_stop(OnStop::Keep)
    };
    let tally = start().start().await.unwrap();
    assert_eq!(tally.add(2).await, Ok(2));
    assert_eq!(tally.add(3).await, Ok(5));
    let key = Key::new("tally", "t1");
    assert_eq!(
        storage.keys(Some("tally")).await.unwrap(),
        std::slice::from_ref(&key)
    );
    assert!(
        storage
            .read(&key)
            .await
            .unwrap()
            .unwrap()
            .starts_with(b"PEEP")
    );
    // Running: the lease is this node's, live.
    assert_eq!(postgres.owner(&key).await.unwrap(), Some(NodeId::new("a")));
    assert_eq!(postgres.owned(), std::slice::from_ref(&key));

    tally.stop().await.unwrap();
    // Stopped: released (the row is gone), the state kept (`OnStop::Keep`).
    assert_eq!(postgres.owner(&key).await.unwrap(), None);
    assert_eq!(lease(&sql(&url).await, &schema, &key).await, None);
    assert!(postgres.owned().is_empty());

    let tally = start().start().await.unwrap();
    assert_eq!(tally.get().await, Ok(5));
    tally.stop().await.unwrap();
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_of_a_live_lease_names_its_owner_and_every_claim_raises_the_epoch() {
    let Some(url) = pg_url() else { return };
    let schema = schema("claims");
    let a = connect(&url, &schema, "a", LEASE).await;
    let b = connect(&url, &schema, "b", LEASE).await;
    let key = Key::new("tally", "contested");

    let first = a.claim(&key).await.unwrap();
    assert!(first.epoch > 0);
    assert_eq!(
        b.claim(&key).await,
        Err(StoreError::OwnedElsewhere {
            key: key.clone(),
            node: NodeId::new("a")
        })
    );
    // A second claim by the same node (another server on the same key) is refused too: it
    // would fence the first.
    assert!(matches!(
        a.claim(&key).await,
        Err(StoreError::OwnedElsewhere { node, .. }) if node == NodeId::new("a")
    ));
    assert_eq!(b.owner(&key).await.unwrap(), Some(NodeId::new("a")));

    a.release(&key).await.unwrap();
    let second = b.claim(&key).await.unwrap();
    assert!(second.epoch > first.epoch);
    b.release(&key).await.unwrap();
    let third = a.claim(&key).await.unwrap();
    assert!(
        third.epoch > second.epoch,
        "epochs never repeat, even for a deleted lease row"
    );
    drop_schema(&url, &schema).await;
}

/// The heart of fencing, at the store's level: `a` holds a lease that expires, `b` claims it and
/// writes; `a`'s write, carrying its old epoch, changes nothing and is refused with the new
/// owner's name; in a batch with a write `a` may still make, only that one is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_a_stale_epoch_changes_nothing() {
    let Some(url) = pg_url() else { return };
    let schema = schema("fencing");
    let client = sql(&url).await;
    let a = connect(&url, &schema, "a", LEASE).await;
    let b = connect(&url, &schema, "b", LEASE).await;
    let key = Key::new("tally", "fenced");
    let other = Key::new("tally", "still-mine");

    a.claim(&key).await.unwrap();
    a.claim(&other).await.unwrap();
    a.commit(vec![Write::put(key.clone(), b"from a".to_vec())])
        .await
        .unwrap();

    expire(&client, &schema, &key).await; // `a` stopped renewing, long enough ago
    b.claim(&key).await.unwrap();
    b.commit(vec![Write::put(key.clone(), b"from b".to_vec())])
        .await
        .unwrap();

    let refused = a
        .commit_owned(vec![
            Write::put(key.clone(), b"stale".to_vec()),
            Write::put(other.clone(), b"fine".to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(
        refused,
        [(
            key.clone(),
            StoreError::Fenced {
                key: key.clone(),
                owner: Some(NodeId::new("b"))
            }
        )]
    );
    assert_eq!(a.read(&key).await.unwrap().as_deref(), Some(&b"from b"[..]));
    assert_eq!(a.read(&other).await.unwrap().as_deref(), Some(&b"fine"[..]));
    // The fenced lease is no longer this node's; deletes are fenced too.
    assert_eq!(a.owned(), std::slice::from_ref(&other));
    let delete = a
        .commit(vec![Write::delete(key.clone())])
        .await
        .unwrap_err();
    assert!(matches!(delete, StoreError::Fenced { .. }), "{delete}");
    assert!(b.read(&key).await.unwrap().is_some());
    // `commit` is all or nothing: a batch with a fenced write applies none of it.
    let all_or_nothing = a
        .commit(vec![
            Write::put(other.clone(), b"not applied".to_vec()),
            Write::put(key.clone(), b"stale".to_vec()),
        ])
        .await;
    assert!(matches!(all_or_nothing, Err(StoreError::Fenced { .. })));
    assert_eq!(a.read(&other).await.unwrap().as_deref(), Some(&b"fine"[..]));
    drop_schema(&url, &schema).await;
}

/// A write carries the claim it was made under. One node gives a claim up (its start was
/// dropped) and claims the key again at once; a write of the first claim that reaches the store
/// only then (it was queued) is refused, lands nothing, and leaves the newer claim held. Before,
/// writes were matched to whatever lease the node held at commit time: the stale write landed
/// under the newer claim, and its refusal (when it came first) dropped the newer lease, so the
/// new start's first write was fenced by its own node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_a_given_up_claim_is_refused_and_leaves_the_new_claim_held() {
    let Some(url) = pg_url() else { return };
    let schema = schema("stale_claim");
    let a = connect(&url, &schema, "a", LEASE).await;
    let key = Key::new("tally", "restarted");

    let first = a.claim(&key).await.unwrap();
    a.abandon(&key);
    let second = a.claim(&key).await.unwrap();
    assert!(second.epoch > first.epoch);

    let stale = a
        .commit_owned(vec![
            Write::put(key.clone(), b"stale".to_vec()).under(first),
        ])
        .await
        .unwrap();
    assert!(
        matches!(stale.as_slice(), [(refused, StoreError::Fenced { owner: Some(owner), .. })]
            if *refused == key && owner.as_str() == "a"),
        "{stale:?}"
    );
    assert_eq!(
        a.read(&key).await.unwrap(),
        None,
        "nothing of the stale write landed"
    );
    assert_eq!(
        a.owned(),
        std::slice::from_ref(&key),
        "the newer claim is still held"
    );
    a.commit(vec![
        Write::put(key.clone(), b"fresh".to_vec()).under(second),
    ])
    .await
    .unwrap();
    assert_eq!(a.read(&key).await.unwrap().as_deref(), Some(&b"fresh"[..]));
    // A write made under no claim (`Storage::delete`) goes by the lease held now.
    a.commit(vec![Write::delete(key.clone())]).await.unwrap();
    assert_eq!(a.read(&key).await.unwrap(), None);
    drop_schema(&url, &schema).await;
}

/// Claims racing with writes in flight, 20 rounds: one node writes as fast as it can while the
/// other takes its lease (expired by hand). Whatever the interleaving, what the claimer reads
/// right after its claim is exactly the last write acknowledged to the old owner (an
/// acknowledged write is never lost), and nothing the old owner writes after that lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_racing_with_writes_sees_every_acknowledged_write_and_fences_the_rest() {
    let Some(url) = pg_url() else { return };
    let schema = schema("race_writes");
    let client = sql(&url).await;
    let nodes = [
        connect(&url, &schema, "a", LEASE).await,
        connect(&url, &schema, "b", LEASE).await,
    ];
    let key = Key::new("tally", "raced");
    nodes[0].claim(&key).await.unwrap();
    let mut value: u64 = 0;
    for round in 0..20 {
        let (owner, taker) = (&nodes[round % 2], &nodes[(round + 1) % 2]);
        let writer = {
            let (owner, key) = (owner.clone(), key.clone());
            let mut value = value;
            tokio::spawn(async move {
                let mut acked = None;
                loop {
                    value += 1;
                    let write = vec![Write::put(key.clone(), value.to_le_bytes().to_vec())];
                    match owner.commit_owned(write).await.unwrap().as_slice() {
                        [] => acked = Some(value),
                        [(_, StoreError::Fenced { .. })] => return acked,
                        other => panic!("{other:?}"),
                    }
                }
            })
        };
        // Let the writer get going: wait until a write of this round is stored.
        loop {
            let stored = taker.read(&key).await.unwrap();
            if stored.is_some_and(|bytes| u64::from_le_bytes(bytes.try_into().unwrap()) > value) {
                break;
            }
        }
        expire(&client, &schema, &key).await;
        taker.claim(&key).await.unwrap();
        let seen = u64::from_le_bytes(taker.read(&key).await.unwrap().unwrap().try_into().unwrap());
        let acked = writer
            .await
            .unwrap()
            .expect("some writes were acknowledged");
        assert_eq!(
            seen, acked,
            "round {round}: the claimer saw {seen}, the last ack was {acked}"
        );
        let after =
            u64::from_le_bytes(taker.read(&key).await.unwrap().unwrap().try_into().unwrap());
        assert_eq!(after, seen, "round {round}: a write landed after the claim");
        value = seen;
    }
    drop_schema(&url, &schema).await;
}

/// Through the runtime: a server whose lease was taken meanwhile answers its caller with the
/// fenced write (naming the new owner) and ends with `Exit::Fenced`, without writing or
/// releasing anything; the new owner's state stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_lease_was_taken_fails_typed_and_ends_fenced() {
    let Some(url) = pg_url() else { return };
    let schema = schema("stale");
    let client = sql(&url).await;
    let a = connect(&url, &schema, "a", LEASE).await;
    let b = connect(&url, &schema, "b", LEASE).await;
    let tally = Tally::builder(Tally::default())
        .name("stale-1")
        .store(Storage::new(a.clone()))
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(1).await, Ok(1));
    let key = Key::new("tally", "stale-1");
    expire(&client, &schema, &key).await;
    b.claim(&key).await.unwrap();
    let (_, epoch_b, _) = lease(&client, &schema, &key).await.unwrap();

    let refused = tally.add(1).await.unwrap_err();
    assert_eq!(
        refused,
        CallError::Store(StoreError::Fenced {
            key: key.clone(),
            owner: Some(NodeId::new("b"))
        })
    );
    assert_eq!(
        tally.branch().ended().await,
        Exit::Fenced {
            owner: Some(NodeId::new("b"))
        }
    );
    assert_eq!(
        tally.get().await,
        Err(CallError::Stopped(Exit::Fenced {
            owner: Some(NodeId::new("b"))
        }))
    );
    // `b`'s lease is untouched (not released by `a`'s end), the state is `a`'s last good one.
    assert_eq!(
        lease(&client, &schema, &key).await,
        Some((Some("b".to_owned()), epoch_b, true))
    );
    let stored = Tally::builder(Tally::default())
        .name("stale-1")
        .store(Storage::new(b.clone()));
    b.release(&key).await.unwrap();
    let tally = stored.start().await.unwrap();
    assert_eq!(tally.get().await, Ok(1));
    tally.stop().await.unwrap();
    drop_schema(&url, &schema).await;
}

/// Renewal: one `UPDATE` extends every lease of the node; a lease found taken is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_renewal_extends_every_lease_and_reports_the_lost_ones() {
    let Some(url) = pg_url() else { return };
    let schema = schema("renew");
    let client = sql(&url).await;
    let a = connect(&url, &schema, "a", LEASE).await;
    let b = connect(&url, &schema, "b", LEASE).await;
    let keys: Vec<Key> = (0..50)
        .map(|i| Key::new("tally", format!("r{i}")))
        .collect();
    for key in &keys {
        a.claim(key).await.unwrap();
    }
    let mut lost = a.lost();
    expire(&client, &schema, &keys[7]).await;
    b.claim(&keys[7]).await.unwrap();
    let before = a.renewals();
    assert_eq!(a.renew().await.unwrap(), 49);
    assert_eq!(a.renewals(), before + 1);
    assert_eq!(lost.recv().await.unwrap(), keys[7]);
    assert_eq!(a.owned().len(), 49);
    for key in keys.iter().filter(|key| **key != keys[7]) {
        assert_eq!(
            lease(&client, &schema, key)
                .await
                .map(|(owner, _, live)| (owner, live)),
            Some((Some("a".to_owned()), true))
        );
    }
    drop_schema(&url, &schema).await;
}

/// Hibernation gives the lease up; waking claims it again (and fails naming the owner if another
/// node started the server meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernation_releases_the_lease_and_waking_claims_it_again() {
    let Some(url) = pg_url() else { return };
    let schema = schema("hibernate");
    let a = connect(&url, &schema, "a", LEASE).await;
    let b = connect(&url, &schema, "b", LEASE).await;
    let key = Key::new("tally", "sleepy");
    let tally = Tally::builder(Tally::default())
        .name("sleepy")
        .store(Storage::new(a.clone()))
        .idle_after(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(4).await, Ok(4));
    tally.branch().hibernated().await.unwrap();
    assert_eq!(a.owner(&key).await.unwrap(), None);

    assert_eq!(tally.get().await, Ok(4)); // wakes, claims
    assert_eq!(a.owner(&key).await.unwrap(), Some(NodeId::new("a")));
    tally.branch().hibernated().await.unwrap();

    b.claim(&key).await.unwrap(); // another node takes it while it sleeps here
    assert_eq!(
        tally.get().await,
        Err(CallError::Stopped(Exit::Fenced {
            owner: Some(NodeId::new("b"))
        }))
    );
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_is_never_shown() {
    let Some(url) = pg_url() else { return };
    let config: tokio_postgres::Config = url.parse().unwrap();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    assert!(password.len() >= 8, "the test database has a real password");

    let builder = Postgres::builder(&url).node("a");
    let shown = format!("{builder:?}");
    assert!(!shown.contains(&password), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");

    let schema = schema("secret");
    let postgres = connect(&url, &schema, "a", LEASE).await;
    let shown = format!("{postgres:?} {postgres:#?}");
    assert!(!shown.contains(&password), "{shown}");

    // A refused password: the error says so without repeating either password.
    let wrong = url.replace(&password, "not-the-password-123");
    let error = Postgres::builder(&wrong).connect().await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains(&password) && !text.contains("not-the-password-123"),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");

    // An invalid URL: the error does not echo it.
    let error = Postgres::builder("postgres://u:sekr3t@host:notaport/db")
        .connect()
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("sekr3t"), "{error}");
    drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn bad_configurations_fail_typed_before_connecting() {
    let error = Postgres::builder("postgres://u@127.0.0.1:1/db")
        .schema("Robert'); DROP TABLE x; --")
        .connect()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot name a schema"),
        "{error}"
    );

    let error =
        PostgresTls::with_root_certificates(b"-----BEGIN CERTIFICATE-----\nnope\n").unwrap_err();
    assert!(matches!(error, StoreError::Backend { .. }), "{error}");
    assert!(PostgresTls::with_root_certificates(b"").is_err());
}

/// TLS against the test database (`scripts/with-postgres` gives it a certificate signed by a
/// throwaway CA): verified against that CA, the connection is encrypted; against another CA, the
/// handshake fails and nothing connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_are_verified_and_encrypted() {
    let Some(url) = pg_url() else { return };
    let Some(ca) = pg_ca() else { return };
    let pem = std::fs::read(ca).unwrap();
    let schema = schema("tls");
    let node = format!("tls-{}", std::process::id());
    let postgres = Postgres::builder(&url)
        .node(node.as_str())
        .schema(&schema)
        .tls(PostgresTls::with_root_certificates(&pem).unwrap())
        .connect()
        .await
        .unwrap();
    let key = Key::new("tally", "secret");
    postgres.claim(&key).await.unwrap();
    postgres
        .commit(vec![Write::put(key.clone(), b"over tls".to_vec())])
        .await
        .unwrap();
    assert!(format!("{postgres:?}").contains("tls: true"));
    let encrypted: Vec<bool> = sql(&url)
        .await
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
             WHERE a.application_name = $1",
            &[&format!("peeper {node}")],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        !encrypted.is_empty() && encrypted.iter().all(|ssl| *ssl),
        "{encrypted:?}"
    );

    // Another CA (a certificate that did not sign the server's): refused.
    let stranger = include_bytes!("cluster_common/stranger-ca.pem");
    let error = Postgres::builder(&url)
        .schema(&schema)
        .tls(PostgresTls::with_root_certificates(stranger).unwrap())
        .connect()
        .await
        .unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    drop_schema(&url, &schema).await;
}
