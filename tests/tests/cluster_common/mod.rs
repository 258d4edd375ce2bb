//! What the `cluster_*` test files share: the database (`PEEPER_PG_URL`, set by
//! `scripts/with-postgres`), a schema per test, a look at the lease rows as an operator would
//! have, and node processes (`tests/bin/cluster_node.rs`) driven over stdin and heard over
//! stdout.
//!
//! Nothing here sleeps to synchronise: tests wait for lines a node prints (events, acks), for
//! lease rows, or for processes to exit. Every wait has a generous deadline that only turns a
//! hang into a failure.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peeper::store::{Key, NodeId, Postgres};

pub const NODE: &str = env!("CARGO_BIN_EXE_cluster-node");

/// The line a node's reader reports once the node's stdout has closed (it exited).
pub const EOF: &str = "<eof>";

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The database's URL (`PEEPER_PG_URL`), or `None` when the tests run without one (see
/// [`from_env`]).
pub fn pg_url() -> Option<String> {
    from_env(
        "PEEPER_PG_URL",
        "the PostgreSQL database the cluster tests run against",
    )
}

/// A `pg_ctl` for the test database (`PEEPER_PG_CTL`), for the tests that stop and start it, or
/// `None` (see [`from_env`]).
pub fn pg_ctl() -> Option<String> {
    from_env(
        "PEEPER_PG_CTL",
        "a `pg_ctl` that stops and starts the test database",
    )
}

/// The CA that signed the test database's certificate (`PEEPER_PG_CA`), for the TLS tests, or
/// `None` (see [`from_env`]).
pub fn pg_ca() -> Option<String> {
    from_env(
        "PEEPER_PG_CA",
        "the CA of the test database's TLS certificate; `scripts/with-postgres` makes one when \
         `openssl` is installed",
    )
}

/// The value of `var`, which `scripts/with-postgres` sets. Without it a test cannot run: it says
/// `skipped: ...` on stderr and returns `None`, and the caller returns (the harness counts that as
/// a pass). Under CI (`CI=true`) a skip would hide that nothing was tested, so it panics instead.
fn from_env(var: &str, what: &str) -> Option<String> {
    if let Ok(value) = std::env::var(var)
        && !value.is_empty()
    {
        return Some(value);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{var} is not set ({what}), and under CI (`CI=true`) a cluster test must run, not be \
             skipped: run the tests through `scripts/with-postgres` (`scripts/with-postgres cargo \
             test --workspace`), which installs PostgreSQL if it is missing, starts a throwaway \
             server and sets PEEPER_PG_URL, PEEPER_PG_CTL and PEEPER_PG_CA (with an outside \
             database in PEEPER_PG_URL, it sets none of the others)"
        );
    }
    eprintln!("skipped: {var} is not set ({what}); run the tests through `scripts/with-postgres`");
    None
}

/// A schema no other test (of any run) uses: every test has its own tables.
pub fn schema(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let clean: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(20)
        .collect();
    format!(
        "t_{clean}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store for node `node` in `schema`.
pub async fn connect(url: &str, schema: &str, node: &str, lease: Duration) -> Postgres {
    Postgres::builder(url)
        .node(NodeId::new(node))
        .schema(schema)
        .lease(lease)
        .pool_size(4)
        .connect()
        .await
        .unwrap()
}

/// A plain connection, to look at and change the tables as an operator would.
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The lease row of `key`: `(owner, epoch, live)`.
pub async fn lease(
    client: &tokio_postgres::Client,
    schema: &str,
    key: &Key,
) -> Option<(Option<String>, i64, bool)> {
    client
        .query_opt(
            &format!(
                "SELECT owner, epoch, coalesce(expires_at > now(), false)
                 FROM {schema}.peeper_leases WHERE kind = $1 AND name = $2"
            ),
            &[&key.kind, &key.name],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
}

/// Makes the lease of `key` expire now, as if its owner had stopped renewing it a while ago.
pub async fn expire(client: &tokio_postgres::Client, schema: &str, key: &Key) {
    client
        .execute(
            &format!(
                "UPDATE {schema}.peeper_leases SET expires_at = now() - interval '1 second'
                 WHERE kind = $1 AND name = $2"
            ),
            &[&key.kind, &key.name],
        )
        .await
        .unwrap();
}

pub async fn drop_schema(url: &str, schema: &str) {
    sql(url)
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Node processes
// ---------------------------------------------------------------------------------------------

/// How to start a node process.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub take_over: bool,
    pub adopt: bool,
    pub lease_ms: u64,
    /// Pumps every server it takes over or adopts, every this many ms (0: never).
    pub pump_ms: u64,
    /// More arguments (`--listen plain`, `--v2`, ...).
    pub extra: Vec<String>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            take_over: false,
            adopt: false,
            lease_ms: 10_000,
            pump_ms: 0,
            extra: Vec::new(),
        }
    }
}

/// A node process: `cluster-node` with a counter kind, driven by lines on stdin.
pub struct NodeProcess {
    pub id: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl NodeProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line.
    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends a signal (`STOP`, `CONT`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // A failing test must not leave node processes behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node processes on one schema, and every line they print, in one stream: `(node, line)`.
pub struct Cluster {
    url: String,
    pub schema: String,
    pub nodes: Vec<NodeProcess>,
    sender: mpsc::Sender<(String, String)>,
    lines: mpsc::Receiver<(String, String)>,
    /// Every line received so far, in the order received.
    pub log: Vec<(String, String)>,
    /// Received lines that no `expect` has consumed yet.
    pending: VecDeque<(String, String)>,
}

impl Cluster {
    pub fn new(url: &str, schema: &str) -> Cluster {
        let (sender, lines) = mpsc::channel();
        Cluster {
            url: url.to_owned(),
            schema: schema.to_owned(),
            nodes: Vec::new(),
            sender,
            lines,
            log: Vec::new(),
            pending: VecDeque::new(),
        }
    }

    /// Starts node `id` and waits until it is ready; its index in `nodes`.
    ///
    /// Lines a previous process of the same id printed and no `expect` consumed are dropped from
    /// the pending lines (they stay in `log`): an `expect` for the new process must not match
    /// them. (A round that waited for some acks of an owner, then killed it, left its later acks
    /// pending; when that id owned the server again, its first expected ack was a stale one.)
    pub fn spawn(&mut self, id: &str, options: &NodeOptions) -> usize {
        self.pending.retain(|(node, _)| node != id);
        let mut command = Command::new(NODE);
        command
            .env("PEEPER_PG_URL", &self.url)
            .args(["--schema", &self.schema, "--node", id])
            .args(["--lease-ms", &options.lease_ms.to_string()])
            .args(["--pump-ms", &options.pump_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if options.take_over {
            command.arg("--take-over");
        }
        if options.adopt {
            command.arg("--adopt");
        }
        command.args(&options.extra);
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let sender = self.sender.clone();
        let node = id.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send((node.clone(), line)).is_err() {
                    return;
                }
            }
            let _ = sender.send((node, EOF.to_owned()));
        });
        let process = NodeProcess {
            id: id.to_owned(),
            stdin: child.stdin.take(),
            child,
        };
        let index = match self.nodes.iter().position(|node| node.id == id) {
            Some(index) => {
                self.nodes[index] = process;
                index
            }
            None => {
                self.nodes.push(process);
                self.nodes.len() - 1
            }
        };
        let ready = format!("ready {id}");
        self.expect(|node, line| node == id && line == ready);
        index
    }

    pub fn node(&mut self, id: &str) -> &mut NodeProcess {
        self.nodes
            .iter_mut()
            .find(|node| node.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn send(&mut self, id: &str, command: &str) {
        self.node(id).send(command);
    }

    fn receive(&mut self, deadline: Instant) -> Option<(String, String)> {
        let left = deadline.saturating_duration_since(Instant::now());
        let received = self.lines.recv_timeout(left).ok()?;
        self.log.push(received.clone());
        Some(received)
    }

    /// Waits for the first unconsumed line that `matches` (`(node, line)`), consuming it; the
    /// lines before it stay for later `expect`s. Panics if none comes before the deadline.
    pub fn expect(&mut self, matches: impl Fn(&str, &str) -> bool) -> (String, String) {
        if let Some(at) = self
            .pending
            .iter()
            .position(|(node, line)| matches(node, line))
        {
            return self.pending.remove(at).unwrap();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.receive(deadline) {
                Some((node, line)) if matches(&node, &line) => return (node, line),
                Some(other) => self.pending.push_back(other),
                None => panic!(
                    "no expected line within {DEADLINE:?}; the last lines:\n{}",
                    self.tail()
                ),
            }
        }
    }

    /// Receives what has been printed until `done` holds for the log so far.
    pub fn until(&mut self, done: impl Fn(&[(String, String)]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.log) {
            if let Some(line) = self.receive(deadline) {
                self.pending.push_back(line);
            } else {
                panic!(
                    "condition not met within {DEADLINE:?}; the last lines:\n{}",
                    self.tail()
                );
            }
        }
    }

    fn tail(&self) -> String {
        let from = self.log.len().saturating_sub(40);
        self.log[from..]
            .iter()
            .map(|(node, line)| format!("{node}: {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every ack in the log for `name`, in the order received.
    pub fn acks(&self, name: &str) -> Vec<(String, u64)> {
        self.log
            .iter()
            .filter_map(|(node, line)| {
                let (acked, count) = parse_ack(line)?;
                (acked == name).then(|| (node.clone(), count))
            })
            .collect()
    }
}

/// `"ack c1 17"` -> `("c1", 17)`.
pub fn parse_ack(line: &str) -> Option<(&str, u64)> {
    let mut words = line.strip_prefix("ack ")?.split(' ');
    Some((words.next()?, words.next()?.parse().ok()?))
}

/// The `n`th word of a line (0-based).
pub fn word(line: &str, n: usize) -> &str {
    line.split(' ').nth(n).unwrap_or("")
}
