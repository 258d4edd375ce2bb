//! Kept resources, ported from Elixir Peeper's `peeper_test.exs`: "restores ETS tables and process
//! dictionary", "handles complex ETS scenarios" and "transfers process between supervisors with
//! state preservation".
//!
//! `Full` mirrors Peeper's `Peeper.Impls.Full` test server: an integer state, ordered tables
//! holding the rows `a => 42`, `b => :foo`, `c => {42, :foo}`, and a process dictionary. In
//! peeper every table is kept (Peeper needs `keep_ets` or an heir), and the dictionary is a kept
//! `HashMap` (kept values are one per type). Beyond Peeper, every test checks that what came back
//! is the very same table and value, not a copy.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use peeper::{Access, DynamicSupervisor, OrderedTable, TableId};
use peeper_tests::unique;

/// An ETS term of the test rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    Int(i64),
    Atom(&'static str),
    Pair(i64, &'static str),
}

/// What Peeper's `create_ets` inserts.
fn rows() -> Vec<(&'static str, Term)> {
    vec![
        ("a", Term::Int(42)),
        ("b", Term::Atom("foo")),
        ("c", Term::Pair(42, "foo")),
    ]
}

/// The process dictionary, as one kept value.
#[derive(Debug, Default)]
pub struct Dictionary(HashMap<String, i64>);

#[derive(Clone, Debug, Default)]
pub struct Full {
    state: u64,
}

type Rows = OrderedTable<&'static str, Term>;

#[peeper::server]
impl Full {
    /// As Peeper's `Full.init/1`: every incarnation makes sure `all_ets` exists.
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), peeper::TableError> {
        Self::create(ctx, "all_ets", Access::Protected)
    }

    fn create(
        ctx: &mut peeper::Context<Self>,
        name: &str,
        access: Access,
    ) -> Result<(), peeper::TableError> {
        let table: Rows = ctx.ordered_table_with(name, access)?;
        if table.is_empty() {
            for (key, value) in rows() {
                table.insert(key, value);
            }
        }
        Ok(())
    }

    #[call]
    fn state(&self) -> u64 {
        self.state
    }

    #[cast]
    fn inc(&mut self) {
        self.state += 1;
    }

    #[cast]
    fn create_ets(
        &self,
        name: String,
        ctx: &mut peeper::Context<Self>,
    ) -> Result<(), peeper::TableError> {
        Self::create(ctx, &name, Access::Protected)
    }

    /// Peeper's "heired" table: here a public one, to show every access level is kept alike.
    #[cast]
    fn create_heired_ets(
        &self,
        name: String,
        ctx: &mut peeper::Context<Self>,
    ) -> Result<(), peeper::TableError> {
        Self::create(ctx, &name, Access::Public)
    }

    /// `:ets.match(name, :"$1")`; `None` if there is no such table.
    #[call]
    fn ets(
        &self,
        name: String,
        ctx: &mut peeper::Context<Self>,
    ) -> Option<Vec<(&'static str, Term)>> {
        let table = Self::existing(ctx, &name)?;
        Some(table.to_vec())
    }

    /// The handle itself, to compare identities across crashes and moves.
    #[call]
    fn handle(&self, name: String, ctx: &mut peeper::Context<Self>) -> Option<Rows> {
        Self::existing(ctx, &name)
    }

    /// A table made by `create_ets` or `create_heired_ets`, whichever access it has. (Asking
    /// with the other access fails with `AccessMismatch` and creates nothing; the tests only ask
    /// for tables they made.)
    fn existing(ctx: &mut peeper::Context<Self>, name: &str) -> Option<Rows> {
        [Access::Protected, Access::Public]
            .into_iter()
            .find_map(|access| ctx.ordered_table_with(name, access).ok())
    }

    #[cast]
    fn set_pd(&self, key: String, value: i64, ctx: &mut peeper::Context<Self>) {
        if ctx.kept::<Dictionary>().is_none() {
            ctx.keep(Dictionary::default());
        }
        if let Some(dictionary) = ctx.kept_mut::<Dictionary>() {
            dictionary.0.insert(key, value);
        }
    }

    #[call]
    fn get_pd(&self, key: String, ctx: &mut peeper::Context<Self>) -> Option<i64> {
        ctx.kept::<Dictionary>()?.0.get(&key).copied()
    }

    /// Where the kept dictionary lives: the same address after a crash or a move means it was
    /// neither copied nor rebuilt.
    #[call]
    fn pd_address(&self, ctx: &mut peeper::Context<Self>) -> Option<usize> {
        ctx.kept::<Dictionary>()
            .map(|dictionary| std::ptr::from_ref(dictionary) as usize)
    }
}

fn ids(tables: &[&Rows]) -> Vec<TableId> {
    tables.iter().map(|table| table.id()).collect()
}

/// Peeper: "restores ETS tables and process dictionary".
#[tokio::test]
async fn restores_tables_and_kept_values_after_a_kill() {
    let name = unique("p3");
    let sds = DynamicSupervisor::new();
    let pid = sds
        .start_child(Full::builder(Full::default()).name(&name))
        .await
        .unwrap();
    assert_eq!(pid.state().await.unwrap(), 0);

    pid.create_ets("my_ets".into()).unwrap();
    pid.create_heired_ets("my_heired_ets".into()).unwrap();
    pid.set_pd("foo".into(), 42).unwrap();
    pid.inc().unwrap();
    let p3 = FullClient::whereis(&name).unwrap();
    assert_eq!(p3.state().await.unwrap(), 1);
    let before_tables = [
        p3.handle("my_ets".into()).await.unwrap().unwrap(),
        p3.handle("my_heired_ets".into()).await.unwrap().unwrap(),
    ];
    let before_pd = p3.pd_address().await.unwrap().unwrap();

    // Armed before the kill, so the restart cannot be missed.
    let restarted = pid.branch().next_restart();
    pid.branch().kill_worker().unwrap();
    assert_eq!(restarted.await, Ok(1));

    assert_eq!(p3.state().await.unwrap(), 1);
    assert_eq!(p3.get_pd("foo".into()).await.unwrap(), Some(42));
    assert_eq!(p3.ets("my_ets".into()).await.unwrap(), Some(rows()));
    assert_eq!(p3.ets("my_heired_ets".into()).await.unwrap(), Some(rows()));

    let after_tables = [
        p3.handle("my_ets".into()).await.unwrap().unwrap(),
        p3.handle("my_heired_ets".into()).await.unwrap().unwrap(),
    ];
    for (before, after) in before_tables.iter().zip(&after_tables) {
        assert!(OrderedTable::same(before, after), "{before:?} was copied");
    }
    assert_eq!(
        ids(&before_tables.iter().collect::<Vec<_>>()),
        ids(&after_tables.iter().collect::<Vec<_>>())
    );
    assert_eq!(p3.pd_address().await.unwrap(), Some(before_pd));
    sds.shutdown().await;
}

/// Peeper: "handles complex ETS scenarios": several tables made in different ways (at `init`,
/// by a message, public or protected) all come back after a kill.
#[tokio::test]
async fn several_tables_made_in_different_ways_all_come_back() {
    let name = unique("complex-ets");
    let pid = Full::builder(Full::default())
        .name(&name)
        .start()
        .await
        .unwrap();

    pid.create_ets("all_ets".into()).unwrap(); // exists already (made by `init`): untouched
    pid.create_ets("specific_table".into()).unwrap();
    pid.create_heired_ets("heir_ets".into()).unwrap();
    pid.inc().unwrap();
    assert_eq!(pid.state().await.unwrap(), 1);
    let names = ["all_ets", "specific_table", "heir_ets"];
    let mut before = Vec::new();
    for table in names {
        before.push(pid.handle(table.into()).await.unwrap().unwrap());
    }

    let restarted = pid.branch().next_restart();
    pid.branch().kill_worker().unwrap();
    restarted.await.unwrap();

    let complex = FullClient::whereis(&name).unwrap();
    assert_eq!(complex.state().await.unwrap(), 1);
    for (table, before) in names.into_iter().zip(&before) {
        assert_eq!(
            complex.ets(table.into()).await.unwrap(),
            Some(rows()),
            "{table}"
        );
        let after = complex.handle(table.into()).await.unwrap().unwrap();
        assert!(OrderedTable::same(before, &after), "{table} was copied");
    }
    // `init` ran again on the kept `all_ets` and found it full: it did not create another.
    assert_eq!(before[0].len(), 3);
    complex.stop().await.unwrap();
}

/// Peeper: "transfers process between supervisors with state preservation": the state, the
/// kept values and the tables move, and they are the same table and value, not copies.
#[tokio::test]
async fn transfer_moves_tables_and_kept_values_without_a_copy() {
    let name = unique("p3-moving");
    let (sds, tds) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let pid = sds
        .start_child(Full::builder(Full::default()).name(&name))
        .await
        .unwrap();

    assert_eq!(pid.state().await.unwrap(), 0);
    pid.create_ets("my_ets".into()).unwrap();
    pid.create_heired_ets("my_heired_ets".into()).unwrap();
    pid.set_pd("foo".into(), 42).unwrap();
    pid.inc().unwrap();
    assert_eq!(pid.state().await.unwrap(), 1);
    let my_ets = pid.handle("my_ets".into()).await.unwrap().unwrap();
    let heired = pid.handle("my_heired_ets".into()).await.unwrap().unwrap();
    let pd = pid.pd_address().await.unwrap().unwrap();

    let moved = pid.branch().next_restart();
    peeper::transfer(&name, &sds, &tds).await.unwrap();
    assert_eq!(moved.await, Ok(1));

    assert!(sds.which_children().is_empty());
    let children = tds.which_children();
    assert_eq!(children.len(), 1);
    let p3 = FullClient::whereis(&name).unwrap();
    assert_eq!(children[0].id(), p3.branch().id());

    assert_eq!(p3.state().await.unwrap(), 1);
    assert_eq!(p3.get_pd("foo".into()).await.unwrap(), Some(42));
    assert_eq!(p3.ets("my_ets".into()).await.unwrap(), Some(rows()));
    assert_eq!(p3.ets("my_heired_ets".into()).await.unwrap(), Some(rows()));
    let after = p3.handle("my_ets".into()).await.unwrap().unwrap();
    assert!(OrderedTable::same(&my_ets, &after));
    assert_eq!(my_ets.id(), after.id());
    let after = p3.handle("my_heired_ets".into()).await.unwrap().unwrap();
    assert!(OrderedTable::same(&heired, &after));
    assert_eq!(p3.pd_address().await.unwrap(), Some(pd));

    // A handle taken before the move writes to the table the moved server reads.
    my_ets.insert("d", Term::Atom("moved"));
    assert_eq!(p3.ets("my_ets".into()).await.unwrap().unwrap().len(), 4);
    tds.shutdown().await;
}
