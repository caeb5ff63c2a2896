//! [`ExplicitLeafVerifier`]: the standard WebPKI verifier, plus what curl accepts and WebPKI
//! does not: a server certificate that is itself one of the configured roots (a self-signed
//! server certificate given with `--cacert`).
//!
//! WebPKI rejects such a certificate (`CaUsedAsEndEntity`, or an unknown issuer for a
//! self-signed leaf). When the standard verification fails and the presented end-entity
//! certificate *is* a configured root (the same subject, public key and name constraints as a
//! trust anchor: only the holder of that key could present it), this verifier still checks
//! that it names the server and is valid now, and accepts it.
//!
//! ```ignore
//! let verifier = ExplicitLeafVerifier::new(webpki_verifier, &roots);
//! ```
use std::sync::Arc;

use rustls::{
    CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime},
};
use x509_parser::{certificate::X509Certificate, prelude::FromDer};

/// WebPKI, accepting an end-entity certificate that is one of the roots.
#[derive(Debug)]
pub(crate) struct ExplicitLeafVerifier {
    inner: Arc<WebPkiServerVerifier>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl ExplicitLeafVerifier {
    /// Wraps `inner`, built from `roots`.
    pub(crate) fn new(inner: Arc<WebPkiServerVerifier>, roots: &RootCertStore) -> Self {
        Self {
            inner,
            anchors: roots.roots.clone(),
        }
    }

    /// `Ok` when `end_entity` is a configured root naming `server_name` and valid at `now`;
    /// `None` when it is no root (the standard verdict stands).
    fn verify_as_root(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Option<Result<ServerCertVerified, Error>> {
        let anchor = webpki::anchor_from_trusted_cert(end_entity).ok()?;
        if !self.anchors.contains(&anchor) {
            return None;
        }
        let (_, parsed) = X509Certificate::from_der(end_entity).ok()?;
        let validity = parsed.validity();
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < validity.not_before.timestamp() {
            return Some(Err(Error::InvalidCertificate(
                CertificateError::NotValidYet,
            )));
        }
        if now > validity.not_after.timestamp() {
            return Some(Err(Error::InvalidCertificate(CertificateError::Expired)));
        }
        let named = webpki::EndEntityCert::try_from(end_entity)
            .ok()
            .is_some_and(|cert| cert.verify_is_valid_for_subject_name(server_name).is_ok());
        if !named {
            return Some(Err(Error::InvalidCertificate(
                CertificateError::NotValidForName,
            )));
        }
        Some(Ok(ServerCertVerified::assertion()))
    }
}

impl ServerCertVerifier for ExplicitLeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(error @ Error::InvalidCertificate(_)) => self
                .verify_as_root(end_entity, server_name, now)
                .unwrap_or(Err(error)),
            Err(error) => Err(error),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}
