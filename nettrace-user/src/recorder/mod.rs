//! The recorder: the one place where events become trace records.
//!
//! Sans-I/O: [`Recorder::handle`] folds an [`Event`] into the state, [`Recorder::snapshot`]
//! returns the trace so far, [`Recorder::clear`] starts a new trace. Records keep
//! [`Instant`]s and are converted to the model's timestamps only in a snapshot, against the
//! beginning of the current trace: what happened before it (on a connection carried over by
//! [`Recorder::clear`]) comes out absolute, never as a stale relative time.
//!
//! A snapshot never removes anything (Go's `GetTrace` loses dials, DNS queries and TLS tunnels
//! on a second call), and references are resolved so that a record that is known is never
//! referred to by an empty ID.
mod capture;
#[cfg(test)]
pub(crate) mod fixture;
mod kernel;
mod records;
mod snapshot;
mod stream;
mod table;
#[cfg(test)]
mod tests;

use std::sync::Arc;

// Socket cookies are the kernel's, not chosen by a peer: a fast hash will do.
use rustc_hash::FxHashMap as HashMap;

use kernel::KernelRec;
pub(crate) use records::{ConnRec, DialRec, DnsRec, HttpRec, ResolverDialRec, TlsRec};
use snapshot::{ConnSlot, DialSlot, DnsSlot, HttpSlot, TlsSlot};
use table::{RowHint, Table};

use crate::{
    SocketCookie,
    capture::CaptureStore,
    clock::TraceClock,
    event::{Event, KernelEvent, TcpStateChange, UnboxedEvent},
    headers::{HeaderCapture, HttpReqTraceOptions},
    ids::IdSource,
    limits::TraceLimits,
    model::{DroppedRecords, TraceId},
};

/// Where a connection runs (see [`Recorder::conn_endpoints`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnEndpoints {
    /// The socket.
    pub(crate) cookie: SocketCookie,
    /// TCP or UDP.
    pub(crate) transport: crate::event::Transport,
    /// Its local address.
    pub(crate) local: std::net::SocketAddr,
    /// The address it connected to.
    pub(crate) remote: std::net::SocketAddr,
}

/// The connection of a socket, and where its record was found last.
#[derive(Debug)]
struct ConnAt {
    id: TraceId,
    row: RowHint,
}

impl ConnAt {
    fn new(id: TraceId) -> Self {
        Self {
            id,
            row: RowHint::default(),
        }
    }
}

/// The most bytes of the shared header buffer kept for reuse across [`Recorder::clear`].
const KEPT_HEADER_BYTES: usize = 1 << 20;

/// All records of the current trace, and the open connections carried over from earlier ones.
#[derive(Debug)]
pub(crate) struct Recorder {
    clock: TraceClock,
    /// The IDs of the records the recorder creates itself (DNS query traces).
    ids: IdSource,
    dials: Table<DialRec, DialSlot>,
    conns: Table<ConnRec, ConnSlot>,
    /// One DNS query trace per resolver connection, keyed by the connection's ID.
    dns: Table<DnsRec, DnsSlot>,
    tls: Table<TlsRec, TlsSlot>,
    http: Table<HttpRec, HttpSlot>,
    /// The generations of `dials` and `tls` at the last snapshot (see
    /// [`Recorder::snapshot`]).
    snapshot_links: Option<(u64, u64)>,
    by_cookie: HashMap<SocketCookie, ConnAt>,
    /// Whether DNS messages are recorded (`WithDNSQueryTrace`).
    record_dns: bool,
    /// How captured HTTP header fields are recorded (`WithHTTPReqTrace`): every request's
    /// [`HeaderCapture`](crate::headers::HeaderCapture) is read back with these.
    http_headers: Option<Arc<HttpReqTraceOptions>>,
    /// Captured packets, when the client captures.
    capture: Option<CaptureStore>,
    /// The response header fields of this trace's requests, packed one after the other.
    header_bytes: Vec<u8>,
    /// The most records of each kind this trace keeps.
    limits: TraceLimits,
    /// Whether closed connections no request refers to are forgotten (completed requests
    /// are streamed, and theirs went with them).
    forget_closed: bool,
    /// DNS messages kept in this trace (see `limits.dns_messages`).
    dns_messages: usize,
    /// What the limits left out of this trace (socket operations are counted by each
    /// connection's [`SocketRecord`](crate::event::SocketRecord)).
    dropped: DroppedRecords,
}

impl Recorder {
    /// An empty trace beginning now, with IDs from the process-wide generator.
    pub(crate) fn new(record_dns: bool) -> Self {
        Self::with_clock(record_dns, TraceClock::start_now(), IdSource::global())
    }

    /// An empty trace beginning at `clock`'s beginning, whose own records take their IDs
    /// from `ids`: the deterministic recorder that tests drive with event sequences.
    pub(crate) fn with_clock(record_dns: bool, clock: TraceClock, ids: IdSource) -> Self {
        Self {
            clock,
            ids,
            dials: Table::default(),
            conns: Table::default(),
            dns: Table::default(),
            tls: Table::default(),
            http: Table::default(),
            snapshot_links: None,
            by_cookie: HashMap::default(),
            record_dns,
            http_headers: None,
            capture: None,
            header_bytes: Vec::new(),
            limits: TraceLimits::UNLIMITED,
            forget_closed: false,
            dns_messages: 0,
            dropped: DroppedRecords::default(),
        }
    }

    /// Keeps at most this many records of each kind per trace, counting the others.
    pub(crate) fn set_limits(&mut self, limits: TraceLimits) {
        self.limits = limits;
    }

    /// Completed requests are taken out as they complete ([`Self::take_request`]): a
    /// connection that closes afterwards is forgotten with its close.
    pub(crate) fn set_streaming(&mut self) {
        self.forget_closed = true;
    }

    /// The socket and addresses of connection `conn`, once it is established.
    pub(crate) fn conn_endpoints(&self, conn: &TraceId) -> Option<ConnEndpoints> {
        let rec = self.conns.get(conn)?;
        Some(ConnEndpoints {
            cookie: rec.cookie?,
            transport: rec.transport,
            local: rec.local?,
            remote: rec.remote,
        })
    }

    /// Captures `headers` into the trace's shared buffer, if header fields are recorded.
    pub(crate) fn pack_headers(&mut self, headers: &http::HeaderMap) -> Option<HeaderCapture> {
        let options = self.http_headers.as_deref()?;
        HeaderCapture::pack_into(headers, options, &mut self.header_bytes)
    }

    /// Reads captured HTTP header fields back as `options` say.
    pub(crate) fn set_http_headers(&mut self, options: Arc<HttpReqTraceOptions>) {
        self.http_headers = Some(options);
        // The requests' header fields read differently now.
        self.forget_snapshots();
    }

    /// Keeps the packets the kernel captures for this client from now on.
    pub(crate) fn enable_capture(&mut self, store: CaptureStore) {
        self.capture = Some(store);
    }

    /// Folds one event into the trace. Events about records this trace does not know (for
    /// instance, a late event of a dial from before [`Recorder::clear`]) are ignored.
    pub(crate) fn handle(&mut self, event: Event) {
        match event {
            Event::DialStarted { dial, .. }
                if self.dials.is_full(&dial, self.limits.connections) =>
            {
                self.dropped.connections += 1;
            }
            Event::DialStarted {
                dial,
                at,
                dst_address,
                source_ip,
                http_req,
            } => self.dials.insert(
                dial,
                DialRec {
                    begin: at,
                    dst_address,
                    source_ip,
                    http_req,
                    ..DialRec::default()
                },
            ),
            Event::DialEnded { dial, at, result } => {
                if let Some(rec) = self.dials.get_mut(&dial) {
                    rec.end = Some(at);
                    match result {
                        Ok(conn) => rec.established = Some(conn),
                        Err(error) => rec.error = error,
                    }
                }
            }
            Event::DialContextClosed { dial, at } => {
                if let Some(rec) = self.dials.get_mut(&dial) {
                    rec.ctx_closed.get_or_insert(at);
                }
            }
            Event::NameserverSkipped {
                dial,
                nameserver,
                reason,
            } => {
                tracing::debug!(%nameserver, %reason, "nameserver skipped");
                if let Some(rec) = self.dials.get_mut(&dial)
                    && !rec.skipped_nameservers.contains(&nameserver)
                {
                    rec.skipped_nameservers.push(nameserver);
                }
            }
            Event::ResolverDialStarted {
                dial,
                resolver_dial,
                at,
                nameserver,
            } => {
                if let Some(rec) = self.dials.get_mut(&dial) {
                    rec.resolver_dials.push(ResolverDialRec {
                        id: resolver_dial,
                        begin: at,
                        nameserver,
                        ..ResolverDialRec::default()
                    });
                }
            }
            Event::ResolverDialEnded {
                dial,
                resolver_dial,
                at,
                result,
            } => {
                let found = self.dials.get_mut(&dial).and_then(|rec| {
                    rec.resolver_dials
                        .iter_mut()
                        .find(|r| r.id == resolver_dial)
                });
                if let Some(rec) = found {
                    rec.end = Some(at);
                    match result {
                        Ok(conn) => rec.established = Some(conn),
                        Err(error) => rec.error = error,
                    }
                }
            }
            Event::ConnOpened { conn, .. }
                if self.conns.is_full(&conn, self.limits.connections) =>
            {
                self.dropped.connections += 1;
            }
            Event::ConnOpened {
                conn,
                transport,
                dial,
                from_resolver,
                remote,
                cookie,
                record,
                at,
            } => {
                let id = cookie.map(|_| conn.clone());
                let row = self.conns.insert_hinted(
                    conn,
                    ConnRec {
                        transport,
                        dial,
                        from_resolver,
                        remote,
                        cookie,
                        record,
                        opened: at,
                        ..ConnRec::new_placeholder()
                    },
                );
                // Its kernel events find the row without hashing the ID.
                if let (Some(cookie), Some(id)) = (cookie, id) {
                    self.by_cookie.insert(cookie, ConnAt { id, row });
                }
            }
            Event::ConnEstablished { conn, at, local } => {
                if let Some(rec) = self.conns.get_mut(&conn) {
                    rec.established = Some(at);
                    rec.handshake_end = Some(at);
                    rec.local = Some(local);
                }
            }
            Event::ConnProcess { conn, process } => {
                if let Some(rec) = self.conns.get_mut(&conn) {
                    rec.process = Some(process);
                }
            }
            Event::ConnFailed { conn, at } => {
                if let Some(rec) = self.conns.get_mut(&conn) {
                    rec.handshake_end.get_or_insert(at);
                }
            }
            Event::ConnClosed { conn, at } => {
                if let Some(rec) = self.conns.get_mut(&conn) {
                    rec.closed.get_or_insert(at);
                }
                if self.forget_closed {
                    self.forget_if_unused(&conn);
                }
            }
            // The tracer takes the request out (`take_request`); nothing to fold.
            Event::RequestDone { .. } => {}
            Event::DnsQuery {
                conn,
                dial,
                at,
                msg,
            } => {
                if let Some(dns) = self.dns_rec(conn, dial) {
                    dns.queries.push((at, msg));
                }
            }
            Event::DnsReply {
                conn,
                dial,
                at,
                msg,
            } => {
                if let Some(dns) = self.dns_rec(conn, dial) {
                    dns.replies.push((at, msg));
                }
            }
            Event::TlsStarted { tls, .. } if self.tls.is_full(&tls, self.limits.connections) => {
                self.dropped.connections += 1;
            }
            Event::TlsStarted {
                tls,
                conn,
                at,
                server_name,
                for_proxy,
                http_req,
            } => self.tls.insert(
                tls,
                TlsRec {
                    conn,
                    begin: at,
                    server_name,
                    for_proxy,
                    http_req,
                    end: None,
                    outcome: None,
                },
            ),
            Event::TlsEnded { tls, at, outcome } => {
                if let Some(rec) = self.tls.get_mut(&tls) {
                    rec.end = Some(at);
                    rec.outcome = Some(outcome);
                }
            }
            Event::HttpRequestStarted { req, .. }
                if self.http.is_full(&req, self.limits.http_requests) =>
            {
                self.dropped.http_requests += 1;
            }
            Event::HttpRequestStarted {
                req,
                at,
                method,
                url,
                header,
                network_proxy,
                body,
            } => self.http.insert(
                req,
                // Built field by field: a `..` base would be built in full and dropped (a
                // clock read and an allocation per request).
                HttpRec {
                    sent: at,
                    method,
                    url,
                    req_header: header,
                    network_proxy,
                    body,
                    conn: None,
                    tls: None,
                    proxy_tls: None,
                    response: None,
                    proto: None,
                    status: 0,
                    resp_header: None,
                    error: String::new(),
                },
            ),
            Event::HttpResponse {
                req,
                at,
                conn,
                proto,
                status,
                header,
            } => {
                if let Some(rec) = self.http.get_mut(&req) {
                    if let Some(conn) = conn {
                        rec.conn = Some(conn.tcp_conn);
                        rec.tls = conn.tls_tunnel.or(rec.tls.take());
                        rec.proxy_tls = conn.proxy_tls_tunnel.or(rec.proxy_tls.take());
                    }
                    rec.response = Some(at);
                    rec.proto = Some(proto);
                    rec.status = status;
                    rec.resp_header = header;
                }
            }
            Event::Kernel(event) => self.kernel(event),
            Event::Conntrack { conn, sample } => {
                if let Some(rec) = self.conns.get_mut(&conn) {
                    // The destroy event's final entry is never replaced by an earlier lookup
                    // that was reported after it.
                    let keep = rec
                        .conntrack
                        .as_ref()
                        .is_some_and(|old| old.destroyed && !sample.destroyed);
                    if !keep {
                        rec.conntrack = Some(sample);
                    }
                }
            }
            Event::HttpFailed { req, error, .. } => {
                if let Some(rec) = self.http.get_mut(&req)
                    && rec.error.is_empty()
                {
                    rec.error = error;
                }
            }
        }
    }

    /// Records a kernel event: a packet into the capture store, anything else into its
    /// connection's kernel facts. The hub's path calls this directly, without wrapping the
    /// event in an [`Event`] for [`Self::handle`]'s large match.
    pub(crate) fn kernel(&mut self, event: KernelEvent) {
        if let KernelEvent::Packet(packet) = event {
            if let Some(store) = &mut self.capture {
                store.add(packet);
            }
            return;
        }
        if let Some(kernel) = self.kernel_rec(event.cookie()) {
            kernel.fold(event);
        }
    }

    /// [`Self::kernel`] of `event` (a sock_ops record boxed or not) and of the state changes it
    /// stands for, in their order
    /// ([`KernelEvent::implied_state_changes`]: those before it, it, the one after), with
    /// `changed` called on each state change among them, recorded or not. The connection is
    /// looked up once for them all (they are of one socket), not once per change.
    pub(crate) fn kernel_with_implied(
        &mut self,
        event: UnboxedEvent<'_>,
        mut changed: impl FnMut(&TcpStateChange),
    ) {
        let implied = event.implied();
        if let UnboxedEvent::Event(inner) = &event {
            if let KernelEvent::TcpState(change) = inner {
                changed(change);
            }
            if implied.is_empty()
                && let UnboxedEvent::Event(event) = event
            {
                self.kernel(event);
                return;
            }
        }
        let mut kernel = self.kernel_rec(event.cookie());
        for change in implied.before() {
            changed(&change);
            if let Some(kernel) = kernel.as_deref_mut() {
                kernel.fold_state(&change);
            }
        }
        let after = implied.after();
        if let Some(kernel) = kernel.as_deref_mut() {
            // A sock_ops record of the hub is folded where it lies, never boxed.
            match event {
                UnboxedEvent::Event(event) => kernel.fold(event),
                UnboxedEvent::SockOps(record) => kernel.fold_sock_ops(record),
            }
        }
        if let Some(change) = &after {
            changed(change);
            if let Some(kernel) = kernel {
                kernel.fold_state(change);
            }
        }
    }

    /// The kernel facts of the connection of socket `cookie`, if it is in this trace.
    fn kernel_rec(&mut self, cookie: SocketCookie) -> Option<&mut KernelRec> {
        let conn = self.by_cookie.get_mut(&cookie)?;
        let rec = self.conns.get_mut_hinted(&conn.id, &mut conn.row)?;
        Some(&mut rec.kernel)
    }

    /// The DNS record of a resolver connection (created on its first message), `None` when DNS
    /// messages are not recorded or the connection is not in this trace (a late message of
    /// one closed before [`Recorder::clear`]: a program's copied packets come from another
    /// ring than its socket's release).
    fn dns_rec(&mut self, conn: TraceId, dial: TraceId) -> Option<&mut DnsRec> {
        if !self.record_dns || self.conns.get(&conn).is_none() {
            return None;
        }
        if self.dns_messages >= self.limits.dns_messages {
            self.dropped.dns_messages += 1;
            return None;
        }
        self.dns_messages += 1;
        if self.dns.get(&conn).is_none() {
            self.dns.insert(
                conn.clone(),
                DnsRec {
                    trace_id: self.ids.next_id(),
                    dial,
                    queries: Vec::new(),
                    replies: Vec::new(),
                },
            );
        }
        self.dns.get_mut(&conn)
    }

    /// Starts a new trace beginning now (see [`Recorder::clear_at`]).
    pub(crate) fn clear(&mut self) {
        self.clear_at(TraceClock::start_now());
    }

    /// Starts a new trace beginning at `clock`'s beginning: everything recorded so far is
    /// dropped except the connections that are still open, which carry over marked as reused
    /// (their earlier instants become absolute timestamps in the new trace) with their socket
    /// operations cleared.
    pub(crate) fn clear_at(&mut self, clock: TraceClock) {
        self.clock = clock;
        self.dns_messages = 0;
        self.dropped = DroppedRecords::default();
        // Emptied in place: the next trace reuses the room instead of growing it again.
        self.dials.clear();
        self.dns.clear();
        self.tls.clear();
        // Every record that points into it goes with the HTTP records.
        self.header_bytes.clear();
        self.header_bytes.shrink_to(KEPT_HEADER_BYTES);
        self.http.clear();
        self.conns.retain(|_, rec| rec.closed.is_none());
        for (_, rec) in self.conns.iter_mut() {
            rec.reused = true;
            // Operations belong to the trace they happened in (and would grow without bound
            // on a long-lived connection); the byte totals carry over, as in Go.
            rec.record.clear_ops();
        }
        let live: HashMap<SocketCookie, ConnAt> = self
            .conns
            .iter()
            .filter_map(|(id, rec)| rec.cookie.map(|c| (c, ConnAt::new(id.clone()))))
            .collect();
        self.by_cookie = live;
        if let Some(store) = &mut self.capture {
            store.clear();
        }
    }
}
