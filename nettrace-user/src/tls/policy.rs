//! [`PolicyVerifier`]: a server-certificate verifier that hands every question to an inner
//! verifier (signatures, schemes, root hints) and lets a small [`CertPolicy`] have the last word
//! on the server certificate, given what the inner verifier said.
//!
//! The verifiers of this module's siblings are such policies: [`super::self_signed`] accepts a
//! configured root presented as the server certificate, [`super::verifier`] records the chain
//! (and, when insecure, the verdict it overrides).
//!
//! ```ignore
//! let verifier = PolicyVerifier::new(webpki, ExplicitLeaf::new(&roots));
//! ```
use std::sync::Arc;

use rustls::{
    DigitallySignedStruct, DistinguishedName, Error, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

/// What the server presented, as the verifier was asked about it.
pub(crate) struct Presented<'a> {
    /// The server's certificate.
    pub(crate) end_entity: &'a CertificateDer<'a>,
    /// The other certificates it sent.
    pub(crate) intermediates: &'a [CertificateDer<'a>],
    /// The name the client connected to.
    pub(crate) server_name: &'a ServerName<'a>,
    /// When the verification runs.
    pub(crate) now: UnixTime,
}

/// The last word on a server certificate.
pub(crate) trait CertPolicy: std::fmt::Debug + Send + Sync {
    /// The verdict on `presented`, given `verdict`, what the inner verifier said of it.
    fn decide(
        &self,
        presented: &Presented<'_>,
        verdict: Result<ServerCertVerified, Error>,
    ) -> Result<ServerCertVerified, Error>;
}

/// Delegates everything to `inner`; the server certificate's verdict then goes through
/// `policy`.
#[derive(Debug)]
pub(crate) struct PolicyVerifier<P> {
    inner: Arc<dyn ServerCertVerifier>,
    policy: P,
}

impl<P: CertPolicy> PolicyVerifier<P> {
    /// Wraps `inner`, deciding with `policy`.
    pub(crate) fn new(inner: Arc<dyn ServerCertVerifier>, policy: P) -> Self {
        Self { inner, policy }
    }
}

impl<P: CertPolicy> ServerCertVerifier for PolicyVerifier<P> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let presented = Presented {
            end_entity,
            intermediates,
            server_name,
            now,
        };
        self.policy.decide(&presented, verdict)
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

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}
