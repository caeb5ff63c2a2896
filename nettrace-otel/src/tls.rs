//! TLS for OTLP over HTTPS: rustls with the ring provider (as the tracer's own client), trusting
//! the system's roots, or only the PEM certificates given (`OTEL_EXPORTER_OTLP_CERTIFICATE`,
//! as OpenTelemetry's SDKs read it).
use std::sync::Arc;

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject as _},
};

/// A client configuration that trusts the certificates of `ca_pem`, or the system's roots
/// when there are none given.
pub(crate) fn client_config(ca_pem: Option<&[u8]>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("CA certificates: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("CA certificates: the PEM holds no certificate".to_owned());
            }
        }
        None => {
            // Unreadable system certificates leave the store short; the handshake then
            // fails with an unknown issuer, which the export error shows.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    with_roots(roots)
}

/// A configuration that trusts nothing, for a client that only speaks plain HTTP.
pub(crate) fn unused_config() -> Result<ClientConfig, String> {
    with_roots(RootCertStore::empty())
}

fn with_roots(roots: RootCertStore) -> Result<ClientConfig, String> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_certificates_is_an_error() {
        assert!(client_config(Some(b"not a pem")).is_err());
        let key_only =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert!(client_config(Some(key_only)).is_err());
    }

    #[test]
    fn the_system_roots_make_a_configuration() {
        assert!(client_config(None).is_ok());
    }
}
