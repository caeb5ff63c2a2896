//! How far the trace can be trusted: `kernel-events-lost` (the kernel's ring buffer was full,
//! so its facts may be incomplete) and `capture-truncated` (the packet capture missed
//! packets).
use super::context::Ctx;
use super::{CaptureSummary, Code, Finding, Severity};

pub(super) fn diagnose(ctx: &Ctx<'_>, captures: &[CaptureSummary], out: &mut Vec<Finding>) {
    if let Some(kernel) = &ctx.trace.net_trace.kernel_data
        && kernel.available
        && (kernel.lost_events > 0 || !kernel.complete)
    {
        out.push(
            Finding::new(
                Code::KernelEventsLost,
                Severity::Warning,
                format!(
                    "the kernel lost {} events (its ring buffer was full): the kernel facts \
                     (states, retransmits, resets, RTT, byte counts) may be incomplete",
                    kernel.lost_events
                ),
            )
            .next("trace fewer connections at once, or give the kernel side a larger ring buffer"),
        );
    }
    for capture in captures {
        let mut missed = Vec::new();
        if capture.truncated {
            missed.push("reached its size limit, later packets were dropped".to_owned());
        }
        if capture.lost_packets > 0 {
            missed.push(format!(
                "lost {} packets (the packet ring buffer was full)",
                capture.lost_packets
            ));
        }
        if missed.is_empty() {
            continue;
        }
        out.push(
            Finding::new(
                Code::CaptureTruncated,
                Severity::Warning,
                format!(
                    "the capture on {} {} ({} packets kept)",
                    capture.interface,
                    missed.join(" and "),
                    capture.packets
                ),
            )
            .next(
                "raise the capture's size limit (--pcap-limit) or capture less (--tcp-no-payload)",
            ),
        );
    }
}
