//! Which branch's handler is running on this thread, so that a server calling itself fails at
//! once instead of waiting for itself (Erlang's `calling_self`).
//!
//! The worker polls every handler future through [`Handling`], which marks the thread with the
//! branch's id for the duration of each poll. A call made by the handler is polled inside that
//! poll, so [`Client::call`](crate::Client::call) sees the mark; a task the handler spawns runs
//! in polls of its own, unmarked, and may call the server as any other task can. A thread-local
//! rather than a task-local: it costs two writes per poll of a handler and one read per call,
//! and it does not depend on how many tasks a server runs in.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::BranchId;

thread_local! {
    static CURRENT: Cell<Option<BranchId>> = const { Cell::new(None) };
}

/// Whether the code running now is a handler of branch `id` (called from inside its poll).
#[inline]
pub(crate) fn is_handling(id: BranchId) -> bool {
    CURRENT.with(|current| current.get() == Some(id))
}

/// Whether the code running now is any server's handler (for the panic hook).
pub(crate) fn in_a_handler() -> bool {
    CURRENT.with(|current| current.get().is_some())
}

/// A handler's future, marking the thread with its branch while it is polled.
pub(crate) struct Handling<F> {
    pub(crate) branch: BranchId,
    pub(crate) handler: F,
}

/// `F: Unpin`: the worker pins each handler where it is built (see `worker::guarded`) and wraps
/// the pinned reference, so no projection is needed.
impl<F: Future + Unpin> Future for Handling<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let previous = CURRENT.with(|current| current.replace(Some(self.branch)));
        // Restored on unwind too: a panicking handler must not leave the thread marked.
        let _restore = Restore(previous);
        Pin::new(&mut self.handler).poll(cx)
    }
}

struct Restore(Option<BranchId>);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.0));
    }
}
