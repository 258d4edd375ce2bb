//! Handoff notifications: the payload of a `NOTIFY` (keys only, never state), and the dedicated
//! connection a node `LISTEN`s on.
//!
//! ```text
//! <target: a node id, or * for any node taking over>\n
//! <kind>\t<name>\n
//! <kind>\t<name>\n ...
//! ```
//!
//! `%`, tab and newline inside ids are escaped as `%25`, `%09` and `%0A`. PostgreSQL caps a
//! payload below 8,000 bytes, so a long list of keys goes out in several notifications.

use std::future::poll_fn;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Connection};

use crate::store::{Key, NodeId};

/// Below PostgreSQL's limit (payloads must be shorter than 8,000 bytes).
const MAX_PAYLOAD: usize = 7_900;
const ANY: &str = "*";

/// The payloads announcing `keys` to `target` (any node if `None`). A key too long to fit in a
/// payload on its own is left out (it is still released for takers; a node finds it when it
/// next scans, see [`Postgres::handoffs`](super::Postgres)).
pub(crate) fn encode(target: Option<&NodeId>, keys: &[Key]) -> Vec<String> {
    let head = match target {
        Some(node) => escape(node.as_str()),
        None => ANY.to_owned(),
    };
    let mut payloads = Vec::new();
    let mut payload = String::new();
    for key in keys {
        let line = format!("\n{}\t{}", escape(&key.kind), escape(&key.name));
        if head.len() + line.len() > MAX_PAYLOAD {
            tracing::warn!(%key, "key too long for a handoff notification");
            continue;
        }
        if payload.is_empty() {
            payload.push_str(&head);
        } else if payload.len() + line.len() > MAX_PAYLOAD {
            payloads.push(std::mem::replace(&mut payload, head.clone()));
        }
        payload.push_str(&line);
    }
    if !payload.is_empty() {
        payloads.push(payload);
    }
    payloads
}

/// The target (`None`: any node) and the keys of a payload; `None` if it is not one of ours.
pub(crate) fn decode(payload: &str) -> Option<(Option<NodeId>, Vec<Key>)> {
    let mut lines = payload.split('\n');
    let target = match lines.next()? {
        ANY => None,
        node => Some(NodeId::new(unescape(node)?)),
    };
    let keys = lines
        .map(|line| {
            let (kind, name) = line.split_once('\t')?;
            Some(Key::new(unescape(kind)?, unescape(name)?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((target, keys))
}

fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\t', "%09")
        .replace('\n', "%0A")
}

fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "09" => '\t',
            "0A" => '\n',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A connection that has run `LISTEN`, and the payloads it receives. The channel closes when
/// the connection is lost.
pub(crate) struct Listening {
    /// Kept: dropping the client closes the connection.
    pub(crate) _client: tokio_postgres::Client,
    pub(crate) payloads: mpsc::UnboundedReceiver<String>,
}

/// Drives a connection in a task of its own, forwarding its notifications.
pub(super) fn forward<S, T>(mut connection: Connection<S, T>) -> mpsc::UnboundedReceiver<String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (payloads, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if payloads.send(notification.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "the LISTEN connection was lost");
                    return;
                }
                None => return,
            }
        }
    });
    received
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_with_awkward_ids() {
        let keys = vec![
            Key::new("player", "ada"),
            Key::new("odd%kind", "tab\there\nnewline"),
        ];
        let payloads = encode(Some(&NodeId::new("node\t1")), &keys);
        assert_eq!(payloads.len(), 1);
        let (target, decoded) = decode(&payloads[0]).expect("ours");
        assert_eq!(target, Some(NodeId::new("node\t1")));
        assert_eq!(decoded, keys);
        assert_eq!(decode(&encode(None, &keys)[0]).expect("ours").0, None);
    }

    #[test]
    fn a_long_list_is_split_below_the_limit() {
        let keys: Vec<Key> = (0..2_000)
            .map(|i| Key::new("player", format!("player-{i:05}")))
            .collect();
        let payloads = encode(None, &keys);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|payload| payload.len() < 8_000));
        let decoded: Vec<Key> = payloads
            .iter()
            .flat_map(|payload| decode(payload).expect("ours").1)
            .collect();
        assert_eq!(decoded, keys);
    }

    #[test]
    fn a_key_longer_than_a_payload_is_left_out() {
        let keys = vec![Key::new("k", "x".repeat(9_000)), Key::new("k", "short")];
        let payloads = encode(None, &keys);
        assert_eq!(payloads.len(), 1);
        assert_eq!(
            decode(&payloads[0]).expect("ours").1,
            [Key::new("k", "short")]
        );
    }

    #[test]
    fn foreign_payloads_are_ignored() {
        assert_eq!(decode("*\nno tab here"), None);
        assert_eq!(decode("*\nbad%zzescape\tx"), None);
    }
}
