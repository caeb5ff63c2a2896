//! [`ExchangeError`]: why an exchange over the pool failed before a response arrived. Its text
//! keeps hyper-util's wording (`client error (SendRequest)`, ...), which the traces recorded
//! before the client had a pool of its own.
use super::connector::ConnectFailed;

/// A failed exchange: dialing failed, or hyper failed to send the request or read the head.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// No connection could be made (the connector's classified error).
    Connect(ConnectFailed),
    /// hyper failed; `stage` names where, as hyper-util did (`SendRequest`, `Canceled`).
    Hyper {
        stage: &'static str,
        source: hyper::Error,
    },
    /// The request's HTTP version (or method with it) cannot be sent.
    Unsupported(&'static str),
}

impl ExchangeError {
    /// hyper failed while sending the request (or handshaking).
    pub(crate) fn send(source: hyper::Error) -> Self {
        Self::Hyper {
            stage: "SendRequest",
            source,
        }
    }

    /// hyper gave the request back unsent on a new connection.
    pub(crate) fn canceled(source: hyper::Error) -> Self {
        Self::Hyper {
            stage: "Canceled",
            source,
        }
    }
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(_) => f.write_str("client error (Connect)"),
            Self::Hyper { stage, .. } => write!(f, "client error ({stage})"),
            Self::Unsupported(what) => write!(f, "client error ({what})"),
        }
    }
}

impl std::error::Error for ExchangeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(failed) => Some(failed),
            Self::Hyper { source, .. } => Some(source),
            Self::Unsupported(_) => None,
        }
    }
}
