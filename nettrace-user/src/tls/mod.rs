//! TLS with rustls: one client configuration per traced client (so sessions resume across its
//! connections), and a handshake that reports its begin, end, outcome and peer certificates.
//!
//! The certificates reported are the whole chain on success, and the chain the server presented
//! when verification failed (a recording wrapper around the real verifier). With packet
//! capture's `tls_keys`, the configuration logs the session secrets into a [`KeyLogRecorder`]
//! (`keylog.rs`).
mod cert;
mod keylog;
mod verifier;

use std::{cell::RefCell, sync::Arc, time::Duration, time::Instant};

use rustls::{
    ClientConfig, RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier},
    pki_types::ServerName,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::{
    event::Sink,
    event::{CANCELED, Event, OnCancel, TlsOutcome},
    model::TraceId,
};
pub use keylog::{DEFAULT_KEY_LOG_LIMIT, KeyLogRecorder};
pub(crate) use verifier::RecordingVerifier;

/// How the client verifies servers and what it offers in the handshake.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// Trusted roots; `None` uses the system's trust store.
    pub roots: Option<RootCertStore>,
    /// A verifier replacing the standard WebPKI one (for pinning, or custom policies).
    pub verifier: Option<Arc<dyn ServerCertVerifier>>,
}

/// Builds the client's rustls configuration, offering `alpn` (e.g. `h2`, `http/1.1`), and
/// logging the session secrets into `key_log` when given.
pub(crate) fn client_config(
    settings: &TlsSettings,
    alpn: &[&[u8]],
    key_log: Option<Arc<KeyLogRecorder>>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match &settings.verifier {
        Some(custom) => custom.clone(),
        None => {
            let roots = match &settings.roots {
                Some(roots) => roots.clone(),
                None => system_roots()?,
            };
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(TlsConfigError::Verifier)?
        }
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Protocols)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier::new(verifier)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if let Some(key_log) = key_log {
        config.key_log = key_log;
    }
    Ok(Arc::new(config))
}

/// Root certificates from a PEM file (for `--cacert`); fails when it holds none.
pub fn roots_from_pem_file(path: &std::path::Path) -> Result<RootCertStore, TlsConfigError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let bad = |reason: String| TlsConfigError::BadPemFile {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".to_owned()));
    }
    Ok(roots)
}

/// The system trust store (what Go's crypto/x509 uses too).
fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsConfigError::NoSystemRoots(
            found.errors.iter().map(ToString::to_string).collect(),
        ));
    }
    Ok(roots)
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The standard verifier rejected the roots.
    #[error("building the certificate verifier failed")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    /// The crypto provider does not support the default protocol versions.
    #[error("configuring TLS protocol versions failed")]
    Protocols(#[source] rustls::Error),
    /// A PEM file of root certificates could not be used.
    #[error("root certificates from {path}: {reason}")]
    BadPemFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No usable certificate was found in the system trust store.
    #[error("no usable root certificates in the system trust store ({})", .0.join("; "))]
    NoSystemRoots(Vec<String>),
}

/// Where a handshake happens, for the trace.
#[derive(Clone, Debug)]
pub(crate) struct HandshakeContext {
    /// The TCP connection it runs over.
    pub(crate) conn: TraceId,
    /// True for the handshake with an `https://` proxy itself.
    pub(crate) for_proxy: bool,
    /// The request that caused it.
    pub(crate) http_req: Option<TraceId>,
    /// Give up after this long.
    pub(crate) timeout: Option<Duration>,
}

/// Runs a traced TLS handshake over `stream`. Returns the TLS stream and the tunnel's ID.
pub(crate) async fn handshake<S>(
    sink: &Sink,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    stream: S,
    context: HandshakeContext,
) -> Result<(TlsStream<S>, TraceId), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tls = TraceId::generate();
    sink.emit(Event::TlsStarted {
        tls: tls.clone(),
        conn: context.conn.clone(),
        at: Instant::now(),
        server_name: server_name_string(&server_name),
        for_proxy: context.for_proxy,
        http_req: context.http_req.clone(),
    });
    // Fallible: a failed handshake hands the stream back. The stream (inside the error, or
    // inside the unfinished future after a timeout) is dropped only at the end of this
    // function, after the tunnel's end is reported: dropping it records the connection's close.
    let connecting = TlsConnector::from(config)
        .connect(server_name, stream)
        .into_fallible();
    let mut connecting = std::pin::pin!(connecting);
    // Dropped before the handshake ends (the request timed out or was dropped): the tunnel
    // ends then, with that error, before the stream in `connecting` records its close.
    let unfinished = OnCancel::new(|| {
        sink.emit(Event::TlsEnded {
            tls: tls.clone(),
            at: Instant::now(),
            outcome: TlsOutcome {
                error: CANCELED.to_owned(),
                ..TlsOutcome::default()
            },
        });
    });
    let presented = RefCell::new(Vec::new());
    let (result, presented) = verifier::PRESENTED_CHAIN
        .scope(presented, async {
            let limit = async {
                match context.timeout {
                    Some(limit) => {
                        tokio::time::sleep(limit).await;
                        limit
                    }
                    None => std::future::pending().await,
                }
            };
            let result = tokio::select! {
                result = &mut connecting => result
                    .map_err(|(error, stream)| (HandshakeError::from_io(error), Some(stream))),
                limit = limit => Err((HandshakeError::Timeout(limit), None)),
            };
            let presented = verifier::PRESENTED_CHAIN.with(|c| c.take());
            (result, presented)
        })
        .await;
    unfinished.disarm();
    let at = Instant::now();
    match result {
        Ok(stream) => {
            let (_, connection) = stream.get_ref();
            let outcome = TlsOutcome {
                error: String::new(),
                did_resume: connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
                cipher_suite: connection
                    .negotiated_cipher_suite()
                    .map_or(0, |s| u16::from(s.suite())),
                negotiated_proto: connection
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default(),
                peer_certs: connection
                    .peer_certificates()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| cert::describe(c))
                    .collect(),
            };
            sink.emit(Event::TlsEnded {
                tls: tls.clone(),
                at,
                outcome,
            });
            Ok((stream, tls))
        }
        Err((error, _stream)) => {
            sink.emit(Event::TlsEnded {
                tls,
                at,
                outcome: TlsOutcome {
                    error: error.to_string(),
                    peer_certs: presented.iter().map(|c| cert::describe(c)).collect(),
                    ..TlsOutcome::default()
                },
            });
            Err(error)
        }
    }
}

/// Why a TLS handshake failed. The text is what the trace records as `handshakeErr`: the
/// rustls error when there is one (e.g. "invalid peer certificate: UnknownIssuer"), the I/O
/// error otherwise.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// rustls failed the handshake (a rejected certificate, an alert from the peer, ...).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] rustls::Error),
    /// Reading or writing the connection failed.
    #[error("TLS handshake failed: {0}")]
    Io(#[source] std::io::Error),
    /// The handshake did not finish within the limit.
    #[error("TLS handshake failed: TLS handshake timed out after {0:?}")]
    Timeout(Duration),
}

impl HandshakeError {
    /// The rustls error inside `error` (tokio-rustls wraps them), or the I/O error itself.
    fn from_io(error: std::io::Error) -> Self {
        match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => Self::Tls(tls.clone()),
            None => Self::Io(error),
        }
    }
}

fn server_name_string(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}
