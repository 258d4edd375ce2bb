//! The envelope stored bytes travel in, and [`Persist`], what a server declares to be stored.
//!
//! ```text
//! b"PEEP" | envelope version: u8 = 1 | codec id: u8 | schema version: u32 (LE) | payload
//! ```
//!
//! The codec id says how the payload is encoded ([`Codec`]); the schema version is the server's
//! [`Persist::VERSION`] when it was written. MessagePack with named fields is the default: it
//! tolerates added fields (with `#[serde(default)]`) and removed ones, so most changes need no
//! version bump at all.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Key, StoreError};
use crate::Server;
use crate::keep::{InPlace, Project, Projection, Snapshot};

const MAGIC: &[u8; 4] = b"PEEP";
const ENVELOPE_VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 1 + 4;

/// How a payload is encoded.
///
/// ```
/// assert_eq!(peeper::store::Codec::default(), peeper::store::Codec::MessagePack);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Codec {
    /// MessagePack with field names ([`rmp_serde::to_vec_named`]): compact, and tolerant of added
    /// and defaulted fields. The default.
    #[default]
    MessagePack,
    /// JSON: readable with any tool. Needs the `json` feature.
    #[cfg(feature = "json")]
    Json,
}

impl Codec {
    fn id(self) -> u8 {
        match self {
            Codec::MessagePack => 1,
            #[cfg(feature = "json")]
            Codec::Json => 2,
        }
    }

    fn from_id(id: u8) -> Option<Codec> {
        match id {
            1 => Some(Codec::MessagePack),
            #[cfg(feature = "json")]
            2 => Some(Codec::Json),
            _ => None,
        }
    }

    fn to_vec<T: Serialize>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Codec::MessagePack => rmp_serde::to_vec_named(value).map_err(|error| error.to_string()),
            #[cfg(feature = "json")]
            Codec::Json => serde_json::to_vec(value).map_err(|error| error.to_string()),
        }
    }

    // Not `from_slice`: clippy's `wrong_self_convention` (denied in CI) wants `from_*` without
    // `self`.
    fn decode_slice<T: DeserializeOwned>(self, payload: &[u8]) -> Result<T, String> {
        match self {
            Codec::MessagePack => rmp_serde::from_slice(payload).map_err(|error| error.to_string()),
            #[cfg(feature = "json")]
            Codec::Json => serde_json::from_slice(payload).map_err(|error| error.to_string()),
        }
    }
}

/// What a durable state needs to be stored: serde's `Serialize` and `Deserialize`. Implemented
/// for every such type; a trait of its own so that a state without them is told how to fix it.
///
/// ```
/// fn can_be_stored<S: peeper::store::Storable>() {}
/// can_be_stored::<Vec<String>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored: a durable state is written with serde",
    label = "needs `serde::Serialize` and `serde::Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}` (with serde's `derive` feature), and `#[serde(skip)]` on the fields that are not to be stored"
)]
// No supertraits: rustc checks supertraits one by one and reports each missing derive as an
// error of its own, in serde's words; a bound met through the impl below is reported once, in
// these words.
pub trait Storable: Sized {
    /// The state's payload in `codec`.
    #[doc(hidden)]
    fn __encode(&self, codec: Codec) -> Result<Vec<u8>, String>;

    /// A payload stored in this state's current version, decoded.
    #[doc(hidden)]
    fn __decode(stored: &Stored<'_>) -> Result<Self, String>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Storable for T {
    fn __encode(&self, codec: Codec) -> Result<Vec<u8>, String> {
        codec.to_vec(self)
    }

    fn __decode(stored: &Stored<'_>) -> Result<Self, String> {
        stored.decode()
    }
}

/// What a keep strategy stores of a durable state: what it keeps between handlers.
///
/// [`Snapshot`] and [`InPlace`] keep the whole state, so the whole state is stored (it must be
/// [`Storable`]). [`Projection`] keeps what [`Project::project`] returns, so only that is stored
/// (the projection must be [`Storable`]: `#[derive(peeper::State)]` makes it so when the kept
/// fields are), and a revival rebuilds the rest with [`Project::rebuild`] before `init` runs,
/// exactly as after a crash: a field marked `#[keep(skip)]` never reaches the store.
///
/// Implemented by the three strategies; [`Persist`] requires it of the server's
/// [`Server::Keep`] (through [`Persistable`]), so there is nothing to write.
///
/// ```
/// use peeper::keep::{Projection, Snapshot};
/// use peeper::store::Stores;
///
/// fn stores<K: Stores<S>, S>() {}
/// stores::<Snapshot, Vec<u64>>();
///
/// #[derive(peeper::State)]
/// struct Session { user: String, #[keep(skip)] connection: std::cell::Cell<u8> }
/// // A `Cell` is no serde type, but it is skipped: only `user` is stored.
/// stores::<Projection, Session>();
/// ```
pub trait Stores<S> {
    /// The stored form of `state`, in `codec`.
    #[doc(hidden)]
    fn __encode(state: &S, codec: Codec) -> Result<Vec<u8>, String>;

    /// A state decoded from its stored form (of the current schema version).
    #[doc(hidden)]
    fn __decode(stored: &Stored<'_>) -> Result<S, String>;
}

impl<S: Storable> Stores<S> for Snapshot {
    fn __encode(state: &S, codec: Codec) -> Result<Vec<u8>, String> {
        state.__encode(codec)
    }

    fn __decode(stored: &Stored<'_>) -> Result<S, String> {
        S::__decode(stored)
    }
}

impl<S: Storable> Stores<S> for InPlace {
    fn __encode(state: &S, codec: Codec) -> Result<Vec<u8>, String> {
        state.__encode(codec)
    }

    fn __decode(stored: &Stored<'_>) -> Result<S, String> {
        S::__decode(stored)
    }
}

impl<S: Project<Projection: Storable>> Stores<S> for Projection {
    fn __encode(state: &S, codec: Codec) -> Result<Vec<u8>, String> {
        // One projection per write, as the keeper makes one per changing handler: the store
        // is slower than the copy.
        state.project().__encode(codec)
    }

    fn __decode(stored: &Stored<'_>) -> Result<S, String> {
        S::Projection::__decode(stored).map(|kept| S::rebuild(&kept))
    }
}

/// A server whose state can be stored: what its keep strategy keeps is serde's ([`Stores`]).
/// Implemented for every such server; a trait of its own so that a server without it is told
/// how to fix it, whichever its strategy.
///
/// ```
/// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
/// struct Score(u64);
///
/// #[peeper::server]
/// impl Score {
///     #[call]
///     fn get(&self) -> u64 { self.0 }
/// }
///
/// fn persistable<S: peeper::store::Persistable>() {}
/// persistable::<Score>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored: what it keeps is written with serde",
    label = "what `{Self}` keeps is not `serde::Serialize + serde::Deserialize`",
    note = "with `Snapshot` (the default keep strategy) or `in_place`, the whole state is kept and stored: add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}` (with serde's `derive` feature), and `#[serde(skip)]` on the fields that are not to be stored",
    note = "with `keep = projection`, the fields `#[derive(peeper::State)]` keeps are stored: give each of them serde's derives, or mark it `#[keep(skip)]` (it is then rebuilt on revival, as after a crash)"
)]
pub trait Persistable: Server {
    /// The stored form of the state, in `codec`.
    #[doc(hidden)]
    fn __encode(&self, codec: Codec) -> Result<Vec<u8>, String>;

    /// A state decoded from its stored form (of the current schema version).
    #[doc(hidden)]
    fn __decode(stored: &Stored<'_>) -> Result<Self, String>;
}

#[diagnostic::do_not_recommend]
impl<S: Server> Persistable for S
where
    S::Keep: Stores<S>,
{
    fn __encode(&self, codec: Codec) -> Result<Vec<u8>, String> {
        <S::Keep as Stores<S>>::__encode(self, codec)
    }

    fn __decode(stored: &Stored<'_>) -> Result<S, String> {
        <S::Keep as Stores<S>>::__decode(stored)
    }
}

/// A server whose state can be stored: what it is called in the store, which schema version its
/// state is, and how to bring an older one forward.
///
/// The state is stored with serde: what its keep strategy keeps is what is stored ([`Stores`]).
/// With the default [`Snapshot`], that is the whole state: fields that must not be stored (a
/// connection, a cache) take `#[serde(skip)]` and are rebuilt by `init`, as after a crash. With
/// `keep = projection`, the fields marked `#[keep(skip)]` are neither kept nor stored, and the
/// state itself needs no serde derive.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use peeper::store::Stored;
///
/// /// Version 1 stored `score` as a `u32`; version 2 renamed it and widened it.
/// #[derive(Deserialize)]
/// struct PlayerV1 { score: u32 }
///
/// #[derive(Clone, Default, Serialize, Deserialize)]
/// pub struct Player { points: u64, #[serde(default)] level: u8 }
///
/// #[peeper::server]
/// impl Player {
///     #[call]
///     fn points(&self) -> u64 { self.points }
/// }
///
/// impl peeper::Persist for Player {
///     const KIND: &'static str = "player";
///     const VERSION: u32 = 2;
///
///     fn migrate(old: Stored<'_>) -> Result<Self, String> {
///         match old.version() {
///             1 => {
///                 let v1: PlayerV1 = old.decode()?;
///                 Ok(Player { points: u64::from(v1.score), level: 0 })
///             }
///             other => Err(format!("no migration from version {other}")),
///         }
///     }
/// }
/// ```
pub trait Persist: Persistable {
    /// The server kind's name in the store: keep it stable across releases (it is part of every
    /// key), and distinct between server types sharing a store.
    const KIND: &'static str;

    /// The schema version of the state. Raise it when a change cannot be read by the old
    /// decoding (a renamed field, a changed type), and teach [`migrate`](Persist::migrate) the
    /// old one.
    const VERSION: u32 = 1;

    /// How the state is encoded.
    const CODEC: Codec = Codec::MessagePack;

    /// Brings a state stored with an older [`VERSION`](Persist::VERSION) forward. The default
    /// knows no older version. An `Err` fails the start with [`StoreError::Migration`] and leaves
    /// the stored bytes as they are.
    ///
    /// `old` holds what was stored ([`Stores`]): the whole state, or with `keep = projection`
    /// the kept fields only. The state returned is the whole state; `init` runs on it next.
    ///
    /// # Errors
    /// The reason the old state cannot be migrated.
    fn migrate(old: Stored<'_>) -> Result<Self, String> {
        Err(format!(
            "`{}` has no migration from version {}",
            Self::KIND,
            old.version()
        ))
    }
}

/// A state stored with an older schema version, as [`Persist::migrate`] receives it.
///
/// ```
/// # use peeper::store::Stored;
/// fn migrate(old: Stored<'_>) -> Result<u64, String> {
///     match old.version() {
///         1 => old.decode::<u32>().map(u64::from),
///         v => Err(format!("unknown version {v}")),
///     }
/// }
/// # let _ = migrate;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    version: u32,
    codec: Codec,
    payload: &'a [u8],
}

impl Stored<'_> {
    /// The schema version the state was stored with.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Decodes the stored payload as `T`, typically the old version's struct.
    ///
    /// # Errors
    /// The codec's error, as text.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        self.codec.decode_slice(self.payload)
    }
}

/// Encodes a state in its envelope.
pub(crate) fn encode<S: Persist>(key: &Key, state: &S) -> Result<Vec<u8>, StoreError> {
    let payload = state
        .__encode(S::CODEC)
        .map_err(|reason| StoreError::Encode {
            key: key.clone(),
            reason,
        })?;
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(ENVELOPE_VERSION);
    bytes.push(S::CODEC.id());
    bytes.extend_from_slice(&S::VERSION.to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Decodes an envelope into a state, migrating an older version.
pub(crate) fn decode<S: Persist>(key: &Key, bytes: &[u8]) -> Result<S, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.clone(),
        reason,
    };
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(corrupt("not a peeper envelope".to_owned()));
    }
    if bytes[4] != ENVELOPE_VERSION {
        return Err(corrupt(format!("unknown envelope version {}", bytes[4])));
    }
    let codec = Codec::from_id(bytes[5])
        .ok_or_else(|| corrupt(format!("unknown codec id {}", bytes[5])))?;
    let version = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let stored = Stored {
        version,
        codec,
        payload: &bytes[HEADER..],
    };
    match version.cmp(&S::VERSION) {
        std::cmp::Ordering::Equal => S::__decode(&stored).map_err(corrupt),
        std::cmp::Ordering::Greater => Err(StoreError::NewerVersion {
            key: key.clone(),
            stored: version,
            known: S::VERSION,
        }),
        std::cmp::Ordering::Less => S::migrate(stored).map_err(|reason| StoreError::Migration {
            key: key.clone(),
            from: version,
            reason,
        }),
    }
}
