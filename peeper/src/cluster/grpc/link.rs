//! The client side: a *link* drains the mailbox of a remote server's client and sends what it
//! finds to the server's node, following the server when it moves.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Code;

use super::Remoting;
use super::wire::{INVOKE, Invoke, Message, Outcome, WireCodec};
use crate::branch::{Commands, Control};
use crate::cluster::{Node, NodeInner};
use crate::mailbox::{Envelope, Inbox, Timed};
use crate::remote::{Remote, Wire};
use crate::store::postgres::Route;
use crate::store::postgres::with_causes as chain;
use crate::store::{Key, NodeId, Persist};
use crate::{Branch, CallError, Client, DEFAULT_CALL_TIMEOUT, Exit, Undelivered};

/// Where the link sends: the owner it last found.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) node: NodeId,
    pub(super) address: String,
    /// The epoch of the owner's lease, when known: a redirect to an older one is stale.
    pub(super) epoch: Option<i64>,
}

/// Where the next attempt goes.
enum Dest {
    /// This node runs it (or is to start it).
    Here,
    /// Another node; `activate` if that node is to start it.
    There(Target, bool),
    /// Nobody runs it yet (a handoff is in progress), or its owner is not in the directory
    /// (its node died, and its lease has not expired yet): why, for the error at the deadline.
    Wait(Option<(NodeId, String)>),
}

/// How a send over gRPC failed.
enum Rpc {
    /// Before anything reached the other node: nothing ran.
    NotSent(String),
    /// Over the size cap: nothing ran.
    TooLarge(String),
    /// The call's own deadline passed on the wire.
    Deadline,
    /// After the request left: it may have run.
    Lost(String),
}

pub(super) struct Link<S: Persist> {
    node: Weak<NodeInner>,
    key: Key,
    wire: Wire<S>,
    target: Mutex<Option<Target>>,
}

impl<S: Persist + Remote> Link<S> {
    /// A client of the server `name`, on `target` if known, and its link's task.
    pub(super) fn spawn(
        node: &Node,
        name: &str,
        target: Option<Target>,
    ) -> Result<(Client<S>, Arc<Link<S>>), CallError> {
        let Some(wire) = S::__WIRE else {
            return Err(CallError::NotApplied(Undelivered::Encode {
                reason: format!(
                    "`{}` has no wire encoding: declare it with `#[peeper::server(remote)]`",
                    std::any::type_name::<S>()
                ),
            }));
        };
        let branch = Branch::link(std::any::type_name::<S>(), name.to_owned());
        let (mailbox, envelopes) = crate::mailbox::channel();
        let link = Arc::new(Link {
            node: Arc::downgrade(&node.inner),
            key: Key::new(S::KIND, name),
            wire,
            target: Mutex::new(target),
        });
        tokio::spawn(run(
            Arc::clone(&link),
            envelopes,
            Commands::new(branch.clone()),
            branch.clone(),
        ));
        Ok((Client::new(mailbox, branch), link))
    }
}

/// Makes `branch`'s mailbox follow its server, which moved to another node: a link drains it
/// from now on (what is queued goes first, to the new owner once it runs there).
pub(super) fn forward<S: Persist>(
    node: Weak<NodeInner>,
    name: &str,
    mailbox: Inbox<Envelope<S>>,
    branch: Branch,
) {
    let Some(wire) = S::__WIRE else { return };
    branch.become_link();
    let link = Arc::new(Link {
        node,
        key: Key::new(S::KIND, name),
        wire,
        target: Mutex::new(None),
    });
    tokio::spawn(run(link, mailbox, Commands::new(branch.clone()), branch));
}

/// Makes sure the server runs (placing it, if nobody runs it).
pub(super) async fn activate<S: Persist>(link: &Link<S>) -> Result<(), CallError> {
    link.deliver(Message::Activate, Vec::new(), None, DEFAULT_CALL_TIMEOUT)
        .await
        .map(drop)
}

/// The link's task: forwards calls concurrently, casts and infos in order, and a stop.
async fn run<S: Persist>(
    link: Arc<Link<S>>,
    mut envelopes: Inbox<Envelope<S>>,
    mut commands: Commands,
    branch: Branch,
) {
    let (casts, queued) = mpsc::unbounded_channel();
    let pump = tokio::spawn(pump(Arc::clone(&link), queued));
    let exit = loop {
        tokio::select! {
            envelope = envelopes.recv() => match envelope {
                Some(envelope) => link.forward(envelope, &casts),
                // Every client is gone.
                None => break Exit::Normal,
            },
            control = poll_fn(|cx| commands.poll_recv(cx)) => match control {
                Control::Stop(exit) => {
                    // What was queued before the stop goes first.
                    while let Some(envelope) = envelopes.try_recv() {
                        link.forward(envelope, &casts);
                    }
                    drop(casts);
                    let _ = pump.await;
                    let payload = crate::remote::encode(&exit).unwrap_or_default();
                    if let Err(error) = link.deliver(Message::Stop, payload, None, DEFAULT_CALL_TIMEOUT).await {
                        tracing::warn!(key = %link.key, %error, "could not stop the remote server");
                    }
                    break exit;
                }
                // A remote client has no worker here to kill, and a link does not move.
                Control::KillWorker | Control::Handoff(_) => {}
            },
        }
    };
    branch.finish_link(exit.clone());
    commands.unhook();
    envelopes.close_refusing(&exit);
}

/// Sends casts and infos one at a time, in the order they were queued.
async fn pump<S: Persist>(
    link: Arc<Link<S>>,
    mut queued: mpsc::UnboundedReceiver<(Message, Vec<u8>)>,
) {
    while let Some((message, payload)) = queued.recv().await {
        if let Err(error) = link
            .deliver(message, payload, None, DEFAULT_CALL_TIMEOUT)
            .await
        {
            // At most once, as a cast to a local server that stops before handling it.
            tracing::debug!(key = %link.key, %error, "a cast to a remote server was dropped");
        }
    }
}

impl<S: Persist> Link<S> {
    fn forward(
        self: &Arc<Self>,
        envelope: Envelope<S>,
        casts: &mpsc::UnboundedSender<(Message, Vec<u8>)>,
    ) {
        match envelope {
            Envelope::Timed(timed) => {
                let Timed { envelope, timeout } = *timed;
                self.call(envelope, timeout);
            }
            envelope @ (Envelope::Call { .. } | Envelope::Keyed(_)) => {
                self.call(envelope, DEFAULT_CALL_TIMEOUT);
            }
            Envelope::Cast(cast) => {
                self.queue(casts, Message::Cast, (self.wire.encode_cast)(&cast))
            }
            Envelope::Info(info) => {
                self.queue(casts, Message::Info, (self.wire.encode_info)(&info))
            }
            Envelope::Stop(_) | Envelope::Handoff => {}
        }
    }

    fn queue(
        &self,
        casts: &mpsc::UnboundedSender<(Message, Vec<u8>)>,
        message: Message,
        payload: Result<Vec<u8>, String>,
    ) {
        match payload {
            Ok(payload) => {
                let _ = casts.send((message, payload));
            }
            Err(reason) => tracing::warn!(key = %self.key, %reason, "a cast could not be encoded"),
        }
    }

    /// Sends a call in a task of its own (calls to one server run concurrently), and answers it.
    fn call(self: &Arc<Self>, envelope: Envelope<S>, timeout: Duration) {
        let (call, mut reply, keyed) = match envelope {
            Envelope::Call { call, reply } => (call, reply, None),
            // The key and the digest travel; the owner records the reply as a local keyed call
            // would, so a retry through any node finds it.
            Envelope::Keyed(keyed) => {
                let keyed = *keyed;
                (
                    keyed.call,
                    keyed.reply,
                    Some((keyed.key.as_str().to_owned(), keyed.digest)),
                )
            }
            _ => return,
        };
        let link = Arc::clone(self);
        tokio::spawn(async move {
            let payload = match (link.wire.encode_call)(&call) {
                Ok(payload) => payload,
                Err(reason) => {
                    let error = CallError::NotApplied(Undelivered::Encode { reason });
                    let _ = reply.send(Err(Box::new(error)));
                    return;
                }
            };
            let answer = tokio::select! {
                // The caller gave up (its timeout): nobody is owed the answer.
                () = reply.closed() => return,
                answer = link.deliver(Message::Call, payload, keyed, timeout) => answer,
            };
            let answer = answer.and_then(|outcome| match outcome {
                Outcome::Reply(bytes) => {
                    (link.wire.decode_reply)(&bytes).map_err(|error| CallError::MaybeApplied {
                        node: link.owner_name(),
                        reason: format!("the reply could not be read (another build?): {error}"),
                    })
                }
                other => Err(CallError::MaybeApplied {
                    node: link.owner_name(),
                    reason: format!("unexpected answer to a call: {other:?}"),
                }),
            });
            let _ = reply.send(answer.map_err(Box::new));
        });
    }

    fn cached(&self) -> Option<Target> {
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_target(&self, target: Option<Target>) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = target;
    }

    fn owner_name(&self) -> String {
        self.cached()
            .map_or_else(|| "unknown".to_owned(), |target| target.node.to_string())
    }

    /// Delivers one message wherever the server runs: follows "moved" answers (two hops), waits
    /// through a handoff and for an unreachable owner's lease to expire, up to `timeout`.
    pub(super) async fn deliver(
        &self,
        message: Message,
        payload: Vec<u8>,
        keyed: Option<(String, u64)>,
        timeout: Duration,
    ) -> Result<Outcome, CallError> {
        let deadline = Instant::now() + timeout;
        let mut hops = 0;
        let mut pause = Duration::from_millis(5);
        loop {
            let Some(node) = self.node.upgrade() else {
                return Err(CallError::NotApplied(Undelivered::Unreachable {
                    node: "this node".to_owned(),
                    reason: "it has shut down".to_owned(),
                }));
            };
            let remote = node.remoting()?;
            if payload.len() > remote.max_message {
                return Err(CallError::NotApplied(Undelivered::TooLarge {
                    size: payload.len(),
                    limit: Some(remote.max_message),
                }));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // `epoch`: the lease epoch of the owner it is sent to, as this link knows it.
            let invoke = |activate, epoch| Invoke {
                kind: S::KIND.to_owned(),
                name: self.key.name.clone(),
                message,
                payload: payload.clone(),
                timeout_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
                activate,
                keyed: keyed.clone(),
                epoch,
            };
            let dest = match self.cached() {
                Some(target) => Dest::There(target, false),
                None => self.resolve(&node, remote).await?,
            };
            let (outcome, unreachable) = match dest {
                Dest::Here => match remote.served.get(S::KIND) {
                    Some(serve) => (serve.invoke(&node, invoke(true, None)).await, None),
                    None => {
                        return Err(CallError::NotApplied(Undelivered::NotHosted {
                            kind: S::KIND.to_owned(),
                        }));
                    }
                },
                Dest::There(target, activate) => {
                    match rpc(
                        remote,
                        &target.address,
                        invoke(activate, target.epoch),
                        left,
                    )
                    .await
                    {
                        Ok(outcome) => {
                            if !matches!(outcome, Outcome::Moved { .. }) {
                                self.set_target(Some(target));
                            }
                            (outcome, None)
                        }
                        Err(Rpc::NotSent(reason)) => {
                            remote.forget(&target.address);
                            (Outcome::nowhere(), Some((target.node, reason)))
                        }
                        // The other node's cap is lower than this one's.
                        Err(Rpc::TooLarge(reason)) => {
                            tracing::debug!(key = %self.key, %reason, "refused as too large");
                            return Err(CallError::NotApplied(Undelivered::TooLarge {
                                size: payload.len(),
                                limit: None,
                            }));
                        }
                        Err(Rpc::Deadline) => return Err(CallError::Timeout(timeout)),
                        Err(Rpc::Lost(reason)) => {
                            self.set_target(None);
                            return Err(CallError::MaybeApplied {
                                node: target.node.to_string(),
                                reason,
                            });
                        }
                    }
                }
                Dest::Wait(unreachable) => (Outcome::nowhere(), unreachable),
            };
            match outcome {
                Outcome::Moved {
                    owner: Some(owner),
                    epoch,
                    address,
                } => {
                    // Followed at once when the answer says where, and is not older than what
                    // this link knew; otherwise looked up again in the directory.
                    let known = self.cached().and_then(|target| target.epoch);
                    let follow = match (address, epoch, known) {
                        (Some(address), Some(epoch), known) if known.is_none_or(|k| epoch > k) => {
                            Some(Target {
                                node: owner,
                                address,
                                epoch: Some(epoch),
                            })
                        }
                        _ => None,
                    };
                    self.set_target(follow);
                    hops += 1;
                    if hops > 2 {
                        return Err(CallError::NotApplied(Undelivered::Moved { hops }));
                    }
                }
                // Nobody runs it (a handoff in progress), or its node cannot be reached (it
                // may be dead, its lease not expired yet): look again after a pause.
                Outcome::Moved { owner: None, .. } => {
                    self.set_target(None);
                    if Instant::now() + pause >= deadline {
                        return Err(CallError::NotApplied(match unreachable {
                            Some((node, reason)) => Undelivered::Unreachable {
                                node: node.to_string(),
                                reason,
                            },
                            None => Undelivered::InHandoff,
                        }));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Outcome::Failed(error) => return Err(error),
                outcome => return Ok(outcome),
            }
        }
    }

    /// Where the server runs now, from the directory; where to start it if nowhere.
    async fn resolve(&self, node: &NodeInner, remote: &Remoting) -> Result<Dest, CallError> {
        let here = node.postgres.node();
        Ok(
            match node
                .postgres
                .route(&self.key)
                .await
                .map_err(CallError::Store)?
            {
                Route::Owned { node: owner, .. } if owner == *here => Dest::Here,
                Route::Owned {
                    node: owner,
                    address: Some(address),
                    epoch,
                } => Dest::There(
                    Target {
                        node: owner,
                        address,
                        epoch: Some(epoch),
                    },
                    false,
                ),
                Route::Owned {
                    node: owner,
                    address: None,
                    ..
                } => Dest::Wait(Some((
                    owner,
                    "it is not in the directory: it does not listen for other nodes, or it died"
                        .to_owned(),
                ))),
                Route::InHandoff => Dest::Wait(None),
                Route::Free => match remote.place(node, &self.key).await? {
                    Some((node, address)) => Dest::There(
                        Target {
                            node,
                            address,
                            epoch: None,
                        },
                        true,
                    ),
                    None => Dest::Here,
                },
            },
        )
    }
}

/// One request over gRPC.
async fn rpc(
    remote: &Remoting,
    address: &str,
    invoke: Invoke,
    timeout: Duration,
) -> Result<Outcome, Rpc> {
    let channel = remote.channel(address).map_err(Rpc::NotSent)?;
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(remote.max_message)
        .max_decoding_message_size(remote.max_message);
    grpc.ready()
        .await
        .map_err(|error| Rpc::NotSent(chain(&error)))?;
    let mut request = tonic::Request::new(invoke);
    // The server answers `Timeout` itself at `timeout`; this bounds a node that hangs.
    request.set_timeout(timeout + Duration::from_secs(1));
    grpc.unary(
        request,
        PathAndQuery::from_static(INVOKE),
        WireCodec::<Invoke, Outcome>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
    .map_err(|status| classify(&status))
}

fn classify(status: &tonic::Status) -> Rpc {
    let reason = format!("{}: {}", status.code(), chain(status));
    match status.code() {
        Code::ResourceExhausted | Code::OutOfRange => Rpc::TooLarge(reason),
        Code::DeadlineExceeded => Rpc::Deadline,
        // hyper cancels a request it has not dispatched when its connection closes (a node
        // that went away): it never left. A caller that gives up drops the request instead,
        // which answers nothing.
        Code::Cancelled => Rpc::NotSent(reason),
        Code::Unavailable if never_sent(status) => Rpc::NotSent(reason),
        _ => Rpc::Lost(reason),
    }
}

/// Whether the request could not have left: the connection was never made. (A TLS handshake
/// the other node refuses shows up after TLS 1.3's client side has finished, as an alert or a
/// broken pipe on the first request, which a connection lost mid-request also gives: counted as
/// maybe sent, the safe side.)
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        source = error.source();
    }
    false
}
