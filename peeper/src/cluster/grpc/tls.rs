//! [`ClusterTls`]: how the nodes of a cluster know each other.

use std::fmt;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Mutual TLS between the nodes of a cluster: one cluster CA signs every node's certificate,
/// each node presents its own, and a node accepts only peers whose certificate that CA signed.
///
/// Every node's certificate names the cluster's server name ([`server_name`](Self::server_name),
/// `peeper` by default) as a DNS subject alternative name: nodes dial each other by address, and
/// check that name rather than the address's host.
///
/// ```
/// use peeper::cluster::ClusterTls;
///
/// # let (ca, cert, key) = ("", "", "");
/// let tls = ClusterTls::from_pem(ca, cert, key).server_name("players.internal");
/// # drop(tls);
/// ```
#[derive(Clone)]
pub struct ClusterTls {
    ca: Certificate,
    identity: Identity,
    server_name: String,
}

impl ClusterTls {
    /// The cluster CA's certificate, and this node's certificate chain and private key, all PEM.
    /// They are checked when the node starts listening.
    pub fn from_pem(
        ca: impl AsRef<[u8]>,
        certificate: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Self {
        ClusterTls {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(certificate, key),
            server_name: "peeper".to_owned(),
        }
    }

    /// The name every node's certificate carries (`peeper` by default).
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    pub(super) fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    pub(super) fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(self.server_name.clone())
    }
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ClusterTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// How node-to-node traffic is protected.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Tls(Box<ClusterTls>),
    /// Only through `NodeBuilder::insecure_plaintext_between_nodes`.
    Plaintext,
}

impl Transport {
    pub(super) fn scheme(&self) -> &'static str {
        match self {
            Transport::Tls(_) => "https",
            Transport::Plaintext => "http",
        }
    }
}
