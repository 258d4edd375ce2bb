//! A node of a test cluster: the child process of `tests/tests/cluster_*.rs`, killed, paused and
//! restarted by them.
//!
//! `cluster-node --schema <s> --node <id> [--lease-ms N] [--pump-ms N] [--take-over] [--adopt]`
//! connects to `PEEPER_PG_URL`, hosts one durable server kind (`counter`), prints `ready <id>`,
//! then obeys one command per stdin line and prints what happens, one line each:
//!
//! | command | prints |
//! |---|---|
//! | `start <name>` | `started <name> <count>`, `owned <name> <node>` or `start-error <name> <error>` |
//! | `pump <name> <ms>` | every `ms`, `ack <name> <count>` for each `add(1)` acknowledged; `err <name> <error>` for a failure; `gone <name> <error>` and it stops pumping when the server has left this node |
//! | `add <name> <n>` | `added <name> <count>` or `err <name> <error>` |
//! | `keyed <name> <key> <n>` | `add(n)` with the idempotency key: `keyed <name> <key> <reply>` or `err <name> <error>` |
//! | `get <name>` | `count <name> <count>` or `err <name> <error>` |
//! | `owner <name>` | `owner <name> <node or none>` |
//! | `transfer <name> <node>` | `transferred <name>` or `transfer-error <name> <error>` |
//! | `shutdown` | hands everything off, waits for its pumps to finish, prints `handed-off <count>` and exits |
//!
//! Events print as `took-over <name> <count>`, `adopted <name> <from> <count>`,
//! `lost <name> <owner or none>` and `revive-failed <name> <error>`; with `--pump-ms`, a server
//! taken over or adopted is pumped at once. An acknowledged count is printed (and flushed, one
//! line per write) before the next call is made: a printed count is a promise that the state was
//! committed.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use peeper::cluster::{ClusterTls, Hashed, Node, NodeEvent, NodeId, Postgres};
use peeper::store::{Key, StoreError};
use peeper::{CallError, OnStop, StartError};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

#[peeper::server(remote)]
impl Counter {
    #[call]
    fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }

    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    /// A message as large as its text: for the size cap.
    #[call]
    fn measure(&self, text: String) -> u64 {
        text.len() as u64
    }
}

impl peeper::Persist for Counter {
    const KIND: &'static str = "counter";
}

/// A newer build of the same kind (`--v2`): one more message, which `Counter` does not know.
#[derive(Clone, Default, Serialize, Deserialize)]
struct CounterV2 {
    count: u64,
}

#[peeper::server(remote)]
impl CounterV2 {
    #[call]
    fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }

    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    #[call]
    fn double(&mut self) -> u64 {
        self.count *= 2;
        self.count
    }
}

impl peeper::Persist for CounterV2 {
    const KIND: &'static str = "counter";
}

fn counter_v2(_name: &str) -> peeper::Builder<CounterV2, CounterV2Client> {
    CounterV2::builder(CounterV2::default()).on_stop(OnStop::Keep)
}

fn counter(_name: &str) -> peeper::Builder<Counter, CounterClient> {
    Counter::builder(Counter::default()).on_stop(OnStop::Keep)
}

struct Args {
    schema: String,
    node: String,
    lease: Duration,
    pump: Option<Duration>,
    take_over: bool,
    adopt: bool,
    /// Listen for other nodes: `plain`, or the directory of `ca.pem`, `<node>.pem`, `<node>.key`.
    listen: Option<String>,
    /// Host `CounterV2` instead of `Counter`.
    v2: bool,
    hashed: bool,
    max_message: Option<usize>,
}

fn args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        schema: "public".to_owned(),
        node: String::new(),
        lease: Duration::from_secs(10),
        pump: None,
        take_over: false,
        adopt: false,
        listen: None,
        v2: false,
        hashed: false,
        max_message: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = || given.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--schema" => args.schema = value()?,
            "--node" => args.node = value()?,
            "--lease-ms" => args.lease = Duration::from_millis(value()?.parse()?),
            "--pump-ms" => {
                let ms: u64 = value()?.parse()?;
                args.pump = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "--take-over" => args.take_over = true,
            "--adopt" => args.adopt = true,
            "--listen" => args.listen = Some(value()?),
            "--v2" => args.v2 = true,
            "--hashed" => args.hashed = true,
            "--max-message" => args.max_message = Some(value()?.parse()?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    Ok(args)
}

/// One line, written and flushed at once (`println!` locks stdout for the whole line).
macro_rules! say {
    ($($arg:tt)*) => { println!($($arg)*) };
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    let url = std::env::var("PEEPER_PG_URL")?;
    let postgres = Postgres::builder(&url)
        .node(NodeId::new(args.node.as_str()))
        .schema(args.schema.as_str())
        .lease(args.lease)
        .pool_size(8)
        .connect()
        .await?;
    let mut builder = Node::builder(postgres)
        .take_over(args.take_over)
        .adopt_orphans(args.adopt)
        .adopt_every(args.lease / 4);
    builder = if args.v2 {
        builder.host(counter_v2)
    } else {
        builder.host(counter)
    };
    if let Some(listen) = &args.listen {
        // The transport first, `listen` after: the settings do not depend on the order.
        builder = match listen.as_str() {
            "plain" => builder.insecure_plaintext_between_nodes(),
            dir => {
                let read = |file: String| std::fs::read(format!("{dir}/{file}"));
                builder.tls(ClusterTls::from_pem(
                    read("ca.pem".to_owned())?,
                    read(format!("{}.pem", args.node))?,
                    read(format!("{}.key", args.node))?,
                ))
            }
        };
        builder = builder.listen("127.0.0.1:0".parse()?);
        if args.hashed {
            builder = builder.placement(Hashed);
        }
        if let Some(bytes) = args.max_message {
            builder = builder.max_message_size(bytes);
        }
    }
    let node = builder.start().await?;
    let mut pumps: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut traffic: Vec<JoinHandle<()>> = Vec::new();
    let mut held: HashMap<String, CounterClient> = HashMap::new();
    let stopping = Arc::new(AtomicBool::new(false));
    let (pumped, mut to_pump) = mpsc::unbounded_channel::<String>();

    // Events: printed, and what arrives is pumped if asked.
    let mut events = node.events();
    let pump_new = args.pump.is_some();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                NodeEvent::TookOver { key } => {
                    say!("took-over {} {}", key.name, count(&key.name).await);
                    if pump_new {
                        let _ = pumped.send(key.name);
                    }
                }
                NodeEvent::Adopted { key, from } => {
                    say!("adopted {} {from} {}", key.name, count(&key.name).await);
                    if pump_new {
                        let _ = pumped.send(key.name);
                    }
                }
                NodeEvent::Lost { key, owner } => say!("lost {} {}", key.name, shown(owner)),
                NodeEvent::ReviveFailed { key, error } => {
                    say!("revive-failed {} {error}", key.name);
                }
                _ => {}
            }
        }
    });

    // Commands, read on a thread of their own (stdin blocks).
    let (commands, mut received) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if commands.send(line).is_err() {
                return;
            }
        }
        // The test is gone: so is this node (as a kill would, without a handoff).
        std::process::exit(0);
    });

    say!("ready {}", args.node);
    loop {
        let line = tokio::select! {
            Some(name) = to_pump.recv() => {
                if let Some(period) = args.pump {
                    pumps.insert(name.clone(), tokio::spawn(pump(name, period)));
                }
                continue;
            }
            line = received.recv() => match line { Some(line) => line, None => return Ok(()) },
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["start", name] => match node.start(counter(name).name(*name)).await {
                Ok(client) => say!("started {name} {}", client.get().await?),
                Err(StartError::Store(StoreError::OwnedElsewhere { node, .. })) => {
                    say!("owned {name} {node}");
                }
                Err(error) => say!("start-error {name} {error}"),
            },
            ["pump", name, ms] => {
                let period = Duration::from_millis(ms.parse()?);
                pumps.insert(
                    (*name).to_owned(),
                    tokio::spawn(pump((*name).to_owned(), period)),
                );
            }
            ["add", name, by] => {
                match call(
                    name,
                    |c| async move { c.add(by.parse().unwrap_or(1)).await },
                )
                .await
                {
                    Ok(count) => say!("added {name} {count}"),
                    Err(error) => say!("err {name} {error}"),
                }
            }
            ["keyed", name, key, by] => {
                let by = by.parse().unwrap_or(1);
                let key = (*key).to_owned();
                match call(name, |c| async move { c.idempotent(key).add(by).await }).await {
                    Ok(count) => say!("keyed {name} {} {count}", words[2]),
                    Err(error) => say!("err {name} {error}"),
                }
            }
            ["get", name] => match call(name, |c| async move { c.get().await }).await {
                Ok(count) => say!("count {name} {count}"),
                Err(error) => say!("err {name} {error}"),
            },
            ["owner", name] => {
                let owner = node.owner(&Key::new("counter", *name)).await?;
                say!("owner {name} {}", shown(owner));
            }
            ["transfer", name, to] => {
                match node
                    .transfer(&Key::new("counter", *name), &NodeId::new(*to))
                    .await
                {
                    Ok(()) => say!("transferred {name}"),
                    Err(error) => say!("transfer-error {name} {error}"),
                }
            }
            ["call", name, by] => {
                let by: u64 = by.parse()?;
                let outcome = if args.v2 {
                    remote::<CounterV2, _, _>(&node, name, |c| async move { c.add(by).await }).await
                } else {
                    remote::<Counter, _, _>(&node, name, |c| async move { c.add(by).await }).await
                };
                match outcome {
                    Ok(count) => say!("called {name} {count}"),
                    Err(error) => say!("call-err {name} {} {error}", class(&error)),
                }
            }
            ["kcall", name, key, by] => {
                let by: u64 = by.parse()?;
                let key = (*key).to_owned();
                match remote::<Counter, _, _>(&node, name, |c| async move {
                    c.idempotent(key).add(by).await
                })
                .await
                {
                    Ok(count) => say!("kcalled {name} {} {count}", words[2]),
                    Err(error) => say!("call-err {name} {} {error}", class(&error)),
                }
            }
            ["measure", name, bytes] => {
                let text = "x".repeat(bytes.parse()?);
                match remote::<Counter, _, _>(&node, name, |c| async move { c.measure(text).await })
                    .await
                {
                    Ok(len) => say!("measured {name} {len}"),
                    Err(error) => say!("call-err {name} {} {error}", class(&error)),
                }
            }
            // `total <prefix> <n>`: the sum of the counts of n names, read through `get`.
            ["total", prefix, n] => {
                use futures::StreamExt as _;
                let n: usize = n.parse()?;
                let reads = (0..n).map(|i| {
                    let node = node.clone();
                    let name = format!("{prefix}{i}");
                    async move {
                        remote::<Counter, _, _>(&node, &name, |c| async move { c.get().await })
                            .await
                    }
                });
                let counts: Vec<_> = futures::stream::iter(reads)
                    .buffer_unordered(512)
                    .collect()
                    .await;
                let failed = counts.iter().filter(|count| count.is_err()).count();
                let sum: u64 = counts.iter().filter_map(|count| count.as_ref().ok()).sum();
                say!("total {sum} {failed}");
            }
            ["double", name] => {
                match remote::<CounterV2, _, _>(&node, name, |c| async move { c.double().await })
                    .await
                {
                    Ok(count) => say!("doubled {name} {count}"),
                    Err(error) => say!("call-err {name} {} {error}", class(&error)),
                }
            }
            // `traffic <name> <n>`: n calls `add(1)` through `get`, one after another; a call
            // that was not applied is retried. Prints `tack <name> <count>` per acknowledged
            // call, `retried <name> <error>` per retry, `traffic-done <name>` at the end.
            ["traffic", name, n] => {
                let n: u64 = n.parse()?;
                let node = node.clone();
                let name = (*name).to_owned();
                let stopping = Arc::clone(&stopping);
                traffic.push(tokio::spawn(async move {
                    // One client for the whole run, as an application holds one: its link
                    // caches the owner and follows the server through the restarts.
                    let client = match node.get::<Counter>(&name).await {
                        Ok(client) => client,
                        Err(error) => {
                            say!("call-err {name} {} {error}", class(&error));
                            return;
                        }
                    };
                    let mut done = 0;
                    while done < n && !stopping.load(Ordering::SeqCst) {
                        match client.add(1).await {
                            Ok(count) => {
                                say!("tack {name} {count}");
                                done += 1;
                            }
                            Err(error @ CallError::NotApplied(_)) => say!("retried {name} {error}"),
                            Err(error) => {
                                say!("call-err {name} {} {error}", class(&error));
                                return;
                            }
                        }
                    }
                    say!("traffic-done {name}");
                }));
            }
            // `hold <name>`: takes a client through `get` and keeps it; `hcall <name> <by>` calls
            // through it (`held <name> <count>` or `call-err ...`): a client whose link caches
            // its server's owner.
            ["hold", name] => match node.get::<Counter>(name).await {
                Ok(client) => {
                    held.insert((*name).to_owned(), client);
                    say!("holding {name}");
                }
                Err(error) => say!("call-err {name} {} {error}", class(&error)),
            },
            ["hcall", name, by] => {
                let by: u64 = by.parse()?;
                match held.get(*name) {
                    Some(client) => match client.add(by).await {
                        Ok(count) => say!("held {name} {count}"),
                        Err(error) => say!("call-err {name} {} {error}", class(&error)),
                    },
                    None => say!("call-err {name} other not held"),
                }
            }
            // `storm <prefix> <n>`: `get` and `add(1)` on n names, 512 at a time (as a client
            // with a connection limit would); `stormed <ok> <failed>`.
            ["storm", prefix, n] => {
                use futures::StreamExt as _;
                let n: usize = n.parse()?;
                let calls = (0..n).map(|i| {
                    let node = node.clone();
                    let name = format!("{prefix}{i}");
                    async move {
                        remote::<Counter, _, _>(&node, &name, |c| async move { c.add(1).await })
                            .await
                    }
                });
                let results: Vec<_> = futures::stream::iter(calls)
                    .buffer_unordered(512)
                    .collect()
                    .await;
                let failed: Vec<String> = results
                    .iter()
                    .filter_map(|result| result.as_ref().err().map(ToString::to_string))
                    .collect();
                if let Some(error) = failed.first() {
                    say!("storm-error {error}");
                }
                say!("stormed {} {}", n - failed.len(), failed.len());
            }
            ["shutdown"] => {
                // The clients of this process stop at a call boundary first, each with its last
                // acknowledgement printed: no call of theirs is in flight when the process exits.
                stopping.store(true, Ordering::SeqCst);
                for client in traffic.drain(..) {
                    let _ = client.await;
                }
                let keys = node.shutdown().await?;
                // Every pump hears that its server left, after printing its last ack.
                for (_, pump) in pumps.drain() {
                    let _ = pump.await;
                }
                say!("handed-off {}", keys.len());
                std::process::exit(0);
            }
            _ => say!("unknown-command {line}"),
        }
    }
}

/// A call through `Node::get`, wherever the server runs.
async fn remote<S, F, Fut>(node: &Node, name: &str, call: F) -> Result<u64, CallError>
where
    S: peeper::Persist + peeper::Remote,
    F: FnOnce(S::Client) -> Fut,
    Fut: Future<Output = Result<u64, CallError>>,
{
    call(node.get::<S>(name).await?).await
}

/// The class of a call's error, as the tests match it.
fn class(error: &CallError) -> &'static str {
    match error {
        CallError::NotApplied(_) => "not-applied",
        CallError::MaybeApplied { .. } => "maybe-applied",
        _ => "other",
    }
}

fn shown(node: Option<NodeId>) -> String {
    node.map_or_else(|| "none".to_owned(), |node| node.to_string())
}

async fn call<F, Fut>(name: &str, call: F) -> Result<u64, String>
where
    F: FnOnce(CounterClient) -> Fut,
    Fut: Future<Output = Result<u64, CallError>>,
{
    match CounterClient::whereis(name) {
        Some(client) => call(client).await.map_err(|error| error.to_string()),
        None => Err("not running here".to_owned()),
    }
}

async fn count(name: &str) -> String {
    match call(name, |c| async move { c.get().await }).await {
        Ok(count) => count.to_string(),
        Err(error) => format!("? ({error})"),
    }
}

/// Adds 1 every `period` while the server runs here, printing every acknowledged count.
async fn pump(name: String, period: Duration) {
    let Some(client) = CounterClient::whereis(&name) else {
        say!("gone {name} not running here");
        return;
    };
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        match client.add(1).await {
            Ok(count) => say!("ack {name} {count}"),
            // The server left this node (handed off, fenced): stop.
            Err(error @ (CallError::Stopped(_) | CallError::Store(StoreError::Fenced { .. }))) => {
                say!("gone {name} {error}");
                return;
            }
            // The database is unreachable: say so and keep trying.
            Err(error) => say!("err {name} {error}"),
        }
    }
}
