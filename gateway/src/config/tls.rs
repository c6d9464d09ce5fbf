//! TLS termination with rustls: a certificate chain and a private key, PEM.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{ConfigError, TlsConfig};

/// The rustls configuration for `tls`; errors name `tls.cert` or `tls.key`.
pub(super) fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ConfigError::new(
                "tls.cert",
                format!("cannot read certificates from {}: {e}", tls.cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            "tls.cert",
            format!("{} holds no certificate", tls.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        ConfigError::new(
            "tls.key",
            format!("cannot read a private key from {}: {e}", tls.key.display()),
        )
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::new("tls.key", format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
