//! The end of a branch: `terminate`, the exit, the drained mailbox, the last write and the
//! release of the claim, the listener's `on_terminate`, the name.

use std::task::Poll;

use super::{Supervisor, leave, receive_unhooked, release};
use crate::keeper::Event;
use crate::options::OnStop;
use crate::worker;
use crate::{Context, Exit, Server};

impl<S: Server> Supervisor<S> {
    /// Ends the branch for good; see the module docs for the order.
    pub(super) async fn end(mut self, exit: Exit, run_terminate: bool) {
        self.commands.unhook();
        let branch = self.client.branch().clone();
        let mut ctx = Context::new(self.incarnation, self.client.clone());
        {
            let mut cell = self.cell.lock().await;
            if run_terminate {
                worker::terminate(&mut cell, &exit, &mut ctx).await;
            }
            branch
                .inner
                .status
                .send_modify(|status| status.exit = Some(exit.clone()));
            // A server that moved to another node: its clients follow it there, through a link
            // that takes the mailbox (what is queued now goes first).
            if let (Exit::HandedOff { .. } | Exit::Fenced { .. }, Some(forward)) = (
                &exit,
                self.durable
                    .as_ref()
                    .and_then(|durable| durable.forward.as_ref()),
            ) {
                let (_, closed) = tokio::sync::mpsc::unbounded_channel();
                forward(std::mem::replace(&mut cell.mailbox, closed), branch.clone());
            }
            // Whatever is queued now is refused (the exit is published: later sends fail), and
            // the task's waker leaves the channel, which clients keep alive after the end.
            let refused = std::future::poll_fn(|_| {
                while let Some(envelope) = receive_unhooked(&mut cell.mailbox) {
                    envelope.refuse(&exit);
                }
                Poll::Ready(())
            });
            tokio::task::unconstrained(refused).await;
            cell.mailbox.close();
            while let Ok(envelope) = cell.mailbox.try_recv() {
                envelope.refuse(&exit);
            }
            // Fenced: another node owns the server now; this node must not write nor release.
            // Abandoned: the start that made the claim was dropped and gave it up itself; the
            // key may be claimed again here already, and a release would free that claim.
            let status = branch.inner.status.borrow();
            let keeps_claim = !matches!(exit, Exit::Fenced { .. }) && !status.abandoned;
            if let (Some(durable), Some(name), true) = (&self.durable, branch.name(), keeps_claim) {
                let key = durable.key(name);
                let stored = if status.ready.is_none() {
                    // `init` never completed: nothing of this branch's is worth storing.
                    Ok(())
                } else if matches!(exit, Exit::Normal | Exit::Stopped { .. })
                    && self.options.on_stop == OnStop::Wipe
                {
                    // A wipe that fails leaves an older state stored, which the next start reads:
                    // nothing acknowledged is lost by it, so it is not retried, and the stop
                    // completes (logged).
                    let wipe = durable.write(key.clone(), None);
                    if let Err(error) = durable.storage.submit(wipe).await {
                        tracing::error!(server = branch.server(), name, %error, "could not wipe the stored state");
                    }
                    Ok(())
                } else {
                    // Every other end keeps the state for the next start: make sure the last one
                    // is there (a batched write may be pending).
                    // With the records of keyed calls not written yet.
                    let records = cell
                        .retained
                        .as_deref()
                        .map(|retained| retained.unwritten.take())
                        .unwrap_or_default();
                    match durable.encode(&key, &cell.live) {
                        Ok(bytes) => {
                            Box::pin(durable.store_last(&branch, &key, bytes, records)).await
                        }
                        Err(error) => Err(error),
                    }
                };
                match stored {
                    // The claim made at start (or revival) ends with the branch, after its last
                    // write, and only then: released after a failed write, it would let another
                    // node revive an older state.
                    Ok(()) => release(durable, &key).await,
                    Err(error) => {
                        tracing::error!(server = branch.server(), name, %error, "could not store the last state; the claim is kept");
                    }
                }
            }
        }
        drop(ctx);
        if let Some(listening) = self.listening.take() {
            listening
                .finish(Event::Terminate {
                    reason: exit.clone(),
                })
                .await;
        }
        leave::<S>(&branch);
        match &exit {
            Exit::Normal
            | Exit::Stopped { .. }
            | Exit::Ignored
            | Exit::Transferred
            | Exit::Shutdown
            | Exit::HandedOff { .. } => {
                tracing::info!(server = branch.server(), name = branch.name(), %exit, "stopped");
            }
            _ => tracing::error!(server = branch.server(), name = branch.name(), %exit, "stopped"),
        }
        // Let go of the store before saying the branch is gone: whoever waited for the end may
        // close the storage, or open its file again, next.
        drop(self.durable.take());
        branch
            .inner
            .status
            .send_modify(|status| status.finished = true);
    }
}
