//! TLS with rustls: one client configuration per traced client (so sessions resume across its
//! connections), and a handshake that reports its begin, end, outcome and peer certificates.
//!
//! The certificates reported are the whole chain on success, and the chain the server presented
//! when verification failed (a recording policy over the real verifier, `policy.rs`). With packet
//! capture's `tls_keys`, the configuration logs the session secrets into a [`KeyLogRecorder`]
//! (`keylog.rs`), and into [`TlsSettings::key_log`] too (e.g. `rustls::KeyLogFile` for
//! `SSLKEYLOGFILE`).
//!
//! Beyond WebPKI: a server certificate that is itself one of the roots is accepted
//! (`self_signed.rs`, as curl does for `--cacert`); [`TlsSettings::insecure`] records what
//! verification said instead of failing (`verifier.rs`); [`ClientIdentity`] answers a server
//! asking for a client certificate.
//!
//! ```no_run
//! # fn demo() -> Result<(), nettrace::tls::TlsConfigError> {
//! use std::path::Path;
//! use nettrace::tls::{ClientIdentity, TlsSettings};
//! let tls = TlsSettings {
//!     roots: Some(nettrace::tls::roots_from_pem_file(Path::new("ca.pem"))?),
//!     client_identity: Some(ClientIdentity::from_pem_files(
//!         Path::new("client.pem"),
//!         Path::new("client.key"),
//!     )?),
//!     ..TlsSettings::default()
//! };
//! # let _ = tls; Ok(()) }
//! ```
mod cert;
mod keylog;
mod policy;
mod self_signed;
mod verifier;

use std::{cell::RefCell, sync::Arc, time::Duration, time::Instant};

use rustls::{
    ClientConfig, RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::{
    event::{CANCELED, Event, OnCancel, Sink, TlsOutcome},
    model::TraceId,
};
pub use keylog::{DEFAULT_KEY_LOG_LIMIT, KeyLogRecorder};
use policy::PolicyVerifier;
/// What receives the TLS secrets (rustls's trait; see [`TlsSettings::key_log`]).
pub use rustls::KeyLog;
/// rustls's key log appending to the file named by `$SSLKEYLOGFILE` (for [`TlsSettings::key_log`]).
pub use rustls::KeyLogFile;

/// How the client verifies servers and what it offers in the handshake.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// Trusted roots; `None` uses the system's trust store. A server certificate that is
    /// itself one of them (a self-signed certificate given as a root) is trusted too, when it
    /// names the server and is valid now (as curl's `--cacert`).
    pub roots: Option<RootCertStore>,
    /// A verifier replacing the standard WebPKI one (for pinning, or custom policies).
    pub verifier: Option<Arc<dyn ServerCertVerifier>>,
    /// Do not fail a handshake whose certificates the verifier rejects (curl's `-k`). The
    /// verifier still runs: the TLS tunnel records `insecure: true` and its verdict in
    /// `certVerifyErr` (empty when it would have passed).
    pub insecure: bool,
    /// The client certificate and key offered to a server that asks for one; `None` offers
    /// none.
    pub client_identity: Option<ClientIdentity>,
    /// Also hands the TLS secrets of every connection to this key log (e.g.
    /// `rustls::KeyLogFile`, which appends them to `$SSLKEYLOGFILE`). Handle with care: the
    /// secrets decrypt the connections.
    pub key_log: Option<Arc<dyn KeyLog>>,
}

/// A client certificate chain (leaf first) and its private key, for servers that ask for a
/// client certificate. Cheap to clone; its `Debug` shows no key.
#[derive(Clone)]
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl ClientIdentity {
    /// The identity of `chain` (leaf first) and `key`.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain,
            key: Arc::new(key),
        }
    }

    /// Reads the certificate chain from the PEM file `cert` and the private key (PKCS#8,
    /// PKCS#1 or SEC1) from the PEM file `key` (curl's `--cert` and `--key`; they may be the
    /// same file).
    pub fn from_pem_files(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Self, TlsConfigError> {
        let bad = |path: &std::path::Path, reason: String| TlsConfigError::BadIdentityFile {
            path: path.display().to_string(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(bad(cert, "no certificate in it".to_owned()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
        Ok(Self::new(chain, key_der))
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

impl std::fmt::Debug for ClientIdentity {
    /// The number of certificates only: the key is not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Hands each secret to every key log it holds.
#[derive(Debug)]
struct KeyLogs(Vec<Arc<dyn KeyLog>>);

impl KeyLog for KeyLogs {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        for log in &self.0 {
            log.log(label, client_random, secret);
        }
    }

    fn will_log(&self, label: &str) -> bool {
        self.0.iter().any(|log| log.will_log(label))
    }
}

/// Builds the client's rustls configuration, offering `alpn` (e.g. `h2`, `http/1.1`), and
/// logging the session secrets into `key_log` (and the settings' key log) when given.
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
            let roots = Arc::new(roots);
            let webpki =
                WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .build()
                    .map_err(TlsConfigError::Verifier)?;
            Arc::new(PolicyVerifier::new(
                webpki,
                self_signed::ExplicitLeaf::new(&roots),
            ))
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Protocols)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PolicyVerifier::new(
            verifier,
            verifier::RecordChain::new(settings.insecure),
        )));
    let mut config = match &settings.client_identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(TlsConfigError::ClientIdentity)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let mut logs: Vec<Arc<dyn KeyLog>> = Vec::new();
    if let Some(key_log) = key_log {
        logs.push(key_log);
    }
    if let Some(key_log) = &settings.key_log {
        logs.push(key_log.clone());
    }
    match logs.len() {
        0 => {}
        1 => config.key_log = logs.remove(0),
        _ => config.key_log = Arc::new(KeyLogs(logs)),
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
    /// The client certificate or key file could not be used.
    #[error("client certificate or key from {path}: {reason}")]
    BadIdentityFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the client certificate and key (e.g. a key of an unsupported kind, or
    /// one that does not match the certificate).
    #[error("the client certificate and key cannot be used")]
    ClientIdentity(#[source] rustls::Error),
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
    /// The configuration does not fail on rejected certificates ([`TlsSettings::insecure`]).
    pub(crate) insecure: bool,
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
    let notes = RefCell::new(verifier::VerifierNotes::default());
    let (result, notes) = verifier::HANDSHAKE_NOTES
        .scope(notes, async {
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
            let notes = verifier::HANDSHAKE_NOTES.with(|n| n.take());
            (result, notes)
        })
        .await;
    unfinished.disarm();
    let at = Instant::now();
    let cert_verify_error = notes
        .ignored_error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    match result {
        Ok(stream) => {
            let (_, connection) = stream.get_ref();
            let outcome = TlsOutcome {
                error: String::new(),
                did_resume: connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
                tls_version: connection
                    .protocol_version()
                    .map(version_name)
                    .unwrap_or_default(),
                insecure: context.insecure,
                cert_verify_error,
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
                    peer_certs: notes.chain.iter().map(|c| cert::describe(c)).collect(),
                    insecure: context.insecure,
                    cert_verify_error,
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

/// `TLSv1.3` style, as OpenSSL and Wireshark name versions.
fn version_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1".to_owned(),
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1.0".to_owned(),
        other => format!("{other:?}"),
    }
}

fn server_name_string(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}
