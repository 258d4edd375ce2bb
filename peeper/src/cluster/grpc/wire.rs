//! What travels between nodes: one request type ([`Invoke`]), one answer type ([`Outcome`]),
//! MessagePack through a tonic [`Codec`]. One generic gRPC method carries every server kind's
//! messages, so nothing is generated from `.proto` files and no `protoc` is needed.

use std::marker::PhantomData;

use bytes::{Buf, BufMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::CallError;
use crate::store::NodeId;

/// The path of the one method: `/<service>/<method>`.
pub(super) const INVOKE: &str = "/peeper.Node/Invoke";

/// A message for the server `kind`/`name`, from another node.
#[derive(Debug, Serialize, serde::Deserialize)]
pub(crate) struct Invoke {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) message: Message,
    /// The message, encoded with the kind's own types (see `peeper::remote`).
    #[serde(with = "serde_bytes")]
    pub(crate) payload: Vec<u8>,
    /// How long the caller still waits, in milliseconds: the deadline travels with the call.
    pub(crate) timeout_ms: u64,
    /// Start the server here if nobody owns it (the caller's placement chose this node).
    pub(crate) activate: bool,
    /// A call made with an idempotency key: the key, and the digest of the message.
    #[serde(default)]
    pub(crate) keyed: Option<(String, u64)>,
    /// The epoch of the lease the caller routed by, when it knows it: a node holding an older
    /// one has lost the server without noticing yet, and must not answer for it.
    #[serde(default)]
    pub(crate) epoch: Option<i64>,
}

/// What the payload of an [`Invoke`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) enum Message {
    Call,
    Cast,
    Info,
    /// Stop the server (`Client::stop` on a remote client); the payload is the exit.
    Stop,
    /// Only make sure the server runs (placement on another node).
    Activate,
}

/// The answer to an [`Invoke`].
#[derive(Debug, Serialize, serde::Deserialize)]
pub(crate) enum Outcome {
    /// The reply of a call, encoded with the kind's types.
    Reply(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A cast, info, stop or activation was taken.
    Done,
    /// This node does not run the server, and ran nothing: it is at `owner`, whose lease has
    /// `epoch` and who answers at `address` when this node knows them, or nobody runs it
    /// (`owner` is `None`).
    Moved {
        owner: Option<NodeId>,
        epoch: Option<i64>,
        #[serde(default)]
        address: Option<String>,
    },
    /// The call failed at the server, as a local call would have.
    Failed(CallError),
}

impl Outcome {
    /// Nobody runs the server (yet): the caller waits and looks again.
    pub(crate) fn nowhere() -> Outcome {
        Outcome::Moved {
            owner: None,
            epoch: None,
            address: None,
        }
    }

    /// It runs at `owner` (its address unknown here).
    pub(crate) fn at(owner: Option<NodeId>) -> Outcome {
        Outcome::Moved {
            owner,
            epoch: None,
            address: None,
        }
    }
}

/// MessagePack (with field names) for `E` out and `D` in.
#[derive(Debug)]
pub(super) struct WireCodec<E, D>(PhantomData<fn(E) -> D>);

impl<E, D> Default for WireCodec<E, D> {
    fn default() -> Self {
        WireCodec(PhantomData)
    }
}

impl<E, D> Codec for WireCodec<E, D>
where
    E: Serialize + Send + 'static,
    D: DeserializeOwned + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = WireEncoder<E>;
    type Decoder = WireDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        WireEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        WireDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub(super) struct WireEncoder<E>(PhantomData<fn(E)>);

impl<E: Serialize> Encoder for WireEncoder<E> {
    type Item = E;
    type Error = Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        rmp_serde::encode::write_named(&mut dst.writer(), &item)
            .map_err(|error| Status::internal(format!("peeper: could not encode: {error}")))
    }
}

#[derive(Debug)]
pub(super) struct WireDecoder<D>(PhantomData<fn() -> D>);

impl<D: DeserializeOwned> Decoder for WireDecoder<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        decode_frame(&bytes).map(Some)
    }
}

/// One frame, decoded: a malformed one is a typed status, never a panic.
pub(super) fn decode_frame<D: DeserializeOwned>(bytes: &[u8]) -> Result<D, Status> {
    rmp_serde::from_slice(bytes)
        .map_err(|error| Status::invalid_argument(format!("peeper: malformed frame: {error}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame<T: Serialize>(value: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(value).unwrap()
    }

    #[test]
    fn an_invoke_round_trips() {
        let invoke = Invoke {
            kind: "player".into(),
            name: "ada".into(),
            message: Message::Call,
            payload: vec![1, 2, 3],
            timeout_ms: 5000,
            activate: false,
            keyed: Some(("payment-41".into(), 7)),
            epoch: Some(3),
        };
        let back: Invoke = decode_frame(&frame(&invoke)).unwrap();
        assert_eq!(
            (back.kind.as_str(), back.payload),
            ("player", vec![1, 2, 3])
        );
    }

    proptest::proptest! {
        /// Any bytes at all: an error or a value, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_frame::<Invoke>(&bytes);
            let _ = decode_frame::<Outcome>(&bytes);
        }

        /// A valid frame cut short or corrupted in one byte: an error or a value, never a panic.
        #[test]
        fn damaged_frames_never_panic(cut in 0usize..64, at in 0usize..64, byte in proptest::num::u8::ANY) {
            let mut bytes = frame(&Outcome::Failed(CallError::Crashed(crate::Exit::Panicked { message: "boom".into() })));
            bytes.truncate(cut.max(1));
            let at = at % bytes.len();
            bytes[at] = byte;
            let _ = decode_frame::<Outcome>(&bytes);
        }
    }
}
