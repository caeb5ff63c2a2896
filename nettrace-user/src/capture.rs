//! Packet captures returned with a trace (Go's `PacketCapture`, one per interface).
//!
//! The types are here so that [`crate::client::HttpClient::get_trace`] has Go's shape today;
//! capturing (a TC program filtering in the kernel) comes with the kernel-side work, and until
//! then the list is always empty.
use bytes::Bytes;
use time::OffsetDateTime;

/// The packets captured on one interface (both directions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketCapture {
    /// Interface the packets were captured on.
    pub interface_name: String,
    /// Bytes kept of each packet at most.
    pub snap_len: u32,
    /// The packets, in capture order.
    pub packets: Vec<CapturedPacket>,
    /// True when packets were dropped because the total size limit was reached.
    pub truncated: bool,
    /// True when TCP packets with payload were captured too.
    pub with_tcp_payload: bool,
}

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedPacket {
    /// When it was captured.
    pub timestamp: OffsetDateTime,
    /// Its bytes, at most `snap_len` of them.
    pub data: Bytes,
    /// Its length on the wire.
    pub original_len: u32,
}
