//! [`TableError`]: why a table could not be had, or used.

use super::Access;

/// Why a table could not be had, or used.
///
/// ```
/// let err = peeper::TableError::Private { table: "sessions".into() };
/// assert_eq!(err.to_string(), "table `sessions` is private to its server's worker");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// [`table`](super::table): no running server of that type is registered under that name.
    #[error("no running server of this type is named `{server}`")]
    ServerNotFound {
        /// The server name looked up.
        server: String,
    },
    /// [`table`](super::table): the server has no table of that name (it has not created it yet, or
    /// the branch has ended and its tables with it).
    #[error("server `{server}` has no table named `{table}`")]
    NotFound {
        /// The server name.
        server: String,
        /// The table name.
        table: String,
    },
    /// The name holds a table of other key or value types, or of the other kind (hash or
    /// ordered), than the handle asked for.
    #[error("table `{table}` is a `{found}`, not a `{expected}`")]
    WrongType {
        /// The table name.
        table: String,
        /// The handle asked for.
        expected: &'static str,
        /// The handle the table was created with.
        found: &'static str,
    },
    /// [`table`](super::table): the table is [`Access::Private`].
    #[error("table `{table}` is private to its server's worker")]
    Private {
        /// The table name.
        table: String,
    },
    /// [`table`](super::table): a [`ReadWrite`](super::ReadWrite) handle was asked of a table that
    /// is only [`Access::Protected`]; a [`ReadOnly`](super::ReadOnly) one is allowed.
    #[error("table `{table}` is protected: other tasks may read it (`ReadOnly`), not write it")]
    ReadOnly {
        /// The table name.
        table: String,
    },
    /// [`Context::table_with`](crate::Context::table_with): the table exists with another
    /// access level. The first call decides; later ones must ask for the same.
    #[error("table `{table}` was created {existing:?}, not {requested:?}")]
    AccessMismatch {
        /// The table name.
        table: String,
        /// The level it was created with.
        existing: Access,
        /// The level asked for.
        requested: Access,
    },
    /// The branch that owned the table has ended: the table was emptied and detached, and a
    /// [`ReadOnly`](super::ReadOnly) or [`ReadWrite`](super::ReadWrite) handle on it refuses every
    /// operation.
    #[error("the branch that owned table `{table}` has ended")]
    BranchEnded {
        /// The table name.
        table: String,
    },
}
