//! Kernel events folded into a connection's kernel facts, and their snapshot form.
use std::time::Instant;

use crate::{
    clock::TraceClock,
    event::{Direction, KernelEvent, KernelTcpState, SockMsgRecord, SockOp, SockOpsRecord},
    model::{KernelSocketCalls, KernelStateChange, KernelTcpFacts, KernelUdpFacts},
};

/// `EAGAIN`: the call found nothing to do yet.
const EAGAIN: i32 = 11;

/// What the kernel reported about one connection so far.
#[derive(Debug, Default)]
pub(crate) struct KernelRec {
    states: Vec<(Instant, KernelTcpState, KernelTcpState)>,
    syn_retransmits: u32,
    retransmits: u32,
    rto_events: u32,
    /// The latest sock_ops record: its counters are the newest the kernel gave.
    last: Option<SockOpsRecord>,
    rst_sent: bool,
    rst_received: bool,
    calls: KernelSocketCalls,
}

impl KernelRec {
    /// Folds one event of this connection.
    pub(crate) fn fold(&mut self, event: KernelEvent) {
        match event {
            KernelEvent::TcpState(change) => {
                self.states
                    .push((change.time.to_instant(), change.old, change.new));
            }
            KernelEvent::SockOps(record) => {
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
                self.last = Some(*record);
            }
            KernelEvent::SockMsg(call) => self.count_call(&call),
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
        let calls = &self.calls;
        (calls.send_calls + calls.recv_calls > 0).then(|| KernelUdpFacts {
            calls: calls.clone(),
        })
    }

    /// The facts for a snapshot, `None` when the kernel reported nothing.
    pub(crate) fn facts(&self, clock: &TraceClock) -> Option<KernelTcpFacts> {
        if self.states.is_empty()
            && self.last.is_none()
            && !self.rst_sent
            && !self.rst_received
            && self.calls == KernelSocketCalls::default()
        {
            return None;
        }
        let last = self.last.as_ref();
        Some(KernelTcpFacts {
            states: self
                .states
                .iter()
                .map(|(at, from, to)| KernelStateChange {
                    at: clock.stamp(Some(*at)),
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
            calls: self.calls.clone(),
        })
    }
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
