//! The kept resources a handler reaches through its [`Context`]: tables and values that the
//! branch keeps across crashes and moves with transfers.

use std::any::{Any, TypeId};

use crate::{Access, Context, OrderedTable, Server, Table, TableError};

/// Kept resources: tables and values that the branch keeps across crashes and moves with
/// transfers. See the book's chapter on kept resources for when to use them rather than the
/// state.
impl<S: Server> Context<S> {
    /// The branch's hash table named `name`, [`Access::Protected`], created empty on first use,
    /// and the very same table (not a copy) for every later call, in this incarnation or any
    /// later one, after any number of crashes, and after a [`transfer`](crate::transfer).
    /// Dropped when the branch ends.
    ///
    /// The kind of table is chosen by the method (this one, or
    /// [`ordered_table`](Context::ordered_table)) rather than by an option, because it decides the
    /// handle type: its key bounds (`Hash + Eq` or `Ord`) and its methods (ranges only on ordered
    /// tables) are then checked at compile time. The access level is a plain value
    /// ([`table_with`](Context::table_with)), since it only decides what *other* tasks may do.
    ///
    /// Writes are never rolled back: a handler that writes and then panics has written.
    ///
    /// # Errors
    /// [`TableError::WrongType`] if `name` holds a table of other types or kind,
    /// [`TableError::AccessMismatch`] if it was created with another access level.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Cache;
    ///
    /// #[peeper::server]
    /// impl Cache {
    ///     #[call]
    ///     fn square(&self, n: u64, ctx: &mut peeper::Context<Self>) -> Result<u64, peeper::TableError> {
    ///         let squares = ctx.table::<u64, u64>("squares")?;
    ///         Ok(squares.get_or_insert_with(n, || n * n))
    ///     }
    ///
    ///     #[call]
    ///     fn cached(&self, ctx: &mut peeper::Context<Self>) -> Result<usize, peeper::TableError> {
    ///         Ok(ctx.table::<u64, u64>("squares")?.len())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = Cache::start(Cache).await?;
    /// assert_eq!(cache.square(12).await??, 144);
    ///
    /// let restarted = cache.branch().next_restart();
    /// cache.branch().kill_worker()?;
    /// restarted.await?;
    /// assert_eq!(cache.cached().await??, 1);   // still warm
    /// # Ok(()) }
    /// ```
    pub fn table<K, V>(&self, name: &str) -> Result<Table<K, V>, TableError>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        self.table_with(name, Access::default())
    }

    /// [`table`](Context::table), with an access level other than the default
    /// [`Access::Protected`]. The first call decides the level; a later call asking for another
    /// fails with [`TableError::AccessMismatch`].
    ///
    /// # Errors
    /// As [`table`](Context::table).
    ///
    /// ```
    /// use peeper::{Access, ReadWrite, Table};
    ///
    /// #[derive(Clone, Default)]
    /// pub struct Hits;
    ///
    /// #[peeper::server]
    /// impl Hits {
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), peeper::TableError> {
    ///         ctx.table_with::<String, u64>("hits", Access::Public)?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let _hits = Hits::builder(Hits).name("hits").start().await?;
    /// let hits: ReadWrite<Table<String, u64>> = peeper::table::<Hits, _>("hits", "hits")?;
    /// hits.insert("/".to_owned(), 1)?;   // anyone may write a public table
    /// # Ok(()) }
    /// ```
    pub fn table_with<K, V>(&self, name: &str, access: Access) -> Result<Table<K, V>, TableError>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        Table::open(self.client.branch().resources().tables(), name, access)
    }

    /// The branch's ordered table named `name`, [`Access::Protected`]: as
    /// [`table`](Context::table), sorted by key, with range queries.
    ///
    /// # Errors
    /// As [`table`](Context::table).
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Log;
    ///
    /// #[peeper::server]
    /// impl Log {
    ///     #[cast]
    ///     fn record(&self, at: u64, line: String, ctx: &mut peeper::Context<Self>) -> Result<(), peeper::TableError> {
    ///         ctx.ordered_table::<u64, String>("lines")?.insert(at, line);
    ///         Ok(())
    ///     }
    ///
    ///     #[call]
    ///     fn since(&self, at: u64, ctx: &mut peeper::Context<Self>) -> Result<Vec<(u64, String)>, peeper::TableError> {
    ///         Ok(ctx.ordered_table::<u64, String>("lines")?.range(at..))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let log = Log::start(Log).await?;
    /// log.record(20, "b".to_owned())?;
    /// log.record(10, "a".to_owned())?;
    /// log.record(30, "c".to_owned())?;
    /// assert_eq!(log.since(20).await??, vec![(20, "b".to_owned()), (30, "c".to_owned())]);
    /// # Ok(()) }
    /// ```
    pub fn ordered_table<K, V>(&self, name: &str) -> Result<OrderedTable<K, V>, TableError>
    where
        K: Ord + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        self.ordered_table_with(name, Access::default())
    }

    /// [`ordered_table`](Context::ordered_table), with an access level other than the default.
    ///
    /// # Errors
    /// As [`table_with`](Context::table_with).
    ///
    /// ```
    /// use peeper::{Access, ReadOnly, OrderedTable, TableError};
    ///
    /// #[derive(Clone, Default)]
    /// pub struct Secret;
    ///
    /// #[peeper::server]
    /// impl Secret {
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), TableError> {
    ///         ctx.ordered_table_with::<u64, String>("keys", Access::Private)?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let _secret = Secret::builder(Secret).name("secret").start().await?;
    /// let denied = peeper::table::<Secret, ReadOnly<OrderedTable<u64, String>>>("secret", "keys");
    /// assert!(matches!(denied, Err(TableError::Private { .. })));
    /// # Ok(()) }
    /// ```
    pub fn ordered_table_with<K, V>(
        &self,
        name: &str,
        access: Access,
    ) -> Result<OrderedTable<K, V>, TableError>
    where
        K: Ord + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        OrderedTable::open(self.client.branch().resources().tables(), name, access)
    }

    /// Keeps `value` across crashes and transfers, the counterpart of `Process.put/2`: one value
    /// per type (wrap values in newtypes to keep several of one type), and returns the value of
    /// that type kept before, if any.
    ///
    /// Kept values are the worker's alone (no other task can reach them), are borrowed with no
    /// lock ([`kept`](Context::kept), [`kept_mut`](Context::kept_mut)), and, like tables, are
    /// not rolled back when a handler panics after changing them. They are dropped when the
    /// branch ends.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Worker;
    ///
    /// /// A connection that is expensive to open: kept, not part of the state.
    /// pub struct Connection { opened: u64 }
    ///
    /// #[peeper::server]
    /// impl Worker {
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) {
    ///         if ctx.kept::<Connection>().is_none() {
    ///             let opened = ctx.incarnation();
    ///             ctx.keep(Connection { opened });
    ///         }
    ///     }
    ///
    ///     #[call]
    ///     fn opened_by(&self, ctx: &mut peeper::Context<Self>) -> Option<u64> {
    ///         ctx.kept::<Connection>().map(|connection| connection.opened)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let worker = Worker::start(Worker).await?;
    /// let restarted = worker.branch().next_restart();
    /// worker.branch().kill_worker()?;
    /// assert_eq!(restarted.await?, 1);
    /// assert_eq!(worker.opened_by().await?, Some(0));   // opened by incarnation 0, kept
    /// # Ok(()) }
    /// ```
    pub fn keep<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        let old = self.values.insert(TypeId::of::<T>(), Box::new(value))?;
        downcast(old)
    }

    /// The kept value of type `T`, if any, the counterpart of `Process.get/1`.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Greeter;
    ///
    /// #[peeper::server]
    /// impl Greeter {
    ///     #[call]
    ///     fn greet(&self, ctx: &mut peeper::Context<Self>) -> String {
    ///         let greeting = ctx.kept::<String>().cloned().unwrap_or_else(|| "hello".to_owned());
    ///         ctx.keep(greeting.to_uppercase());
    ///         greeting
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let greeter = Greeter::start(Greeter).await?;
    /// assert_eq!(greeter.greet().await?, "hello");
    /// assert_eq!(greeter.greet().await?, "HELLO");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn kept<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }

    /// The kept value of type `T`, mutably, if any.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Visits;
    ///
    /// /// How many calls all incarnations have answered.
    /// pub struct Answered(u64);
    ///
    /// #[peeper::server]
    /// impl Visits {
    ///     #[call]
    ///     fn visit(&self, ctx: &mut peeper::Context<Self>) -> u64 {
    ///         match ctx.kept_mut::<Answered>() {
    ///             Some(answered) => { answered.0 += 1; answered.0 }
    ///             None => { ctx.keep(Answered(1)); 1 }
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let visits = Visits::start(Visits).await?;
    /// assert_eq!(visits.visit().await?, 1);
    /// assert_eq!(visits.visit().await?, 2);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn kept_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.values.get_mut(&TypeId::of::<T>())?.downcast_mut::<T>()
    }

    /// Removes the kept value of type `T` and returns it, the counterpart of
    /// `Process.delete/1`.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Once;
    ///
    /// #[peeper::server]
    /// impl Once {
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) {
    ///         if ctx.incarnation() == 0 {
    ///             ctx.keep("a ticket".to_owned());
    ///         }
    ///     }
    ///
    ///     #[call]
    ///     fn take(&self, ctx: &mut peeper::Context<Self>) -> Option<String> {
    ///         ctx.take_kept::<String>()
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let once = Once::start(Once).await?;
    /// assert_eq!(once.take().await?, Some("a ticket".to_owned()));
    /// assert_eq!(once.take().await?, None);
    /// # Ok(()) }
    /// ```
    pub fn take_kept<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        downcast(self.values.remove(&TypeId::of::<T>())?)
    }
}

/// A kept value, back to its type. Values are stored under their own type id, so this cannot
/// fail; `None` would mean a bug in this module.
fn downcast<T: Send + Sync + 'static>(value: Box<dyn Any + Send + Sync>) -> Option<T> {
    value.downcast::<T>().ok().map(|value| *value)
}
