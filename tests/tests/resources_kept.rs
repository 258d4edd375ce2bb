//! Kept values (the process dictionary's counterpart): one per type, kept across crashes of every
//! kind, including a kill that lands in the middle of a handler, not rolled back by a panic, seen
//! by `terminate`, and gone with the branch.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use peeper::{CallError, Exit};
use peeper_tests::{Gate, Probe};

/// Two values of one type need two types: a kept value is found by its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct First(String);
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Second(String);

/// A value that counts its drops.
#[derive(Debug)]
pub struct DropCounted(Arc<AtomicUsize>);

impl Drop for DropCounted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Debug, Default)]
pub struct Dictionary {
    gate: Gate,
    probe: Probe,
    drops: Arc<AtomicUsize>,
}

#[peeper::server]
impl Dictionary {
    /// Keeps `value` as a `First`, returns the `First` it replaced.
    #[call]
    fn put_first(&self, value: String, ctx: &mut peeper::Context<Self>) -> Option<First> {
        ctx.keep(First(value))
    }

    #[call]
    fn put_second(&self, value: String, ctx: &mut peeper::Context<Self>) -> Option<Second> {
        ctx.keep(Second(value))
    }

    #[call]
    fn both(&self, ctx: &mut peeper::Context<Self>) -> (Option<First>, Option<Second>) {
        (ctx.kept::<First>().cloned(), ctx.kept::<Second>().cloned())
    }

    #[call]
    fn take_first(&self, ctx: &mut peeper::Context<Self>) -> Option<First> {
        ctx.take_kept::<First>()
    }

    /// Changes the kept `First` in place, then panics.
    #[call]
    fn change_then_panic(&self, ctx: &mut peeper::Context<Self>) {
        if let Some(first) = ctx.kept_mut::<First>() {
            first.0.push_str(" (changed before the panic)");
        }
        panic!("after the change");
    }

    /// Keeps a `Second`, then waits at the gate, where the test kills the worker.
    #[call]
    async fn keep_then_wait(&self, ctx: &mut peeper::Context<Self>) {
        ctx.keep(Second("kept before the kill".into()));
        self.gate.pass().await;
    }

    #[call]
    fn keep_counted(&self, ctx: &mut peeper::Context<Self>) {
        ctx.keep(DropCounted(Arc::clone(&self.drops)));
    }

    #[terminate]
    fn terminate(&mut self, ctx: &mut peeper::Context<Self>) {
        let first = ctx.kept::<First>().map(|first| first.0.clone());
        self.probe.push(format!("terminate sees {first:?}"));
    }
}

#[tokio::test]
async fn one_value_per_type_kept_replaced_and_taken() {
    let dictionary = Dictionary::start(Dictionary::default()).await.unwrap();
    assert_eq!(dictionary.both().await.unwrap(), (None, None));
    assert_eq!(dictionary.put_first("a".into()).await.unwrap(), None);
    assert_eq!(dictionary.put_second("b".into()).await.unwrap(), None);
    assert_eq!(
        dictionary.put_first("c".into()).await.unwrap(),
        Some(First("a".into()))
    );
    assert_eq!(
        dictionary.both().await.unwrap(),
        (Some(First("c".into())), Some(Second("b".into())))
    );

    assert_eq!(
        dictionary.take_first().await.unwrap(),
        Some(First("c".into()))
    );
    let restarted = dictionary.branch().next_restart();
    dictionary.branch().kill_worker().unwrap();
    restarted.await.unwrap();
    // Taken stays taken; the other survived the kill.
    assert_eq!(
        dictionary.both().await.unwrap(),
        (None, Some(Second("b".into())))
    );
    dictionary.stop().await.unwrap();
}

/// Like a table, a kept value changed by a handler that then panics stays changed.
#[tokio::test]
async fn a_kept_value_changed_before_a_panic_stays_changed() {
    let dictionary = Dictionary::start(Dictionary::default()).await.unwrap();
    dictionary.put_first("original".into()).await.unwrap();
    let restarted = dictionary.branch().next_restart();
    assert_eq!(
        dictionary.change_then_panic().await,
        Err(CallError::Crashed(Exit::Panicked {
            message: "after the change".into()
        }))
    );
    restarted.await.unwrap();
    assert_eq!(
        dictionary.both().await.unwrap().0,
        Some(First("original (changed before the panic)".into()))
    );
    dictionary.stop().await.unwrap();
}

/// A kill lands at an `.await` in the middle of a handler, and the worker's task is dropped there:
/// what the handler kept before is still there for the next worker.
#[tokio::test]
async fn a_value_kept_before_a_kill_mid_handler_survives() {
    let gate = Gate::default();
    let dictionary = Dictionary::start(Dictionary {
        gate: gate.clone(),
        ..Dictionary::default()
    })
    .await
    .unwrap();
    let waiting = peeper_tests::queue(dictionary.keep_then_wait()).await;
    gate.entered().await;
    let restarted = dictionary.branch().next_restart();
    dictionary.branch().kill_worker().unwrap();
    assert_eq!(
        waiting.output().await,
        Err(CallError::Crashed(Exit::Killed))
    );
    restarted.await.unwrap();
    assert_eq!(
        dictionary.both().await.unwrap().1,
        Some(Second("kept before the kill".into()))
    );
    dictionary.stop().await.unwrap();
}

/// `terminate` sees the kept values; once the branch has ended they are dropped.
#[tokio::test]
async fn terminate_sees_kept_values_then_they_are_dropped() {
    let (probe, drops) = (Probe::default(), Arc::new(AtomicUsize::new(0)));
    let dictionary = Dictionary::start(Dictionary {
        probe: probe.clone(),
        drops: Arc::clone(&drops),
        ..Dictionary::default()
    })
    .await
    .unwrap();
    dictionary.put_first("last words".into()).await.unwrap();
    dictionary.keep_counted().await.unwrap();
    let restarted = dictionary.branch().next_restart();
    dictionary.branch().kill_worker().unwrap();
    restarted.await.unwrap();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "kept, not dropped, by a crash"
    );

    dictionary.stop().await.unwrap();
    assert_eq!(
        probe.lines(),
        [r#"terminate sees Some("last words")"#.to_owned()]
    );
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}
