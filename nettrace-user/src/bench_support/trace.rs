//! [`TraceBench`]: a recorder holding a large trace built from event sequences, as the
//! recorder's tests build theirs, for timing [`Recorder::snapshot`] (what `get_trace` costs
//! apart from draining the kernel's rings).
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    clock::TraceClock,
    event::{
        BodyCounters, ConnInfo, Event, RawSocketOp, RequestUrl, SocketRecord, TlsOutcome, Transport,
    },
    ids::IdSource,
    model::{HttpTrace, PeerCert, SocketOpType, Timestamp, TraceId},
    recorder::Recorder,
};

/// A recorder and the requests put into it so far.
pub struct TraceBench {
    recorder: Recorder,
    begin: Instant,
    requests: u64,
    /// Requests per connection (1: a new connection, dial and TLS handshake per request).
    per_conn: u64,
    /// The open connection of keep-alive requests, its TLS tunnel and its socket record.
    open: Option<(TraceId, TraceId, Arc<SocketRecord>)>,
}

impl TraceBench {
    /// An empty trace whose requests go `per_conn` to a connection (at least 1).
    pub fn new(per_conn: u64) -> Self {
        let clock = TraceClock::start_now();
        let mut serial = 0_u64;
        let ids = IdSource::new(move || {
            serial += 1;
            TraceId::new(format!("tid-{serial}"))
        });
        let recorder = Recorder::with_clock(false, clock, ids);
        Self {
            recorder,
            begin: Instant::now(),
            requests: 0,
            per_conn: per_conn.max(1),
            open: None,
        }
    }

    /// Adds `n` completed HTTPS GET requests: each with its dial, TCP connection (four
    /// logged socket operations per request), TLS handshake (one peer certificate) when it
    /// opens a connection, response and body counters.
    pub fn add_requests(&mut self, n: usize) {
        for _ in 0..n {
            self.add_request();
        }
    }

    /// The requests added so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// A snapshot, sharing what did not change since the last one (`get_trace`).
    pub fn snapshot(&mut self) -> HttpTrace {
        self.recorder
            .snapshot("bench", self.at(self.requests * 10 + 5))
    }

    /// A snapshot that converts every record, as the first one does.
    pub fn snapshot_uncached(&mut self) -> HttpTrace {
        self.recorder.forget_snapshots();
        self.snapshot()
    }

    fn at(&self, ms: u64) -> Instant {
        self.begin + Duration::from_millis(ms)
    }

    fn add_request(&mut self) {
        let n = self.requests;
        self.requests += 1;
        let t = n * 10;
        let req = TraceId::new(format!("req-{n}"));
        let (conn, tls, record) = match self.open.clone() {
            Some(open) if !n.is_multiple_of(self.per_conn) => open,
            _ => self.connect(n, t, &req),
        };
        let (body, _, mut response) = BodyCounters::with_writers(self.at(t + 3));
        self.recorder.handle(Event::HttpRequestStarted {
            req: req.clone(),
            at: self.at(t + 3),
            method: http::Method::GET,
            url: RequestUrl::Uri(http::Uri::from_static("https://example.test/some/path?q=1")),
            header: None,
            network_proxy: String::new(),
            body: body.clone(),
        });
        self.recorder.handle(Event::HttpResponse {
            req,
            at: self.at(t + 5),
            conn: Some(ConnInfo {
                tcp_conn: conn.clone(),
                tls_tunnel: Some(tls),
                proxy_tls_tunnel: None,
            }),
            proto: (1, 1),
            status: 200,
            header: None,
        });
        response.add(1024);
        response.first_read(self.at(t + 6));
        response.last_read(self.at(t + 7));
        for (i, op_type) in [
            SocketOpType::Write,
            SocketOpType::Read,
            SocketOpType::Read,
            SocketOpType::Read,
        ]
        .into_iter()
        .enumerate()
        {
            let call = self.at(t + 3 + i as u64);
            record.push_op(RawSocketOp::new(op_type, call, call, Ok(512)));
        }
        record.add_sent(512);
        record.add_received(1536);
        if (n + 1).is_multiple_of(self.per_conn) {
            self.recorder.handle(Event::ConnClosed {
                conn,
                at: self.at(t + 8),
            });
            self.open = None;
        }
    }

    /// Dials, connects and shakes hands for request `req`; the connection and tunnel IDs and
    /// the connection's socket record.
    fn connect(&mut self, n: u64, t: u64, req: &TraceId) -> (TraceId, TraceId, Arc<SocketRecord>) {
        let record = Arc::new(SocketRecord::new(true));
        let dial = TraceId::new(format!("dial-{n}"));
        let conn = TraceId::new(format!("conn-{n}"));
        let tls = TraceId::new(format!("tls-{n}"));
        let remote = SocketAddr::from(([93, 184, 215, 14], 443));
        self.recorder.handle(Event::DialStarted {
            dial: dial.clone(),
            at: self.at(t),
            dst_address: "example.test:443".to_owned(),
            source_ip: None,
            http_req: Some(req.clone()),
        });
        self.recorder.handle(Event::ConnOpened {
            conn: conn.clone(),
            transport: Transport::Tcp,
            dial: dial.clone(),
            from_resolver: false,
            remote,
            cookie: None,
            record: record.clone(),
            at: self.at(t),
        });
        self.recorder.handle(Event::ConnEstablished {
            conn: conn.clone(),
            at: self.at(t + 1),
            local: SocketAddr::from(([192, 168, 1, 2], 40000 + (n % 20000) as u16)),
        });
        self.recorder.handle(Event::DialEnded {
            dial,
            at: self.at(t + 1),
            result: Ok(conn.clone()),
        });
        self.recorder.handle(Event::TlsStarted {
            tls: tls.clone(),
            conn: conn.clone(),
            at: self.at(t + 1),
            server_name: "example.test".to_owned(),
            for_proxy: false,
            http_req: Some(req.clone()),
        });
        self.recorder.handle(Event::TlsEnded {
            tls: tls.clone(),
            at: self.at(t + 2),
            outcome: TlsOutcome {
                cipher_suite: 0x1301,
                negotiated_proto: "http/1.1".to_owned(),
                peer_certs: vec![PeerCert {
                    subject: "CN=example.test".to_owned(),
                    issuer: "CN=Example CA,O=Example".to_owned(),
                    not_before: Timestamp::Undefined,
                    not_after: Timestamp::Undefined,
                    is_ca: false,
                }],
                tls_version: "TLSv1.3".to_owned(),
                ..TlsOutcome::default()
            },
        });
        self.open = Some((conn.clone(), tls.clone(), record.clone()));
        (conn, tls, record)
    }
}
