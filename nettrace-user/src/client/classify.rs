//! The class ([`RequestErrorKind`]) of a failure, read from its typed cause where it happens:
//! a resolver error, a socket error, a TLS handshake error, hyper's error. Pure functions of
//! the error values, tested without I/O.
//!
//! ```ignore
//! let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
//! assert_eq!(connect_failure(&io), RequestErrorKind::ConnectRefused);
//! ```
use std::{error::Error as _, io};

use rustls::CertificateError;

use super::{CertificateFailure, DnsFailure, RequestErrorKind, TimeoutLimit};
use crate::{dns::ResolveError, sock::ConnectError, tls::HandshakeError};

/// The class of a failed name lookup.
pub(super) fn dns_failure(error: &ResolveError) -> DnsFailure {
    match error {
        ResolveError::NxDomain { .. } => DnsFailure::NoSuchHost,
        ResolveError::NoAddresses { .. } => DnsFailure::NoAddresses,
        ResolveError::ServerFailure { .. } | ResolveError::Rcode { .. } => {
            DnsFailure::ServerFailure
        }
        ResolveError::Timeout { .. } => DnsFailure::Timeout,
        ResolveError::AllNameserversSkipped { .. } | ResolveError::NoNameservers => {
            DnsFailure::NoNameservers
        }
        ResolveError::InvalidName { .. } => DnsFailure::InvalidName,
        ResolveError::Malformed { .. } | ResolveError::Io { .. } => DnsFailure::Other,
    }
}

/// The class of a failed TCP connection attempt, and its I/O error if it has one.
pub(super) fn connect_error(error: ConnectError) -> (RequestErrorKind, Option<io::Error>) {
    match error {
        ConnectError::Connect(io) => (connect_failure(&io), Some(io)),
        ConnectError::Timeout(_) => (RequestErrorKind::ConnectTimedOut, None),
        ConnectError::Socket(io) => (RequestErrorKind::Connect, Some(io)),
    }
}

/// The class of a failed `connect()`.
pub(super) fn connect_failure(error: &io::Error) -> RequestErrorKind {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => RequestErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => RequestErrorKind::ConnectTimedOut,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            RequestErrorKind::ConnectUnreachable
        }
        _ => RequestErrorKind::Connect,
    }
}

/// The class of a failed TLS handshake.
pub(super) fn tls_failure(error: &HandshakeError) -> RequestErrorKind {
    match error {
        HandshakeError::Tls(rustls::Error::InvalidCertificate(problem)) => {
            RequestErrorKind::TlsCertificate(certificate_failure(problem))
        }
        HandshakeError::Tls(_) | HandshakeError::Io(_) => RequestErrorKind::TlsHandshake,
        HandshakeError::Timeout(after) => RequestErrorKind::Timeout {
            limit: TimeoutLimit::TlsHandshake,
            after: *after,
        },
    }
}

/// rustls's verdict on a certificate, by category.
fn certificate_failure(error: &CertificateError) -> CertificateFailure {
    #[allow(deprecated)] // rustls still returns `UnsupportedSignatureAlgorithm` from old verifiers.
    match error {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            CertificateFailure::Expired
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            CertificateFailure::NotValidYet
        }
        CertificateError::UnknownIssuer => CertificateFailure::UnknownIssuer,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            CertificateFailure::WrongHost
        }
        CertificateError::Revoked => CertificateFailure::Revoked,
        CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithm
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            CertificateFailure::BadSignature
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            CertificateFailure::InvalidPurpose
        }
        _ => CertificateFailure::Other,
    }
}

/// The class of a failed exchange that hyper (or the pool) reports: the request body failing,
/// or else the exchange itself.
pub(super) fn exchange_failure(error: &super::exchange_error::ExchangeError) -> RequestErrorKind {
    if matches!(error, super::exchange_error::ExchangeError::Connect(_)) {
        return RequestErrorKind::Connect;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            // A user error with a cause is the request body's stream failing; hyper's other
            // user errors of a client (a dispatch task gone, ...) have none.
            let body =
                hyper.is_body_write_aborted() || (hyper.is_user() && hyper.source().is_some());
            return if body {
                RequestErrorKind::Body
            } else {
                RequestErrorKind::Http
            };
        }
        source = e.source();
    }
    RequestErrorKind::Http
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, time::Duration};

    use super::*;
    use crate::model::DnsRCode;

    fn server() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 53))
    }

    #[test]
    fn dns_failures() {
        let name = || "gone.test".to_owned();
        let cases = [
            (
                ResolveError::NxDomain { name: name() },
                DnsFailure::NoSuchHost,
            ),
            (
                ResolveError::NoAddresses { name: name() },
                DnsFailure::NoAddresses,
            ),
            (
                ResolveError::ServerFailure { server: server() },
                DnsFailure::ServerFailure,
            ),
            (
                ResolveError::Rcode {
                    server: server(),
                    rcode: DnsRCode::REFUSED,
                },
                DnsFailure::ServerFailure,
            ),
            (
                ResolveError::Timeout {
                    server: server(),
                    timeout: Duration::from_secs(1),
                },
                DnsFailure::Timeout,
            ),
            (ResolveError::NoNameservers, DnsFailure::NoNameservers),
            (
                ResolveError::AllNameserversSkipped { skipped: vec![] },
                DnsFailure::NoNameservers,
            ),
            (
                ResolveError::InvalidName {
                    name: name(),
                    reason: "empty label".to_owned(),
                },
                DnsFailure::InvalidName,
            ),
            (
                ResolveError::Io {
                    server: server(),
                    op: "send",
                    source: io::Error::from(io::ErrorKind::ConnectionRefused),
                },
                DnsFailure::Other,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(dns_failure(&error), class, "{error}");
        }
    }

    #[test]
    fn connect_failures_by_io_kind() {
        let cases = [
            (
                io::ErrorKind::ConnectionRefused,
                RequestErrorKind::ConnectRefused,
            ),
            (io::ErrorKind::TimedOut, RequestErrorKind::ConnectTimedOut),
            (
                io::ErrorKind::HostUnreachable,
                RequestErrorKind::ConnectUnreachable,
            ),
            (
                io::ErrorKind::NetworkUnreachable,
                RequestErrorKind::ConnectUnreachable,
            ),
            (io::ErrorKind::AddrNotAvailable, RequestErrorKind::Connect),
            (io::ErrorKind::PermissionDenied, RequestErrorKind::Connect),
        ];
        for (kind, class) in cases {
            assert_eq!(connect_failure(&io::Error::from(kind)), class, "{kind:?}");
        }
        // The kernel's errno, as `connect()` returns it.
        for (errno, class) in [
            (libc::ECONNREFUSED, RequestErrorKind::ConnectRefused),
            (libc::ETIMEDOUT, RequestErrorKind::ConnectTimedOut),
            (libc::EHOSTUNREACH, RequestErrorKind::ConnectUnreachable),
            (libc::ENETUNREACH, RequestErrorKind::ConnectUnreachable),
        ] {
            assert_eq!(
                connect_failure(&io::Error::from_raw_os_error(errno)),
                class,
                "errno {errno}"
            );
        }
    }

    #[test]
    fn connect_errors_keep_their_io_error() {
        let (class, io) = connect_error(ConnectError::Timeout(Duration::from_millis(300)));
        assert_eq!(class, RequestErrorKind::ConnectTimedOut);
        assert!(io.is_none());
        let (class, io) = connect_error(ConnectError::Connect(io::Error::from_raw_os_error(
            libc::ECONNREFUSED,
        )));
        assert_eq!(class, RequestErrorKind::ConnectRefused);
        assert_eq!(io.and_then(|e| e.raw_os_error()), Some(libc::ECONNREFUSED));
        let (class, _) = connect_error(ConnectError::Socket(io::Error::from(
            io::ErrorKind::AddrInUse,
        )));
        assert_eq!(class, RequestErrorKind::Connect);
    }

    #[test]
    fn certificate_failures() {
        let cases = [
            (CertificateError::Expired, CertificateFailure::Expired),
            (
                CertificateError::NotValidYet,
                CertificateFailure::NotValidYet,
            ),
            (
                CertificateError::UnknownIssuer,
                CertificateFailure::UnknownIssuer,
            ),
            (
                CertificateError::NotValidForName,
                CertificateFailure::WrongHost,
            ),
            (CertificateError::Revoked, CertificateFailure::Revoked),
            (
                CertificateError::BadSignature,
                CertificateFailure::BadSignature,
            ),
            (
                CertificateError::InvalidPurpose,
                CertificateFailure::InvalidPurpose,
            ),
            (CertificateError::BadEncoding, CertificateFailure::Other),
        ];
        for (error, class) in cases {
            let handshake = HandshakeError::Tls(rustls::Error::InvalidCertificate(error.clone()));
            assert_eq!(
                tls_failure(&handshake),
                RequestErrorKind::TlsCertificate(class),
                "{error:?}"
            );
        }
    }

    #[test]
    fn other_tls_failures() {
        let alert = HandshakeError::Tls(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(tls_failure(&alert), RequestErrorKind::TlsHandshake);
        let reset = HandshakeError::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(tls_failure(&reset), RequestErrorKind::TlsHandshake);
        let late = HandshakeError::Timeout(Duration::from_millis(300));
        assert_eq!(
            tls_failure(&late),
            RequestErrorKind::Timeout {
                limit: TimeoutLimit::TlsHandshake,
                after: Duration::from_millis(300),
            }
        );
        assert_eq!(
            late.to_string(),
            "TLS handshake failed: TLS handshake timed out after 300ms"
        );
    }
}
