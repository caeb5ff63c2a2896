//! [`ExplicitLeaf`]: a policy over the standard WebPKI verifier ([`super::policy`]) adding what
//! curl accepts and WebPKI does not: a server certificate that is itself one of the configured
//! roots (a self-signed server certificate given with `--cacert`).
//!
//! WebPKI rejects such a certificate (`CaUsedAsEndEntity`, or an unknown issuer for a
//! self-signed leaf). When the standard verification fails and the presented end-entity
//! certificate *is* a configured root (the same subject, public key and name constraints as a
//! trust anchor: only the holder of that key could present it), this policy still checks
//! that it names the server and is valid now, and accepts it.
//!
//! ```ignore
//! let verifier = PolicyVerifier::new(webpki_verifier, ExplicitLeaf::new(&roots));
//! ```
use rustls::{
    CertificateError, Error, RootCertStore,
    client::danger::ServerCertVerified,
    pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime},
};
use x509_parser::{certificate::X509Certificate, prelude::FromDer};

use super::policy::{CertPolicy, Presented};

/// Accepts an end-entity certificate that is one of the roots, when the WebPKI verifier
/// (built from the same roots) rejected it.
#[derive(Debug)]
pub(crate) struct ExplicitLeaf {
    anchors: Vec<TrustAnchor<'static>>,
}

impl ExplicitLeaf {
    /// The policy for a verifier built from `roots`.
    pub(crate) fn new(roots: &RootCertStore) -> Self {
        Self {
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

impl CertPolicy for ExplicitLeaf {
    fn decide(
        &self,
        presented: &Presented<'_>,
        verdict: Result<ServerCertVerified, Error>,
    ) -> Result<ServerCertVerified, Error> {
        match verdict {
            Err(error @ Error::InvalidCertificate(_)) => self
                .verify_as_root(presented.end_entity, presented.server_name, presented.now)
                .unwrap_or(Err(error)),
            verdict => verdict,
        }
    }
}
