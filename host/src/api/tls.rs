//! HTTPS for `cairn serve --tls-cert FILE --tls-key FILE`: rustls with the
//! ring provider, HTTP/1.1 only (ALPN `http/1.1`), TLS 1.2 and 1.3. The
//! files are read once, at start-up; an unreadable file, one without a
//! certificate or key, or a key that is not the certificate's is a clear
//! error before the server listens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS flags of `cairn serve` (both or neither).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve the API over HTTPS with this certificate (PEM: the server's
    /// certificate first, then its intermediates); needs --tls-key.
    #[arg(long, env = "CAIRN_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CAIRN_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The server's TLS settings, when both files are given.
    ///
    /// # Errors
    /// [`TlsError`]: one file without the other, unreadable files, no
    /// certificate or key in them, a key that is not the certificate's.
    pub fn load(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => server_config(cert, key).map(Some),
            (Some(_), None) => Err(TlsError::Pair(
                "--tls-cert needs --tls-key (the certificate's private key)",
            )),
            (None, Some(_)) => Err(TlsError::Pair(
                "--tls-key needs --tls-cert (the certificate of the key)",
            )),
        }
    }
}

/// Errors of loading the certificate and key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Pair(&'static str),
    #[error("--tls-cert {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("--tls-key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("--tls-cert {cert} and --tls-key {key} cannot be used together: {message}")]
    Pairing {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// TLS settings of a server presenting the certificate chain of `cert`
/// with the private key of `key` (PEM files).
///
/// # Errors
/// See [`TlsArgs::load`].
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_error = |message: String| TlsError::Cert {
        path: cert.to_owned(),
        message,
    };
    let key_error = |message: String| TlsError::Key {
        path: key.to_owned(),
        message,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| cert_error(format!("cannot read it: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(cert_error(
            "no certificate in it (expected a PEM file with -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key_pem = std::fs::read(key).map_err(|e| key_error(format!("cannot read it: {e}")))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => key_error(
            "no private key in it (expected a PEM file with -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)"
                .into(),
        ),
        other => key_error(format!("not a PEM private key file: {other}")),
    })?;
    let pairing = |message: String| TlsError::Pairing {
        cert: cert.to_owned(),
        key: key.to_owned(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| pairing(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => pairing("the private key is not the certificate's".into()),
            other => pairing(other.to_string()),
        })?;
    // hyper serves HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("cairn-tls-test-{}", crate::ids::random_hex()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn one_file_without_the_other_is_refused() {
        let only_cert = TlsArgs {
            tls_cert: Some("c.pem".into()),
            tls_key: None,
        };
        assert!(
            only_cert
                .load()
                .unwrap_err()
                .to_string()
                .contains("--tls-cert needs --tls-key")
        );
        let only_key = TlsArgs {
            tls_cert: None,
            tls_key: Some("k.pem".into()),
        };
        assert!(
            only_key
                .load()
                .unwrap_err()
                .to_string()
                .contains("--tls-key needs --tls-cert")
        );
        assert!(TlsArgs::default().load().expect("no TLS").is_none());
    }

    #[test]
    fn unreadable_and_empty_files_are_named() {
        let d = dir();
        let empty = d.join("empty.pem");
        std::fs::write(&empty, "not a pem file\n").expect("write");
        let missing = d.join("missing.pem");
        let e = server_config(&missing, &empty).unwrap_err().to_string();
        assert!(
            e.starts_with("--tls-cert ") && e.contains("missing.pem: cannot read it"),
            "{e}"
        );
        let e = server_config(&empty, &empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem: no certificate in it"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
