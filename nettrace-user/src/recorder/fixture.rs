//! Test fixture of the recorder's and the translator's event-sequence tests: one fixed time
//! line, a fixed wall clock, IDs from a sequence, and builders of kernel events.
//!
//! Userspace instants are [`at`]`(ms)`, kernel times [`kt`]`(ms)`, both measured from one
//! base: the instant of the kernel time [`K0`]. `K0` lies decades after boot, so
//! [`KernelTime::to_instant`] maps `K0 + d` onto exactly `base + d` (it only measures its
//! offset once), and kernel and userspace events share one time line as in production. The
//! trace begins at [`at`]`(0)`, which the wall clock reads as [`WALL`].
//!
//! ```ignore
//! let mut recorder = recorder(false);
//! recorder.handle(Event::DialStarted { dial: id("dial-1"), at: at(5), .. });
//! let trace = recorder.snapshot("test", at(50));
//! assert_eq!(trace.net_trace.trace_end_at, rel(50));
//! ```
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use time::{OffsetDateTime, macros::datetime};

use super::Recorder;
use crate::{
    KernelTime, SocketCookie,
    clock::TraceClock,
    event::{
        ClientId, Direction, KernelEvent, KernelProcess, KernelTcpState, SockMsgRecord, SockOp,
        SockOpsRecord, TcpCounters, TcpStateChange,
    },
    ids::IdSource,
    model::{ConnProcess, Timestamp, TraceId},
};

/// The kernel time (ns) of the base instant: 2^60 ns, about 36 years after boot.
pub(crate) const K0: u64 = 1 << 60;

/// The wall-clock time at which every test trace begins (its `traceBeginAt`).
pub(crate) const WALL: OffsetDateTime = datetime!(2026-01-02 03:04:05.000000006 UTC);

/// The client ID kernel events carry (the recorder and translator ignore it).
pub(crate) const CLIENT: ClientId = ClientId(1);

/// The instant `ms` milliseconds after the base.
pub(crate) fn at(ms: u64) -> Instant {
    KernelTime(K0).to_instant() + Duration::from_millis(ms)
}

/// The kernel time `ms` milliseconds after the base (the same moment as [`at`]`(ms)`).
pub(crate) fn kt(ms: u64) -> KernelTime {
    KernelTime(K0 + ms * 1_000_000)
}

/// A trace clock beginning at [`at`]`(ms)`, read on the wall clock as [`WALL`] + `ms`.
pub(crate) fn clock_at(ms: u64) -> TraceClock {
    let offset = time::Duration::milliseconds(i64::try_from(ms).expect("ms"));
    TraceClock::starting_at(at(ms), WALL + offset)
}

/// The relative timestamp `+<ms>ms`.
pub(crate) fn rel(ms: u32) -> Timestamp {
    Timestamp::Relative(ms)
}

/// The absolute timestamp [`WALL`] + `ms` (what [`at`]`(ms)` reads as on the wall clock).
pub(crate) fn wall(ms: i64) -> Timestamp {
    Timestamp::Absolute(WALL + time::Duration::milliseconds(ms))
}

/// A trace ID.
pub(crate) fn id(id: &str) -> TraceId {
    TraceId::from(id)
}

/// A socket address.
pub(crate) fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

/// IDs `<prefix>-1`, `<prefix>-2`, ...
pub(crate) fn sequence(prefix: &'static str) -> IdSource {
    let mut n = 0;
    IdSource::new(move || {
        n += 1;
        TraceId::from(format!("{prefix}-{n}"))
    })
}

/// An ID source that fails the test when asked: nothing may be named.
pub(crate) fn no_ids() -> IdSource {
    IdSource::new(|| panic!("no record was expected to be named"))
}

/// A recorder whose trace begins at [`at`]`(0)` ([`WALL`]) and names DNS query traces
/// `dns-1`, `dns-2`, ...
pub(crate) fn recorder(record_dns: bool) -> Recorder {
    Recorder::with_clock(record_dns, clock_at(0), sequence("dns"))
}

/// The process `pid` named `comm`, as a kernel event carries it.
pub(crate) fn kernel_process(pid: u32, comm: &str) -> KernelProcess {
    KernelProcess {
        pid,
        comm: comm.to_owned(),
    }
}

/// The process `pid` named `comm`, as a trace's connection names it.
pub(crate) fn conn_process(pid: u32, comm: &str) -> ConnProcess {
    ConnProcess {
        pid,
        comm: comm.to_owned(),
    }
}

/// A TCP state change of socket `cookie`.
pub(crate) fn tcp_state(
    cookie: u64,
    ms: u64,
    old: KernelTcpState,
    new: KernelTcpState,
) -> KernelEvent {
    KernelEvent::TcpState(TcpStateChange {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
        old,
        new,
    })
}

/// A sock_ops callback of socket `cookie` between `local` and `remote`, with zero counters
/// (a record, to complete with `..`).
pub(crate) fn sock_ops(
    cookie: u64,
    ms: u64,
    op: SockOp,
    state: KernelTcpState,
    (local, remote): (SocketAddr, SocketAddr),
) -> SockOpsRecord {
    SockOpsRecord {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
        op,
        local,
        remote,
        args: [0; 2],
        state,
        counters: TcpCounters {
            snd_cwnd: 10,
            ..TcpCounters::default()
        },
        calls: nettrace_common::SocketCalls::default(),
        transition: None,
        held: [None; nettrace_common::limits::HELD_TRANSITIONS],
    }
}

/// A send or receive call of socket `cookie` that returned `ret` (bytes, or `-errno`).
pub(crate) fn sock_msg(cookie: u64, ms: u64, direction: Direction, ret: i32) -> KernelEvent {
    KernelEvent::SockMsg(SockMsgRecord {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
        direction,
        ret,
        flags: 0,
    })
}

impl super::Recorder {
    /// A snapshot without the µs times (`preciseUs`), for tests that compare whole records
    /// written in milliseconds; `precise_times_refine_every_timestamp` checks the µs times.
    pub(crate) fn snapshot_ms(
        &mut self,
        description: &str,
        now: Instant,
    ) -> crate::model::HttpTrace {
        let mut trace = self.snapshot(description, now);
        let net = &mut trace.net_trace;
        for dial in net.dials.iter_mut() {
            dial.precise_us = Default::default();
        }
        for conn in net.tcp_conns.iter_mut() {
            conn.precise_us = Default::default();
        }
        for tls in net.tls_tunnels.iter_mut() {
            tls.precise_us = Default::default();
        }
        for dns in net.dns_queries.iter_mut() {
            for msg in dns.dns_query_msgs.iter_mut() {
                msg.precise_us = Default::default();
            }
            for msg in dns.dns_reply_msgs.iter_mut() {
                msg.precise_us = Default::default();
            }
        }
        for req in trace.http_requests.iter_mut() {
            req.precise_us = Default::default();
        }
        trace
    }
}
