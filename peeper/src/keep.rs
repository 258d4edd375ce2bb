//! Keep strategies: how the keeper holds the state of the last completed handler.
//!
//! After every handler that borrowed the state mutably (see [`Tracked`](crate::Tracked)), the
//! worker asks the server's strategy to copy the live state into the keeper's cell; after a crash,
//! the next worker asks it to bring the live state back from that cell. `&self` handlers never
//! reach the strategy, so they cost nothing whatever the strategy.
//!
//! | strategy | what is kept | cost per changing handler | a crashing handler's partial changes |
//! |---|---|---|---|
//! | [`Snapshot`] (default) | a full copy (`Clone`) | one `clone_from` (reuses buffers) | gone |
//! | [`Projection`] | what [`Project::project`] returns | one `project()` | gone; the rest is rebuilt by [`Project::rebuild`], then `init` |
//! | [`InPlace`] | the live state itself | nothing | **stay**: the next worker sees them |

use std::sync::Arc;

/// A keep strategy: how a server's state is kept between handlers. Choose one of [`Snapshot`],
/// [`Projection`] or [`InPlace`] as [`Server::Keep`](crate::Server::Keep).
///
/// The trait is public so that generated code and hand-written servers can name it; the three
/// strategies above are the ones the runtime is tested with.
///
/// ```
/// use peeper::keep::{Keep, Snapshot};
///
/// let mut kept = None;
/// <Snapshot as Keep<Vec<u8>>>::copy(&vec![1, 2, 3], &mut kept);
/// let mut live = vec![9];
/// <Snapshot as Keep<Vec<u8>>>::restore(kept.as_ref().unwrap(), &mut live);
/// assert_eq!(live, [1, 2, 3]);
/// ```
pub trait Keep<S>: Send + 'static {
    /// What the keeper holds.
    type Kept: Send + Sync + 'static;

    /// `false` when the strategy keeps no copy ([`InPlace`]): the worker then skips
    /// [`copy`](Keep::copy) entirely.
    const COPIES: bool;

    /// Copies the live state into `into`, reusing what `into` already holds where it can.
    ///
    /// The keeper calls this on a scratch cell and swaps it with the good one only when the copy
    /// returns, so a `Clone` impl that panics half-way never damages the kept state.
    fn copy(live: &S, into: &mut Option<Self::Kept>);

    /// Brings the live state back to what was kept, after a crash.
    fn restore(kept: &Self::Kept, live: &mut S);

    /// A cheap second handle on the kept state for [`Listener::on_state_changed`](crate::Listener),
    /// when the strategy keeps the whole state; `None` otherwise (then no state-change events).
    /// (It may change how `kept` holds the state, to share it.)
    fn share(kept: &mut Option<Self::Kept>) -> Option<Self::Kept>;

    /// The whole state inside what was kept, when the strategy keeps all of it.
    fn view(kept: &Self::Kept) -> Option<&S>;

    /// What a [`Listener`](crate::Listener) is shown of a kept state: the state itself when the
    /// strategy keeps all of it ([`view`](Keep::view)); rebuilt from the kept part by
    /// [`Projection`] (as a restart would, before `init`); `None` when nothing is kept
    /// ([`InPlace`]).
    fn show(kept: &Self::Kept) -> Option<Shown<'_, S>> {
        Self::view(kept).map(Shown::Kept)
    }
}

/// A kept state as a [`Listener`](crate::Listener) sees it: see [`Keep::show`].
#[derive(Debug)]
pub enum Shown<'a, S> {
    /// The kept copy itself.
    Kept(&'a S),
    /// A state rebuilt from the kept part.
    Rebuilt(S),
}

impl<S> std::ops::Deref for Shown<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        match self {
            Shown::Kept(state) => state,
            Shown::Rebuilt(state) => state,
        }
    }
}

/// Keep a full copy of the state after every changing handler (the default; needs `Clone`).
///
/// The copy is refreshed with [`Clone::clone_from`], so a `Vec` or `String` state reuses its
/// buffers. It moves into an [`Arc`] only when a listener asks for it, so that the listener
/// shares it instead of copying again; without a listener, keeping costs no atomic operation.
///
/// ```
/// use peeper::{Context, Server, Tracked};
///
/// #[derive(Clone, Default)]
/// struct Total(u64);
///
/// impl Server for Total {
///     type Call = ();
///     type Reply = u64;
///     type Cast = u64;
///     type Info = ();
///     type Keep = peeper::keep::Snapshot;
///
///     async fn handle_call(state: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 {
///         state.0
///     }
///     async fn handle_cast(state: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) {
///         state.0 += by;
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot;

/// What [`Snapshot`] keeps: the copy, owned until a listener shares it.
#[derive(Debug)]
pub enum SnapshotCopy<S> {
    /// Held by the keeper alone.
    Owned(S),
    /// Also held by the listener.
    Shared(Arc<S>),
}

impl<S> SnapshotCopy<S> {
    fn get(&self) -> &S {
        match self {
            SnapshotCopy::Owned(state) => state,
            SnapshotCopy::Shared(state) => state,
        }
    }
}

/// What [`Snapshot`] needs of a state: `Clone`, to copy it, and `Sync`, since a listener shares
/// the copies. Implemented for every such type; a trait of its own so that a state without it is
/// told which strategies need less.
///
/// ```
/// fn snapshot_can_keep<S: peeper::keep::SnapshotState>() {}
/// snapshot_can_keep::<Vec<u64>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be kept with `Snapshot`, the default keep strategy: it copies the state with `Clone`, and a listener shares the copies (`Sync`)",
    label = "not `Clone + Sync`: cannot be kept with `keep = snapshot`",
    note = "derive `Clone` (with `Arc` around what cannot be cloned, and `Mutex` around what is not `Sync`), or choose a strategy that needs no `Clone`: `#[peeper::server(keep = in_place)]` keeps no copy (a crash keeps a handler's partial changes), `#[peeper::server(keep = projection)]` with `#[derive(peeper::State)]` copies the fields not marked `#[keep(skip)]` and rebuilds the others"
)]
pub trait SnapshotState: Clone + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Clone + Send + Sync + 'static> SnapshotState for T {}

impl<S: SnapshotState> Keep<S> for Snapshot {
    type Kept = SnapshotCopy<S>;
    const COPIES: bool = true;

    fn copy(live: &S, into: &mut Option<SnapshotCopy<S>>) {
        match into {
            Some(SnapshotCopy::Owned(scratch)) => scratch.clone_from(live),
            // Reuse the buffers of a shared copy too, once the listener has let go of it.
            Some(SnapshotCopy::Shared(shared)) => match Arc::get_mut(shared) {
                Some(scratch) => scratch.clone_from(live),
                None => *into = Some(SnapshotCopy::Owned(live.clone())),
            },
            None => *into = Some(SnapshotCopy::Owned(live.clone())),
        }
    }

    fn restore(kept: &SnapshotCopy<S>, live: &mut S) {
        live.clone_from(kept.get());
    }

    fn share(kept: &mut Option<SnapshotCopy<S>>) -> Option<SnapshotCopy<S>> {
        // An owned copy moves into an `Arc` (no clone); a shared one is shared once more.
        let shared = match kept.take()? {
            SnapshotCopy::Owned(state) => Arc::new(state),
            SnapshotCopy::Shared(shared) => shared,
        };
        *kept = Some(SnapshotCopy::Shared(Arc::clone(&shared)));
        Some(SnapshotCopy::Shared(shared))
    }

    fn view(kept: &SnapshotCopy<S>) -> Option<&S> {
        Some(kept.get())
    }
}

/// Keep only a part of the state, chosen by the server's [`Project`] impl; the rest is rebuilt
/// by [`Project::rebuild`] and then `init` after a crash.
///
/// A listener's [`on_state_changed`](crate::Listener::on_state_changed) sees states rebuilt from
/// the kept parts (what a restart would start from, before `init`): one `rebuild` per side of
/// each change, on the keeper's task, off the handlers' path.
///
/// Use it when part of the state is large and derivable (a cache, an index) or cannot be cloned
/// (a connection). `#[derive(peeper::State)]` will write the [`Project`] impl from
/// `#[keep(skip)]` field attributes.
///
/// ```
/// use peeper::keep::Project;
///
/// struct Session { user: String, scratch: Vec<u8> }
///
/// impl Project for Session {
///     type Projection = String;
///     fn project(&self) -> String { self.user.clone() }
///     fn rebuild(user: &String) -> Self { Session { user: user.clone(), scratch: Vec::new() } }
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Projection;

/// The part of a state that [`Projection`] keeps, and how to rebuild the whole from it.
///
/// See [`Projection`] for an example.
pub trait Project: Sized {
    /// The kept part.
    type Projection: Send + Sync + 'static;
    /// Extracts the kept part from the live state.
    fn project(&self) -> Self::Projection;
    /// Rebuilds a whole state from the kept part; `init` runs on it next.
    fn rebuild(projection: &Self::Projection) -> Self;
}

impl<S: Project + Send + 'static> Keep<S> for Projection {
    /// Behind an `Arc`, so that a listener shares each projection instead of projecting again.
    type Kept = Arc<S::Projection>;
    const COPIES: bool = true;

    fn copy(live: &S, into: &mut Option<Arc<S::Projection>>) {
        *into = Some(Arc::new(live.project()));
    }

    fn restore(kept: &Arc<S::Projection>, live: &mut S) {
        *live = S::rebuild(kept);
    }

    fn share(kept: &mut Option<Arc<S::Projection>>) -> Option<Arc<S::Projection>> {
        kept.as_ref().map(Arc::clone)
    }

    fn view(_: &Arc<S::Projection>) -> Option<&S> {
        None
    }

    fn show(kept: &Arc<S::Projection>) -> Option<Shown<'_, S>> {
        Some(Shown::Rebuilt(S::rebuild(kept)))
    }
}

/// Keep the live state itself: no copy at all, and **a crashing handler's partial changes stay**.
///
/// The live state lives in the keeper's cell and the worker borrows it; when the worker panics or
/// is killed, the next worker gets the very same value, including whatever the crashing handler
/// had already changed. Choose it for states too large to copy whose handlers are written so that
/// every intermediate state is valid. There is no old state to show, so a listener that wants
/// `on_state_changed` events is refused at start (`StartError::InvalidOptions`, naming the fix)
/// rather than left silent.
///
/// ```
/// #[derive(Default)]
/// struct Log(Vec<String>);
///
/// impl peeper::Server for Log {
///     type Call = ();
///     type Reply = usize;
///     type Cast = String;
///     type Info = ();
///     type Keep = peeper::keep::InPlace;
///
///     async fn handle_call(state: &mut peeper::Tracked<Self>, _: (), _: &mut peeper::Context<Self>) -> usize {
///         state.0.len()
///     }
///     async fn handle_cast(state: &mut peeper::Tracked<Self>, line: String, _: &mut peeper::Context<Self>) {
///         state.0.push(line);
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct InPlace;

impl<S: Send + 'static> Keep<S> for InPlace {
    type Kept = ();
    const COPIES: bool = false;

    fn copy(_: &S, _: &mut Option<()>) {}

    fn restore(_: &(), _: &mut S) {}

    fn share(_: &mut Option<()>) -> Option<()> {
        None
    }

    fn view(_: &()) -> Option<&S> {
        None
    }
}
