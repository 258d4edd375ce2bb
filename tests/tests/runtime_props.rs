//! Property: whatever the sequence of updates, crashes, kills and stop/restarts, no acknowledged
//! update is ever lost, casts are applied in order, and a crashing call changes nothing.
//!
//! Each case runs against a simple model (a number and the ordered list of applied updates) on
//! a fresh tokio runtime, current-thread or multi-thread.
#![allow(clippy::unwrap_used)]

use peeper::{CallError, Context, DynamicSupervisor, Exit, Server, Tracked};
use peeper_tests::{Probe, unique};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The server under test: a sum and the sequence numbers of the updates that made it.
#[derive(Clone, Debug, Default)]
struct Ledger {
    value: u64,
    log: Vec<u32>,
    ended: Probe,
}

#[derive(Debug)]
enum LedgerCall {
    Get,
    Add { n: u64, seq: u32 },
    Panic,
}

#[derive(Debug)]
enum LedgerCast {
    Add { n: u64, seq: u32 },
    Panic,
}

type Seen = (u64, Vec<u32>);

impl Ledger {
    fn seen(&self) -> Seen {
        (self.value, self.log.clone())
    }

    /// Changes the state, then panics: the change must not survive.
    fn wreck(state: &mut Tracked<Self>, message: &str) -> ! {
        state.value += 1_000_000;
        state.log.push(u32::MAX);
        panic!("{message}");
    }
}

impl Server for Ledger {
    type Call = LedgerCall;
    type Reply = Seen;
    type Cast = LedgerCast;
    type Info = ();
    type Keep = peeper::keep::Snapshot;

    async fn handle_call(
        state: &mut Tracked<Self>,
        call: LedgerCall,
        _: &mut Context<Self>,
    ) -> Seen {
        match call {
            LedgerCall::Get => state.seen(),
            LedgerCall::Add { n, seq } => {
                state.value += n;
                state.log.push(seq);
                state.seen()
            }
            LedgerCall::Panic => Ledger::wreck(state, "prop: panic in a call"),
        }
    }

    async fn handle_cast(state: &mut Tracked<Self>, cast: LedgerCast, _: &mut Context<Self>) {
        match cast {
            LedgerCast::Add { n, seq } => {
                state.value += n;
                state.log.push(seq);
            }
            LedgerCast::Panic => Ledger::wreck(state, "prop: panic in a cast"),
        }
    }

    async fn terminate(&mut self, reason: &Exit, _: &mut Context<Self>) {
        self.ended.push(format!(
            "terminate {reason:?} {} {:?}",
            self.value, self.log
        ));
    }
}

#[derive(Clone, Debug)]
enum Op {
    Cast(u64),
    Call(u64),
    Get,
    PanicCall,
    PanicCast,
    Kill,
    StopAndRestartByName,
    /// Moves the branch to the other of two dynamic supervisors.
    Transfer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..100u64).prop_map(Op::Cast),
        3 => (1..100u64).prop_map(Op::Call),
        2 => Just(Op::Get),
        1 => Just(Op::PanicCall),
        1 => Just(Op::PanicCast),
        2 => Just(Op::Kill),
        1 => Just(Op::StopAndRestartByName),
        1 => Just(Op::Transfer),
    ]
}

async fn start(
    sup: &DynamicSupervisor,
    name: &str,
    value: u64,
    log: Vec<u32>,
    ended: &Probe,
) -> peeper::Client<Ledger> {
    Ledger::builder(Ledger {
        value,
        log,
        ended: ended.clone(),
    })
    .supervisor(sup)
    .name(name)
    .max_restarts(100_000)
    .start()
    .await
    .unwrap()
}

async fn check(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let name = unique("prop");
    let ended = Probe::default();
    let sups = [DynamicSupervisor::new(), DynamicSupervisor::new()];
    let mut at = 0;
    let mut client = start(&sups[at], &name, 0, Vec::new(), &ended).await;
    // The model.
    let (mut value, mut log, mut seq) = (0u64, Vec::<u32>::new(), 0u32);

    for op in ops {
        match op {
            Op::Cast(n) => {
                seq += 1;
                value += n;
                log.push(seq);
                client.cast(LedgerCast::Add { n, seq }).unwrap();
            }
            Op::Call(n) => {
                seq += 1;
                value += n;
                log.push(seq);
                let reply = client.call(LedgerCall::Add { n, seq }).await;
                prop_assert_eq!(reply, Ok((value, log.clone())));
            }
            Op::Get => {
                prop_assert_eq!(client.call(LedgerCall::Get).await, Ok((value, log.clone())));
            }
            Op::PanicCall => {
                let crash = client.call(LedgerCall::Panic).await;
                let expected = Exit::Panicked {
                    message: "prop: panic in a call".into(),
                };
                prop_assert_eq!(crash, Err(CallError::Crashed(expected)));
            }
            Op::PanicCast => client.cast(LedgerCast::Panic).unwrap(),
            Op::Kill => {
                let restarted = client.branch().next_restart();
                client.branch().kill_worker().unwrap();
                prop_assert!(restarted.await.is_ok());
            }
            Op::StopAndRestartByName => {
                client.stop().await.unwrap();
                // Everything queued before the stop was applied, in order, before `terminate`.
                let last = ended.lines().pop();
                prop_assert_eq!(last, Some(format!("terminate Normal {value} {log:?}")));
                prop_assert!(peeper::whereis::<Ledger>(&name).is_none());
                client = start(&sups[at], &name, value, log.clone(), &ended).await;
                let found = peeper::whereis::<Ledger>(&name).unwrap();
                prop_assert_eq!(found.branch().id(), client.branch().id());
            }
            Op::Transfer => {
                prop_assert_eq!(
                    peeper::transfer(&name, &sups[at], &sups[1 - at]).await,
                    Ok(())
                );
                at = 1 - at;
                prop_assert_eq!(sups[at].which_children().len(), 1);
                prop_assert!(sups[1 - at].which_children().is_empty());
            }
        }
    }
    prop_assert_eq!(client.call(LedgerCall::Get).await, Ok((value, log.clone())));
    client.stop().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_acknowledged_update_is_ever_lost(ops in prop::collection::vec(op(), 1..40), multi_thread in any::<bool>()) {
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        };
        runtime.unwrap().block_on(check(ops))?;
    }
}
