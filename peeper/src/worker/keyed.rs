//! Calls made with an idempotency key: the recorded reply of a retry, or the call handled and
//! its reply recorded with the state.

use tokio::time::Instant;

use super::{CommittedReply, Owed, Persistence, fenced, guarded, settle};
use crate::context::Answer;
use crate::erased::BoxFuture;
use crate::keeper::{Cell, Changes};
use crate::mailbox::{Caller, KeyedCall};
use crate::retained::{Found, Retained, Retention, Unwritten};
use crate::store::{Key, StoreError};
use crate::{CallError, Client, Context, Exit, Server};

/// How a keyed call went, for the worker loop.
pub(super) enum Keyed {
    Done,
    /// Its handler crashed (the caller was told).
    Crashed(Exit),
    /// A write was refused: another node owns the server.
    Fenced(Exit),
}

/// How a worker handles keyed calls, reached through a pointer that each keyed call carries
/// ([`KeyedCall::handler`]), set where keyed calls are made: a program that makes none does not
/// compile this path.
pub(crate) struct KeyedHandler<S: Server> {
    handle: for<'a> fn(Args<'a, S>) -> BoxFuture<'a, Keyed>,
}

impl<S: Server> KeyedHandler<S> {
    /// The handler, in a constant so that `&KeyedHandler::<S>::OF` is `'static`.
    pub(crate) const OF: Self = KeyedHandler {
        handle: |args| Box::pin(keyed(args)),
    };
}

/// What the worker lends a keyed call.
pub(super) struct Args<'a, S: Server> {
    pub(super) client: &'a Client<S>,
    pub(super) retention: Retention,
    pub(super) cell: &'a mut Cell<S>,
    pub(super) changes: Option<&'a Changes<S>>,
    pub(super) ctx: &'a mut Context<S>,
    pub(super) persistence: &'a mut Option<Box<Persistence<S>>>,
    pub(super) keyed: KeyedCall<S>,
}

/// Handles `args.keyed` with the handler it carries.
pub(super) fn handle<S: Server>(args: Args<'_, S>) -> BoxFuture<'_, Keyed> {
    match args.keyed.handler.downcast_ref::<KeyedHandler<S>>() {
        Some(handler) => (handler.handle)(args),
        // Cannot happen: a `KeyedCall<S>` is made with `KeyedHandler::<S>::OF`. Were it to, the
        // call is refused, unhandled.
        None => {
            let refused = CallError::NotApplied(crate::Undelivered::UnknownMessage {
                kind: std::any::type_name::<S>().to_owned(),
                reason: "a keyed call made for another server type".to_owned(),
            });
            drop(args.keyed.reply.send(Err(Box::new(refused))));
            Box::pin(std::future::ready(Keyed::Done))
        }
    }
}

/// A call made with an idempotency key (see [`retained`](crate::retained)): answered from its
/// record if the key was used, else handled as a call whose reply is recorded with the state it
/// leaves.
async fn keyed<S: Server>(args: Args<'_, S>) -> Keyed {
    let Args {
        client,
        retention,
        cell,
        changes,
        ctx,
        persistence,
        keyed,
    } = args;
    let KeyedCall {
        call,
        reply,
        key,
        digest,
        codec,
        ..
    } = keyed;
    let refuse = |reply: Caller<S>, error: CallError| drop(reply.send(Err(Box::new(error))));
    let retained = cell
        .retained
        .get_or_insert_with(|| Box::new(Retained::new(retention, persistence.is_some())));
    // A durable server reads what its store kept at its first keyed call: a retry after a
    // restart of the process, a hibernation or a handoff finds the first call's record.
    if !retained.loaded
        && let Some(persistence) = persistence.as_deref()
    {
        let writes = &persistence.writes;
        let stored = writes.storage.retained(&writes.key).await;
        if let Err(error) = stored.and_then(|stored| retained.load(&writes.key, stored)) {
            refuse(reply, CallError::Store(error));
            return Keyed::Done;
        }
    }
    retained.expire(Instant::now());
    match retained.find(&key, digest) {
        Found::Reused => {
            refuse(
                reply,
                CallError::KeyReused {
                    key: key.to_string(),
                },
            );
            Keyed::Done
        }
        Found::Reply(bytes) => {
            let answer = (codec.decode)(bytes).map_err(|reason| StoreError::Corrupt {
                key: record_key(client.branch(), persistence.as_deref()),
                reason: format!("the recorded reply of the keyed call `{key}`: {reason}"),
            });
            // A record not committed yet (its write failed) is written before it answers:
            // a reply always stands for a stored effect.
            let flush = persistence
                .as_deref_mut()
                .and_then(|persistence| persistence.flush(&cell.live, unwritten(&cell.retained)))
                .map(Box::pin);
            let stored = match flush {
                Some(flush) => flush.await,
                None => Ok(()),
            };
            if let Some(exit) = fenced(&stored) {
                refuse(
                    reply,
                    CallError::Store(stored.err().unwrap_or(StoreError::Closed)),
                );
                return Keyed::Fenced(exit);
            }
            let answer = stored
                .and(answer)
                .map_err(|error| Box::new(CallError::Store(error)));
            drop(reply.send(answer));
            Keyed::Done
        }
        Found::New => {
            ctx.begin_call(reply);
            let out = guarded(std::pin::pin!(S::handle_call(&mut cell.live, call, ctx))).await;
            let answer = ctx.end_call();
            let value = match settle(cell, changes, out, false) {
                Ok(value) => value,
                Err(exit) => {
                    // Nothing recorded: a retry runs the handler again.
                    answer.crashed(&exit);
                    return Keyed::Crashed(exit);
                }
            };
            match (&answer, (codec.encode)(&value)) {
                (Answer::Now(_), Ok(bytes)) => {
                    if let Some(retained) = cell.retained.as_deref_mut() {
                        retained.insert(&key, digest, bytes);
                    }
                }
                (Answer::Now(_), Err(error)) => {
                    crate::log::keyed_reply_unencodable(client.branch(), &key, &error);
                }
                _ => crate::log::keyed_reply_deferred(client.branch(), &key),
            }
            let Some(owed) = Owed::of(answer, value) else {
                return Keyed::Done;
            };
            // The record goes with the state, in one write (even when the handler changed
            // nothing): the reply waits for it as a changing call's does.
            let write = persistence
                .as_deref_mut()
                .and_then(|persistence| persistence.changed(&cell.live, unwritten(&cell.retained)));
            cell.live.reset();
            let Some(write) = write else {
                owed.answer(Ok(()));
                return Keyed::Done;
            };
            let stored = Box::pin(CommittedReply::<S>::new(Some(owed), write).send()).await;
            match fenced(&stored) {
                Some(exit) => Keyed::Fenced(exit),
                None => Keyed::Done,
            }
        }
    }
}

/// The records of keyed calls waiting for the next write of the state, if any were made.
pub(super) fn unwritten(retained: &Option<Box<Retained>>) -> Option<&Unwritten> {
    retained.as_deref().map(|retained| &retained.unwritten)
}

/// The key a damaged record is reported under: the store's, or the server's name.
pub(super) fn record_key<S: crate::Server>(
    branch: &crate::Branch,
    persistence: Option<&Persistence<S>>,
) -> Key {
    match persistence {
        Some(persistence) => persistence.writes.key.clone(),
        None => Key::new(branch.server(), branch.name().unwrap_or_default()),
    }
}
