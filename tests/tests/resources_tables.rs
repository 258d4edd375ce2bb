//! Kept tables: odd keys, writes that a panic does not undo, access levels and their typed
//! errors, what is left of a branch's tables once it ends, and one table's identity across
//! 10,000 crashes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use peeper::{
    Access, CallError, Exit, OrderedTable, ReadOnly, ReadWrite, Table, TableError, TableId,
};
use peeper_tests::unique;

// ---------------------------------------------------------------------------------------------
// Odd keys
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Point {
    x: i32,
    y: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Dot,
    Line(Point, Point),
}

/// One table per odd key type, of both kinds.
#[derive(Clone, Debug)]
pub struct OddTables {
    tuples: Table<(u8, String, bool), &'static str>,
    strings: Table<String, u32>,
    structs: Table<Point, Shape>,
    units: Table<(), u32>,
    enums: OrderedTable<Shape, u32>,
    ordered_tuples: OrderedTable<(i64, String), ()>,
    ordered_units: OrderedTable<(), String>,
}

#[derive(Clone, Debug, Default)]
pub struct Odd;

/// What `lookups` finds: by `&str`, by struct, by `()`, and the enum keys in order.
type Lookups = (Option<u32>, Option<Shape>, Option<u32>, Vec<Shape>);

#[peeper::server]
impl Odd {
    #[call]
    fn tables(&self, ctx: &mut peeper::Context<Self>) -> Result<OddTables, TableError> {
        Ok(OddTables {
            tuples: ctx.table("tuples")?,
            strings: ctx.table("strings")?,
            structs: ctx.table("structs")?,
            units: ctx.table("units")?,
            enums: ctx.ordered_table("enums")?,
            ordered_tuples: ctx.ordered_table("ordered tuples")?,
            ordered_units: ctx.ordered_table("ordered units")?,
        })
    }

    /// Looks the keys up from a handler, with borrowed forms where the key type allows.
    #[call]
    fn lookups(&self, ctx: &mut peeper::Context<Self>) -> Result<Lookups, TableError> {
        let strings: Table<String, u32> = ctx.table("strings")?;
        let structs: Table<Point, Shape> = ctx.table("structs")?;
        let units: Table<(), u32> = ctx.table("units")?;
        let enums: OrderedTable<Shape, u32> = ctx.ordered_table("enums")?;
        Ok((
            strings.get("héllo wörld"), // `&str` for a `String` key
            structs.get(&Point { x: -1, y: 2 }),
            units.get(&()),
            enums.to_vec().into_iter().map(|(shape, _)| shape).collect(),
        ))
    }
}

#[tokio::test]
async fn odd_keys_work_and_survive_a_crash() {
    let odd = Odd::start(Odd).await.unwrap();
    let t = odd.tables().await.unwrap().unwrap();
    let line = Shape::Line(Point { x: 0, y: 0 }, Point { x: 1, y: 1 });

    t.tuples.insert((1, "one".into(), true), "first");
    t.tuples.insert((1, "one".into(), false), "second");
    t.strings.insert("héllo wörld".into(), 1);
    t.strings.insert(String::new(), 2);
    t.structs.insert(Point { x: -1, y: 2 }, line.clone());
    t.units.insert((), 7);
    t.enums.insert(line.clone(), 1);
    t.enums.insert(Shape::Dot, 0);
    t.ordered_tuples.insert((-5, "b".into()), ());
    t.ordered_tuples.insert((-5, "a".into()), ());
    t.ordered_tuples.insert((3, String::new()), ());
    t.ordered_units.insert((), "only one".into());
    t.ordered_units.insert((), "still one".into());

    let restarted = odd.branch().next_restart();
    odd.branch().kill_worker().unwrap();
    restarted.await.unwrap();

    let (string, shape, unit, shapes) = odd.lookups().await.unwrap().unwrap();
    assert_eq!(string, Some(1));
    assert_eq!(shape, Some(line.clone()));
    assert_eq!(unit, Some(7));
    assert_eq!(shapes, [Shape::Dot, line]); // `Dot` sorts first, as the enum derives `Ord`

    let again = odd.tables().await.unwrap().unwrap();
    assert_eq!(again.tuples.len(), 2);
    assert_eq!(again.tuples.get(&(1, "one".into(), false)), Some("second"));
    assert_eq!(again.strings.get(""), Some(2));
    assert_eq!(again.units.len(), 1);
    assert_eq!(
        again.ordered_tuples.first(),
        Some(((-5, "a".to_owned()), ()))
    );
    assert_eq!(
        again
            .ordered_tuples
            .range((-5, String::new())..(0, String::new())),
        vec![((-5, "a".to_owned()), ()), ((-5, "b".to_owned()), ())]
    );
    assert_eq!(
        again.ordered_units.to_vec(),
        vec![((), "still one".to_owned())]
    );
    assert!(Table::same(&t.structs, &again.structs));
    assert!(OrderedTable::same(&t.ordered_units, &again.ordered_units));
    odd.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// A write, then a panic
// ---------------------------------------------------------------------------------------------

type Entries = Vec<(u64, &'static str)>;

#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Handlers that completed after writing.
    completed: u64,
}

#[peeper::server]
impl Ledger {
    /// Writes `first`, changes the state, then panics if told to, before writing `second`.
    #[call]
    fn write(
        &mut self,
        first: u64,
        second: u64,
        panic: bool,
        ctx: &mut peeper::Context<Self>,
    ) -> Result<(), TableError> {
        let hash: Table<u64, &'static str> = ctx.table("hash")?;
        let ordered: OrderedTable<u64, &'static str> = ctx.ordered_table("ordered")?;
        hash.insert(first, "before");
        ordered.insert(first, "before");
        self.completed += 1; // a state change: rolled back with the crash
        if panic {
            panic!("after the first write");
        }
        hash.insert(second, "after");
        ordered.insert(second, "after");
        Ok(())
    }

    /// What the next handler sees.
    #[call]
    fn seen(&self, ctx: &mut peeper::Context<Self>) -> Result<(u64, Entries, Entries), TableError> {
        let hash: Table<u64, &'static str> = ctx.table("hash")?;
        let ordered: OrderedTable<u64, &'static str> = ctx.ordered_table("ordered")?;
        let mut hash = hash.to_vec();
        hash.sort_unstable();
        Ok((self.completed, hash, ordered.to_vec()))
    }
}

/// Tables are not rolled back (as ETS is not): the next handler sees what the crashing one wrote
/// before it panicked, and nothing it would have written after. The state *is* rolled back.
#[tokio::test]
async fn a_handler_that_writes_then_panics_has_written() {
    let ledger = Ledger::start(Ledger::default()).await.unwrap();
    assert_eq!(ledger.write(1, 10, false).await, Ok(Ok(())));

    let restarted = ledger.branch().next_restart();
    let crash = ledger.write(2, 3, true).await;
    assert_eq!(
        crash,
        Err(CallError::Crashed(Exit::Panicked {
            message: "after the first write".into()
        }))
    );
    restarted.await.unwrap();

    let (completed, hash, ordered) = ledger.seen().await.unwrap().unwrap();
    assert_eq!(
        completed, 1,
        "the state goes back to the last completed handler's"
    );
    let expected = vec![(1, "before"), (2, "before"), (10, "after")];
    assert_eq!(
        hash, expected,
        "2 was written before the panic and stays; 3 never was"
    );
    assert_eq!(ordered, expected);
    ledger.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Access levels
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct Levels;

#[peeper::server]
impl Levels {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), TableError> {
        ctx.table_with::<String, u64>("private", Access::Private)?
            .insert("secret".into(), 1);
        ctx.table_with::<String, u64>("protected", Access::Protected)?
            .insert("read me".into(), 2);
        ctx.table_with::<String, u64>("public", Access::Public)?
            .insert("write me".into(), 3);
        ctx.ordered_table_with::<u64, String>("ordered", Access::Public)?;
        Ok(())
    }

    #[call]
    fn read(&self, table: String, key: String, ctx: &mut peeper::Context<Self>) -> Option<u64> {
        [Access::Private, Access::Protected, Access::Public]
            .into_iter()
            .find_map(|access| ctx.table_with::<String, u64>(&table, access).ok())?
            .get(&key)
    }

    /// What the worker's own context says to a wrong access level or a wrong type.
    #[call]
    fn misuse(&self, ctx: &mut peeper::Context<Self>) -> Vec<TableError> {
        vec![
            ctx.table_with::<String, u64>("private", Access::Public)
                .unwrap_err(),
            ctx.table::<String, String>("protected").unwrap_err(),
            ctx.ordered_table::<String, u64>("protected").unwrap_err(),
            ctx.table::<u64, String>("ordered").unwrap_err(),
        ]
    }
}

#[tokio::test]
async fn each_access_level_allows_what_ets_allows_and_no_more() {
    let server = unique("levels");
    let levels = Levels::builder(Levels).name(&server).start().await.unwrap();
    type Hash = Table<String, u64>;

    // Private: nobody else.
    let private = peeper::table::<Levels, ReadOnly<Hash>>(&server, "private");
    assert_eq!(
        private.unwrap_err(),
        TableError::Private {
            table: "private".into()
        }
    );
    let private = peeper::table::<Levels, ReadWrite<Hash>>(&server, "private");
    assert!(matches!(private, Err(TableError::Private { .. })));

    // Protected: others read, never write.
    let protected: ReadOnly<Hash> = peeper::table::<Levels, _>(&server, "protected").unwrap();
    assert_eq!(protected.get("read me"), Ok(Some(2)));
    let write = peeper::table::<Levels, ReadWrite<Hash>>(&server, "protected");
    let error = write.unwrap_err();
    assert_eq!(
        error,
        TableError::ReadOnly {
            table: "protected".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "table `protected` is protected: other tasks may read it (`ReadOnly`), not write it"
    );

    // Public: others read and write, and the worker sees the writes.
    let public: ReadWrite<Hash> = peeper::table::<Levels, _>(&server, "public").unwrap();
    assert_eq!(public.insert("written".into(), 4), Ok(None));
    assert_eq!(public.update("write me", |n| *n += 10), Ok(Some(())));
    assert_eq!(
        levels.read("public".into(), "written".into()).await,
        Ok(Some(4))
    );
    assert_eq!(
        levels.read("public".into(), "write me".into()).await,
        Ok(Some(13))
    );
    let reader: ReadOnly<Hash> = peeper::table::<Levels, _>(&server, "public").unwrap();
    assert_eq!(reader.len(), Ok(2));
    let ordered: ReadWrite<OrderedTable<u64, String>> =
        peeper::table::<Levels, _>(&server, "ordered").unwrap();
    ordered.insert(1, "one".into()).unwrap();
    assert_eq!(ordered.first(), Ok(Some((1, "one".to_owned()))));

    // Wrong types, wrong kind, unknown names.
    let wrong = peeper::table::<Levels, ReadOnly<Table<u64, u64>>>(&server, "public");
    let Err(TableError::WrongType {
        table,
        expected,
        found,
    }) = wrong
    else {
        panic!("expected WrongType, got {wrong:?}");
    };
    assert_eq!(table, "public");
    assert!(expected.contains("Table<u64, u64>"), "{expected}");
    assert!(
        found.contains("Table<alloc::string::String, u64>"),
        "{found}"
    );
    let kind = peeper::table::<Levels, ReadOnly<OrderedTable<String, u64>>>(&server, "public");
    assert!(matches!(kind, Err(TableError::WrongType { .. })));
    let missing = peeper::table::<Levels, ReadOnly<Hash>>(&server, "missing");
    assert_eq!(
        missing.unwrap_err(),
        TableError::NotFound {
            server: server.clone(),
            table: "missing".into()
        }
    );
    let nobody = peeper::table::<Levels, ReadOnly<Hash>>("nobody", "public");
    assert_eq!(
        nobody.unwrap_err(),
        TableError::ServerNotFound {
            server: "nobody".into()
        }
    );
    // Names are per server type: another type's server of that name is not this one.
    let other = peeper::table::<Ledger, ReadOnly<Hash>>(&server, "public");
    assert!(matches!(other, Err(TableError::ServerNotFound { .. })));

    // The worker itself: a table keeps the access level and the types it was created with.
    let misuse = levels.misuse().await.unwrap();
    assert_eq!(
        misuse[0],
        TableError::AccessMismatch {
            table: "private".into(),
            existing: Access::Private,
            requested: Access::Public
        }
    );
    assert!(
        misuse[1..]
            .iter()
            .all(|error| matches!(error, TableError::WrongType { .. }))
    );
    // The worker reads its private table, of course.
    assert_eq!(
        levels.read("private".into(), "secret".into()).await,
        Ok(Some(1))
    );
    levels.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The end of a branch
// ---------------------------------------------------------------------------------------------

/// A value that counts its drops.
#[derive(Debug)]
pub struct DropCounted(Arc<AtomicUsize>);

impl Drop for DropCounted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Puts three counted values in a table and one in the kept values; never keeps a handle in
/// its state, so only the branch holds the table.
#[derive(Clone, Debug, Default)]
pub struct Holder {
    drops: Arc<AtomicUsize>,
}

#[peeper::server]
impl Holder {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), TableError> {
        let table = ctx.table_with::<u32, DropCounted>("values", Access::Public)?;
        if table.is_empty() {
            for n in 0..3 {
                table.insert(n, DropCounted(Arc::clone(&self.drops)));
            }
            ctx.keep(DropCounted(Arc::clone(&self.drops)));
        }
        Ok(())
    }

    /// The worker's own handle, given away.
    #[call]
    fn give_away(
        &self,
        ctx: &mut peeper::Context<Self>,
    ) -> Result<Table<u32, DropCounted>, TableError> {
        ctx.table_with("values", Access::Public)
    }

    #[call]
    fn fail(&self) {
        panic!("once too often");
    }
}

#[tokio::test]
async fn the_tables_of_a_stopped_branch_are_gone() {
    let server = unique("holder");
    let drops = Arc::new(AtomicUsize::new(0));
    let holder = Holder::builder(Holder {
        drops: Arc::clone(&drops),
    })
    .name(&server)
    .start()
    .await
    .unwrap();
    let reader: ReadOnly<Table<u32, DropCounted>> =
        peeper::table::<Holder, _>(&server, "values").unwrap();
    let writer: ReadWrite<Table<u32, DropCounted>> =
        peeper::table::<Holder, _>(&server, "values").unwrap();
    let given = holder.give_away().await.unwrap().unwrap();
    assert!(reader.is_attached() && given.is_attached());
    assert_eq!(reader.len(), Ok(3));
    let id: TableId = reader.id();

    holder.stop().await.unwrap(); // resolves once the branch has completely ended
    let ended = TableError::BranchEnded {
        table: "values".into(),
    };

    // Every value, in the table and kept, was dropped with the branch, although handles remain.
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    // Outside handles refuse everything.
    assert!(!reader.is_attached());
    assert_eq!(reader.len(), Err(ended.clone()));
    assert_eq!(reader.get_with(&0, |_| ()), Err(ended.clone()));
    assert_eq!(writer.remove(&0).map(|_| ()), Err(ended.clone()));
    let extra = Arc::new(AtomicUsize::new(0));
    let refused = writer.insert(9, DropCounted(Arc::clone(&extra)));
    assert_eq!(refused.map(|_| ()), Err(ended.clone()));
    assert_eq!(
        extra.load(Ordering::SeqCst),
        1,
        "the refused value is dropped"
    );
    // No lookup finds them.
    let lookup = peeper::table::<Holder, ReadOnly<Table<u32, DropCounted>>>(&server, "values");
    assert!(matches!(lookup, Err(TableError::ServerNotFound { .. })));
    // The handle the worker gave away is detached: empty, and seen by nobody else.
    assert!(!given.is_attached());
    assert!(given.is_empty());

    // A new server under the same name has a new table; the old handles do not see it.
    let again = Holder::builder(Holder::default())
        .name(&server)
        .start()
        .await
        .unwrap();
    let fresh: ReadOnly<Table<u32, DropCounted>> =
        peeper::table::<Holder, _>(&server, "values").unwrap();
    assert_ne!(fresh.id(), id);
    assert_eq!(fresh.len(), Ok(3));
    assert_eq!(reader.len(), Err(ended));
    again.stop().await.unwrap();
}

/// The same when the branch gives up after too many restarts.
#[tokio::test]
async fn the_tables_of_a_branch_that_gave_up_are_gone() {
    let server = unique("holder-gives-up");
    let drops = Arc::new(AtomicUsize::new(0));
    let holder = Holder::builder(Holder {
        drops: Arc::clone(&drops),
    })
    .name(&server)
    .max_restarts(0)
    .start()
    .await
    .unwrap();
    let reader: ReadOnly<Table<u32, DropCounted>> =
        peeper::table::<Holder, _>(&server, "values").unwrap();

    assert!(holder.fail().await.is_err());
    let exit = holder.branch().ended().await;
    assert!(matches!(exit, Exit::RestartLimit { .. }), "{exit:?}");
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    assert!(!reader.is_attached());
    assert!(matches!(reader.len(), Err(TableError::BranchEnded { .. })));
}

// ---------------------------------------------------------------------------------------------
// Identity across many crashes
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct Survivor;

#[peeper::server]
impl Survivor {
    /// Every incarnation writes its number into the table.
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), TableError> {
        let incarnation = ctx.incarnation();
        ctx.table::<u64, ()>("incarnations")?
            .insert(incarnation, ());
        Ok(())
    }

    #[call]
    fn table(&self, ctx: &mut peeper::Context<Self>) -> Result<Table<u64, ()>, TableError> {
        ctx.table("incarnations")
    }
}

/// 10,000 kills, and after each one the table is the very allocation it was at the start: no
/// incarnation got a copy (and every one of them wrote to it).
#[tokio::test]
async fn ten_thousand_crashes_keep_one_table() {
    const CRASHES: u64 = 10_000;
    let survivor = Survivor::builder(Survivor)
        .max_restarts(u32::MAX)
        .start()
        .await
        .unwrap();
    let first = survivor.table().await.unwrap().unwrap();
    let id = first.id();
    for crash in 1..=CRASHES {
        let restarted = survivor.branch().next_restart();
        survivor.branch().kill_worker().unwrap();
        assert_eq!(restarted.await, Ok(crash));
        let now = survivor.table().await.unwrap().unwrap();
        assert!(Table::same(&first, &now), "copied at crash {crash}");
        assert_eq!(now.id(), id);
    }
    assert_eq!(survivor.branch().restarts(), CRASHES);
    assert_eq!(first.len() as u64, CRASHES + 1);
    assert!((0..=CRASHES).all(|incarnation| first.contains_key(&incarnation)));
    survivor.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Hibernation
// ---------------------------------------------------------------------------------------------

/// A durable server: its state goes to the store when it hibernates; its table and its kept
/// value stay with the branch.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Sleeper {
    count: u64,
}

impl peeper::Persist for Sleeper {
    const KIND: &'static str = "resources-sleeper";
}

/// A kept value of `Sleeper`.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened(u64);

#[peeper::server]
impl Sleeper {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) {
        if ctx.kept::<Opened>().is_none() {
            let incarnation = ctx.incarnation();
            ctx.keep(Opened(incarnation));
        }
    }

    #[call]
    fn add(
        &mut self,
        key: u64,
        ctx: &mut peeper::Context<Self>,
    ) -> Result<(u64, Table<u64, u64>), TableError> {
        self.count += 1;
        let table = ctx.table("seen")?;
        table.insert(key, self.count);
        Ok((self.count, table))
    }

    #[call]
    fn opened_by(&self, ctx: &mut peeper::Context<Self>) -> Option<u64> {
        ctx.kept::<Opened>().map(|opened| opened.0)
    }
}

/// Hibernation (`idle_after`) takes the state out of memory, into the store; the tables and kept
/// values stay with the branch, and the revived worker gets them back, the same ones.
#[tokio::test(start_paused = true)]
async fn tables_and_kept_values_stay_while_a_server_hibernates() {
    let storage = peeper::store::Storage::new(peeper::store::Memory::new());
    let sleeper = Sleeper::builder(Sleeper::default())
        .name(unique("sleeper"))
        .store(storage)
        .idle_after(std::time::Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let (count, before) = sleeper.add(7).await.unwrap().unwrap();
    assert_eq!(count, 1);

    sleeper.branch().hibernated().await.unwrap();
    assert!(sleeper.branch().is_hibernating());
    assert!(before.is_attached());
    assert_eq!(before.get(&7), Some(1));

    let (count, after) = sleeper.add(8).await.unwrap().unwrap(); // revives it
    assert_eq!(count, 2, "the state came back from the store");
    assert!(sleeper.branch().incarnation() > 0, "a new worker");
    assert!(Table::same(&before, &after));
    assert_eq!(after.len(), 2);
    assert_eq!(sleeper.opened_by().await, Ok(Some(0)));
    sleeper.stop().await.unwrap();
    assert!(!before.is_attached());
}
