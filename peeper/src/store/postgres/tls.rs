//! [`PostgresTls`]: TLS for the connections of a [`Postgres`](super::Postgres) store, with rustls.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::store::StoreError;

/// TLS for the connections to PostgreSQL, with [rustls](https://docs.rs/rustls) (pure Rust; the
/// `ring` provider). Needs the `postgres-tls` feature.
///
/// The server's certificate is verified against the given roots, and its name against the
/// URL's host (an IP address works if the certificate names it). With TLS configured, a URL
/// without `sslmode` requires TLS (`sslmode=require`); `sslmode=prefer` or `disable` in the URL
/// are obeyed.
///
/// ```
/// use peeper::store::PostgresTls;
///
/// let err = PostgresTls::with_root_certificates(b"not a certificate").unwrap_err();
/// assert_eq!(err.to_string(), "the store failed: postgres: no PEM certificate among the TLS roots given");
/// ```
#[derive(Clone)]
pub struct PostgresTls {
    pub(super) config: Arc<ClientConfig>,
    roots: usize,
}

impl PostgresTls {
    /// Trusts the certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks, the
    /// CA that signed the server's certificate): what `sslrootcert` names for `psql`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if `pem` holds no certificate, or one rustls rejects.
    pub fn with_root_certificates(pem: &[u8]) -> Result<Self, StoreError> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|error| {
                StoreError::backend(format!("postgres: a TLS root is not valid PEM: {error}"))
            })?;
            roots.add(certificate).map_err(|error| {
                StoreError::backend(format!("postgres: a TLS root was refused: {error}"))
            })?;
        }
        if roots.is_empty() {
            return Err(StoreError::backend(
                "postgres: no PEM certificate among the TLS roots given",
            ));
        }
        let count = roots.len();
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|error| StoreError::backend(format!("postgres: TLS: {error}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(PostgresTls {
            config: Arc::new(config),
            roots: count,
        })
    }

    /// Any rustls client configuration: other roots (the system's, with `rustls-native-certs`),
    /// client certificates, another crypto provider.
    #[must_use]
    pub fn from_rustls(config: ClientConfig) -> Self {
        PostgresTls {
            config: Arc::new(config),
            roots: 0,
        }
    }

    pub(super) fn connector(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        tokio_postgres_rustls::MakeRustlsConnect::new((*self.config).clone())
    }
}

impl fmt::Debug for PostgresTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTls")
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}
