//! The few paths every server shares, written once without type parameters: catching a panic,
//! polling a handler marked as running, spawning a task that is not the branch's own.
//!
//! Why this module exists: a generic function is compiled again in the user's crate for every
//! server type, and so is everything it calls generically (`std::panic::catch_unwind` with its
//! closure, tokio's whole task harness for each spawned future type). Routed through these
//! functions, the user's crate compiles a small closure per call site instead, and the body is
//! compiled once, here. (`scripts/compile-time/measure.sh` shows the effect.)

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::BranchId;
use crate::handling::Marked;

/// What a caught panic carries.
pub(crate) type Payload = Box<dyn Any + Send>;

/// A future whose type is erased (the store's alias): for tasks spawned off the hot path, and
/// for the paths only some servers take (compiled only for them).
pub(crate) use crate::store::BoxFuture;

/// Runs `run`, catching a panic in it.
#[inline(never)]
pub(crate) fn catch(run: &mut dyn FnMut()) -> Result<(), Payload> {
    catch_unwind(AssertUnwindSafe(run))
}

/// Runs `run` once, catching a panic in it; its value, or the panic's payload.
pub(crate) fn catch_once<T>(run: impl FnOnce() -> T) -> Result<T, Payload> {
    let mut run = Some(run);
    let mut out = None;
    catch(&mut || out = run.take().map(|run| run()))?;
    // `catch` returned normally, so the closure ran to its end and set `out`.
    Ok(out.expect("the closure ran"))
}

/// Runs `poll` with the thread marked as running a handler of `branch` (see
/// [`handling`](crate::handling)), catching a panic in it.
#[inline(never)]
fn poll_marked(branch: BranchId, poll: &mut dyn FnMut()) -> Result<(), Payload> {
    let _marked = Marked::new(branch);
    catch(poll)
}

/// A handler's future, polled marked as a handler of its branch, its panic caught.
///
/// It holds the handler pinned where it was built (a handler's future can be large, and moving
/// it into a wrapper would cost a copy per message).
pub(crate) struct Guarded<'a, F: ?Sized> {
    /// `Some` for the worker, polled marked as running a handler of that branch; `None` for the
    /// handlers it polls (inside that marked poll) and for futures that are not handlers.
    pub(crate) branch: Option<BranchId>,
    pub(crate) future: Pin<&'a mut F>,
}

impl<F: Future + ?Sized> Future for Guarded<'_, F> {
    type Output = Result<F::Output, Payload>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut out = Poll::Pending;
        let future = &mut this.future;
        let mut poll = || out = future.as_mut().poll(cx);
        let polled = match this.branch {
            Some(branch) => poll_marked(branch, &mut poll),
            None => catch(&mut poll),
        };
        match polled {
            Ok(()) => out.map(Ok),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// A value whose type is erased, handed back by a task spawned with [`spawn_on`].
pub(crate) type Erased = Option<Box<dyn Any + Send>>;

/// Spawns `future` on `runtime`: one task type for all of them, whatever the server.
#[inline(never)]
pub(crate) fn spawn_on(runtime: &Handle, future: BoxFuture<'static, Erased>) -> JoinHandle<Erased> {
    runtime.spawn(future)
}
