//! Classic pcap output (Go's `PacketCapture.WriteTo` and `WriteToFile`): microsecond
//! timestamps, the link type of the capture, readable by every tool that reads pcap.
//!
//! ```no_run
//! # fn demo(capture: &nettrace::capture::PacketCapture) -> std::io::Result<()> {
//! capture.write_to_file("/tmp/eth0.pcap")?;
//! # Ok(()) }
//! ```
use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

use pcap_file::{
    Endianness, TsResolution,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};

use super::{
    PacketCapture,
    frame::{self, Frame},
};

impl PacketCapture {
    /// Writes the packets as a pcap file (Go's `WriteTo`): link type from
    /// [`link_kind`](Self::link_kind), snap length [`snap_len`](Self::snap_len), microsecond
    /// timestamps. Directions, connection IDs and TLS secrets need pcapng
    /// ([`write_pcapng_to`](Self::write_pcapng_to)).
    pub fn write_to(&self, writer: impl Write) -> io::Result<()> {
        let snaplen = frame::file_snaplen(self.snap_len);
        let header = PcapHeader {
            snaplen,
            datalink: frame::data_link(self.link_kind),
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let mut pcap = PcapWriter::with_header(writer, header).map_err(frame::io_error)?;
        for packet in &self.packets {
            let frame = Frame::new(packet, snaplen)?;
            let packet = PcapPacket::new(frame.since_epoch, frame.original_len, frame.data);
            pcap.write_packet(&packet).map_err(frame::io_error)?;
        }
        pcap.into_writer().flush()
    }

    /// Writes the packets as a pcap file at `path`, replacing it (Go's `WriteToFile`).
    pub fn write_to_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.write_to(BufWriter::new(File::create(path)?))
    }
}
