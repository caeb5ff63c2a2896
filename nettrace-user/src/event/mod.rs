//! The events that hooks emit and the recorder folds into a trace.
//!
//! Hooks (the connector, the resolver, the TLS and HTTP layers, the kernel reader) never build
//! trace records themselves: they describe what happened, when ([`Instant`]) and to which
//! record ([`TraceId`]), and [`crate::recorder::Recorder`] is the one place that turns that into
//! the model. Per-operation socket I/O is the exception: it is counted in a shared
//! [`SocketRecord`] that the `ConnOpened` event hands over, so the hot path takes
//! no lock of the recorder.
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use crate::{
    SocketCookie,
    headers::HeaderCapture,
    model::{ConntrackEntry, DnsQueryMsg, DnsReplyMsg, PeerCert, TraceId},
};

mod body_counters;
mod kernel;
mod kernel_socket;
mod sink;
mod socket_record;

pub(crate) use body_counters::{BodyCounters, BodyState, RequestCounter, ResponseCounter};
// The fuzz seeds (a test) write records as the programs do.
#[cfg(test)]
pub(crate) use kernel::record_bytes;
pub use kernel::{
    ClientId, Direction, HeldStateChange, ImpliedStateChanges, KernelEvent, KernelTcpState,
    MalformedRecord, PacketRecord, SockCallsRecord, SockMsgRecord, SockOp, SockOpsRecord,
    TcpCounters, TcpResetRecord, TcpStateChange,
};
pub(crate) use kernel::{DecodedRecord, UnboxedEvent};
pub use kernel_socket::{
    ConnectCall, KernelProcess, SocketCreated, SocketProtocol, SocketReleased,
};
pub(crate) use sink::{EventSink, Sink, TraceSettings};
pub(crate) use socket_record::{RawSocketOp, SocketRecord, SocketState};

/// The error of a record that a request left open when it was canceled (timed out, or its
/// future dropped): a dial, a resolver dial, a TLS handshake.
pub(crate) const CANCELED: &str =
    "canceled: the request timed out or was dropped before this ended";

/// Runs its closure when dropped, unless [`disarmed`](Self::disarm) first: reports the end of
/// an operation whose future was dropped (the request canceled) before it finished, at that
/// moment, so that no record stays open.
///
/// ```ignore
/// let unfinished = OnCancel::new(|| sink.emit(Event::DialEnded { .. Err(CANCELED) .. }));
/// let result = dial().await; // dropped here when the request times out
/// unfinished.disarm();
/// ```
pub(crate) struct OnCancel<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnCancel<F> {
    pub(crate) fn new(report: F) -> Self {
        Self(Some(report))
    }

    /// The operation finished: nothing to report on drop.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnCancel<F> {
    fn drop(&mut self) {
        if let Some(report) = self.0.take() {
            report();
        }
    }
}

/// Transport protocol of a traced connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Transport {
    /// A TCP connection.
    Tcp,
    /// A (connected) UDP socket.
    Udp,
}

/// Something that happened, as reported by a hook.
#[derive(Debug)]
pub(crate) enum Event {
    /// A dial (a connection the HTTP layer asked for) began.
    DialStarted {
        dial: TraceId,
        at: Instant,
        dst_address: String,
        source_ip: Option<IpAddr>,
        http_req: Option<TraceId>,
    },
    /// The dial ended: with the connection it established, or an error.
    DialEnded {
        dial: TraceId,
        at: Instant,
        result: Result<TraceId, String>,
    },
    /// The context of the dial (its future) was dropped or completed.
    DialContextClosed { dial: TraceId, at: Instant },
    /// A nameserver was skipped by the user's `SkipNameserver` callback.
    NameserverSkipped {
        dial: TraceId,
        nameserver: String,
        reason: String,
    },
    /// The resolver started to open a connection to a nameserver.
    ResolverDialStarted {
        dial: TraceId,
        resolver_dial: u64,
        at: Instant,
        nameserver: String,
    },
    /// The resolver's connection attempt ended.
    ResolverDialEnded {
        dial: TraceId,
        resolver_dial: u64,
        at: Instant,
        result: Result<TraceId, String>,
    },
    /// A socket was created (before `connect()`); `at` is the handshake start for TCP.
    ConnOpened {
        conn: TraceId,
        transport: Transport,
        dial: TraceId,
        from_resolver: bool,
        remote: SocketAddr,
        cookie: Option<SocketCookie>,
        record: Arc<SocketRecord>,
        at: Instant,
    },
    /// The process that opened a connection (the caller of its `connect()`), when the kernel
    /// reported it: only connections traced from the kernel (the translator emits it right
    /// after `ConnOpened`; the hooks of the library know no other process than their own).
    ConnProcess {
        conn: TraceId,
        process: KernelProcess,
    },
    /// The connection was established (TCP) or connected (UDP).
    ConnEstablished {
        conn: TraceId,
        at: Instant,
        local: SocketAddr,
    },
    /// The TCP handshake failed.
    ConnFailed { conn: TraceId, at: Instant },
    /// The socket was closed from our side.
    ConnClosed { conn: TraceId, at: Instant },
    /// A DNS query went out on a resolver connection (`msg.sent_at` is filled from `at`).
    DnsQuery {
        conn: TraceId,
        dial: TraceId,
        at: Instant,
        msg: DnsQueryMsg,
    },
    /// A DNS reply came in on a resolver connection (`msg.recv_at` is filled from `at`).
    DnsReply {
        conn: TraceId,
        dial: TraceId,
        at: Instant,
        msg: DnsReplyMsg,
    },
    /// A TLS handshake began on a connection.
    TlsStarted {
        tls: TraceId,
        conn: TraceId,
        at: Instant,
        server_name: String,
        for_proxy: bool,
        http_req: Option<TraceId>,
    },
    /// The TLS handshake ended.
    TlsEnded {
        tls: TraceId,
        at: Instant,
        outcome: TlsOutcome,
    },
    /// An HTTP request (one hop) was handed to the connection pool.
    HttpRequestStarted {
        req: TraceId,
        at: Instant,
        method: http::Method,
        url: RequestUrl,
        header: Option<HeaderCapture>,
        network_proxy: String,
        body: Arc<BodyCounters>,
    },
    /// The response head arrived, over connection `conn` (its trace IDs, when hyper passed
    /// them on). One event for both, so a response takes the recorder's lock once.
    HttpResponse {
        req: TraceId,
        at: Instant,
        conn: Option<ConnInfo>,
        proto: (u8, u8),
        status: u16,
        header: Option<HeaderCapture>,
    },
    /// The request failed (before or after the response head).
    HttpFailed { req: TraceId, error: String },
    /// An event of the kernel programs about a traced socket.
    Kernel(KernelEvent),
    /// The conntrack entry of a connection.
    Conntrack { conn: TraceId, sample: CtSample },
    /// A request is complete (its response body ended or was dropped, or it failed): its
    /// hops, first to last. Emitted only when completed requests are streamed.
    RequestDone { hops: Vec<TraceId>, at: Instant },
}

/// The URL of a request hop, as its record gives it (`reqURL`): parsed, or the text of a
/// redirect `Location` that cannot be followed (it is no `http`/`https` URL, or does not parse),
/// whose hop is recorded as failed without being sent.
#[derive(Clone, Debug)]
pub(crate) enum RequestUrl {
    /// A URL handed to the pool (or failed before).
    Uri(http::Uri),
    /// The text of a URL that could not be parsed.
    Text(String),
}

impl std::fmt::Display for RequestUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Uri(uri) => uri.fmt(f),
            Self::Text(text) => f.write_str(text),
        }
    }
}

impl std::str::FromStr for RequestUrl {
    type Err = http::uri::InvalidUri;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(Self::Uri)
    }
}

/// How a TLS handshake ended.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsOutcome {
    /// Empty on success.
    pub(crate) error: String,
    /// Session resumed.
    pub(crate) did_resume: bool,
    /// IANA number of the cipher suite (0 if none was negotiated).
    pub(crate) cipher_suite: u16,
    /// ALPN protocol.
    pub(crate) negotiated_proto: String,
    /// The peer's certificates (leaf first); on a failed verification, the presented chain.
    pub(crate) peer_certs: Vec<PeerCert>,
    /// The negotiated protocol version (`TLSv1.3`); empty when none was.
    pub(crate) tls_version: String,
    /// Certificates were not verified (`TlsSettings::insecure`).
    pub(crate) insecure: bool,
    /// With `insecure`: why verification would have failed; empty if it would have passed.
    pub(crate) cert_verify_error: String,
}

/// The trace IDs of a connection, found in each response's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The TCP connection.
    pub tcp_conn: TraceId,
    /// The TLS tunnel with the destination, if any.
    pub tls_tunnel: Option<TraceId>,
    /// The TLS tunnel with an `https://` proxy, if any.
    pub proxy_tls_tunnel: Option<TraceId>,
}

/// One conntrack entry of a connection, as obtained at `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CtSample {
    /// When it was obtained.
    pub(crate) at: Instant,
    /// The entry (its `captured_at` is filled from `at` in a snapshot).
    pub(crate) entry: ConntrackEntry,
    /// From the destroy event: the final state and counters.
    pub(crate) destroyed: bool,
}
