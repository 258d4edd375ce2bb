//! The end of a branch: `terminate`, the exit, the drained mailbox, the last write and the
//! release of the claim, the listener's `on_terminate`, the name.

use super::durably::{LastWrite, durable_paths};
use super::typed::TypedHalf;
use super::{Bits, leave};
use crate::keeper::Event;
use crate::worker;
use crate::{Context, Exit, Server};

impl<S: Server> TypedHalf<S> {
    /// Ends the branch for good; see the module docs for the order.
    pub(super) async fn end_branch(mut self, bits: Bits, exit: Exit, run_terminate: bool) {
        bits.commands.unhook();
        let branch = self.client.branch().clone();
        let mut ctx = Context::new(bits.incarnation, self.client.clone());
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
                let (_, closed) = crate::mailbox::channel();
                forward(std::mem::replace(&mut cell.mailbox, closed), branch.clone());
            }
            cell.mailbox.close_refusing(&exit);
            // Fenced: another node owns the server now; this node must not write nor release.
            // Abandoned: the start that made the claim was dropped and gave it up itself; the
            // key may be claimed again here already, and a release would free that claim.
            let (abandoned, started) = branch
                .inner
                .status
                .read(|s| (s.abandoned, s.ready.is_some()));
            let keeps_claim = !matches!(exit, Exit::Fenced { .. }) && !abandoned;
            if let (Some(durable), true) = (&self.durable, keeps_claim) {
                let last_write = durable_paths(durable).last_write;
                last_write(LastWrite {
                    durable,
                    options: &self.options,
                    cell: &mut cell,
                    branch: &branch,
                    exit: &exit,
                    started,
                })
                .await;
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
        crate::log::stopped(&branch, &exit);
        // Let go of the store before saying the branch is gone: whoever waited for the end may
        // close the storage, or open its file again, next.
        drop(self.durable.take());
        branch
            .inner
            .status
            .send_modify(|status| status.finished = true);
    }
}
