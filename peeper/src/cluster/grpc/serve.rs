//! The server side: the gRPC service every listening node runs, and how it hands a message to
//! a server of a kind it hosts (running it first, when the caller's placement chose this node).

use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;

use super::wire::{INVOKE, Invoke, Message, Outcome, WireCodec};
use crate::cluster::NodeInner;
use crate::remote::{DecodeError, Wire};
use crate::store::postgres::Route;
use crate::store::{BoxFuture, Key, Persist, StoreError};
use crate::{CallError, Client, Exit, SendError, StartError, Undelivered};

/// Hands messages to the servers of one kind.
pub(crate) trait Serve: Send + Sync {
    fn invoke<'a>(&'a self, node: &'a NodeInner, invoke: Invoke) -> BoxFuture<'a, Outcome>;
}

/// [`Serve`] for the remote kind `S`.
pub(crate) struct Serving<S: Persist>(pub(crate) Wire<S>);

impl<S: Persist> Serve for Serving<S> {
    fn invoke<'a>(&'a self, node: &'a NodeInner, invoke: Invoke) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let wire = &self.0;
            let timeout = Duration::from_millis(invoke.timeout_ms);
            // The caller routed by a newer lease than the one this node holds: another node
            // claimed the server, and this one has not noticed yet (its renewal will). Its copy
            // must not answer, not even a read: the caller looks again.
            if let (Some(routed), Some(held)) = (
                invoke.epoch,
                node.postgres.held_epoch(&Key::new(S::KIND, &*invoke.name)),
            ) && held < routed
            {
                return Outcome::nowhere();
            }
            let client = match here::<S>(node, &invoke.name, invoke.activate).await {
                Ok(client) => client,
                Err(outcome) => return outcome,
            };
            let unknown = |error: DecodeError| {
                Outcome::Failed(CallError::NotApplied(Undelivered::UnknownMessage {
                    kind: S::KIND.to_owned(),
                    reason: error.to_string(),
                }))
            };
            match invoke.message {
                Message::Call => {
                    let call = match (wire.decode_call)(&invoke.payload) {
                        Ok(call) => call,
                        Err(error) => return unknown(error),
                    };
                    let answer = match (invoke.keyed, wire.keyed) {
                        (None, _) => client.call_timeout(call, timeout).await,
                        // Recorded as the typed client records a local keyed call.
                        (Some((key, digest)), Some(keyed)) => {
                            let codec = keyed(&call);
                            client
                                .idempotent(key)
                                .timeout(timeout)
                                .__call(call, digest, codec.encode, codec.decode, Some)
                                .await
                        }
                        (Some(_), None) => {
                            return Outcome::Failed(CallError::NotApplied(Undelivered::Encode {
                                reason: "this build of the server records no keyed calls from other nodes".to_owned(),
                            }));
                        }
                    };
                    match answer {
                        Ok(reply) => match (wire.encode_reply)(&reply) {
                            Ok(bytes) => Outcome::Reply(bytes),
                            Err(reason) => Outcome::Failed(CallError::MaybeApplied {
                                node: node.postgres.node().to_string(),
                                reason: format!("the reply could not be encoded: {reason}"),
                            }),
                        },
                        Err(CallError::Stopped(exit)) => moved_or(exit, CallError::Stopped),
                        Err(error) => Outcome::Failed(error),
                    }
                }
                Message::Cast => match (wire.decode_cast)(&invoke.payload) {
                    Ok(cast) => sent(client.cast(cast)),
                    Err(error) => unknown(error),
                },
                Message::Info => match (wire.decode_info)(&invoke.payload) {
                    Ok(info) => sent(client.send(info)),
                    Err(error) => unknown(error),
                },
                Message::Stop => {
                    let exit =
                        crate::remote::decode::<Exit>(&invoke.payload).unwrap_or(Exit::Normal);
                    match client.branch().stop_as(exit).await {
                        Ok(()) => Outcome::Done,
                        Err(crate::StopError::AlreadyStopped(exit)) => {
                            moved_or(exit, CallError::Stopped)
                        }
                        Err(error) => Outcome::Failed(CallError::MaybeApplied {
                            node: node.postgres.node().to_string(),
                            reason: error.to_string(),
                        }),
                    }
                }
                Message::Activate => Outcome::Done,
            }
        })
    }
}

/// A cast or info queued, or refused.
fn sent(result: Result<(), SendError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(SendError::Stopped(exit)) => moved_or(exit, CallError::Stopped),
    }
}

/// A server that left this node answers "moved", with where it went when known; any other
/// end is the error `otherwise` makes of it.
fn moved_or(exit: Exit, otherwise: impl FnOnce(Exit) -> CallError) -> Outcome {
    match exit {
        Exit::HandedOff { to } => Outcome::at(to),
        Exit::Fenced { owner } => Outcome::at(owner),
        exit => Outcome::Failed(otherwise(exit)),
    }
}

/// The client of `name` on this node: running (or hibernating) here, or started here when
/// nobody owns it and `activate` says this node should. Anything else is the answer to give.
pub(crate) async fn here<S: Persist>(
    node: &NodeInner,
    name: &str,
    activate: bool,
) -> Result<Client<S>, Outcome> {
    let key = Key::new(S::KIND, name);
    // A start that loses the name to a concurrent one finds the winner on the next round.
    for _ in 0..8 {
        if let Some(client) = crate::whereis::<S>(name) {
            return Ok(client);
        }
        match node.postgres.route(&key).await {
            // With where it is: the caller follows without asking the directory itself.
            Ok(Route::Owned {
                node: owner,
                epoch,
                address,
            }) if owner != *node.postgres.node() => {
                return Err(Outcome::Moved {
                    owner: Some(owner),
                    epoch: Some(epoch),
                    address,
                });
            }
            // Ours: it is being started here (or stopped and kept); start or find it.
            Ok(Route::Owned { .. }) => {}
            Ok(Route::Free) if activate => {}
            Ok(Route::Free | Route::InHandoff) => {
                return Err(Outcome::nowhere());
            }
            Err(error) => return Err(Outcome::Failed(CallError::Store(error))),
        }
        match node.activate(&key).await {
            Ok(()) | Err(StartError::NameTaken { .. }) => {}
            // A claim of this node's own that is being given up (a start dropped mid-way, its
            // release not committed yet): nobody runs it, so the caller waits and looks again.
            Err(StartError::Store(StoreError::OwnedElsewhere { node: owner, .. }))
                if owner == *node.postgres.node() =>
            {
                return Err(Outcome::nowhere());
            }
            Err(StartError::Store(StoreError::OwnedElsewhere { node, .. })) => {
                return Err(Outcome::at(Some(node)));
            }
            Err(StartError::SupervisorStopped) => {
                return Err(Outcome::nowhere());
            }
            Err(error) => {
                return Err(Outcome::Failed(CallError::NotApplied(
                    Undelivered::NotStarted {
                        reason: error.to_string(),
                    },
                )));
            }
        }
    }
    Err(Outcome::nowhere())
}

/// The gRPC service of a listening node: one method, [`INVOKE`].
#[derive(Clone)]
pub(crate) struct NodeService {
    pub(crate) node: Weak<NodeInner>,
    pub(crate) max_message: usize,
}

impl tower_service::Service<http::Request<tonic::body::Body>> for NodeService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let handler = Handler {
            node: Weak::clone(&self.node),
        };
        let max = self.max_message;
        Box::pin(async move {
            if request.uri().path() != INVOKE {
                return Ok(Status::unimplemented("peeper: unknown method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(WireCodec::<Outcome, Invoke>::default())
                .apply_max_message_size_config(Some(max), Some(max));
            Ok(grpc.unary(handler, request).await)
        })
    }
}

struct Handler {
    node: Weak<NodeInner>,
}

impl tonic::server::UnaryService<Invoke> for Handler {
    type Response = Outcome;
    type Future = BoxFuture<'static, Result<tonic::Response<Outcome>, Status>>;

    fn call(&mut self, request: tonic::Request<Invoke>) -> Self::Future {
        let node = Weak::clone(&self.node);
        Box::pin(async move {
            let Some(node) = node.upgrade() else {
                return Err(Status::unavailable("peeper: the node has shut down"));
            };
            let invoke = request.into_inner();
            let serve = node
                .remote
                .get()
                .and_then(|remote| remote.served.get(invoke.kind.as_str()).map(Arc::clone));
            let outcome = match serve {
                Some(serve) => serve.invoke(&node, invoke).await,
                None => Outcome::Failed(CallError::NotApplied(Undelivered::NotHosted {
                    kind: invoke.kind,
                })),
            };
            Ok(tonic::Response::new(outcome))
        })
    }
}
