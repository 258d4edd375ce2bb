//! The schema [`Postgres`](super::Postgres) creates and migrates, and every statement it runs.
//!
//! ```text
//! peeper_schema_version (version)                       one row per applied migration
//! peeper_epochs                                          sequence: every claim takes the next
//! peeper_leases (kind, name, owner, session, epoch,     one row per claimed server; owner NULL
//!                expires_at, handoff)                     once released for a handoff
//! peeper_states (kind, name, state, epoch)               the envelope bytes, and the epoch of
//!                                                         the claim that wrote them
//! peeper_nodes (node, session, address, kinds,           the nodes that answer calls from
//!               expires_at)                               others (`grpc`), by heartbeat
//! ```
//!
//! Epochs come from one sequence, so they never repeat, even for a lease row deleted and
//! created again: a write carrying an old epoch can never match a newer lease. `owner` is the
//! node's id (what errors name); `session` is one [`Postgres`](super::Postgres) handle's own
//! random id, so that a node restarted under the same id renews only the leases it claimed
//! itself, and those its previous incarnation left behind expire (and can be adopted).

/// The migrations, in order: `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`.
/// `{s}` is replaced by the (validated) schema name.
const MIGRATIONS: &[&str] = &[
    // 1: states, leases, epochs.
    "CREATE SEQUENCE {s}.peeper_epochs;
     CREATE TABLE {s}.peeper_states (
         kind text NOT NULL,
         name text NOT NULL,
         state bytea NOT NULL,
         epoch bigint NOT NULL,
         PRIMARY KEY (kind, name)
     );
     CREATE TABLE {s}.peeper_leases (
         kind text NOT NULL,
         name text NOT NULL,
         owner text,
         session text,
         epoch bigint NOT NULL,
         expires_at timestamptz,
         handoff text,
         PRIMARY KEY (kind, name)
     );
     CREATE INDEX peeper_leases_session ON {s}.peeper_leases (session);
     CREATE INDEX peeper_leases_expiry ON {s}.peeper_leases (expires_at) WHERE owner IS NOT NULL;
     CREATE INDEX peeper_leases_handoff ON {s}.peeper_leases (handoff) WHERE owner IS NULL;",
    // 2: records of keyed calls, kept with their server's state.
    "CREATE TABLE {s}.peeper_retained (
         kind text NOT NULL,
         name text NOT NULL,
         id text NOT NULL,
         record bytea NOT NULL,
         PRIMARY KEY (kind, name, id)
     );",
    // 3: the directory of nodes that answer calls from other nodes: where, for which kinds,
    // alive while their heartbeat lasts.
    "CREATE TABLE {s}.peeper_nodes (
         node text PRIMARY KEY,
         session text NOT NULL,
         address text NOT NULL,
         kinds text[] NOT NULL,
         expires_at timestamptz NOT NULL
     );",
];

/// The schema version this build creates and understands.
pub(super) const VERSION: i32 = MIGRATIONS.len() as i32;

/// The statements of one schema (the directory's are used by the `grpc` feature only).
#[derive(Debug)]
#[cfg_attr(not(feature = "grpc"), allow(dead_code))]
pub(super) struct Sql {
    pub(super) read: String,
    pub(super) keys: String,
    pub(super) keys_of_kind: String,
    /// `$1 kinds, $2 names, $3 states (NULL: delete), $4 epochs, $5 session`, and the records of
    /// keyed calls `$6 kinds, $7 names, $8 ids, $9 records (NULL: forget)`: applies the writes
    /// whose lease the session still holds at that epoch, with their records (a deleted state
    /// takes all of its records with it), and returns their keys. The
    /// lease rows are locked `FOR KEY SHARE` for the statement, which a claim's `FOR UPDATE`
    /// conflicts with: a claim waits for the write to commit, and a write waiting on a claim
    /// re-checks the epoch after it (PostgreSQL's READ COMMITTED re-evaluates a locked row's
    /// conditions on its newest version). Renewals (`FOR NO KEY UPDATE`, changing only the
    /// expiry) do not conflict with it: writes never wait for them, and cannot deadlock with
    /// them.
    pub(super) write: String,
    /// `$1 kind, $2 name`: the records of keyed calls kept for it.
    pub(super) retained: String,
    /// `$1 kinds, $2 names`: the recorded owner of each.
    pub(super) owners: String,
    /// `$1 kind, $2 name, $3 node, $4 session, $5 lease ms`: the new epoch, or no row if
    /// another live node owns it. A node may take back its own lease at once (restarted under
    /// the same id), and anyone may take a released or expired one. The row is locked
    /// `FOR UPDATE` first (the `locked` query, which the `WHERE` makes run): that is the lock a
    /// write's `FOR KEY SHARE` waits for, and that waits for a write in flight.
    pub(super) claim: String,
    /// `$1 kind, $2 name`: the recorded owner and whether its lease is live.
    pub(super) owner: String,
    /// `$1 kind, $2 name, $3 session, $4 epoch`.
    pub(super) release: String,
    /// `$1 kind, $2 name, $3 session, $4 epoch, $5 handoff target (`*`: any node)`.
    pub(super) release_for_handoff: String,
    /// `$1 session, $2 lease ms`: every lease of the session, extended; returns them.
    pub(super) renew: String,
    /// `$1 kinds`: leases of those kinds whose owner stopped renewing them.
    pub(super) orphans: String,
    /// `$1 node, $2 also untargeted, $3 kinds`: released leases waiting for a taker.
    pub(super) handoffs: String,
    pub(super) notify: String,
    pub(super) channel: String,
    /// `$1 kind, $2 name`: the lease's owner (NULL once released), its epoch, whether it is
    /// live, whether it waits for a handoff, and the owner's address if its node is live.
    pub(super) route: String,
    /// `$1 node, $2 session, $3 address, $4 kinds, $5 heartbeat ms`.
    pub(super) join: String,
    /// `$1 node, $2 session, $3 heartbeat ms`: no row if another session took the node's id.
    pub(super) heartbeat: String,
    /// `$1 node, $2 session`.
    pub(super) leave: String,
    /// `$1 kind`: the live nodes hosting it, and their addresses.
    pub(super) nodes_hosting: String,
}

impl Sql {
    pub(super) fn new(schema: &str) -> Sql {
        let q = |sql: &str| sql.replace("{s}", schema);
        Sql {
            read: q("SELECT state FROM {s}.peeper_states WHERE kind = $1 AND name = $2"),
            keys: q("SELECT kind, name FROM {s}.peeper_states ORDER BY kind, name"),
            keys_of_kind: q(
                "SELECT kind, name FROM {s}.peeper_states WHERE kind = $1 ORDER BY name",
            ),
            write: q("WITH batch AS (
                          SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[])
                              AS b(kind, name, state, epoch)
                      ), held AS (
                          SELECT b.kind, b.name, b.state, b.epoch
                          FROM batch b
                          JOIN {s}.peeper_leases l
                              ON l.kind = b.kind AND l.name = b.name
                              AND l.session = $5 AND l.epoch = b.epoch
                          FOR KEY SHARE OF l
                      ), put AS (
                          INSERT INTO {s}.peeper_states (kind, name, state, epoch)
                          SELECT kind, name, state, epoch FROM held WHERE state IS NOT NULL
                          ON CONFLICT (kind, name)
                              DO UPDATE SET state = EXCLUDED.state, epoch = EXCLUDED.epoch
                      ), gone AS (
                          DELETE FROM {s}.peeper_states t USING held h
                          WHERE h.state IS NULL AND t.kind = h.kind AND t.name = h.name
                      ), records AS (
                          SELECT r.kind, r.name, r.id, r.record, h.state IS NULL AS all_gone
                          FROM unnest($6::text[], $7::text[], $8::text[], $9::bytea[])
                              AS r(kind, name, id, record)
                          JOIN held h ON h.kind = r.kind AND h.name = r.name
                      ), keep AS (
                          INSERT INTO {s}.peeper_retained (kind, name, id, record)
                          SELECT kind, name, id, record FROM records
                          WHERE record IS NOT NULL AND NOT all_gone
                          ON CONFLICT (kind, name, id) DO UPDATE SET record = EXCLUDED.record
                      ), forget AS (
                          DELETE FROM {s}.peeper_retained t USING records r
                          WHERE r.record IS NULL AND NOT r.all_gone
                              AND t.kind = r.kind AND t.name = r.name AND t.id = r.id
                      ), forget_all AS (
                          DELETE FROM {s}.peeper_retained t USING held h
                          WHERE h.state IS NULL AND t.kind = h.kind AND t.name = h.name
                      )
                      SELECT kind, name FROM held"),
            retained: q("SELECT id, record FROM {s}.peeper_retained WHERE kind = $1 AND name = $2"),
            owners: q("SELECT l.kind, l.name, l.owner
                       FROM {s}.peeper_leases l
                       JOIN unnest($1::text[], $2::text[]) AS k(kind, name)
                           ON l.kind = k.kind AND l.name = k.name"),
            claim: q("WITH locked AS (
                          SELECT kind FROM {s}.peeper_leases
                          WHERE kind = $1 AND name = $2
                          FOR UPDATE
                      )
                      INSERT INTO {s}.peeper_leases AS l
                          (kind, name, owner, session, epoch, expires_at)
                      SELECT $1, $2, $3, $4, nextval('{s}.peeper_epochs'),
                             now() + $5::bigint * interval '1 millisecond'
                      WHERE (SELECT count(*) FROM locked) >= 0
                      ON CONFLICT (kind, name) DO UPDATE
                          SET owner = EXCLUDED.owner, session = EXCLUDED.session,
                              epoch = EXCLUDED.epoch, expires_at = EXCLUDED.expires_at,
                              handoff = NULL
                          WHERE l.owner IS NULL OR l.owner = EXCLUDED.owner OR l.expires_at < now()
                      RETURNING epoch"),
            owner: q("SELECT owner, expires_at > now() FROM {s}.peeper_leases
                      WHERE kind = $1 AND name = $2 AND owner IS NOT NULL"),
            release: q("DELETE FROM {s}.peeper_leases
                        WHERE kind = $1 AND name = $2 AND session = $3 AND epoch = $4"),
            release_for_handoff: q("UPDATE {s}.peeper_leases
                                    SET owner = NULL, session = NULL, expires_at = NULL,
                                        handoff = $5
                                    WHERE kind = $1 AND name = $2 AND session = $3
                                        AND epoch = $4"),
            renew: q("UPDATE {s}.peeper_leases
                      SET expires_at = now() + $2::bigint * interval '1 millisecond'
                      WHERE session = $1
                      RETURNING kind, name, epoch"),
            orphans: q("SELECT kind, name, owner FROM {s}.peeper_leases
                        WHERE owner IS NOT NULL AND expires_at < now() AND kind = ANY($1::text[])
                        ORDER BY expires_at"),
            handoffs: q("SELECT kind, name FROM {s}.peeper_leases
                         WHERE owner IS NULL AND (handoff = $1 OR ($2 AND handoff = '*'))
                             AND kind = ANY($3::text[])"),
            notify: "SELECT pg_notify($1, $2)".to_owned(),
            route: q(
                "SELECT l.owner, l.epoch, l.owner IS NOT NULL AND l.expires_at > now(),
                             l.handoff IS NOT NULL, n.address
                      FROM {s}.peeper_leases l
                      LEFT JOIN {s}.peeper_nodes n
                          ON n.node = l.owner AND n.expires_at > now()
                      WHERE l.kind = $1 AND l.name = $2",
            ),
            join: q(
                "INSERT INTO {s}.peeper_nodes (node, session, address, kinds, expires_at)
                     VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 millisecond')
                     ON CONFLICT (node) DO UPDATE
                         SET session = EXCLUDED.session, address = EXCLUDED.address,
                             kinds = EXCLUDED.kinds, expires_at = EXCLUDED.expires_at",
            ),
            heartbeat: q("UPDATE {s}.peeper_nodes
                          SET expires_at = now() + $3::bigint * interval '1 millisecond'
                          WHERE node = $1 AND session = $2
                          RETURNING node"),
            leave: q("DELETE FROM {s}.peeper_nodes WHERE node = $1 AND session = $2"),
            nodes_hosting: q("SELECT node, address FROM {s}.peeper_nodes
                              WHERE $1 = ANY(kinds) AND expires_at > now()
                              ORDER BY node"),
            channel: format!("peeper_{schema}"),
        }
    }

    /// The statements that bring the schema from `from` to [`VERSION`], each with the version it
    /// reaches.
    pub(super) fn migrations(schema: &str, from: i32) -> impl Iterator<Item = (i32, String)> {
        let from = usize::try_from(from).unwrap_or(0);
        MIGRATIONS
            .iter()
            .enumerate()
            .skip(from)
            .map(move |(index, sql)| (index as i32 + 1, sql.replace("{s}", schema)))
    }
}

/// Whether `schema` may name the schema: it is pasted into statements (identifiers cannot be
/// bound as parameters) and into the notification channel's name, so only a lowercase
/// identifier short enough for both.
pub(super) fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 40
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(valid_schema("public"));
        assert!(valid_schema("app_2"));
        assert!(!valid_schema(""));
        assert!(!valid_schema("2app"));
        assert!(!valid_schema("App"));
        assert!(!valid_schema("a; DROP TABLE x"));
        assert!(!valid_schema(&"a".repeat(41)));
    }

    #[test]
    fn migrations_start_after_the_stored_version() {
        assert_eq!(Sql::migrations("s", 0).count(), VERSION as usize);
        assert_eq!(Sql::migrations("s", VERSION).count(), 0);
        let (version, sql) = Sql::migrations("app", 0).next().expect("one");
        assert_eq!(version, 1);
        assert!(sql.contains("app.peeper_leases") && !sql.contains("{s}"));
    }
}
