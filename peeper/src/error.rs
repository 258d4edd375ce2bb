//! The errors of each failure domain, one enum each.

use std::time::Duration;

use crate::Exit;
use crate::store::StoreError;

/// Why a call got no reply.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # use peeper::{CallError, Exit};
/// let err = CallError::Crashed(Exit::Panicked { message: "boom".into() });
/// assert_eq!(err.to_string(), "the worker crashed while handling this call: the worker panicked: boom");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum CallError {
    /// The worker crashed while handling this very call: it panicked
    /// ([`Exit::Panicked`], with the panic's message), or it was killed ([`Exit::Killed`]). The
    /// state is the one before this call; the messages queued behind it are handled by the next
    /// worker.
    ///
    /// Only a call whose handler did not complete is answered so: once a handler has completed
    /// and its state is kept, a kill that lands while a durable server waits for the commit
    /// still lets the caller have its reply after the commit (or [`CallError::Store`]), since
    /// the next worker starts from that state and a retry would apply the call twice.
    #[error("the worker crashed while handling this call: {0}")]
    Crashed(Exit),
    /// No reply came within the timeout (5 s unless set with
    /// [`Client::call_timeout`](crate::Client::call_timeout)). The call may still be handled
    /// later; its reply is then dropped, as with `GenServer.call/3`.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The branch had ended (with this exit) before the call could be handled.
    #[error("the server has stopped: {0}")]
    Stopped(Exit),
    /// The handler completed but its state could not be written to the server's store (a full
    /// disk, a read-only file, a lost database). The server keeps running; its state in memory is
    /// the new one, ahead of the store until a later write succeeds.
    #[error("the state could not be stored: {0}")]
    Store(StoreError),
    /// A handler (or `init`, or `terminate`) called its own server. The worker handles one
    /// message at a time, so the call would wait for the handler that made it: it fails at
    /// once instead, as Erlang's `gen_server:call` does (`calling_self`), and nothing was sent.
    /// Change the state directly, queue a message to yourself with a cast
    /// (`ctx.client().cast(..)`), or run the work before the next message with
    /// [`Context::continue_with`](crate::Context::continue_with).
    #[error("a server called itself from its own handler; the call would wait for itself")]
    CallingSelf,
    /// The handler took the call's reply handle ([`ReplyTo`](crate::ReplyTo)) and it was
    /// dropped without a reply. The handler had completed: its state is kept.
    #[error("the handler took the reply handle and dropped it without replying")]
    ReplyDropped,
    /// A call made with an idempotency key ([`Client::idempotent`](crate::Client::idempotent))
    /// carried a key that an earlier call to this server used with a different message (another
    /// handler, or other arguments). Nothing ran: the earlier call's record stands. Use a new
    /// key for a new request.
    #[error(
        "the idempotency key `{key}` was used before with a different message; nothing was applied"
    )]
    KeyReused {
        /// The key.
        key: String,
    },
    /// The call never reached a handler: nothing ran, and sending it again is safe. Only a
    /// client from [`Entities::get`](crate::Entities::get) or a cluster's `Node::get` answers
    /// this, after it has retried what it could (see [`Undelivered`]).
    #[error("the call was not applied: {0}")]
    NotApplied(Undelivered),
    /// The call was sent to node `node` and its answer was lost: the connection broke or the
    /// node died while the call was in flight, so the handler may have run. Retry it only
    /// with an idempotency key ([`Client::idempotent`](crate::Client::idempotent)), which
    /// makes a retry safe from any node: keyed calls cross nodes with their key.
    #[error("the call to node `{node}` may have been applied; its answer was lost: {reason}")]
    MaybeApplied {
        /// The node the call was sent to.
        node: String,
        /// What the transport said.
        reason: String,
    },
}

/// Why a call to a server on another node never reached its handler
/// ([`CallError::NotApplied`]): retrying it cannot apply it twice.
///
/// ```
/// let err = peeper::CallError::NotApplied(peeper::Undelivered::UnknownMessage {
///     kind: "player".into(),
///     reason: "unknown variant `Boost`".into(),
/// });
/// assert_eq!(
///     err.to_string(),
///     "the call was not applied: the node that runs `player` does not know this message \
///      (it runs another build): unknown variant `Boost`",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Undelivered {
    /// The owner's node could not be reached, and the call had not been sent (the connection
    /// was refused or could not be made).
    #[error("node `{node}` could not be reached: {reason}")]
    Unreachable {
        /// The node.
        node: String,
        /// What the transport said.
        reason: String,
    },
    /// The server kept moving between nodes: the call followed it as far as it goes (two
    /// hops) without reaching it.
    #[error("the server moved {hops} times while the call followed it")]
    Moved {
        /// How many nodes answered that it had moved.
        hops: u32,
    },
    /// The server was being handed off between nodes, and no node had taken it when the
    /// call's deadline passed.
    #[error("the server was being handed off, and no node took it within the call's deadline")]
    InHandoff,
    /// No live node of the cluster hosts this kind of server
    /// (`NodeBuilder::host`), so none could start it.
    #[error("no live node hosts servers of kind `{kind}`")]
    NotHosted {
        /// The server kind.
        kind: String,
    },
    /// The receiving node does not know this message: it runs another build of the server
    /// (older, without this handler), or the payload was malformed.
    #[error(
        "the node that runs `{kind}` does not know this message (it runs another build): {reason}"
    )]
    UnknownMessage {
        /// The server kind.
        kind: String,
        /// What its decoder said.
        reason: String,
    },
    /// The server's node could not start it (its `init` failed, its store refused the claim).
    #[error("the server could not be started: {reason}")]
    NotStarted {
        /// The start's error.
        reason: String,
    },
    /// The message is larger than the size cap of this node
    /// (`NodeBuilder::max_message_size`) or of the receiving one, which refused it unread.
    #[error("the message is {size} bytes, over the cap of {}", cap_text(*.limit))]
    TooLarge {
        /// Its size, encoded.
        size: usize,
        /// This node's cap, if it was this node's; `None` if the receiving node's was lower.
        limit: Option<usize>,
    },
    /// The message could not be encoded for the wire (or a keyed call reached a build that
    /// records none from other nodes).
    #[error("the message could not be encoded: {reason}")]
    Encode {
        /// What the encoder said.
        reason: String,
    },
}

fn cap_text(limit: Option<usize>) -> String {
    match limit {
        Some(limit) => format!("{limit} bytes"),
        None => "the receiving node".to_owned(),
    }
}

/// Why a cast, an info message or a delayed message could not be queued.
///
/// ```
/// let err = peeper::SendError::Stopped(peeper::Exit::Normal);
/// assert_eq!(err.to_string(), "the server has stopped: stopped normally");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The branch has ended, with this exit.
    #[error("the server has stopped: {0}")]
    Stopped(Exit),
}

/// Why a server did not start.
///
/// ```
/// let err = peeper::StartError::NameTaken { name: "counter".into(), server: "Counter" };
/// assert_eq!(err.to_string(), "the name `counter` is already taken by a running `Counter`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Another running server of the same type holds this name. Names are unique per server type
    /// and freed when a branch ends.
    #[error("the name `{name}` is already taken by a running `{server}`")]
    NameTaken {
        /// The name asked for.
        name: String,
        /// The server type's name.
        server: &'static str,
    },
    /// The first `init` failed ([`Exit::InitFailed`]), panicked, or the worker was killed before
    /// it finished. Nothing keeps running.
    #[error("the server failed to start: {0}")]
    Init(Exit),
    /// The [`DynamicSupervisor`](crate::DynamicSupervisor) asked to host the server has shut down.
    #[error("the dynamic supervisor has shut down")]
    SupervisorStopped,
    /// The stored state could not be read: the store failed, or it holds corrupt data, a newer
    /// version, or an older one that would not migrate. The stored bytes are left untouched.
    #[error("the stored state could not be loaded: {0}")]
    Store(StoreError),
    /// The options cannot work together; the text says which and why.
    #[error("invalid options: {0}")]
    InvalidOptions(&'static str),
    /// The start took longer than [`Builder::start_timeout`](crate::Builder::start_timeout):
    /// the worker was killed at its next await, and by the time this is returned nothing of the
    /// server is left (no task, no name, no claim), so the start can be tried again at once.
    #[error("the server did not start within {0:?}")]
    Timeout(Duration),
    /// The first `init` declined to run the server, returning
    /// [`Ignore`](crate::Ignore) (GenServer's `:ignore`). Nothing was registered and nothing
    /// keeps running.
    #[error("init declined to start the server (ignore)")]
    Ignored,
}

/// Why [`Client::stop`](crate::Client::stop) did not stop the branch.
///
/// ```
/// let err = peeper::StopError::AlreadyStopped(peeper::Exit::Killed);
/// assert_eq!(err.to_string(), "the server had already stopped: the worker was killed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// The branch had already ended, with this exit.
    #[error("the server had already stopped: {0}")]
    AlreadyStopped(Exit),
    /// [`DynamicSupervisor::terminate_child`](crate::DynamicSupervisor::terminate_child) was given
    /// a branch that this supervisor does not host.
    #[error("the branch is not a child of this supervisor")]
    NotAChild,
    /// The server stopped (it takes no more messages), but its last state could not be written
    /// to its store yet, for this reason. Nothing is lost: the branch keeps retrying, with a
    /// pause of up to a second, and keeps its claim and its name until the write commits, so
    /// no other node and no new start here reads an older state.
    /// [`Branch::ended`](crate::Branch::ended) resolves once it is stored.
    #[error("the server stopped, but its last state is not stored yet (retrying): {0}")]
    Store(StoreError),
    /// The server stopped, but its `terminate` panicked, with this message. The branch has
    /// ended all the same (its name is free, its state written as on any stop); this says that
    /// the clean-up `terminate` was to do may not have been done, as Erlang's `gen_server:stop`
    /// fails when `terminate` crashes.
    #[error("the server stopped, but its terminate panicked: {message}")]
    Terminate {
        /// The panic's message.
        message: String,
    },
    /// A handler called `stop` on its own server, which would wait for the handler that made
    /// it. Nothing was sent: use [`Context::stop`](crate::Context::stop) or
    /// [`Context::stop_with`](crate::Context::stop_with) to stop once the handler returns.
    #[error("a server tried to stop itself from its own handler; use `ctx.stop()`")]
    CallingSelf,
}

/// Why [`transfer`](crate::transfer) did not move a branch. The branch is left running where it
/// was, except with [`Stopped`](TransferError::Stopped) (it had ended) and
/// [`Store`](TransferError::Store) (a transfer between nodes that stopped it: see there).
///
/// ```
/// let err = peeper::TransferError::NotFound { name: "counter".into() };
/// assert_eq!(err.to_string(), "no child named `counter` under any running dynamic supervisor");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// No dynamic supervisor hosts a child with this name.
    #[error("no child named `{name}` under any running dynamic supervisor")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// A child with this name exists, but under another dynamic supervisor than `from`.
    #[error("the child `{name}` is not supervised by the source supervisor")]
    WrongSource {
        /// The name asked for.
        name: String,
    },
    /// More than one child under `from` has this name (names are unique per server type only).
    #[error("more than one child named `{name}` under the source supervisor")]
    Ambiguous {
        /// The name asked for.
        name: String,
    },
    /// The target supervisor has shut down.
    #[error("the target supervisor has shut down")]
    TargetStopped,
    /// Source and target are the same supervisor.
    #[error("source and target are the same supervisor")]
    SameSupervisor,
    /// The branch ended (with this exit) before it could be handed over.
    #[error("the server stopped before it could be transferred: {0}")]
    Stopped(Exit),
    /// A transfer to another node of a cluster
    /// (`cluster::Node::transfer`, with the `postgres` feature) stopped the server and released its
    /// lease for the target, but the target could not be notified. The target finds it when it
    /// next (re)connects; any node may also start it by name.
    #[error("the target node could not be notified: {0}")]
    Store(StoreError),
    /// A handler asked to transfer its own server, which would wait for the handler to
    /// return: nothing was done. Transfer it from another task (`tokio::spawn` one from the
    /// handler).
    #[error("a server tried to transfer itself from its own handler")]
    CallingSelf,
}
