//! What only a durable branch does: the claim and the load at start, the last write at the end,
//! hibernation and revival. It is reached through [`DurablePaths`], a table of pointers that
//! [`Builder::store`] sets, so a server without a store neither runs this code nor has it
//! compiled in its crate (each generic function here would otherwise be compiled for every
//! server type).

use tokio::time::Instant;

use super::typed::TypedHalf;
use super::{Bits, release, within};
use crate::durable::{ClaimGuard, Durable, DurableKind};
use crate::erased::BoxFuture;
use crate::keeper::Cell;
use crate::options::{OnStop, Options};
use crate::store::{Persist, Storage};
use crate::worker::Hooks;
use crate::{Branch, Builder, Client, Exit, Server, StartError, registry};

/// The durable paths of a server type's supervision.
pub(super) struct DurablePaths<S: Server> {
    /// Claims a name's key and loads its stored state, at a start.
    pub(super) claim_and_load: for<'a> fn(ClaimAndLoad<'a, S>) -> BoxFuture<'a, Loaded<S>>,
    /// Writes the last state (or wipes it) and releases the claim, at the end.
    pub(super) last_write: for<'a> fn(LastWrite<'a, S>) -> BoxFuture<'a, ()>,
    /// Parks an idle branch until its next message.
    pub(super) hibernate: fn(TypedHalf<S>, Bits) -> BoxFuture<'static, ()>,
    /// What the worker does around its handlers.
    pub(super) worker: &'static Hooks<S>,
}

impl<S: Persist> DurablePaths<S> {
    /// The table, built in a constant so that `&DurablePaths::<S>::ALL` is `'static`.
    pub(super) const ALL: Self = DurablePaths {
        claim_and_load: |args| Box::pin(claim_and_load(args)),
        last_write: |args| Box::pin(last_write(args)),
        hibernate: |typed, bits| Box::pin(typed.hibernate_branch(bits)),
        worker: &Hooks::ALL,
    };

    /// The server type's [`DurableKind`], with these paths: a constant, so that
    /// `&DurablePaths::<S>::KIND` is `'static` too.
    const KIND: DurableKind<S> = DurableKind::of(&DurablePaths::<S>::ALL);
}

/// The durable paths of the server `durable` belongs to.
pub(super) fn durable_paths<S: Server>(durable: &Durable<S>) -> &'static DurablePaths<S> {
    durable
        .of
        .paths
        .downcast_ref()
        .expect("`Builder::store` sets the paths of the builder's own server type")
}

impl<S: Persist, C: From<Client<S>>> Builder<S, C> {
    /// Makes the server durable: its state is written to `storage` after every handler that
    /// changed it (see [`WritePolicy`](crate::WritePolicy)), and a start under a name that has a stored state starts
    /// from that state instead of the one given to the builder (after migrating it if it is older;
    /// see [`Persist`]). Needs a [`name`](Builder::name): the stored state's key is
    /// ([`Persist::KIND`], name).
    ///
    /// ```
    /// use peeper::store::{Memory, Storage};
    ///
    /// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
    /// pub struct Tally { n: u64 }
    ///
    /// #[peeper::server]
    /// impl Tally {
    ///     #[call]
    ///     fn bump(&mut self) -> u64 { self.n += 1; self.n }
    /// }
    ///
    /// impl peeper::Persist for Tally { const KIND: &'static str = "tally"; }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let storage = Storage::new(Memory::new());
    /// let start = || Tally::builder(Tally::default()).name("t").store(storage.clone()).on_stop(peeper::OnStop::Keep);
    ///
    /// let tally = start().start().await?;
    /// assert_eq!(tally.bump().await?, 1);
    /// tally.stop().await?;                       // `OnStop::Keep`: the state stays stored
    ///
    /// let tally = start().start().await?;        // the same name: it starts from the store
    /// assert_eq!(tally.bump().await?, 2);
    /// # Ok(()) }
    /// ```
    pub fn store(mut self, storage: impl Into<Storage>) -> Self {
        self.durable = Some(Durable::new(storage.into(), &DurablePaths::<S>::KIND));
        self
    }
}

/// What a start hands to [`DurablePaths::claim_and_load`].
pub(super) struct ClaimAndLoad<'a, S: Server> {
    pub(super) durable: &'a mut Durable<S>,
    pub(super) name: &'a str,
    pub(super) deadline: Option<Instant>,
    pub(super) timeout: std::time::Duration,
}

/// The claim a start made, and the stored state with its fingerprint, if there is one.
pub(super) type Loaded<S> = Result<(ClaimGuard, Option<(S, u64)>), StartError>;

/// Claims the key, then reads it: in a cluster the claim fences the previous owner, so what is
/// read after it is final (see `Store::claim`). Dropped at either await, the claim is given up
/// (its guard's drop). Every write of the branch is then made under the claim.
async fn claim_and_load<S: Server>(args: ClaimAndLoad<'_, S>) -> Loaded<S> {
    let ClaimAndLoad {
        durable,
        name,
        deadline,
        timeout,
    } = args;
    // Checked before the claim too: a second start of a running name must not claim (in a
    // cluster, that would fence the running server). `register` still settles a race between
    // two starts. A released server counts as running (and is not revived by the look).
    if registry::is_registered_as::<S>(name) {
        return Err(StartError::NameTaken {
            name: name.to_owned(),
            server: std::any::type_name::<S>(),
        });
    }
    let key = durable.key(name);
    let guard = within(deadline, durable.claim(&key))
        .await
        .ok_or(StartError::Timeout(timeout))?
        .map_err(StartError::Store)?;
    match within(deadline, durable.load(&key)).await {
        Some(Ok(stored)) => {
            durable.claim = Some(guard.claim());
            Ok((guard, stored))
        }
        Some(Err(error)) => {
            guard.release().await;
            Err(StartError::Store(error))
        }
        None => {
            guard.release().await;
            Err(StartError::Timeout(timeout))
        }
    }
}

/// What the end of a branch hands to [`DurablePaths::last_write`].
pub(super) struct LastWrite<'a, S: Server> {
    pub(super) durable: &'a Durable<S>,
    pub(super) options: &'a Options,
    pub(super) cell: &'a mut Cell<S>,
    pub(super) branch: &'a Branch,
    pub(super) exit: &'a Exit,
    /// Whether the first `init` completed.
    pub(super) started: bool,
}

/// Makes sure the last state is stored (or wipes it, on a normal stop with `OnStop::Wipe`), then
/// releases the claim.
async fn last_write<S: Server>(args: LastWrite<'_, S>) {
    let LastWrite {
        durable,
        options,
        cell,
        branch,
        exit,
        started,
    } = args;
    let Some(name) = branch.name() else {
        return;
    };
    let key = durable.key(name);
    let stored = if !started {
        // `init` never completed: nothing of this branch's is worth storing.
        Ok(())
    } else if matches!(exit, Exit::Normal | Exit::Stopped { .. }) && options.on_stop == OnStop::Wipe
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
        // Every other end keeps the state for the next start: make sure the last one is there
        // (a batched write may be pending), with the records of keyed calls not written yet.
        let records = cell
            .retained
            .as_deref()
            .map(|retained| retained.unwritten.take())
            .unwrap_or_default();
        match durable.encode(&key, &cell.live) {
            Ok(bytes) => durable.store_last(branch, &key, bytes, records).await,
            Err(error) => Err(error),
        }
    };
    match stored {
        // The claim made at start (or revival) ends with the branch, after its last write, and
        // only then: released after a failed write, it would let another node revive an older
        // state.
        Ok(()) => release(durable, &key).await,
        Err(error) => {
            tracing::error!(server = branch.server(), name, %error, "could not store the last state; the claim is kept");
        }
    }
}
