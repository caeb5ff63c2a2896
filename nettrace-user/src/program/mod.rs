//! Tracing an unmodified program from kernel events alone (what `nettrace-loader trace`
//! does): [`ProgramTracer`] attaches the cgroup programs to the program's cgroup, so that
//! every TCP and UDP socket created there is traced from its creation, and folds what the
//! kernel reports into the same [`HttpTrace`] as the library's own tracing:
//!
//! - one dial per `connect()` (`cgroup/connect4/6`), ended by the TCP handshake's outcome
//!   (`"connection refused"` after a reset, a failure when the SYN got no answer);
//! - one TCP or UDP connection per connected socket, with its handshake times, byte totals
//!   and, with [`ProgramTraceOptions::sock_trace`], one socket operation per send/receive
//!   call (the kernel gives one time per call: `callAt` equals `returnAt`), and the kernel
//!   facts (states, RTT, retransmits, resets);
//! - DNS queries and replies parsed from the datagrams the `cgroup_skb` programs copy
//!   (UDP port 53 of the program's sockets, wherever they go);
//! - a TLS tunnel per ClientHello, holding only its server name (SNI) and start: the rest
//!   of the handshake is encrypted or not seen;
//! - with [`ProgramTraceOptions::packet_capture`], the packets of its connections (TCP flows
//!   registered at connect, UDP flows at their first datagram);
//! - with [`ProgramTraceOptions::conntrack`], each connection's conntrack entry.
//!
//! Sockets created before [`ProgramTracer::trace_cgroup`] are not seen. HTTP requests are
//! not seen either (the payload is not parsed). Needs root (or CAP_BPF + CAP_NET_ADMIN).
//!
//! ```no_run
//! use nettrace::program::{ProgramTraceOptions, ProgramTracer};
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let tracer = ProgramTracer::new(&ProgramTraceOptions::default())?;
//! tracer.trace_cgroup(std::path::Path::new("/sys/fs/cgroup/my-program"))?;
//! // ... the program runs in that cgroup ...
//! let (trace, captures) = tracer.trace("my program");
//! println!("{}", serde_json::to_string_pretty(&trace)?);
//! # let _ = captures; Ok(()) }
//! ```
use std::path::Path;

use crate::{
    capture::{PacketCapture, PacketCaptureOptions},
    conntrack::ConntrackError,
    event::TraceSettings,
    kernel::{KernelConfig, KernelError, KernelHub},
    model::HttpTrace,
    tracer::Tracer,
};

/// What a program trace records besides the always-on records.
#[derive(Clone, Debug)]
pub struct ProgramTraceOptions {
    /// Record every send and receive call as a socket operation (default on).
    pub sock_trace: bool,
    /// Capture the packets of the program's connections on these interfaces.
    pub packet_capture: Option<PacketCaptureOptions>,
    /// Attach each connection's conntrack entry (in the caller's network namespace).
    pub conntrack: bool,
    /// Ring buffer sizes.
    pub kernel_config: KernelConfig,
    /// Streams each connection's trace when it closes, through a channel holding up to this
    /// many traces (see [`ProgramTracer::completed_traces`]); the tracer then forgets it, so
    /// that a long run keeps a bounded trace. `None`: no streaming.
    pub completed_connections: Option<usize>,
}

impl Default for ProgramTraceOptions {
    fn default() -> Self {
        Self {
            sock_trace: true,
            packet_capture: None,
            conntrack: false,
            kernel_config: KernelConfig::default(),
            completed_connections: None,
        }
    }
}

/// Why a program trace could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProgramTraceError {
    /// Loading or attaching the kernel programs failed.
    #[error("the kernel programs are unavailable")]
    Kernel(#[source] KernelError),
    /// Packet capture could not start.
    #[error("packet capture could not start")]
    Capture(#[source] KernelError),
    /// Conntrack could not be opened.
    #[error("conntrack could not be opened")]
    Conntrack(#[source] ConntrackError),
}

/// The trace of a program seen from the kernel alone (see the module docs).
pub struct ProgramTracer {
    tracer: Tracer,
}

impl ProgramTracer {
    /// Loads the kernel programs (or joins this process's loaded ones) and starts the
    /// trace, its capture and conntrack as `options` say. Call inside or outside a runtime.
    pub fn new(options: &ProgramTraceOptions) -> Result<Self, ProgramTraceError> {
        if let Some(capture) = &options.packet_capture {
            capture
                .validate()
                .map_err(|e| ProgramTraceError::Capture(e.into()))?;
        }
        let tracer = Tracer::new(TraceSettings {
            sock_ops: options.sock_trace,
            dns_messages: true,
            stream_connections: options.completed_connections.is_some(),
            ..TraceSettings::default()
        });
        tracer.stream_to(options.completed_connections);
        tracer
            .translate_kernel_events()
            .map_err(ProgramTraceError::Kernel)?;
        let hub = KernelHub::shared(&options.kernel_config).map_err(ProgramTraceError::Kernel)?;
        tracer
            .attach_kernel(&hub)
            .map_err(ProgramTraceError::Kernel)?;
        if let Some(capture) = &options.packet_capture {
            tracer
                .start_capture(capture)
                .map_err(ProgramTraceError::Capture)?;
        }
        if options.conntrack {
            tracer
                .attach_conntrack()
                .map_err(ProgramTraceError::Conntrack)?;
        }
        Ok(Self { tracer })
    }

    /// Traces every TCP and UDP socket created from now on in the cgroup v2 at `path` (and
    /// its descendants). One cgroup per process.
    pub fn trace_cgroup(&self, path: &Path) -> Result<(), KernelError> {
        self.tracer.trace_cgroup(path)
    }

    /// The stream of closed connections' traces (one `HttpTrace` per connection, holding its
    /// dial, DNS messages and TLS tunnel), when [`ProgramTraceOptions::completed_connections`]
    /// turned it on; `None` otherwise and after the first call.
    pub fn completed_traces(&self) -> Option<crate::client::CompletedTraces> {
        self.tracer
            .take_completed()
            .map(crate::client::CompletedTraces::new)
    }

    /// The trace so far, with every kernel event that happened before the call, and the
    /// packet captures.
    pub fn trace(&self, description: &str) -> (HttpTrace, Vec<PacketCapture>) {
        self.tracer.snapshot_with_captures(description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureOptionsError, MAX_SNAPLEN};

    /// The path of `nettrace-loader trace`: options out of range are refused before anything
    /// is loaded (so this holds without privileges too).
    #[test]
    fn capture_options_out_of_range_are_refused() {
        for snaplen in [0, MAX_SNAPLEN + 1] {
            let options = ProgramTraceOptions {
                packet_capture: Some(PacketCaptureOptions {
                    interfaces: vec!["lo".to_owned()],
                    snaplen,
                    ..PacketCaptureOptions::default()
                }),
                ..ProgramTraceOptions::default()
            };
            match ProgramTracer::new(&options) {
                Err(ProgramTraceError::Capture(KernelError::CaptureOptions(error))) => {
                    assert_eq!(error, CaptureOptionsError::Snaplen(snaplen));
                }
                Err(other) => panic!("wrong error for {snaplen}: {other:?}"),
                Ok(_) => panic!("snap length {snaplen} accepted"),
            }
        }
    }
}
