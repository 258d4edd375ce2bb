//! Which branch's handler is running on this thread, so that a server calling itself fails at
//! once instead of waiting for itself (Erlang's `calling_self`).
//!
//! The supervisor polls the worker through `erased::Guarded`, which marks the thread with the
//! branch's id for the duration of each poll; the worker polls its handlers inside that poll (and
//! runs nothing else there that calls or stops its own branch). `terminate`, which the
//! supervisor also runs when a branch ends after a crash, marks its own poll. A call made by a
//! handler is polled inside a marked poll, so [`Client::call`](crate::Client::call) sees the
//! mark; a task the handler spawns runs in polls of its own, unmarked, and may call the server as
//! any other task can. A thread-local rather than a task-local: it costs two writes per poll of
//! the worker and one read per call, and it does not depend on how many tasks a server runs in.

use std::cell::Cell;

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

/// The thread marked as running a handler of a branch, until this is dropped (on an unwind too:
/// a panicking handler must not leave the thread marked).
pub(crate) struct Marked(Option<BranchId>);

impl Marked {
    pub(crate) fn new(branch: BranchId) -> Self {
        Marked(CURRENT.with(|current| current.replace(Some(branch))))
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.0));
    }
}
