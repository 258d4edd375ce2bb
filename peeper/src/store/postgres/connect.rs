//! Connecting: [`PostgresBuilder`], the pool, TLS, and the schema's creation and migration.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

#[cfg(feature = "postgres-tls")]
use super::PostgresTls;
use super::leases::renew_every;
use super::sql::{self, Sql};
use super::{
    DEFAULT_LEASE, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT, Inner, NodeId, Postgres, StoreError, Tls,
    backend,
};

/// How to connect a [`Postgres`] store: [`Postgres::builder`].
///
/// ```
/// use std::time::Duration;
/// use peeper::store::{NodeId, Postgres};
///
/// let builder = Postgres::builder("postgres://app:hunter2@db.internal:5432/app")
///     .node(NodeId::new("web-1"))
///     .schema("game")
///     .lease(Duration::from_secs(15))
///     .pool_size(8);
/// let shown = format!("{builder:?}");
/// assert!(shown.contains("db.internal") && !shown.contains("hunter2"));
/// ```
#[must_use = "a builder does nothing until `.connect().await`"]
pub struct PostgresBuilder {
    config: Result<tokio_postgres::Config, String>,
    node: Option<NodeId>,
    schema: String,
    lease: Duration,
    pool_size: usize,
    timeout: Duration,
    #[cfg(feature = "postgres-tls")]
    tls: Option<PostgresTls>,
}

impl Postgres {
    /// A builder for a store at `url` (`postgres://user:password@host:port/database`, or the
    /// `key=value` form libpq takes).
    pub fn builder(url: &str) -> PostgresBuilder {
        PostgresBuilder {
            // Only the error's kind is kept, never the text given: it may hold the password.
            config: tokio_postgres::Config::from_str(url)
                .map_err(|error| format!("postgres: the connection URL is invalid: {error}")),
            node: None,
            schema: "public".to_owned(),
            lease: DEFAULT_LEASE,
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
            #[cfg(feature = "postgres-tls")]
            tls: None,
        }
    }
}

impl PostgresBuilder {
    /// This node's id (a fresh [`NodeId::generate`] if not given).
    pub fn node(mut self, node: impl Into<NodeId>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// The schema to keep the tables in (`public` by default); created if missing. A lowercase
    /// identifier of at most 40 characters (`[a-z_][a-z0-9_]*`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How long a claim lasts without renewal (10 s by default; at least 100 ms). It is renewed
    /// every third of it; a node that stops renewing (dead, paused, cut off) loses its servers
    /// to an adopting node after at most this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// The most connections the pool opens (16 by default, at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long to wait for a connection to open, or for a free one in the pool, before failing
    /// with [`StoreError::Backend`] (5 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Encrypts the connections with TLS; see [`PostgresTls`].
    #[cfg(feature = "postgres-tls")]
    pub fn tls(mut self, tls: PostgresTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects, creates or migrates the schema, and starts renewing leases on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// [`StoreError::Backend`]: an invalid URL or schema name, an unreachable database, a failed
    /// authentication or TLS handshake, or a schema newer than this build knows.
    pub async fn connect(self) -> Result<Postgres, StoreError> {
        let mut config = self.config.map_err(StoreError::backend)?;
        if !sql::valid_schema(&self.schema) {
            return Err(StoreError::backend(format!(
                "postgres: `{}` cannot name a schema: use a lowercase identifier ([a-z_][a-z0-9_]*, at most 40 characters)",
                self.schema
            )));
        }
        let node = self.node.unwrap_or_else(NodeId::generate);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("peeper {node}"));
        }
        #[cfg(feature = "postgres-tls")]
        let tls = match self.tls {
            Some(tls) => {
                // With TLS configured, no silent fallback to plain text unless the URL asks.
                if !has_sslmode(&config) {
                    config.ssl_mode(SslMode::Require);
                }
                Tls::Rustls(tls.connector())
            }
            None => Tls::Off,
        };
        #[cfg(not(feature = "postgres-tls"))]
        let tls = Tls::Off;
        if matches!(tls, Tls::Off) && config.get_ssl_mode() == SslMode::Require {
            return Err(StoreError::backend(
                "postgres: the URL requires TLS (`sslmode=require`): enable the `postgres-tls` feature and give `PostgresBuilder::tls`",
            ));
        }

        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Tls::Off => Manager::from_config(config.clone(), NoTls, manager_config),
            #[cfg(feature = "postgres-tls")]
            Tls::Rustls(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.timeout))
            .create_timeout(Some(self.timeout))
            .recycle_timeout(Some(self.timeout))
            .build()
            .map_err(backend)?;

        // Unique per handle, even between handles of one node id.
        let session = NodeId::generate().as_str().to_owned();
        let postgres = Postgres {
            inner: Arc::new(Inner {
                pool,
                config,
                tls,
                sql: Sql::new(&self.schema),
                schema: self.schema,
                node,
                session,
                lease: self.lease,
                leases: Mutex::default(),
                lost: broadcast::channel(1024).0,
                renewals: AtomicU64::new(0),
                renewer: Mutex::new(None),
            }),
        };
        postgres.migrate().await?;
        let renewer = tokio::spawn(renew_every(Arc::downgrade(&postgres.inner), self.lease / 3));
        *postgres
            .inner
            .renewer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(renewer);
        tracing::info!(node = %postgres.inner.node, schema = postgres.inner.schema, "connected to PostgreSQL");
        Ok(postgres)
    }
}

impl Postgres {
    /// Creates the schema, or brings it to this build's version, under an advisory lock held
    /// by the transaction (so that nodes starting at once apply each migration once).
    async fn migrate(&self) -> Result<(), StoreError> {
        let schema = &self.inner.schema;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend)?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("peeper migrations {schema}")],
            )
            .await
            .map_err(backend)?;
        transaction
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.peeper_schema_version (
                     version integer NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 );"
            ))
            .await
            .map_err(backend)?;
        let current: i32 = transaction
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {schema}.peeper_schema_version"),
                &[],
            )
            .await
            .map_err(backend)?
            .get(0);
        if current > sql::VERSION {
            return Err(StoreError::backend(format!(
                "postgres: the schema `{schema}` is at version {current}, newer than this build's {}; it was left untouched",
                sql::VERSION
            )));
        }
        for (version, migration) in Sql::migrations(schema, current) {
            transaction
                .batch_execute(&migration)
                .await
                .map_err(backend)?;
            transaction
                .execute(
                    &format!("INSERT INTO {schema}.peeper_schema_version (version) VALUES ($1)"),
                    &[&version],
                )
                .await
                .map_err(backend)?;
            tracing::info!(schema, version, "migrated the schema");
        }
        transaction.commit().await.map_err(backend)
    }
}

#[cfg(feature = "postgres-tls")]
fn has_sslmode(config: &tokio_postgres::Config) -> bool {
    // `Config` does not say whether the URL set it; `Prefer` is its default.
    config.get_ssl_mode() != SslMode::Prefer
}

impl fmt::Debug for PostgresBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("PostgresBuilder");
        match &self.config {
            Ok(config) => debug.field("server", &Redacted(config)),
            Err(error) => debug.field("server", error),
        };
        debug
            .field("node", &self.node)
            .field("schema", &self.schema)
            .field("lease", &self.lease)
            .field("pool_size", &self.pool_size);
        #[cfg(feature = "postgres-tls")]
        debug.field("tls", &self.tls);
        debug.finish_non_exhaustive()
    }
}

/// A connection configuration as `user@host:port/database`, with no password, ever.
pub(super) struct Redacted<'a>(pub(super) &'a tokio_postgres::Config);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.0;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        write!(
            f,
            "\"{}{}@{}:{}/{}\"",
            config.get_user().unwrap_or(""),
            if config.get_password().is_some() {
                ":<redacted>"
            } else {
                ""
            },
            hosts.join(","),
            ports.join(","),
            config.get_dbname().unwrap_or(""),
        )
    }
}
