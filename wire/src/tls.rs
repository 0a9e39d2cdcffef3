//! TLS for Kafka connections (rustls, ring provider), from PEM files: the client side for
//! the daemon (trusted CAs, an optional client certificate for mTLS, the server name to
//! verify) and the server side for kmirror-broker (certificate chain and key, and a CA
//! that client certificates must chain to when mTLS is required). TLS 1.2 and 1.3.
//!
//! Errors name the file and what is wrong with it, never a key's content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

pub use tokio_rustls::rustls::ServerConfig as TlsServerConfig;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
}

fn file_error(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| file_error(path, format!("holds no usable PEM private key ({e})")))
}

fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots
            .add(cert)
            .map_err(|e| file_error(ca, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// What a client needs to open TLS connections.
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate must carry; `None`: the host of the address.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CAs in `ca` (the system's when `None`); presents `cert` and `key` when
    /// given (mTLS).
    pub fn new(
        ca: Option<&Path>,
        cert_and_key: Option<(&Path, &Path)>,
        server_name: Option<String>,
    ) -> Result<Self, TlsError> {
        let roots = match ca {
            Some(ca) => roots(ca)?,
            None => {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TlsError::Config(
                        "no CA file given and no system CA certificates found; set `ca`".into(),
                    ));
                }
                roots
            }
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match cert_and_key {
            Some((cert, key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(|e| file_error(key, format!("does not match {}: {e}", cert.display())))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    /// The name to verify for a connection to `addr` (`host:port`).
    pub fn server_name_for(&self, addr: &str) -> Result<ServerName<'static>, TlsError> {
        let host = match &self.server_name {
            Some(name) => name.as_str(),
            None => addr
                .rsplit_once(':')
                .map_or(addr, |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']'),
        };
        ServerName::try_from(host.to_string())
            .map_err(|e| TlsError::Config(format!("{host:?} is not a valid TLS server name: {e}")))
    }
}

/// A server config presenting `cert` (chain) and `key`; with `client_ca`, clients must
/// present a certificate that chains to it (mTLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| file_error(ca, format!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certificates(cert)?, private_key(key)?)
        .map_err(|e| file_error(key, format!("does not match {}: {e}", cert.display())))?;
    Ok(Arc::new(config))
}

/// The subject of a peer's (leaf) certificate as Kafka's DefaultKafkaPrincipalBuilder
/// names it: RFC 2253 text, most specific first, no spaces (`CN=client,O=kmirror`).
/// `None` when there is no certificate or it cannot be parsed.
pub fn certificate_subject(certificate: &[u8]) -> Option<String> {
    use x509_cert::der::{Decode, Encode};
    // The attributes Java's X500Principal.getName(RFC2253) names by keyword (CN, C, L, ST,
    // O, OU, STREET, DC, UID); any other is written as OID=#<hex of its DER value>.
    const KEYWORDS: [&str; 9] = [
        "2.5.4.3",
        "2.5.4.6",
        "2.5.4.7",
        "2.5.4.8",
        "2.5.4.10",
        "2.5.4.11",
        "2.5.4.9",
        "0.9.2342.19200300.100.1.25",
        "0.9.2342.19200300.100.1.1",
    ];
    let cert = x509_cert::Certificate::from_der(certificate).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter().rev() {
        let mut attributes = Vec::new();
        for atv in rdn.0.iter() {
            let oid = atv.oid.to_string();
            if KEYWORDS.contains(&oid.as_str()) {
                attributes.push(atv.to_string());
            } else {
                let der = atv.value.to_der().ok()?;
                let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                attributes.push(format!("{oid}=#{hex}"));
            }
        }
        rdns.push(attributes.join("+"));
    }
    Some(rdns.join(","))
}

#[cfg(test)]
mod subject_tests {
    /// The subject of a throw-away certificate made by openssl for `subject`.
    fn subject_of(dir: &std::path::Path, name: &str, subject: &str) -> Option<String> {
        let (key, cert) = (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.pem")),
        );
        let ok = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                subject,
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl req");
        let certs = super::certificates(&cert).unwrap();
        super::certificate_subject(&certs[0])
    }

    #[test]
    fn subjects_read_most_specific_first_like_kafka() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            subject_of(dir.path(), "a", "/C=DE/O=kmirror/OU=ops/CN=mirror-east").as_deref(),
            Some("CN=mirror-east,OU=ops,O=kmirror,C=DE")
        );
        assert_eq!(super::certificate_subject(b"not a certificate"), None);
        // emailAddress has no keyword in Java's RFC 2253 form: OID=#<DER>.
        assert_eq!(
            subject_of(dir.path(), "b", "/CN=x/emailAddress=a@b.c").as_deref(),
            Some("1.2.840.113549.1.9.1=#16056140622e63,CN=x")
        );
    }
}
