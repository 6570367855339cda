//! TLS for the HTTP server (rustls, ring): the certificate and key read from PEM files,
//! re-read on demand ([`TlsReloader`], which `eric serve` calls on SIGHUP) without
//! touching the connections already open, and ALPN offering HTTP/2 then HTTP/1.1.

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the server's certificate and key are: PEM files, the certificate file holding
/// the chain (the server's own certificate first), the key file a PKCS#8, PKCS#1 or SEC1
/// private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain (PEM).
    pub cert_path: PathBuf,
    /// The private key (PEM).
    pub key_path: PathBuf,
}

impl TlsConfig {
    /// The files at `cert_path` and `key_path`.
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> Self {
        TlsConfig {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
        }
    }

    /// Reads the files: the certificate and its key, checked to match.
    fn load(&self, provider: &CryptoProvider) -> io::Result<Arc<CertifiedKey>> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_path)
            .and_then(|certs| certs.collect())
            .map_err(|error| {
                invalid(format!(
                    "cannot read the certificate {}: {error}",
                    self.cert_path.display()
                ))
            })?;
        if chain.is_empty() {
            return Err(invalid(format!(
                "no certificate in {} (a PEM file with -----BEGIN CERTIFICATE-----)",
                self.cert_path.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key_path).map_err(|error| {
            invalid(format!(
                "cannot read the private key {}: {error}",
                self.key_path.display()
            ))
        })?;
        CertifiedKey::from_der(chain, key, provider)
            .map(Arc::new)
            .map_err(|error| {
                invalid(format!(
                    "the certificate {} and the key {} cannot be used together: {error}",
                    self.cert_path.display(),
                    self.key_path.display()
                ))
            })
    }
}

/// The certificate new handshakes get: swapped whole by a reload.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.read()))
    }
}

/// The TLS side of a running server.
#[derive(Clone, Debug)]
pub(crate) struct Tls {
    /// What every handshake uses.
    pub(crate) server: Arc<ServerConfig>,
    reloader: TlsReloader,
}

impl Tls {
    /// Reads the certificate and key of `config`; fails, naming the file, if they are
    /// unusable.
    pub(crate) fn new(config: TlsConfig) -> io::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = Arc::new(CurrentCertificate(RwLock::new(config.load(&provider)?)));
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| io::Error::other(error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // HTTP/2 first: a browser then multiplexes every stream of a page on one
        // connection instead of stalling after six.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            server: Arc::new(server),
            reloader: TlsReloader {
                config,
                provider,
                current,
            },
        })
    }

    pub(crate) fn reloader(&self) -> TlsReloader {
        self.reloader.clone()
    }
}

/// Re-reads a server's certificate and key (after a renewal): the handshakes that
/// follow use the new ones, the connections open keep theirs, streams included.
#[derive(Clone, Debug)]
pub struct TlsReloader {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCertificate>,
}

impl TlsReloader {
    /// Reads the files again and, if they are usable, serves them from now on; if not,
    /// keeps the certificate in use and says why.
    pub fn reload(&self) -> io::Result<()> {
        let loaded = self.config.load(&self.provider)?;
        *self.current.0.write() = loaded;
        Ok(())
    }
}
