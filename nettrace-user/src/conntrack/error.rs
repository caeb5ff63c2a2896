//! [`ConntrackError`]: what can go wrong talking to ctnetlink.
use std::{io, time::Duration};

/// A failed conntrack operation, naming the call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// The process lacks CAP_NET_ADMIN in its network namespace: ctnetlink refuses it.
    #[error("conntrack needs CAP_NET_ADMIN in the network namespace ({call} was refused)")]
    NotPermitted {
        /// The refused operation.
        call: &'static str,
        /// The kernel's answer (`EPERM`).
        #[source]
        source: io::Error,
    },
    /// A socket call failed.
    #[error("{call} failed")]
    Syscall {
        /// The failed call.
        call: &'static str,
        /// Its error.
        #[source]
        source: io::Error,
    },
    /// ctnetlink answered a request with an error.
    #[error("ctnetlink refused the request")]
    Refused(#[source] io::Error),
    /// No answer in time.
    #[error("no answer from ctnetlink within {0:?}")]
    Timeout(Duration),
    /// A message that does not parse (it is skipped; the trace keeps what it had).
    #[error("malformed ctnetlink message: {0}")]
    Malformed(String),
    /// The tracer follows conntrack already: a second tracker is refused rather than ignored.
    #[error("the tracer follows conntrack already")]
    AlreadyAttached,
}

impl ConntrackError {
    /// Classifies an I/O error of `call`: `EPERM` means missing privileges.
    pub(crate) fn io(call: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM) => Self::NotPermitted { call, source },
            _ => Self::Syscall { call, source },
        }
    }
}
