//! [`RecordingVerifier`]: wraps the real server-certificate verifier and remembers the chain
//! the server presented, so that a failed verification still shows which certificates were
//! offered. When `insecure` (curl's `-k`), it runs the real verifier all the same, records its
//! verdict and lets the handshake go on whatever it said.
//!
//! The verifier is shared by every connection of a client (rustls resumes sessions only when the
//! same verifier is reused), so the chain is handed to the handshake in progress through a
//! task-local slot that the handshake future sets up around itself.
use std::{cell::RefCell, sync::Arc};

use rustls::{
    DigitallySignedStruct, Error, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

tokio::task_local! {
    /// What the verifier saw in the handshake running in this task.
    pub(crate) static HANDSHAKE_NOTES: RefCell<VerifierNotes>;
}

/// What the verifier saw in one handshake.
#[derive(Debug, Default)]
pub(crate) struct VerifierNotes {
    /// The chain presented (leaf first).
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// With `insecure`: why verification would have failed.
    pub(crate) ignored_error: Option<Error>,
}

/// Delegates every decision to `inner`, recording the presented chain first; when
/// `insecure`, a rejected certificate is recorded and accepted.
#[derive(Debug)]
pub(crate) struct RecordingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    insecure: bool,
}

impl RecordingVerifier {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn ServerCertVerifier>, insecure: bool) -> Self {
        Self { inner, insecure }
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // Outside a traced handshake there is no slot, and nothing to record.
        let _ = HANDSHAKE_NOTES.try_with(|notes| {
            notes.borrow_mut().chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        });
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verdict {
            Err(error) if self.insecure => {
                let _ = HANDSHAKE_NOTES.try_with(|notes| {
                    notes.borrow_mut().ignored_error = Some(error);
                });
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
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

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}
