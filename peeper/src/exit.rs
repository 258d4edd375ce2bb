//! Why a worker or a whole branch ended.

use std::any::Any;
use std::fmt;
use std::time::Duration;

use crate::panics::panic_message;

/// Why a worker incarnation or a whole branch ended.
///
/// The same type describes a crash (what the crashing caller hears in
/// [`CallError::Crashed`](crate::CallError::Crashed), what
/// [`Listener::on_restart`](crate::Listener::on_restart) receives) and the end of a branch (what
/// `#[terminate]` and [`Listener::on_terminate`](crate::Listener::on_terminate) receive).
///
/// ```
/// use peeper::Exit;
///
/// let exit = Exit::Panicked { message: "boom".into() };
/// assert!(exit.is_crash());
/// assert_eq!(exit.to_string(), "the worker panicked: boom");
/// assert!(!Exit::Normal.is_crash());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Exit {
    /// The branch was stopped on request ([`Client::stop`](crate::Client::stop), or a handler
    /// called [`Context::stop`](crate::Context::stop)).
    Normal,
    /// The branch was stopped on request with a reason
    /// ([`Client::stop_with`](crate::Client::stop_with), or a handler called
    /// [`Context::stop_with`](crate::Context::stop_with)): a normal stop in every other way
    /// (`terminate` runs; from outside, the messages queued before the stop are handled first,
    /// from inside the handler the queued ones are refused; a durable state is wiped as on a
    /// [`Normal`](Exit::Normal) stop unless [`OnStop::Keep`](crate::OnStop::Keep)).
    Stopped {
        /// The reason given.
        reason: String,
    },
    /// An `init` declined to run the server by returning [`Ignore`](crate::Ignore): at the first
    /// start the start fails with [`StartError::Ignored`](crate::StartError::Ignored); after a
    /// restart the branch ends quietly (no `terminate`), its kept state stored as on any end.
    Ignored,
    /// A handler panicked; `message` is the panic's message.
    Panicked {
        /// The panic's message (`"<non-string panic payload>"` when it was not a string).
        message: String,
    },
    /// `init` returned an error or panicked.
    InitFailed {
        /// The error's `Display` text, or the panic's message.
        message: String,
    },
    /// The worker was killed from outside ([`Branch::kill_worker`](crate::Branch::kill_worker)).
    Killed,
    /// The worker crashed more than `max_restarts` times within the window, so the branch gave up.
    RestartLimit {
        /// The configured limit that was exceeded.
        max_restarts: u32,
        /// The configured window.
        within: Duration,
        /// The crash that went over the limit.
        last: Box<Exit>,
    },
    /// Several incarnations in a row could not start on the kept state (their `init` failed or
    /// panicked), and the crash-loop policy was [`CrashLoop::Stop`](crate::CrashLoop::Stop) (or a
    /// reset did not help).
    CrashLoop {
        /// How many incarnations in a row failed to start.
        crashes: u32,
        /// The last of those crashes.
        last: Box<Exit>,
    },
    /// The branch was moved to another [`DynamicSupervisor`](crate::DynamicSupervisor) by
    /// [`transfer`](crate::transfer); it lives on there, with the same clients.
    Transferred,
    /// The [`DynamicSupervisor`](crate::DynamicSupervisor) hosting the branch shut down.
    Shutdown,
    /// A hibernating branch could not be revived: its stored state could not be loaded.
    ReviveFailed {
        /// Why, from the store.
        message: String,
    },
    /// Another node owns the server now (a cluster on a shared store): this node's lease expired
    /// and was claimed by `owner`, so a write was refused by fencing
    /// ([`StoreError::Fenced`](crate::store::StoreError::Fenced)) or the node saw the lease
    /// taken; or the server hibernated here and `owner` started it meanwhile. The state in this
    /// process was not written; the server lives on at `owner`.
    Fenced {
        /// The node that owns the server now, if known.
        owner: Option<crate::store::NodeId>,
    },
    /// The server was handed off to another node of the cluster, with its last state written
    /// and its lease released: on this node's graceful shutdown (`to` is `None`: whichever node
    /// takes it over) or by a transfer to node `to`.
    HandedOff {
        /// The node it was transferred to, if one was named.
        to: Option<crate::store::NodeId>,
    },
}

impl Exit {
    /// `true` for the exits that restart the worker: [`Panicked`](Exit::Panicked),
    /// [`InitFailed`](Exit::InitFailed) and [`Killed`](Exit::Killed).
    ///
    /// ```
    /// assert!(peeper::Exit::Killed.is_crash());
    /// assert!(!peeper::Exit::Transferred.is_crash());
    /// ```
    #[must_use]
    pub fn is_crash(&self) -> bool {
        matches!(
            self,
            Exit::Panicked { .. } | Exit::InitFailed { .. } | Exit::Killed
        )
    }

    /// Builds [`Exit::Panicked`] from a panic payload, as `catch_unwind` returns it.
    pub(crate) fn panicked(payload: &(dyn Any + Send)) -> Exit {
        Exit::Panicked {
            message: panic_message(payload),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Normal => f.write_str("stopped normally"),
            Exit::Stopped { reason } => write!(f, "stopped: {reason}"),
            Exit::Ignored => f.write_str("init declined to run the server (ignore)"),
            Exit::Panicked { message } => write!(f, "the worker panicked: {message}"),
            Exit::InitFailed { message } => write!(f, "init failed: {message}"),
            Exit::Killed => f.write_str("the worker was killed"),
            Exit::RestartLimit {
                max_restarts,
                within,
                last,
            } => write!(
                f,
                "more than {max_restarts} restarts within {within:?} (last: {last})"
            ),
            Exit::CrashLoop { crashes, last } => write!(
                f,
                "{crashes} incarnations in a row failed to start on the kept state (last: {last})"
            ),
            Exit::Transferred => f.write_str("transferred to another supervisor"),
            Exit::Shutdown => f.write_str("its dynamic supervisor shut down"),
            Exit::ReviveFailed { message } => write!(f, "could not be revived: {message}"),
            Exit::Fenced { owner: Some(owner) } => {
                write!(f, "fenced: node `{owner}` owns the server now")
            }
            Exit::Fenced { owner: None } => {
                f.write_str("fenced: this node lost the server's lease")
            }
            Exit::HandedOff { to: Some(to) } => write!(f, "handed off to node `{to}`"),
            Exit::HandedOff { to: None } => f.write_str("handed off to another node"),
        }
    }
}

/// An `Exit` is also the error of [`Branch::next_restart`](crate::Branch::next_restart): the branch
/// ended instead of restarting.
impl std::error::Error for Exit {}
