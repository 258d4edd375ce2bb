//! Calls across nodes (`Node::get`, the `grpc` feature) side by side with their baselines, on
//! loopback, in one process: `scripts/with-postgres cargo bench -p peeper-tests --bench remote`.
//!
//! Two nodes share one PostgreSQL schema: `a` hosts the servers, `b` calls them. (They are two
//! server types with one `Persist::KIND`, so that `b` cannot find `a`'s servers in the process's
//! own registry and goes through gRPC, as a node in another process would.) Rows:
//!
//! - `remote_call`: one caller, back to back, a read call `get` from `b` to a server on `a`,
//!   against a raw tonic unary call with a MessagePack payload to a hand-written service that
//!   reads a counter behind a mutex (ns per call). Goal: <= 1.15x. A read, because a call that
//!   changes a node's server also commits it to PostgreSQL (~0.35 ms here), wherever it comes
//!   from: that is the store's cost, not the transport's.
//! - `remote_tput_64`: 64 callers at once, as above (calls/s; higher is better).
//! - `local_get`: on `a`, a read call through the client `a.get(..)` returns against the
//!   server's direct client (`whereis`), back to back (ns per call). Goal: <= 1.05x.
//! - `first_call_hibernated`: a server of `a` that hibernated (`idle_after`), called from `b`:
//!   `get` plus the first call, which revives it from PostgreSQL (p50 and p99, µs; no baseline).
//!
//! Method: as the `scale` bench, not criterion: the contenders take turns in every round, in an
//! order that rotates, so that noise on this shared 2-core machine lands on both; each cell is
//! the median over the rounds with the lowest and highest round in parentheses. Environment:
//! `PEEPER_REMOTE_ROUNDS` (default 7). Without `PEEPER_PG_URL` it says `skipped` and exits.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use peeper::cluster::{Node, NodeId, Postgres};
use serde::{Deserialize, Serialize};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

const CALLS: usize = 2_000;
const CALLERS: usize = 64;
const CALLS_PER_CALLER: usize = 100;
const LOCAL_CALLS: usize = 20_000;
const HIBERNATED: usize = 200;

macro_rules! counter {
    ($name:ident) => {
        #[derive(Clone, Debug, Default, Serialize, Deserialize)]
        pub struct $name {
            count: u64,
        }

        #[peeper::server(remote)]
        impl $name {
            #[call]
            fn add(&mut self, by: u64) -> u64 {
                self.count += by;
                self.count
            }

            /// A read: nothing to store, so a call costs its round trip only.
            #[call]
            fn get(&self) -> u64 {
                self.count
            }
        }

        impl peeper::Persist for $name {
            const KIND: &'static str = "bench";
        }
    };
}

counter!(Owner);
counter!(Caller);

// ---- the raw tonic baseline -------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct Add {
    by: u64,
}

struct Msgpack<E, D>(PhantomData<fn(E) -> D>);

impl<E: Serialize + Send + 'static, D: serde::de::DeserializeOwned + Send + 'static> Codec
    for Msgpack<E, D>
{
    type Encode = E;
    type Decode = D;
    type Encoder = Msgpack<E, ()>;
    type Decoder = Msgpack<(), D>;

    fn encoder(&mut self) -> Self::Encoder {
        Msgpack(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Msgpack(PhantomData)
    }
}

impl<E: Serialize> Encoder for Msgpack<E, ()> {
    type Item = E;
    type Error = tonic::Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        rmp_serde::encode::write_named(&mut dst.writer(), &item)
            .map_err(|error| tonic::Status::internal(error.to_string()))
    }
}

impl<D: serde::de::DeserializeOwned> Decoder for Msgpack<(), D> {
    type Item = D;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        rmp_serde::from_slice(&bytes)
            .map(Some)
            .map_err(|error| tonic::Status::invalid_argument(error.to_string()))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A hand-written gRPC service: a counter behind a mutex, one unary method.
#[derive(Clone, Default)]
struct Raw(Arc<Mutex<u64>>);

impl tower_service::Service<http::Request<tonic::body::Body>> for Raw {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let counter = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Msgpack::<u64, Add>(PhantomData));
            Ok(grpc.unary(counter, request).await)
        })
    }
}

impl tonic::server::UnaryService<Add> for Raw {
    type Response = u64;
    type Future = BoxFuture<Result<tonic::Response<u64>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Add>) -> Self::Future {
        let counter = Arc::clone(&self.0);
        Box::pin(async move {
            // A read, as peeper's `get`: the payload is decoded, the counter read.
            let _by = request.into_inner().by;
            let count = *counter.lock().unwrap();
            Ok(tonic::Response::new(count))
        })
    }
}

async fn raw_server() -> tonic::transport::Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .serve_with_incoming(
                Raw::default(),
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            )
            .await
            .unwrap();
    });
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

async fn raw_call(channel: &tonic::transport::Channel) -> u64 {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(Add { by: 1 }),
        http::uri::PathAndQuery::from_static("/bench.Raw/Add"),
        Msgpack::<Add, u64>(PhantomData),
    )
    .await
    .unwrap()
    .into_inner()
}

// ---- the harness ------------------------------------------------------------------------------

/// One row: per contender, one measurement per round.
struct Row {
    name: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    baseline: Vec<f64>,
    peeper: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn cell(values: &[f64]) -> String {
    let (low, high) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(low, high), value| {
            (low.min(*value), high.max(*value))
        });
    format!("{:.0} ({:.0}-{:.0})", median(values), low, high)
}

fn print(rows: &[Row]) {
    println!("| workload | unit | baseline | peeper | ratio |");
    println!("|---|---|---|---|---|");
    for row in rows {
        let ratio = median(&row.peeper) / median(&row.baseline);
        let note = if row.higher_is_better {
            " (higher is better)"
        } else {
            ""
        };
        println!(
            "| {} | {} | {} | {} | {ratio:.2}x{note} |",
            row.name,
            row.unit,
            cell(&row.baseline),
            cell(&row.peeper)
        );
    }
}

async fn node(url: &str, schema: &str, id: &str, host: bool) -> Node {
    let postgres = Postgres::builder(url)
        .node(NodeId::new(id))
        .schema(schema)
        .pool_size(8)
        .connect()
        .await
        .unwrap();
    let mut builder = Node::builder(postgres)
        .listen("127.0.0.1:0".parse().unwrap())
        .insecure_plaintext_between_nodes();
    if host {
        builder = builder.host(|name: &str| {
            let owner = Owner::builder(Owner::default());
            if name.starts_with("hibernating") {
                owner.idle_after(Duration::from_millis(10))
            } else {
                owner
            }
        });
    } else {
        builder = builder.host(|_: &str| Caller::builder(Caller::default()));
    }
    builder.start().await.unwrap()
}

fn main() {
    let Ok(url) = std::env::var("PEEPER_PG_URL") else {
        eprintln!(
            "skipped: PEEPER_PG_URL is not set; run `scripts/with-postgres cargo bench -p peeper-tests --bench remote`"
        );
        return;
    };
    let rounds: usize = std::env::var("PEEPER_REMOTE_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(7);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let schema = format!("bench_remote_{}", std::process::id());
        let a = node(&url, &schema, "a", true).await;
        // `b` hosts the kind under the other type, only so that `get` may place on it; every
        // server here is made on `a` first.
        let b = node(&url, &schema, "b", false).await;
        let raw = raw_server().await;

        let local = a.get::<Owner>("remote-0").await.unwrap();
        assert_eq!(local.add(0).await.unwrap(), 0);
        let remote = b.get::<Caller>("remote-0").await.unwrap();
        let direct = OwnerClient::whereis("remote-0").unwrap();
        let through_get = a.get::<Owner>("remote-0").await.unwrap();

        let mut rows = vec![
            Row { name: "remote_call", unit: "ns/call", higher_is_better: false, baseline: vec![], peeper: vec![] },
            Row { name: "remote_tput_64", unit: "calls/s", higher_is_better: true, baseline: vec![], peeper: vec![] },
            Row { name: "local_get", unit: "ns/call", higher_is_better: false, baseline: vec![], peeper: vec![] },
        ];
        // One unmeasured round first (connections, caches).
        for round in 0..=rounds {
            let peeper_first = round % 2 == 0;
            for turn in [peeper_first, !peeper_first] {
                // remote_call
                let started = Instant::now();
                for _ in 0..CALLS {
                    if turn {
                        remote.get().await.unwrap();
                    } else {
                        raw_call(&raw).await;
                    }
                }
                let ns = started.elapsed().as_nanos() as f64 / CALLS as f64;
                // remote_tput_64
                let started = Instant::now();
                let callers: Vec<_> = (0..CALLERS)
                    .map(|_| {
                        let remote = remote.clone();
                        let raw = raw.clone();
                        tokio::spawn(async move {
                            for _ in 0..CALLS_PER_CALLER {
                                if turn {
                                    remote.get().await.unwrap();
                                } else {
                                    raw_call(&raw).await;
                                }
                            }
                        })
                    })
                    .collect();
                for caller in callers {
                    caller.await.unwrap();
                }
                let tput = (CALLERS * CALLS_PER_CALLER) as f64 / started.elapsed().as_secs_f64();
                // local_get
                let client = if turn { &through_get } else { &direct };
                let started = Instant::now();
                for _ in 0..LOCAL_CALLS {
                    client.get().await.unwrap();
                }
                let local_ns = started.elapsed().as_nanos() as f64 / LOCAL_CALLS as f64;
                if round > 0 {
                    for (row, value) in rows.iter_mut().zip([ns, tput, local_ns]) {
                        if turn { row.peeper.push(value) } else { row.baseline.push(value) }
                    }
                }
            }
        }
        print(&rows);

        // first_call_hibernated
        let mut samples = Vec::with_capacity(HIBERNATED);
        for i in 0..HIBERNATED {
            let name = format!("hibernating-{i}");
            let owner = a.get::<Owner>(&name).await.unwrap();
            owner.add(1).await.unwrap();
            owner.branch().hibernated().await.unwrap();
            let started = Instant::now();
            let caller = b.get::<Caller>(&name).await.unwrap();
            assert_eq!(caller.add(1).await.unwrap(), 2);
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "\nfirst_call_hibernated (get + first call from b, server hibernated on a), {HIBERNATED} servers: p50 {:.0} µs, p99 {:.0} µs",
            samples[samples.len() / 2],
            samples[samples.len() * 99 / 100]
        );
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    });
}
