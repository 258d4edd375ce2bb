//! Chaos: nothing acknowledged is ever lost.
//!
//! 1,000 servers, half durable on a redb file (write-through, hibernating after a few idle
//! milliseconds), half in memory, all under two `DynamicSupervisor`s. Many tasks on a two-worker
//! runtime send them operations, each with a unique id, while the same tasks kill workers at
//! random, race kills against calls, transfer servers between the supervisors and make calls with
//! timeouts too short to be met. Every server's state is the list of ids it applied, so at the end
//! each outcome can be checked against what happened:
//!
//! | outcome | what must hold |
//! |---|---|
//! | `Ok` (acknowledged) | applied exactly once, also after the durable ones come back from the file |
//! | `Err(Crashed(_))` | not applied: the docs promise "the state before the call" |
//! | a call whose handler panics after its change | that change never applied |
//! | `Err(Timeout)` | unknown: applied at most once |
//! | a cast queued with `Ok` | at most once; exactly once on a server nobody killed (queued messages survive crashes, hibernation and transfers; only a kill can crash a cast's handler, and each kill crashes at most one handler) |
//! | anything else (`Stopped`, `Store`, a refused cast, a failed transfer, a call that never ends) | a violation: nothing in this run stops a server or makes the store fail |
//!
//! Then everything stops, the storage is closed, the file reopened, every durable server revived
//! with `store::revive_all`, and its stored list checked the same way (and against what it held
//! before the stop). Last, the runtime's live task count must come back to where it started.
//!
//! The seed (`PEEPER_CHAOS_SEED`, random by default, printed at start and in the failure
//! message) fixes every random choice: which server, which operation, which timeout, which kill
//! and transfer, in each task's own sequence. The interleaving of the tasks on the runtime's
//! threads cannot be fixed, so a failure found with a seed may need a few runs to show again.
//!
//! Bounded by default: 70,000 operations, 20-26 s in debug on the 2-core machine while other
//! builds run (16-20 s of load, 4-6 s to start, stop, reopen, revive and check). Longer:
//! `PEEPER_CHAOS_OPS=1000000`, or `PEEPER_CHAOS_SECS=600` (until the time is up).
#![allow(clippy::unwrap_used)] // a test: failing loudly is the point

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peeper::store::{Redb, Storage, revive_all};
use peeper::{CallError, DynamicSupervisor, Exit, OnStop, TransferError, WritePolicy};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::timeout;

const SERVERS: usize = 1_000;
const TASKS: u64 = 32;
const DEFAULT_OPS: u64 = 70_000;
/// Short, so that durable servers hibernate and revive many times during the run.
const IDLE: Duration = Duration::from_millis(10);
/// Every call ends by itself (reply, typed error, or its own timeout, 5 s at most): a call still
/// pending after this is a hang, reported as a violation instead of blocking the test.
const HANG: Duration = Duration::from_secs(30);
/// Whether the live task count drops back to where it started is judged within this bound.
const SETTLE: Duration = Duration::from_secs(10);
/// The message of the panics this test causes on purpose (kept out of stderr by the hook).
const PLANNED: &str = "chaos: planned panic";

// ---------------------------------------------------------------------------------------------
// The server: the ids it applied, in order
// ---------------------------------------------------------------------------------------------

/// A list rather than a set, so that an operation applied twice shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    applied: Vec<u64>,
}

#[peeper::server]
impl Ledger {
    /// Applies `id`, then yields once: a kill can land inside the handler, after the change,
    /// and the change must then be dropped.
    #[call]
    async fn apply(&mut self, id: u64) -> usize {
        self.applied.push(id);
        tokio::task::yield_now().await;
        self.applied.len()
    }

    /// Applies `id` and panics: the change must never be seen.
    #[call]
    fn apply_then_panic(&mut self, id: u64) -> usize {
        self.applied.push(id);
        std::panic::panic_any(PLANNED)
    }

    #[cast]
    fn note(&mut self, id: u64) {
        self.applied.push(id);
    }

    #[call]
    fn applied(&self) -> Vec<u64> {
        self.applied.clone()
    }
}

impl peeper::Persist for Ledger {
    const KIND: &'static str = "chaos-ledger";
}

/// How a durable `Ledger` is started, during the run and when revived from the file. `Keep`:
/// should a server have to be stopped by hand at the end (a violation), its state stays stored.
fn durable(name: &str) -> peeper::Builder<Ledger, LedgerClient> {
    Ledger::builder(Ledger::default())
        .name(name)
        .write_policy(WritePolicy::Through)
        .on_stop(OnStop::Keep)
}

peeper::revivable!(Ledger, durable);

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Config {
    seed: u64,
    ops: u64,
    /// With `PEEPER_CHAOS_SECS`: the tasks stop at this time, not after `ops`.
    run_for: Option<Duration>,
}

impl Config {
    fn from_env() -> Config {
        let var = |name: &str| {
            std::env::var(name).ok().map(|value| {
                value
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}: {value:?}"))
            })
        };
        let run_for = var("PEEPER_CHAOS_SECS").map(Duration::from_secs);
        let default_ops = if run_for.is_some() {
            u64::MAX
        } else {
            DEFAULT_OPS
        };
        Config {
            seed: var("PEEPER_CHAOS_SEED").unwrap_or_else(rand::random),
            ops: var("PEEPER_CHAOS_OPS").unwrap_or(default_ops),
            run_for,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The world the tasks share
// ---------------------------------------------------------------------------------------------

struct Slot {
    name: String,
    durable: bool,
    client: LedgerClient,
    /// Which supervisor hosts it (an index into `World::sups`); `None` once a failed transfer
    /// left it under neither. Transfers of one server hold this lock, so they never race.
    home: tokio::sync::Mutex<Option<usize>>,
    /// Kills accepted for this server: each may crash at most one handler.
    kills: AtomicU64,
}

struct World {
    slots: Vec<Slot>,
    sups: [DynamicSupervisor; 2],
}

async fn start_world(storage: &Storage, rng: &mut StdRng) -> World {
    let sups = [DynamicSupervisor::new(), DynamicSupervisor::new()];
    let mut slots = Vec::with_capacity(SERVERS);
    for index in 0..SERVERS {
        let durable_one = index % 2 == 0;
        let name = format!(
            "chaos-{}-{index}",
            if durable_one { "durable" } else { "memory" }
        );
        let home = rng.random_range(0..2);
        let builder = if durable_one {
            durable(&name).store(storage.clone()).idle_after(IDLE)
        } else {
            Ledger::builder(Ledger::default()).name(&name)
        };
        let client = sups[home].start_child(builder).await.unwrap();
        slots.push(Slot {
            name,
            durable: durable_one,
            client,
            home: tokio::sync::Mutex::new(Some(home)),
            kills: AtomicU64::new(0),
        });
    }
    World { slots, sups }
}

// ---------------------------------------------------------------------------------------------
// Operations and what they answered
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `apply`, default timeout.
    Apply,
    /// `apply` with a timeout of 0-3 ms: often too short.
    Short,
    /// `apply_then_panic`.
    Panic,
    /// `apply` racing a kill of the same server.
    Raced,
    /// `note`, a cast.
    Cast,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Acked,
    Crashed(Exit),
    TimedOut,
    Stopped(Exit),
    Store(String),
    Other(String),
    /// No answer within `HANG`.
    Hung,
    /// A cast queued.
    Sent,
    /// A cast refused.
    Refused(String),
}

async fn outcome<T>(call: impl Future<Output = Result<T, CallError>>) -> Outcome {
    match timeout(HANG, call).await {
        Err(_) => Outcome::Hung,
        Ok(Ok(_)) => Outcome::Acked,
        Ok(Err(CallError::Crashed(exit))) => Outcome::Crashed(exit),
        Ok(Err(CallError::Timeout(_))) => Outcome::TimedOut,
        Ok(Err(CallError::Stopped(exit))) => Outcome::Stopped(exit),
        Ok(Err(CallError::Store(error))) => Outcome::Store(error.to_string()),
        Ok(Err(other)) => Outcome::Other(other.to_string()),
    }
}

#[derive(Debug)]
struct Record {
    server: usize,
    id: u64,
    op: Op,
    outcome: Outcome,
}

/// The bits of an id that count a task's operations; the task is in the bits above.
const SEQ_BITS: u32 = 40;

/// Unique over the run: the task in the high bits, its own count in the low ones.
fn op_id(task: u64, seq: u64) -> u64 {
    ((task + 1) << SEQ_BITS) | seq
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (task, seq) = ((self.id >> SEQ_BITS) - 1, self.id & ((1 << SEQ_BITS) - 1));
        write!(
            f,
            "op {seq} of task {task} ({:?}) answered {:?}",
            self.op, self.outcome
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Violations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    AckLost,
    AppliedTwice,
    Phantom,
    PanickedKept,
    CrashedButKept,
    RefusedButKept,
    CastLostWithoutKill,
    MoreCrashesThanKills,
    UnexpectedOutcome,
    Hung,
    KillRefused,
    TransferStoppedWhileRunning,
    TransferFailed,
    Orphaned,
    StillRunningAfterShutdown,
    FinalReadFailed,
    StoredDiffersFromLive,
    ReviveFailed,
    StorageClose,
    TasksLeft,
}

#[derive(Debug, Default)]
struct Violations(BTreeMap<Kind, Vec<String>>);

impl Violations {
    fn add(&mut self, kind: Kind, what: String) {
        self.0.entry(kind).or_default().push(what);
    }

    fn merge(&mut self, other: Violations) {
        for (kind, whats) in other.0 {
            self.0.entry(kind).or_default().extend(whats);
        }
    }

    fn counts(&self) -> String {
        let counts: Vec<_> = self
            .0
            .iter()
            .map(|(kind, whats)| format!("{kind:?}={}", whats.len()))
            .collect();
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(",")
        }
    }

    /// The first few of each kind, for the failure message.
    fn examples(&self) -> String {
        let mut text = String::new();
        for (kind, whats) in &self.0 {
            let _ = writeln!(text, "{kind:?} ({}):", whats.len());
            for what in whats.iter().take(5) {
                let _ = writeln!(text, "  {what}");
            }
        }
        text
    }
}

// ---------------------------------------------------------------------------------------------
// The load: one task's sequence of random operations
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct TaskLog {
    ops: u64,
    records: Vec<Record>,
    kills: u64,
    transfers: u64,
    violations: Violations,
}

async fn load(world: Arc<World>, task: u64, config: Config, stop_at: Option<Instant>) -> TaskLog {
    // Each task its own sequence, all of them fixed by the seed.
    let mut rng =
        StdRng::seed_from_u64(config.seed ^ (task + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut log = TaskLog::default();
    let quota = config.ops / TASKS + u64::from(task < config.ops % TASKS);
    for seq in 0..quota {
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            break;
        }
        let id = op_id(task, seq);
        let server = rng.random_range(0..world.slots.len());
        step(&world, &mut rng, &mut log, server, id).await;
        log.ops += 1;
    }
    log
}

/// One operation. Per thousand: 10 panicking calls, 30 calls with a too-short timeout, 200 casts,
/// 5 kills, 5 calls racing a kill, 10 transfers, 6 calls followed by a kill or a transfer once
/// the server has hibernated, and plain calls for the rest.
async fn step(world: &World, rng: &mut StdRng, log: &mut TaskLog, server: usize, id: u64) {
    let slot = &world.slots[server];
    let client = &slot.client;
    let (op, outcome) = match rng.random_range(0..1_000) {
        0..10 => (Op::Panic, outcome(client.apply_then_panic(id)).await),
        10..40 => {
            let short = Duration::from_micros(rng.random_range(0..3_000));
            (
                Op::Short,
                outcome(client.with_timeout(short).apply(id)).await,
            )
        }
        40..240 => match client.note(id) {
            Ok(()) => (Op::Cast, Outcome::Sent),
            Err(error) => (Op::Cast, Outcome::Refused(error.to_string())),
        },
        240..245 => return kill(slot, log),
        245..250 => {
            // The kill comes a few polls after the call was queued: sometimes before the handler,
            // sometimes inside it, sometimes while its write-through commit is in flight.
            let yields = rng.random_range(0..4);
            let killing = async {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
                kill(slot, log);
            };
            let (answered, ()) = tokio::join!(outcome(client.apply(id)), killing);
            (Op::Raced, answered)
        }
        250..260 => return transfer(world, slot, log).await,
        260..266 => {
            // A transfer or a kill aimed at a durable server the moment it has hibernated, so
            // that the request is what revives it (the moment just *before* it goes idle is
            // `loss_paths::a_transfer_racing_hibernation_answers_what_happened`'s, on a paused
            // clock). Waited for as an event: an in-memory server never hibernates.
            let answered = outcome(client.apply(id)).await;
            if slot.durable {
                // An end instead (a shutdown cannot happen during the load) is reported by the
                // call or the request that follows.
                let _ = client.branch().hibernated().await;
            }
            if rng.random_bool(0.5) {
                transfer(world, slot, log).await;
            } else {
                kill(slot, log);
            }
            (Op::Apply, answered)
        }
        _ => (Op::Apply, outcome(client.apply(id)).await),
    };
    log.records.push(Record {
        server,
        id,
        op,
        outcome,
    });
}

fn kill(slot: &Slot, log: &mut TaskLog) {
    // Counted before it is sent: once sent it may land at once, on another thread.
    slot.kills.fetch_add(1, Ordering::SeqCst);
    match slot.client.branch().kill_worker() {
        Ok(()) => log.kills += 1,
        Err(error) => {
            slot.kills.fetch_sub(1, Ordering::SeqCst);
            let what = format!("kill of {} refused: {error}", slot.name);
            log.violations.add(Kind::KillRefused, what);
        }
    }
}

async fn transfer(world: &World, slot: &Slot, log: &mut TaskLog) {
    let mut home = slot.home.lock().await;
    let Some(from) = *home else {
        return; // Under neither supervisor since an earlier failure (already reported).
    };
    let (source, target) = (&world.sups[from], &world.sups[1 - from]);
    let moved = timeout(HANG, peeper::transfer(&slot.name, source, target)).await;
    let branch = slot.client.branch();
    match moved {
        Ok(Ok(())) => {
            *home = Some(1 - from);
            log.transfers += 1;
            return;
        }
        Err(_) => log
            .violations
            .add(Kind::Hung, format!("transfer of {}", slot.name)),
        Ok(Err(TransferError::Stopped(exit))) if branch.is_running() => {
            let what = format!(
                "transfer of {} answered Stopped({exit}), running",
                slot.name
            );
            log.violations.add(Kind::TransferStoppedWhileRunning, what);
        }
        Ok(Err(error)) => {
            let what = format!("transfer of {}: {error}", slot.name);
            log.violations.add(Kind::TransferFailed, what);
        }
    }
    // After a failure, find out where the server is rather than trust the old answer.
    let hosts =
        |sup: &DynamicSupervisor| sup.which_children().iter().any(|b| b.id() == branch.id());
    *home = (0..2).find(|&sup| hosts(&world.sups[sup]));
    if home.is_none() {
        let what = format!(
            "{} is under no supervisor after a failed transfer",
            slot.name
        );
        log.violations.add(Kind::Orphaned, what);
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Outcomes that cannot happen in this run whatever the timing: a panicking call answered
/// anything but its panic (or a timeout), a plain call answered a panic, and every error that
/// means a server ended or the store failed.
fn check_outcome(record: &Record, name: &str, violations: &mut Violations) {
    let expected = match (&record.outcome, record.op) {
        (Outcome::Hung, _) => {
            violations.add(Kind::Hung, format!("{name}: {record}"));
            return;
        }
        (Outcome::Crashed(Exit::Panicked { .. }) | Outcome::TimedOut, Op::Panic) => true,
        (_, Op::Panic) => false,
        (Outcome::Acked | Outcome::TimedOut | Outcome::Crashed(Exit::Killed), _) => true,
        (Outcome::Sent, Op::Cast) => true,
        _ => false,
    };
    if !expected {
        violations.add(Kind::UnexpectedOutcome, format!("{name}: {record}"));
    }
}

/// Checks one server's final list against what was sent to it, what each sender heard, and how
/// many kills it took.
fn check_server(
    name: &str,
    kills: u64,
    records: &[&Record],
    applied: &[u64],
    violations: &mut Violations,
) {
    let mut times: HashMap<u64, usize> = HashMap::new();
    for &id in applied {
        *times.entry(id).or_default() += 1;
    }
    let by_id: HashMap<u64, &Record> = records.iter().map(|record| (record.id, *record)).collect();
    for (&id, &count) in &times {
        if count > 1 {
            violations.add(
                Kind::AppliedTwice,
                format!("{name}: id {id:#x} {count} times"),
            );
        }
        let Some(record) = by_id.get(&id) else {
            violations.add(
                Kind::Phantom,
                format!("{name}: id {id:#x} was not sent here"),
            );
            continue;
        };
        match (&record.outcome, record.op) {
            (_, Op::Panic) => violations.add(Kind::PanickedKept, format!("{name}: {record}")),
            (Outcome::Crashed(_), _) => {
                violations.add(Kind::CrashedButKept, format!("{name}: {record}"));
            }
            (Outcome::Stopped(_) | Outcome::Refused(_), _) => {
                violations.add(Kind::RefusedButKept, format!("{name}: {record}"));
            }
            _ => {}
        }
    }
    let (mut lost_casts, mut killed_calls) = (0, 0);
    for record in records {
        let present = times.contains_key(&record.id);
        match &record.outcome {
            Outcome::Acked if !present => {
                violations.add(Kind::AckLost, format!("{name}: {record}"));
            }
            Outcome::Sent if !present => lost_casts += 1,
            Outcome::Crashed(Exit::Killed) => killed_calls += 1,
            _ => {}
        }
    }
    if lost_casts > 0 && kills == 0 {
        let what = format!("{name}: {lost_casts} casts lost, never killed");
        violations.add(Kind::CastLostWithoutKill, what);
    }
    if lost_casts + killed_calls > kills {
        let what = format!(
            "{name}: {lost_casts} lost casts + {killed_calls} killed calls > {kills} kills"
        );
        violations.add(Kind::MoreCrashesThanKills, what);
    }
}

/// The lists the servers hold now, read concurrently, in the order of `clients`. Each server's
/// queued casts (and timed-out calls) are handled first: the read queues behind them.
async fn read_lists(
    clients: Vec<LedgerClient>,
    violations: &mut Violations,
) -> Vec<Option<Vec<u64>>> {
    let reads: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(async move {
                let read = timeout(HANG, client.with_timeout(HANG).applied()).await;
                (client.branch().name().unwrap_or_default().to_owned(), read)
            })
        })
        .collect();
    let mut lists = Vec::with_capacity(reads.len());
    for read in reads {
        match read.await.unwrap() {
            (_, Ok(Ok(list))) => lists.push(Some(list)),
            (name, failed) => {
                violations.add(Kind::FinalReadFailed, format!("{name}: {failed:?}"));
                lists.push(None);
            }
        }
    }
    lists
}

// ---------------------------------------------------------------------------------------------
// The end: stop, close, reopen, revive
// ---------------------------------------------------------------------------------------------

/// Shuts both supervisors down; a branch still running after that (a transfer lost it) is a
/// violation, and is stopped by hand (its state kept) so that the rest can go on.
async fn stop_everything(world: &World, violations: &mut Violations) {
    let [first, second] = &world.sups;
    if timeout(HANG, async {
        tokio::join!(first.shutdown(), second.shutdown())
    })
    .await
    .is_err()
    {
        violations.add(Kind::Hung, "supervisor shutdown".to_owned());
    }
    for slot in &world.slots {
        let branch = slot.client.branch();
        if branch.is_running() {
            violations.add(Kind::StillRunningAfterShutdown, slot.name.clone());
            let _ = timeout(HANG, branch.stop()).await;
        }
        if timeout(HANG, branch.ended()).await.is_err() {
            violations.add(Kind::Hung, format!("{} never ended", slot.name));
        }
    }
}

/// Opens the file again. `close` has released it, unless a read cancelled earlier left a
/// blocking call holding it: that one ends by itself, so retry, bounded.
async fn reopen(path: &Path) -> (Storage, u64) {
    let deadline = Instant::now() + SETTLE;
    let mut retries = 0;
    loop {
        match Redb::open(path) {
            Ok(redb) => return (Storage::new(redb), retries),
            Err(error) if Instant::now() < deadline => {
                retries += 1;
                if retries == 1 {
                    eprintln!("chaos: reopening the file: {error}; retrying");
                }
                tokio::task::yield_now().await;
            }
            Err(error) => panic!("the redb file is still held after {SETTLE:?}: {error}"),
        }
    }
}

/// Revives every stored server from the reopened file and checks each against its records and
/// against the list it held before the stop.
async fn revive_and_check(
    storage: &Storage,
    world: &World,
    records: &[Vec<&Record>],
    live: &[Option<Vec<u64>>],
    violations: &mut Violations,
) {
    let mut revived: HashMap<String, _> = HashMap::new();
    for (key, started) in revive_all(storage).await {
        revived.insert(key.name.clone(), started);
    }
    let mut back = Vec::new();
    for (index, slot) in world.slots.iter().enumerate() {
        let what = match (slot.durable, revived.remove(&slot.name)) {
            (true, Some(Ok(_))) => {
                back.push(index);
                continue;
            }
            (false, None) => continue,
            (false, Some(_)) => "an in-memory server was stored".to_owned(),
            (true, None) => "nothing stored".to_owned(),
            (true, Some(Err(error))) => error.to_string(),
        };
        violations.add(Kind::ReviveFailed, format!("{}: {what}", slot.name));
    }
    let clients: Vec<_> = back
        .iter()
        .map(|&index| Ledger::whereis(&world.slots[index].name).unwrap())
        .collect();
    let stored = read_lists(clients.clone(), violations).await;
    for (&index, stored) in back.iter().zip(stored) {
        let (slot, Some(stored)) = (&world.slots[index], stored) else {
            continue;
        };
        let kills = slot.kills.load(Ordering::SeqCst);
        check_server(&slot.name, kills, &records[index], &stored, violations);
        if let Some(live) = &live[index]
            && *live != stored
        {
            let what = format!(
                "{}: {} ids live, {} stored",
                slot.name,
                live.len(),
                stored.len()
            );
            violations.add(Kind::StoredDiffersFromLive, what);
        }
    }
    let stops: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(async move { timeout(HANG, client.stop()).await }))
        .collect();
    for stop in stops {
        if stop.await.unwrap().is_err() {
            violations.add(Kind::Hung, "stop of a revived server".to_owned());
        }
    }
}

/// Waits, bounded, for the runtime to run only as many tasks as before the test: no server, no
/// writer, no reply task left behind. Yields rather than sleeps, so it ends as soon as they do.
async fn settle(baseline: usize) -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = Instant::now() + SETTLE;
    while metrics.num_alive_tasks() > baseline && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    metrics.num_alive_tasks()
}

/// The planned panics would print a thousand backtraces: keep them quiet, and every other panic
/// (a failure of this test) as loud as usual.
fn quiet_planned_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PLANNED) {
            default(info);
        }
    }));
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    casts: u64,
    acked: u64,
    crashed: u64,
    killed_calls: u64,
    timed_out: u64,
}

fn tally(records: &[Record]) -> Tally {
    let mut tally = Tally::default();
    for record in records {
        if record.op == Op::Cast {
            tally.casts += 1;
            continue;
        }
        tally.calls += 1;
        match record.outcome {
            Outcome::Acked => tally.acked += 1,
            Outcome::Crashed(Exit::Killed) => {
                tally.crashed += 1;
                tally.killed_calls += 1;
            }
            Outcome::Crashed(_) => tally.crashed += 1,
            Outcome::TimedOut => tally.timed_out += 1,
            _ => {}
        }
    }
    tally
}

/// What the load tasks did, together.
#[derive(Default)]
struct Run {
    ops: u64,
    records: Vec<Record>,
    kills: u64,
    transfers: u64,
    violations: Violations,
}

async fn run_load(world: &Arc<World>, config: Config) -> Run {
    let stop_at = config.run_for.map(|run_for| Instant::now() + run_for);
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(load(Arc::clone(world), task, config, stop_at)))
        .collect();
    let mut run = Run::default();
    for task in tasks {
        let log = task.await.unwrap();
        run.ops += log.ops;
        run.records.extend(log.records);
        run.kills += log.kills;
        run.transfers += log.transfers;
        run.violations.merge(log.violations);
    }
    run
}

/// Crash restarts, and revivals from hibernation: every incarnation that is neither the first,
/// nor a restart, nor a transfer.
fn restarts_and_revivals(world: &World, transfers: u64) -> (u64, u64) {
    let branches = || world.slots.iter().map(|slot| slot.client.branch());
    let incarnations: u64 = branches().map(peeper::Branch::incarnation).sum();
    let restarts: u64 = branches().map(peeper::Branch::restarts).sum();
    (restarts, incarnations.saturating_sub(restarts + transfers))
}

/// After the load: checks every outcome and the in-memory servers, stops everything, closes and
/// reopens the file, revives the durable servers and checks them. Returns how many times the
/// file had to be opened again before it was free.
async fn finish(world: &World, storage: Storage, path: &Path, run: &mut Run) -> u64 {
    let mut by_server: Vec<Vec<&Record>> = vec![Vec::new(); world.slots.len()];
    for record in &run.records {
        by_server[record.server].push(record);
        check_outcome(
            record,
            &world.slots[record.server].name,
            &mut run.violations,
        );
    }
    // Every server's list before the stop: the in-memory ones are checked now (they end with the
    // stop); the durable ones after coming back from the file, which must hold this same list.
    let clients = world.slots.iter().map(|slot| slot.client.clone()).collect();
    let live = read_lists(clients, &mut run.violations).await;
    for (index, slot) in world.slots.iter().enumerate() {
        if let (false, Some(applied)) = (slot.durable, &live[index]) {
            let kills = slot.kills.load(Ordering::SeqCst);
            check_server(
                &slot.name,
                kills,
                &by_server[index],
                applied,
                &mut run.violations,
            );
        }
    }
    stop_everything(world, &mut run.violations).await;
    // STORAGE-CLOSE: flushes, ends the writer and releases the file (`Storage::close`, new).
    if let Err(error) = storage.close().await {
        run.violations.add(Kind::StorageClose, error.to_string());
    }
    drop(storage);
    let (storage, retries) = reopen(path).await;
    revive_and_check(&storage, world, &by_server, &live, &mut run.violations).await;
    if let Err(error) = storage.close().await {
        run.violations.add(Kind::StorageClose, error.to_string());
    }
    retries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_ever_lost() {
    let config = Config::from_env();
    let seed = config.seed;
    eprintln!("chaos: seed {seed} (PEEPER_CHAOS_SEED={seed} repeats the choices, not the timing)");
    quiet_planned_panics();
    let began = Instant::now();
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chaos.redb");
    let storage = Storage::new(Redb::open(&path).unwrap());
    let world = Arc::new(start_world(&storage, &mut StdRng::seed_from_u64(seed)).await);
    let started = began.elapsed();

    let mut run = run_load(&world, config).await;
    let ran = began.elapsed() - started;
    let (restarts, revivals) = restarts_and_revivals(&world, run.transfers);
    let reopen_retries = finish(&world, storage, &path, &mut run).await;

    drop(Arc::into_inner(world).expect("every load task has ended"));
    let left = settle(baseline).await;
    if left > baseline {
        let what = format!("{left} alive, {baseline} before");
        run.violations.add(Kind::TasksLeft, what);
    }

    let t = tally(&run.records);
    let summary = format!(
        "chaos: seed={seed} servers={SERVERS} ops={} calls={} casts={} acked={} crashed={} \
         (killed={}) timed_out={} kills={} transfers={} restarts={restarts} revivals={revivals} \
         reopen_retries={reopen_retries} violations[{}] elapsed={:.1?} (start {started:.1?}, \
         load {ran:.1?})",
        run.ops,
        t.calls,
        t.casts,
        t.acked,
        t.crashed,
        t.killed_calls,
        t.timed_out,
        run.kills,
        run.transfers,
        run.violations.counts(),
        began.elapsed(),
    );
    eprintln!("{summary}");
    assert!(
        run.violations.0.is_empty(),
        "{summary}\nrepeat the choices with PEEPER_CHAOS_SEED={seed}\n{}",
        run.violations.examples()
    );
}

/// The checks themselves: each kind of violation they look for is found when it is there (the
/// chaos run passing proves nothing if they could not fail).
#[test]
fn the_checks_find_what_they_look_for() {
    let record = |seq, op, outcome| Record {
        server: 0,
        id: op_id(0, seq),
        op,
        outcome,
    };
    let panicked = Exit::Panicked {
        message: PLANNED.to_owned(),
    };
    let records = [
        record(0, Op::Apply, Outcome::Acked),
        record(1, Op::Apply, Outcome::Acked),
        record(2, Op::Panic, Outcome::Crashed(panicked)),
        record(3, Op::Raced, Outcome::Crashed(Exit::Killed)),
        record(4, Op::Cast, Outcome::Sent),
        record(5, Op::Apply, Outcome::Stopped(Exit::Normal)),
    ];
    let (lost, twice, panic, crashed, stopped) = (
        op_id(0, 0),
        op_id(0, 1),
        op_id(0, 2),
        op_id(0, 3),
        op_id(0, 5),
    );
    let applied = [twice, twice, panic, crashed, stopped, op_id(7, 7)];
    assert!(!applied.contains(&lost));

    let mut violations = Violations::default();
    let refs: Vec<&Record> = records.iter().collect();
    check_server("server", 0, &refs, &applied, &mut violations);
    for record in &records {
        check_outcome(record, "server", &mut violations);
    }
    let found: Vec<Kind> = violations.0.keys().copied().collect();
    assert_eq!(
        found,
        [
            Kind::AckLost,
            Kind::AppliedTwice,
            Kind::Phantom,
            Kind::PanickedKept,
            Kind::CrashedButKept,
            Kind::RefusedButKept,
            Kind::CastLostWithoutKill,
            Kind::MoreCrashesThanKills,
            Kind::UnexpectedOutcome,
        ],
        "{}",
        violations.examples()
    );

    // The same server, had it been killed twice: a lost cast and a killed call are explained.
    let mut violations = Violations::default();
    check_server("server", 2, &refs, &applied, &mut violations);
    assert!(!violations.0.contains_key(&Kind::CastLostWithoutKill));
    assert!(!violations.0.contains_key(&Kind::MoreCrashesThanKills));
}
