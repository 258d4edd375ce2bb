//! What `#[peeper::server]` and `#[derive(peeper::State)]` generate, used as a user would: the
//! typed client, the message enums, the dispatch, the keep-strategy hookup, generic servers,
//! `Result` returns, `#[cfg]`, and the registration in `peeper::servers()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use peeper::{CallError, Context, Exit, StartError};
use peeper_tests::unique;

/// The counter of the API's section 1.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    count: u64,
    started: Vec<u64>,
    ticks: Vec<Tick>,
}

/// A raw message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tick(pub u32);

#[peeper::server]
impl Counter {
    /// Runs at every start of the worker.
    #[init]
    async fn init(&mut self, ctx: &mut Context<Self>) {
        self.started.push(ctx.incarnation());
    }

    /// The count.
    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    #[call]
    async fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }

    #[call]
    fn starts(&self) -> Vec<u64> {
        self.started.clone()
    }

    #[call]
    fn ticks(&self) -> Vec<Tick> {
        self.ticks.clone()
    }

    #[call]
    fn boom(&mut self) -> u64 {
        self.count = 999;
        panic!("boom")
    }

    #[call]
    async fn slow(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// An error is a reply like any other.
    #[call]
    fn checked_sub(&mut self, by: u64) -> Result<u64, String> {
        self.count = self
            .count
            .checked_sub(by)
            .ok_or_else(|| format!("{} < {by}", self.count))?;
        Ok(self.count)
    }

    #[cast]
    fn inc(&mut self) {
        self.count += 1;
    }

    #[cast]
    fn set(&mut self, count: u64) {
        self.count = count;
    }

    /// A cast that fails crashes the worker.
    #[cast]
    fn must_be_even(&mut self, value: u64) -> Result<(), String> {
        if value.is_multiple_of(2) {
            Ok(())
        } else {
            Err(format!("{value} is odd"))
        }
    }

    /// The context may be anywhere in the arguments.
    #[info]
    fn tick(&mut self, ctx: &mut Context<Self>, tick: Tick) {
        let _ = ctx.incarnation();
        self.ticks.push(tick);
    }

    #[info]
    fn stop_now(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }

    /// Not a handler: stays an ordinary method.
    fn double(&self) -> u64 {
        self.count * 2
    }
}

#[tokio::test]
async fn calls_casts_and_info_through_the_typed_client() -> Result<(), Box<dyn std::error::Error>> {
    let counter: CounterClient = Counter::start(Counter::default()).await?;
    assert_eq!(counter.get().await?, 0);
    counter.inc()?;
    counter.set(10)?;
    assert_eq!(counter.add(5).await?, 15);
    counter.send(Tick(1))?; // `From<Tick> for CounterInfo`
    counter.send(CounterInfo::Tick { tick: Tick(2) })?;
    assert_eq!(counter.ticks().await?, [Tick(1), Tick(2)]);
    assert_eq!(counter.checked_sub(20).await?, Err("15 < 20".to_owned()));
    assert_eq!(counter.checked_sub(5).await?, Ok(10));
    assert_eq!(
        Counter {
            count: 4,
            ..Counter::default()
        }
        .double(),
        8
    );
    counter.stop().await?;
    assert!(matches!(
        counter.get().await,
        Err(CallError::Stopped(Exit::Normal))
    ));
    assert!(counter.inc().is_err());
    Ok(())
}

#[tokio::test]
async fn a_crash_keeps_the_last_completed_state() -> Result<(), Box<dyn std::error::Error>> {
    let counter = Counter::start(Counter::default()).await?;
    counter.set(41)?;
    let crash = counter.boom().await;
    assert!(
        matches!(&crash, Err(CallError::Crashed(Exit::Panicked { message })) if message == "boom")
    );
    counter.inc()?;
    assert_eq!(counter.get().await?, 42);
    assert_eq!(counter.starts().await?, [0, 1]); // `#[init]` ran again, on the kept state

    // An `Err` from a cast is a crash too, with the error as the message.
    counter.must_be_even(3)?;
    assert_eq!(counter.get().await?, 42);
    assert_eq!(counter.starts().await?, [0, 1, 2]);
    assert_eq!(counter.branch().restarts(), 2);
    counter.stop().await?;
    Ok(())
}

// The clock is paused: sleeps and timeouts advance it instantly once every task is idle.
#[tokio::test(start_paused = true)]
async fn timeouts_and_delays_are_typed() -> Result<(), Box<dyn std::error::Error>> {
    let counter = Counter::start(Counter::default()).await?;
    let slow = counter
        .with_timeout(Duration::from_millis(10))
        .slow(60_000)
        .await;
    assert_eq!(slow, Err(CallError::Timeout(Duration::from_millis(10))));
    assert_eq!(
        counter.with_timeout(Duration::from_secs(120)).get().await?,
        0
    );

    let later = counter.after(Duration::from_secs(1));
    later.set(7)?.cancel();
    later.inc()?;
    later.send(Tick(9))?;
    assert!(counter.ticks().await?.is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counter.get().await?, 1);
    assert_eq!(counter.ticks().await?, [Tick(9)]);
    counter.stop().await?;
    Ok(())
}

#[tokio::test]
async fn names_builders_and_the_generic_client() -> Result<(), Box<dyn std::error::Error>> {
    let name = unique("macro-counter");
    let counter = Counter::builder(Counter::default())
        .name(name.as_str())
        .max_restarts(3)
        .start()
        .await?;
    let found: Option<CounterClient> = Counter::whereis(&name);
    assert_eq!(
        found.expect("registered").branch().id(),
        counter.branch().id()
    );
    assert!(CounterClient::whereis(&name).is_some());

    let taken = Counter::builder(Counter::default())
        .name(name.as_str())
        .start()
        .await;
    assert!(matches!(taken, Err(StartError::NameTaken { .. })));

    // The typed client wraps the generic one, both ways.
    let generic: &peeper::Client<Counter> = counter.inner();
    assert_eq!(generic.call(CounterCall::Get).await.map(|_| ()), Ok(()));
    let again = CounterClient::from(counter.clone().into_inner());
    again.send(CounterInfo::StopNow)?;
    counter.branch().ended().await;
    assert!(Counter::whereis(&name).is_none());
    assert!(format!("{again:?}").starts_with("CounterClient("));
    Ok(())
}

#[test]
fn the_client_is_cheap_send_and_sync() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<CounterClient>();
    assert_eq!(
        std::mem::size_of::<CounterClient>(),
        std::mem::size_of::<peeper::Client<Counter>>()
    );
}

#[test]
fn non_generic_servers_are_registered() {
    let kind = peeper::servers()
        .find(|kind| kind.is::<Counter>())
        .expect("registered");
    assert_eq!(kind.name(), "Counter");
    assert_eq!(kind.module_path(), module_path!());
    assert_eq!(kind.type_name(), std::any::type_name::<Counter>());
    assert!(peeper::servers().any(|kind| kind.is::<Session>()));
}

// ---------------------------------------------------------------------------------------------
// `&self` never copies, whatever the strategy
// ---------------------------------------------------------------------------------------------

/// Counts its own clones.
#[derive(Debug, Default)]
pub struct Cloned {
    value: u64,
    clones: Arc<AtomicUsize>,
}

impl Clone for Cloned {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Cloned {
            value: self.value,
            clones: Arc::clone(&self.clones),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.clones.fetch_add(1, Ordering::SeqCst);
        self.value = source.value;
    }
}

#[peeper::server(keep = snapshot)]
impl Cloned {
    #[call]
    fn read(&self) -> u64 {
        self.value
    }

    #[call]
    async fn read_async(&self, plus: u64) -> u64 {
        self.value + plus
    }

    #[cast]
    fn write(&mut self) {
        self.value += 1;
    }
}

#[tokio::test]
async fn shared_handlers_never_copy_the_state() -> Result<(), Box<dyn std::error::Error>> {
    let clones = Arc::new(AtomicUsize::new(0));
    let server = Cloned::start(Cloned {
        value: 0,
        clones: Arc::clone(&clones),
    })
    .await?;
    server.read().await?; // settle whatever `start` copies
    let before = clones.load(Ordering::SeqCst);
    for _ in 0..100 {
        server.read().await?;
        server.read_async(1).await?;
    }
    assert_eq!(
        clones.load(Ordering::SeqCst),
        before,
        "`&self` handlers copied the state"
    );
    server.write()?;
    assert_eq!(server.read().await?, 1);
    assert_eq!(
        clones.load(Ordering::SeqCst),
        before + 1,
        "a `&mut self` handler copies once"
    );
    server.stop().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `#[derive(peeper::State)]` with `keep = projection`
// ---------------------------------------------------------------------------------------------

fn fresh_connection() -> String {
    "reconnected".to_owned()
}

/// A session: the cart is kept, the cache and the connection are rebuilt after a crash.
#[derive(Debug, Default, peeper::State)]
pub struct Session {
    user: String,
    cart: Vec<String>,
    #[keep(skip)]
    cache: Vec<u8>,
    #[keep(skip, with = fresh_connection)]
    connection: String,
}

#[peeper::server(keep = projection)]
impl Session {
    #[cast]
    fn add(&mut self, item: String) {
        self.cart.push(item);
        self.cache.push(1);
        self.connection = "open".to_owned();
    }

    #[call]
    fn view(&self) -> (String, Vec<String>, usize, String) {
        (
            self.user.clone(),
            self.cart.clone(),
            self.cache.len(),
            self.connection.clone(),
        )
    }

    #[call]
    fn crash(&mut self) {
        self.cart.clear();
        panic!("lost connection");
    }
}

#[tokio::test]
async fn skipped_fields_are_rebuilt_after_a_crash() -> Result<(), Box<dyn std::error::Error>> {
    let session = Session::start(Session {
        user: "ada".into(),
        ..Session::default()
    })
    .await?;
    session.add("book".into())?;
    assert_eq!(
        session.view().await?,
        (
            "ada".to_owned(),
            vec!["book".to_owned()],
            1,
            "open".to_owned()
        )
    );
    assert!(session.crash().await.is_err());
    assert_eq!(
        session.view().await?,
        (
            "ada".to_owned(),
            vec!["book".to_owned()],
            0,
            "reconnected".to_owned()
        )
    );
    session.stop().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Generic servers, `Result` from `#[init]`, `#[terminate]`, `#[cfg]`
// ---------------------------------------------------------------------------------------------

/// What a queue holds.
pub trait Item: Clone + Send + Sync + 'static {}
impl Item for u8 {}
impl Item for String {}

/// A generic server; `L` appears in no message, so the enums hide a phantom variant.
#[derive(Clone, Debug)]
pub struct Queue<T, L = ()> {
    items: Vec<T>,
    limit: usize,
    log: std::marker::PhantomData<L>,
}

#[peeper::server(keep = in_place)]
impl<T: Item, L> Queue<T, L>
where
    L: Clone + Send + Sync + 'static,
{
    #[init]
    fn check(&mut self) -> Result<(), String> {
        if self.limit == 0 {
            Err("a queue needs room".to_owned())
        } else {
            Ok(())
        }
    }

    #[cast]
    fn push(&mut self, item: T) {
        if self.items.len() < self.limit {
            self.items.push(item);
        }
    }

    #[call]
    fn pop(&mut self) -> Option<T> {
        self.items.pop()
    }

    #[call]
    fn len(&self) -> usize {
        self.items.len()
    }

    #[info]
    fn extend(&mut self, items: Vec<T>) {
        self.items.extend(items);
    }

    #[cfg(any())]
    #[call]
    fn never_compiled(&self) -> NoSuchType {
        unreachable!()
    }

    #[terminate]
    fn bye(&mut self, reason: &Exit) {
        assert_eq!(*reason, Exit::Normal);
    }
}

#[tokio::test]
async fn generic_servers_work() -> Result<(), Box<dyn std::error::Error>> {
    let queue: QueueClient<String, ()> = Queue::start(Queue {
        items: Vec::new(),
        limit: 3,
        log: std::marker::PhantomData,
    })
    .await?;
    queue.push("a".to_owned())?;
    queue.send(QueueInfo::Extend {
        items: vec!["b".to_owned(), "c".to_owned()],
    })?;
    assert_eq!(queue.len().await?, 3);
    assert_eq!(queue.pop().await?, Some("c".to_owned()));
    queue.stop().await?;

    let bad = Queue::<u8>::start(Queue {
        items: Vec::new(),
        limit: 0,
        log: std::marker::PhantomData,
    })
    .await;
    assert!(
        matches!(&bad, Err(StartError::Init(Exit::InitFailed { message })) if message == "a queue needs room"),
        "{bad:?}"
    );
    Ok(())
}
