//! What both file formats (pcap and pcapng) need of a capture: the link type, the snap length
//! as written, each packet's kept bytes and length on the wire, and its time since the epoch.
//!
//! Writers never fail on a packet that breaks the capture's own limits (bytes beyond the snap
//! length, a wire length shorter than the bytes kept): they write what a reader accepts, so
//! that one odd packet from the kernel does not cost the whole file.
use std::{io, time::Duration};

use pcap_file::{DataLink, PcapError};

use super::{CapturedPacket, LinkKind};

/// The snap length written when the capture says 0 (libpcap's `MAXIMUM_SNAPLEN`).
const MAX_SNAPLEN: u32 = 262_144;

/// The pcap link type of `kind`.
pub(super) fn data_link(kind: LinkKind) -> DataLink {
    match kind {
        LinkKind::Ethernet => DataLink::ETHERNET,
        LinkKind::RawIp => DataLink::RAW,
    }
}

/// The snap length written in file headers: `snap_len`, or the largest one when it is 0.
pub(super) fn file_snaplen(snap_len: u32) -> u32 {
    if snap_len == 0 { MAX_SNAPLEN } else { snap_len }
}

/// A packet as written: at most `snaplen` bytes, and a wire length no shorter than them.
pub(super) struct Frame<'a> {
    /// Time since 1970-01-01 UTC.
    pub(super) since_epoch: Duration,
    /// The bytes kept.
    pub(super) data: &'a [u8],
    /// Length on the wire.
    pub(super) original_len: u32,
}

impl<'a> Frame<'a> {
    /// `packet` as written in a file whose snap length is `snaplen`.
    pub(super) fn new(packet: &'a CapturedPacket, snaplen: u32) -> io::Result<Self> {
        let keep = usize::try_from(snaplen).unwrap_or(usize::MAX);
        let data = &packet.data[..packet.data.len().min(keep)];
        // `data` is at most `snaplen` (a u32) long here.
        let kept = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Ok(Self {
            since_epoch: since_epoch(packet)?,
            data,
            original_len: packet.original_len.max(kept),
        })
    }
}

/// Time of `packet` since the Unix epoch; pcap cannot store earlier times.
fn since_epoch(packet: &CapturedPacket) -> io::Result<Duration> {
    let nanos = packet.timestamp.unix_timestamp_nanos();
    u64::try_from(nanos).map(Duration::from_nanos).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "packet timestamp {} is outside 1970..2554, pcap cannot store it",
                packet.timestamp
            ),
        )
    })
}

/// A pcap-file error as an I/O error (its I/O errors unwrapped).
pub(super) fn io_error(error: PcapError) -> io::Error {
    match error {
        PcapError::IoError(error) => error,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}
