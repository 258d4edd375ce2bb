//! The code `#[peeper::server]` and `#[derive(peeper::State)]` generate triggers no warning, not
//! even under `clippy::pedantic`: the workspace's `cargo clippy --all-targets -- -D warnings`
//! checks this file. The only lint the macro allows on the user's methods is
//! `clippy::needless_pass_by_value` on handlers with arguments: owned arguments are the macro's
//! rule (a message outlives its sender's borrows), not the user's choice.
#![deny(warnings, clippy::pedantic)]

use std::collections::HashMap;
use std::fmt;

use peeper::{Context, Exit};

/// A raw message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick(pub u64);

/// A user, for `Result` replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub String);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no entry `{}`", self.0)
    }
}

impl std::error::Error for Missing {}

/// A key-value store, with every kind of handler.
#[derive(Debug, Clone, Default)]
pub struct Store {
    entries: HashMap<String, u64>,
    ticks: u64,
}

#[peeper::server]
impl Store {
    /// Starts empty.
    #[init]
    fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), Missing> {
        if ctx.incarnation() > 1_000 {
            return Err(Missing("a stable worker".to_owned()));
        }
        self.ticks = 0;
        Ok(())
    }

    /// The value of `key`.
    #[call]
    fn get(&self, key: String) -> Result<u64, Missing> {
        self.entries.get(&key).copied().ok_or(Missing(key))
    }

    /// Sets `key` to `value`, returning the old value.
    #[call]
    async fn put(&mut self, key: String, value: u64) -> Option<u64> {
        tokio::task::yield_now().await;
        self.entries.insert(key, value)
    }

    /// How many entries.
    #[call]
    fn len(&self, ctx: &mut Context<Self>) -> usize {
        let _ = ctx.incarnation();
        self.entries.len()
    }

    /// Removes `key`.
    #[cast]
    fn remove(&mut self, key: String) {
        self.entries.remove(&key);
    }

    /// Empties the store; fails (a crash) if it already was.
    #[cast]
    fn clear(&mut self) -> Result<(), Missing> {
        if self.entries.is_empty() {
            return Err(Missing("*".to_owned()));
        }
        self.entries.clear();
        Ok(())
    }

    /// A tick.
    #[info]
    fn tick(&mut self, tick: Tick) {
        self.ticks += tick.0;
    }

    /// A ping.
    #[info]
    fn ping(&mut self) {
        self.ticks += 1;
    }

    /// Says goodbye.
    #[terminate]
    fn terminate(&mut self, reason: &Exit, ctx: &mut Context<Self>) {
        let _ = (reason, ctx.incarnation());
        self.entries.clear();
    }
}

/// A generic server with a bound and a where clause, kept by projection.
#[derive(Debug, peeper::State)]
pub struct Stack<T> {
    items: Vec<T>,
    #[keep(skip)]
    peeks: u64,
}

#[peeper::server(keep = projection)]
impl<T> Stack<T>
where
    T: Clone + fmt::Debug + Send + Sync + 'static,
{
    /// Pushes an item.
    #[cast]
    fn push(&mut self, item: T) {
        self.items.push(item);
    }

    /// Pops an item.
    #[call]
    fn pop(&mut self) -> Option<T> {
        self.items.pop()
    }

    /// Looks at the top.
    #[call]
    fn peek(&mut self) -> Option<T> {
        self.peeks += 1;
        self.items.last().cloned()
    }
}

#[tokio::test]
async fn the_lint_clean_servers_run() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::start(Store::default()).await?;
    assert_eq!(store.put("a".to_owned(), 1).await?, None);
    assert_eq!(store.get("a".to_owned()).await?, Ok(1));
    assert_eq!(
        store.get("b".to_owned()).await?,
        Err(Missing("b".to_owned()))
    );
    store.send(Tick(2))?;
    store.send(StoreInfo::Ping)?;
    store.remove("a".to_owned())?;
    assert_eq!(store.len().await?, 0);
    store.stop().await?;

    let stack = Stack::start(Stack {
        items: vec![1_u8],
        peeks: 0,
    })
    .await?;
    stack.push(2)?;
    assert_eq!(stack.peek().await?, Some(2));
    assert_eq!(stack.pop().await?, Some(2));
    stack.stop().await?;
    Ok(())
}
