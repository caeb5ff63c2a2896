//! The recorder's own records: like the model's, but with [`Instant`]s instead of timestamps
//! and with the live shared state (socket I/O, body counters) the snapshot reads.
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use super::kernel::KernelRec;
use crate::{
    SocketCookie,
    event::{
        BodyCounters, CtSample, KernelProcess, RequestUrl, SocketRecord, TlsOutcome, Transport,
    },
    headers::HeaderCapture,
    model::{DnsQueryMsg, DnsReplyMsg, TraceId},
};

/// A dial.
#[derive(Debug)]
pub(crate) struct DialRec {
    pub(crate) begin: Instant,
    pub(crate) end: Option<Instant>,
    pub(crate) ctx_closed: Option<Instant>,
    pub(crate) error: String,
    pub(crate) dst_address: String,
    pub(crate) source_ip: Option<IpAddr>,
    pub(crate) http_req: Option<TraceId>,
    pub(crate) resolver_dials: Vec<ResolverDialRec>,
    pub(crate) skipped_nameservers: Vec<String>,
    pub(crate) established: Option<TraceId>,
}

impl Default for DialRec {
    fn default() -> Self {
        Self {
            begin: Instant::now(),
            end: None,
            ctx_closed: None,
            error: String::new(),
            dst_address: String::new(),
            source_ip: None,
            http_req: None,
            resolver_dials: Vec::new(),
            skipped_nameservers: Vec::new(),
            established: None,
        }
    }
}

/// A resolver's connection attempt to a nameserver.
#[derive(Debug)]
pub(crate) struct ResolverDialRec {
    pub(crate) id: u64,
    pub(crate) begin: Instant,
    pub(crate) end: Option<Instant>,
    pub(crate) error: String,
    pub(crate) nameserver: String,
    pub(crate) established: Option<TraceId>,
}

impl Default for ResolverDialRec {
    fn default() -> Self {
        Self {
            id: 0,
            begin: Instant::now(),
            end: None,
            error: String::new(),
            nameserver: String::new(),
            established: None,
        }
    }
}

/// A TCP connection or UDP socket.
#[derive(Debug)]
pub(crate) struct ConnRec {
    pub(crate) transport: Transport,
    pub(crate) dial: TraceId,
    pub(crate) from_resolver: bool,
    pub(crate) remote: SocketAddr,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) cookie: Option<SocketCookie>,
    pub(crate) record: Arc<SocketRecord>,
    /// Socket creation; the TCP handshake begins here.
    pub(crate) opened: Instant,
    pub(crate) handshake_end: Option<Instant>,
    pub(crate) established: Option<Instant>,
    pub(crate) closed: Option<Instant>,
    pub(crate) reused: bool,
    /// What the kernel reported about the socket.
    pub(crate) kernel: KernelRec,
    /// The latest conntrack entry.
    pub(crate) conntrack: Option<CtSample>,
    /// The process that opened it, when the kernel said.
    pub(crate) process: Option<KernelProcess>,
}

impl ConnRec {
    /// A record to complete with `..`; every field is overwritten or empty.
    pub(crate) fn new_placeholder() -> Self {
        Self {
            transport: Transport::Tcp,
            dial: TraceId::default(),
            from_resolver: false,
            remote: SocketAddr::from(([0, 0, 0, 0], 0)),
            local: None,
            cookie: None,
            record: Arc::default(),
            opened: Instant::now(),
            handshake_end: None,
            established: None,
            closed: None,
            reused: false,
            kernel: KernelRec::default(),
            conntrack: None,
            process: None,
        }
    }
}

/// The DNS messages of one resolver connection.
#[derive(Debug)]
pub(crate) struct DnsRec {
    pub(crate) trace_id: TraceId,
    pub(crate) dial: TraceId,
    pub(crate) queries: Vec<(Instant, DnsQueryMsg)>,
    pub(crate) replies: Vec<(Instant, DnsReplyMsg)>,
}

/// A TLS handshake.
#[derive(Debug)]
pub(crate) struct TlsRec {
    pub(crate) conn: TraceId,
    pub(crate) begin: Instant,
    pub(crate) end: Option<Instant>,
    pub(crate) server_name: String,
    pub(crate) for_proxy: bool,
    pub(crate) http_req: Option<TraceId>,
    pub(crate) outcome: Option<TlsOutcome>,
}

/// An HTTP request (one hop).
#[derive(Debug)]
pub(crate) struct HttpRec {
    pub(crate) sent: Instant,
    pub(crate) method: http::Method,
    pub(crate) url: RequestUrl,
    pub(crate) req_header: Option<HeaderCapture>,
    pub(crate) network_proxy: String,
    pub(crate) body: Arc<BodyCounters>,
    pub(crate) conn: Option<TraceId>,
    pub(crate) tls: Option<TraceId>,
    pub(crate) proxy_tls: Option<TraceId>,
    pub(crate) response: Option<Instant>,
    pub(crate) proto: Option<(u8, u8)>,
    pub(crate) status: u16,
    pub(crate) resp_header: Option<HeaderCapture>,
    pub(crate) error: String,
}
