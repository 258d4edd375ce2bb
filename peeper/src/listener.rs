//! [`Listener`]: hear about a server's state changes, restarts and end.

use crate::Exit;

/// Callbacks about a server's life, each optional.
///
/// They run in the listener's own task, one at a time and in the order things happened, never in the
/// worker: a slow listener delays other listener calls, never a handler. A panicking callback is
/// caught and logged; the keeper goes on with the next event.
///
/// `on_state_changed` receives shared copies the [`Snapshot`](crate::keep::Snapshot) strategy
/// makes anyway, so it adds no copy. With [`Projection`](crate::keep::Projection) it receives
/// states rebuilt from the kept parts; [`InPlace`](crate::keep::InPlace) keeps nothing to show,
/// and a server with `InPlace` and a listener that wants state changes does not start
/// ([`StartError::InvalidOptions`](crate::StartError::InvalidOptions)).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default, Debug)] struct Counter(u64);
/// # impl Server for Counter { type Call = (); type Reply = u64; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 { s.0 }
/// #   async fn handle_cast(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) { s.0 += 1 } }
///
/// #[derive(Default, Clone)]
/// struct Audit(Arc<Mutex<Vec<String>>>);
///
/// impl peeper::Listener<Counter> for Audit {
///     fn on_state_changed(&self, old: &Counter, new: &Counter) {
///         self.0.lock().unwrap().push(format!("{} -> {}", old.0, new.0));
///     }
///     fn on_terminate(&self, reason: &peeper::Exit, last: &Counter) {
///         self.0.lock().unwrap().push(format!("end at {}: {reason}", last.0));
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let audit = Audit::default();
/// let counter = Counter::builder(Counter::default()).listener(audit.clone()).start().await?;
/// counter.cast(())?;
/// counter.cast(())?;
/// counter.stop().await?;   // resolves after on_terminate ran
/// assert_eq!(*audit.0.lock().unwrap(), ["0 -> 1", "1 -> 2", "end at 2: stopped normally"]);
/// # Ok(()) }
/// ```
pub trait Listener<S>: Send + Sync + 'static {
    /// A handler changed the state; `old` is the previous kept state, `new` the one just kept.
    ///
    /// With the [`Projection`](crate::keep::Projection) strategy both are rebuilt from the kept
    /// parts; with [`InPlace`](crate::keep::InPlace) nothing is kept to show, and a server with
    /// a listener that wants these calls does not start. Each change waiting for this listener
    /// holds a copy of the state: see
    /// [`on_state_changes_skipped`](Listener::on_state_changes_skipped) for a listener that
    /// falls behind.
    fn on_state_changed(&self, old: &S, new: &S) {
        let _ = (old, new);
    }

    /// The listener fell behind: more changes waited for it than
    /// [`Builder::listener_backlog`](crate::Builder::listener_backlog) allows (1,024 by
    /// default), and the `skipped` changes before the next `on_state_changed` were coalesced
    /// into it. That call's `old` is then the state it last heard of, not the one just before
    /// `new`. Every restart and the end are still heard, in order.
    fn on_state_changes_skipped(&self, skipped: u64) {
        let _ = skipped;
    }

    /// A worker crashed with `reason` and incarnation `incarnation` is starting in its place.
    fn on_restart(&self, incarnation: u64, reason: &Exit) {
        let _ = (incarnation, reason);
    }

    /// The branch ended: on every end, normal stop, restart limit, crash loop, shutdown and
    /// transfer-out. `last` is the state as it was left (after `terminate`).
    fn on_terminate(&self, reason: &Exit, last: &S) {
        let _ = (reason, last);
    }

    /// Return `false` if you do not implement [`on_state_changed`](Listener::on_state_changed):
    /// the worker then does not even send the events.
    fn wants_state_changes(&self) -> bool {
        true
    }
}
