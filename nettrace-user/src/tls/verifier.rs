//! [`RecordChain`]: a policy over the real server-certificate verifier ([`super::policy`]) that
//! remembers the chain the server presented, so that a failed verification still shows which
//! certificates were offered. When `insecure` (curl's `-k`), it runs the real verifier all the same, records its
//! verdict and lets the handshake go on whatever it said.
//!
//! The verifier is shared by every connection of a client (rustls resumes sessions only when the
//! same verifier is reused), so the chain is handed to the handshake in progress through a
//! task-local slot that the handshake future sets up around itself.
use std::cell::RefCell;

use rustls::{Error, client::danger::ServerCertVerified, pki_types::CertificateDer};

use super::policy::{CertPolicy, Presented};

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

/// Records the presented chain, then keeps the inner verifier's verdict; when `insecure`, a
/// rejected certificate is recorded and accepted.
#[derive(Debug)]
pub(crate) struct RecordChain {
    insecure: bool,
}

impl RecordChain {
    /// The policy, accepting rejected certificates when `insecure`.
    pub(crate) fn new(insecure: bool) -> Self {
        Self { insecure }
    }
}

impl CertPolicy for RecordChain {
    fn decide(
        &self,
        presented: &Presented<'_>,
        verdict: Result<ServerCertVerified, Error>,
    ) -> Result<ServerCertVerified, Error> {
        // Outside a traced handshake there is no slot, and nothing to record.
        let _ = HANDSHAKE_NOTES.try_with(|notes| {
            notes.borrow_mut().chain = std::iter::once(presented.end_entity)
                .chain(presented.intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        });
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
}
