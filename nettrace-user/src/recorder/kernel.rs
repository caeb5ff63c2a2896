//! Kernel events folded into a connection's kernel facts, and their snapshot form.
use nettrace_common::SocketCalls;
use smallvec::SmallVec;

use crate::{
    KernelTime,
    clock::TraceClock,
    event::{
        Direction, KernelEvent, KernelTcpState, SockMsgRecord, SockOp, SockOpsRecord, TcpCounters,
        TcpStateChange,
    },
    model::{KernelSocketCalls, KernelStateChange, KernelTcpFacts, KernelUdpFacts},
};

/// `EAGAIN`: the call found nothing to do yet.
const EAGAIN: i32 = 11;

/// State changes of a TCP connection that opens and closes the usual way: SYN-SENT,
/// ESTABLISHED, then FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT and CLOSE, or CLOSE-WAIT, LAST-ACK and
/// CLOSE.
const USUAL_STATE_CHANGES: usize = 6;

/// A connection's state changes in the order they came: kept in the record itself for the
/// usual connection (no allocation by the thread that records kernel events, no free by the
/// one that drops the record), on the heap beyond.
type StateChanges = SmallVec<[(KernelTime, KernelTcpState, KernelTcpState); USUAL_STATE_CHANGES]>;

/// What the kernel reported about one connection so far.
#[derive(Debug, Default)]
pub(crate) struct KernelRec {
    /// At the kernel's times, turned into instants only for a snapshot (the conversion is
    /// one fixed offset, so the times compare as the instants would).
    states: StateChanges,
    /// The latest time among `states` (zero while there are none).
    latest_state: KernelTime,
    syn_retransmits: u32,
    retransmits: u32,
    rto_events: u32,
    /// The newest counters the kernel gave: of a sock_ops record, or kept in the socket's
    /// entry since the handshake.
    counters: Option<(KernelTime, TcpCounters)>,
    rst_sent: bool,
    rst_received: bool,
    /// Calls counted here, one record each.
    calls: KernelSocketCalls,
    /// The newest totals of calls counted in the kernel (a socket does one or the other).
    totals: SocketCalls,
}

impl KernelRec {
    /// Folds one event of this connection.
    pub(crate) fn fold(&mut self, event: KernelEvent) {
        match event {
            KernelEvent::TcpState(change) => self.fold_state(&change),
            KernelEvent::SockOps(record) => self.fold_sock_ops(&record),
            KernelEvent::SockMsg(call) => self.count_call(&call),
            KernelEvent::SockCalls(totals) => {
                self.take_totals(&totals.calls);
                if let Some((time, counters)) = totals.established {
                    self.take_counters(time, counters);
                }
            }
            KernelEvent::TcpReset(reset) => match reset.direction {
                Direction::Sent => self.rst_sent = true,
                Direction::Received => self.rst_received = true,
            },
            // Packets go to the capture store, not into the connection's facts; the cgroup
            // programs' events become dials and connections before they get here.
            KernelEvent::Packet(_)
            | KernelEvent::SocketCreated(_)
            | KernelEvent::SocketReleased(_)
            | KernelEvent::Connect(_) => {}
        }
    }

    /// Folds one sock_ops record of this connection.
    pub(crate) fn fold_sock_ops(&mut self, record: &SockOpsRecord) {
        match record.op {
            SockOp::Retransmit => {
                self.retransmits += 1;
                if record.state == KernelTcpState::SynSent {
                    self.syn_retransmits += 1;
                }
            }
            SockOp::Rto => self.rto_events += 1,
            _ => {}
        }
        self.take_totals(&record.calls);
        self.take_counters(record.time, record.counters);
    }

    /// Folds one state change of this connection (a [`KernelEvent::TcpState`], or one a
    /// record stands for).
    pub(crate) fn fold_state(&mut self, change: &TcpStateChange) {
        let state = (change.time, change.old, change.new);
        // A transition held in the socket's entry comes twice when a snapshot read it there
        // before the record that carries it, with its time: one later than every change so
        // far (the usual case) is new without a look at them.
        if change.time > self.latest_state || !self.states.contains(&state) {
            self.latest_state = self.latest_state.max(change.time);
            self.states.push(state);
        }
    }

    /// Keeps `counters` if they are the newest so far: records and reads of the socket's
    /// entry arrive in any order.
    fn take_counters(&mut self, time: KernelTime, counters: TcpCounters) {
        if self.counters.is_none_or(|(kept, _)| kept <= time) {
            self.counters = Some((time, counters));
        }
    }

    /// Merges `totals` into the ones so far, field by field: every count only grows, but
    /// records taken on different CPUs (or read from the socket's entry) arrive in any order,
    /// and each was copied field by field while calls went on (a call's count may be in one
    /// copy before its bytes are). The last error is that of the totals with more errors.
    fn take_totals(&mut self, totals: &SocketCalls) {
        let kept = &mut self.totals;
        let errors = |t: &SocketCalls| t.send_errors + t.recv_errors;
        if errors(totals) > errors(kept) {
            kept.last_errno = totals.last_errno;
        }
        kept.send_calls = kept.send_calls.max(totals.send_calls);
        kept.recv_calls = kept.recv_calls.max(totals.recv_calls);
        kept.would_block = kept.would_block.max(totals.would_block);
        kept.send_errors = kept.send_errors.max(totals.send_errors);
        kept.recv_errors = kept.recv_errors.max(totals.recv_errors);
        kept.bytes_sent = kept.bytes_sent.max(totals.bytes_sent);
        kept.bytes_received = kept.bytes_received.max(totals.bytes_received);
    }

    /// The calls so far: counted here, or in the kernel, whichever saw more (a socket that
    /// counts in the kernel sends sock_ops records with totals only).
    fn calls(&self) -> KernelSocketCalls {
        let counted = &self.calls;
        let kernel = &self.totals;
        let counted_calls = u64::from(counted.send_calls) + u64::from(counted.recv_calls);
        if call_count(kernel) <= counted_calls {
            return counted.clone();
        }
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        KernelSocketCalls {
            send_calls: narrow(kernel.send_calls),
            recv_calls: narrow(kernel.recv_calls),
            would_block: narrow(kernel.would_block),
            send_errors: narrow(kernel.send_errors),
            recv_errors: narrow(kernel.recv_errors),
            call_bytes_sent: kernel.bytes_sent,
            call_bytes_received: kernel.bytes_received,
            last_error: match i32::try_from(kernel.last_errno) {
                Ok(errno) if errno > 0 => std::io::Error::from_raw_os_error(errno).to_string(),
                _ => String::new(),
            },
        }
    }

    fn count_call(&mut self, call: &SockMsgRecord) {
        let calls = &mut self.calls;
        let (count, errors, bytes) = match call.direction {
            Direction::Sent => (
                &mut calls.send_calls,
                &mut calls.send_errors,
                &mut calls.call_bytes_sent,
            ),
            Direction::Received => (
                &mut calls.recv_calls,
                &mut calls.recv_errors,
                &mut calls.call_bytes_received,
            ),
        };
        *count += 1;
        match call.ret {
            n if n >= 0 => *bytes += n as u64,
            n if n == -EAGAIN => calls.would_block += 1,
            n => {
                *errors += 1;
                calls.last_error = std::io::Error::from_raw_os_error(-n).to_string();
            }
        }
    }

    /// The facts of a UDP socket, `None` when the kernel reported nothing.
    pub(crate) fn udp_facts(&self) -> Option<KernelUdpFacts> {
        let calls = self.calls();
        (calls.send_calls + calls.recv_calls > 0).then_some(KernelUdpFacts { calls })
    }

    /// The facts for a snapshot, `None` when the kernel reported nothing.
    pub(crate) fn facts(&self, clock: &TraceClock) -> Option<KernelTcpFacts> {
        if self.states.is_empty()
            && self.counters.is_none()
            && !self.rst_sent
            && !self.rst_received
            && self.calls == KernelSocketCalls::default()
            && self.totals == SocketCalls::default()
        {
            return None;
        }
        let last = self.counters.as_ref().map(|(_, counters)| counters);
        Some(KernelTcpFacts {
            states: self
                .states
                .iter()
                .map(|(at, from, to)| KernelStateChange {
                    at: clock.stamp(Some(at.to_instant())),
                    from: state_name(*from),
                    to: state_name(*to),
                })
                .collect(),
            syn_retransmits: self.syn_retransmits,
            // The counter covers retransmissions whose callback came before tracing began.
            retransmits: self.retransmits.max(last.map_or(0, |l| l.total_retrans)),
            rto_events: self.rto_events,
            srtt_us: last.map_or(0, |l| l.srtt_us),
            min_rtt_us: last.and_then(|l| l.min_rtt_us).unwrap_or(0),
            bytes_acked: last.map_or(0, |l| l.bytes_acked),
            bytes_received: last.map_or(0, |l| l.bytes_received),
            segs_out: last.map_or(0, |l| l.segs_out),
            segs_in: last.map_or(0, |l| l.segs_in),
            rst_sent: self.rst_sent,
            rst_received: self.rst_received,
            calls: self.calls(),
        })
    }
}

/// Calls in `totals`, the measure of how new they are.
fn call_count(totals: &SocketCalls) -> u64 {
    totals.send_calls + totals.recv_calls
}

/// The kernel's state name in lower case with dashes (`TCP_SYN_SENT` -> `syn-sent`).
fn state_name(state: KernelTcpState) -> String {
    let name = match state {
        KernelTcpState::Established => "established",
        KernelTcpState::SynSent => "syn-sent",
        KernelTcpState::SynRecv => "syn-recv",
        KernelTcpState::FinWait1 => "fin-wait1",
        KernelTcpState::FinWait2 => "fin-wait2",
        KernelTcpState::TimeWait => "time-wait",
        KernelTcpState::Close => "close",
        KernelTcpState::CloseWait => "close-wait",
        KernelTcpState::LastAck => "last-ack",
        KernelTcpState::Listen => "listen",
        KernelTcpState::Closing => "closing",
        KernelTcpState::NewSynRecv => "new-syn-recv",
        KernelTcpState::BoundInactive => "bound-inactive",
        KernelTcpState::Unknown(n) => return format!("unknown-{n}"),
    };
    name.to_owned()
}
