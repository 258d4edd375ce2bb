//! What a server costs in memory, held to account: the branch's task future is allocated for the
//! server's whole life, so every byte of it is a byte per idle server (`cargo bench -p
//! peeper-tests --bench memory` measures the whole heap).

use std::sync::Arc;

use tokio::sync::Mutex;

use super::{Parts, Supervision};
use crate::branch::Branch;
use crate::keeper::Cell;
use crate::mailbox::Envelope;
use crate::options::Options;
use crate::{Client, Context, Server, Tracked};

#[derive(Clone, Default)]
struct Small(u64);

impl Server for Small {
    type Call = ();
    type Reply = u64;
    type Cast = ();
    type Info = ();
    type Keep = crate::keep::Snapshot;

    async fn handle_call(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> u64 {
        state.0
    }

    async fn handle_cast(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {
        state.0 += 1;
    }
}

/// What a small server's task keeps all its life stays within 1 KiB: the task's future (the
/// supervision), the boxed future of its worker and the supervision's typed half. The task's
/// future alone was 2,008 bytes before the supervisor stopped keeping its spawn arguments, the
/// worker its arguments twice, and both their rare fields inline. A change that makes it grow
/// past the bound makes every idle server bigger; if it is worth it, raise the bound and say why.
#[test]
fn a_small_servers_task_stays_within_a_kibibyte() {
    let (mailbox, inbox) = crate::mailbox::channel::<Envelope<Small>>();
    let client = Client::new(mailbox, Branch::new("small", None, false));
    let parts = Parts {
        cell: Arc::new(Mutex::new(Cell::new(Small(0), inbox))),
        client,
        options: Options::default(),
        listener: None,
        initial: None,
        incarnation: 0,
        commands: None,
        durable: None,
    };
    let mut supervision = Supervision::new(parts);
    let typed = size_of_val(&*supervision.typed);
    let worker = supervision.typed.worker(0);
    let worker = size_of_val(&*worker);
    let task = size_of_val(&supervision.run());
    eprintln!("task {task} + worker {worker} + typed half {typed}");
    let size = task + worker + typed;
    assert!(
        size <= 1024,
        "the task's future is {task} bytes, its worker's {worker}, the typed half {typed}"
    );
}
