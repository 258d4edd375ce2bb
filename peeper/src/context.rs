//! [`Context`]: what a handler knows about the branch it runs in.

use std::fmt;

use crate::{Client, Server};

/// What a handler knows about its branch, and what it can ask of it.
///
/// Every handler may take it as its last-but-any argument (`ctx: &mut peeper::Context<Self>`).
///
/// ```
/// use peeper::{Context, Server, Tracked};
///
/// #[derive(Clone, Default)]
/// struct Restarts(u64);
///
/// impl Server for Restarts {
///     type Call = ();
///     type Reply = u64;
///     type Cast = ();
///     type Info = ();
///     type Keep = peeper::keep::Snapshot;
///
///     async fn init(state: &mut Tracked<Self>, ctx: &mut Context<Self>) -> Result<(), peeper::InitError> {
///         state.0 = ctx.incarnation(); // 0 at the first start, then 1, 2, ... after each crash
///         Ok(())
///     }
///     async fn handle_call(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> u64 {
///         state.0
///     }
///     async fn handle_cast(_: &mut Tracked<Self>, (): (), ctx: &mut Context<Self>) {
///         ctx.stop(); // stop normally once this handler returns
///     }
/// }
/// ```
pub struct Context<S: Server> {
    incarnation: u64,
    client: Client<S>,
    stop_requested: bool,
}

impl<S: Server> Context<S> {
    pub(crate) fn new(incarnation: u64, client: Client<S>) -> Self {
        Context {
            incarnation,
            client,
            stop_requested: false,
        }
    }

    /// Which worker this is: 0 for the first, then one more after every restart.
    #[must_use]
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// A client of this very server, to send itself messages (`ctx.client().cast(..)`) or to
    /// hand out. Calling yourself from a handler would wait for yourself: it times out.
    #[must_use]
    pub fn client(&self) -> &Client<S> {
        &self.client
    }

    /// Asks for a normal stop once the current handler returns: the branch ends with
    /// [`Exit::Normal`](crate::Exit::Normal), `terminate` runs, and messages still queued are
    /// answered with [`CallError::Stopped`](crate::CallError::Stopped).
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested
    }
}

impl<S: Server> fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("server", &std::any::type_name::<S>())
            .field("incarnation", &self.incarnation)
            .field("stop_requested", &self.stop_requested)
            .finish()
    }
}
