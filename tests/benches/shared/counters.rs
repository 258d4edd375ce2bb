//! The counter the benchmarks compare, written for each contender: peeper's (a
//! `#[peeper::server]` with the default keep), a hand-written tokio actor (the baseline), kameo
//! and ractor. A `get` call and an `inc` cast. Included by the benches that need it
//! (`#[path = "shared/counters.rs"] mod counters;`).

use kameo::actor::ActorRef;
use kameo::error::Infallible;
use ractor::ActorProcessingErr;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// peeper's counter.
#[derive(Clone, Default)]
pub(crate) struct Counter {
    count: u64,
}

#[peeper::server]
impl Counter {
    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    #[cast]
    fn inc(&mut self) {
        self.count += 1;
    }
}

pub(crate) enum Msg {
    Get(oneshot::Sender<u64>),
    Inc,
}

/// The baseline: one task, an unbounded mailbox, a oneshot per reply.
pub(crate) struct Actor {
    mailbox: mpsc::UnboundedSender<Msg>,
    task: JoinHandle<()>,
}

impl Actor {
    pub(crate) fn start() -> Self {
        let (mailbox, mut inbox) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut count = 0_u64;
            while let Some(msg) = inbox.recv().await {
                match msg {
                    Msg::Get(reply) => {
                        let _ = reply.send(count);
                    }
                    Msg::Inc => count += 1,
                }
            }
        });
        Actor { mailbox, task }
    }

    pub(crate) async fn get(&self) -> u64 {
        let (reply, answer) = oneshot::channel();
        self.mailbox
            .send(Msg::Get(reply))
            .unwrap_or_else(|_| panic!("the actor is gone"));
        answer.await.expect("a reply")
    }

    pub(crate) fn inc(&self) {
        self.mailbox
            .send(Msg::Inc)
            .unwrap_or_else(|_| panic!("the actor is gone"));
    }

    /// Closes the mailbox and waits for the task to end.
    pub(crate) async fn stop(self) {
        drop(self.mailbox);
        self.task.await.expect("the actor task ended");
    }
}

#[derive(Clone, Default)]
pub(crate) struct Kameo {
    count: u64,
}

impl kameo::Actor for Kameo {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

pub(crate) struct Get;
pub(crate) struct Inc;

impl kameo::message::Message<Inc> for Kameo {
    type Reply = ();
    async fn handle(&mut self, _: Inc, _: &mut kameo::message::Context<Self, ()>) {
        self.count += 1;
    }
}

impl kameo::message::Message<Get> for Kameo {
    type Reply = u64;
    async fn handle(&mut self, _: Get, _: &mut kameo::message::Context<Self, u64>) -> u64 {
        self.count
    }
}

pub(crate) struct Ractor;

pub(crate) enum RactorMsg {
    Get(ractor::RpcReplyPort<u64>),
    Inc,
}

impl ractor::Actor for Ractor {
    type Msg = RactorMsg;
    type State = u64;
    type Arguments = u64;

    async fn pre_start(
        &self,
        _: ractor::ActorRef<RactorMsg>,
        count: u64,
    ) -> Result<u64, ActorProcessingErr> {
        Ok(count)
    }

    async fn handle(
        &self,
        _: ractor::ActorRef<RactorMsg>,
        msg: RactorMsg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RactorMsg::Get(reply) => {
                let _ = reply.send(*count);
            }
            RactorMsg::Inc => *count += 1,
        }
        Ok(())
    }
}
