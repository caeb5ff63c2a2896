//! pcapng output: what pcap cannot say. Each packet keeps its direction (`epb_flags`) and a
//! comment naming its connection and HTTP request (`conn=<id> http=<id>`, shown by Wireshark
//! as `frame.comment`), timestamps are in nanoseconds, and the TLS secrets of the traced
//! connections travel in the file (a Decryption Secrets Block), so Wireshark decrypts the
//! traced requests with no other file.
//!
//! ```no_run
//! # fn demo(capture: &nettrace::capture::PacketCapture) -> std::io::Result<()> {
//! capture.write_pcapng_to_file("/tmp/eth0.pcapng")?;
//! // For tools that read pcap only: the secrets beside it.
//! capture.write_to_file("/tmp/eth0.pcap")?;
//! capture.write_key_log_to_file("/tmp/eth0.keys")?;
//! # Ok(()) }
//! ```
use std::{
    borrow::Cow,
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

use pcap_file::{
    Endianness,
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            section_header::{SectionHeaderBlock, SectionHeaderOption},
            unknown::UnknownBlock,
        },
    },
};

use super::{
    CapturedPacket, PacketCapture, PacketDirection,
    frame::{self, Frame},
};

/// pcapng block type of a Decryption Secrets Block.
const DECRYPTION_SECRETS_BLOCK: u32 = 0x0000_000A;
/// Secrets type of a TLS key log (SSLKEYLOGFILE text) in a Decryption Secrets Block.
const SECRETS_TLS_KEY_LOG: u32 = 0x544c_534b;
/// `epb_flags` direction bits of a packet received by the interface.
const EPB_FLAGS_INBOUND: u32 = 0b01;
/// `epb_flags` direction bits of a packet sent by the interface.
const EPB_FLAGS_OUTBOUND: u32 = 0b10;

/// `if_tsresol` of nanoseconds (10^-9 s), the unit pcap-file writes packet times in.
const TS_RESOL_NANOS: u8 = 9;
/// The one interface of the file.
const INTERFACE_ID: u32 = 0;
/// Section byte order: fixed, so that the secrets block (written here) matches it.
const ENDIANNESS: Endianness = Endianness::Little;

impl PacketCapture {
    /// Writes the capture as pcapng: one section, one interface (its name, link type and snap
    /// length, nanosecond timestamps), the TLS key log when there is one, then the packets
    /// with their direction and a comment naming their connection and HTTP request.
    pub fn write_pcapng_to(&self, writer: impl Write) -> io::Result<()> {
        let section = SectionHeaderBlock {
            endianness: ENDIANNESS,
            options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(
                concat!("nettrace ", env!("CARGO_PKG_VERSION")),
            ))],
            ..SectionHeaderBlock::default()
        };
        let mut pcapng =
            PcapNgWriter::with_section_header(writer, section).map_err(frame::io_error)?;
        let snaplen = frame::file_snaplen(self.snap_len);
        let mut options = Vec::with_capacity(2);
        if !self.interface_name.is_empty() {
            options.push(InterfaceDescriptionOption::IfName(Cow::Borrowed(
                &self.interface_name,
            )));
        }
        options.push(InterfaceDescriptionOption::IfTsResol(TS_RESOL_NANOS));
        pcapng
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: frame::data_link(self.link_kind),
                snaplen,
                options,
            })
            .map_err(frame::io_error)?;
        if !self.tls_key_log.is_empty() {
            pcapng
                .write_pcapng_block(decryption_secrets(self.tls_key_log.as_bytes())?)
                .map_err(frame::io_error)?;
        }
        for packet in &self.packets {
            let frame = Frame::new(packet, snaplen)?;
            let mut options = vec![EnhancedPacketOption::Flags(direction_flags(
                packet.direction,
            ))];
            if let Some(comment) = packet_comment(packet) {
                options.push(EnhancedPacketOption::Comment(Cow::Owned(comment)));
            }
            pcapng
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id: INTERFACE_ID,
                    timestamp: frame.since_epoch,
                    original_len: frame.original_len,
                    data: Cow::Borrowed(frame.data),
                    options,
                })
                .map_err(frame::io_error)?;
        }
        pcapng.into_inner().flush()
    }

    /// Writes the capture as pcapng at `path`, replacing it (see
    /// [`write_pcapng_to`](Self::write_pcapng_to)).
    pub fn write_pcapng_to_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.write_pcapng_to(BufWriter::new(File::create(path)?))
    }

    /// Writes [`tls_key_log`](Self::tls_key_log) (SSLKEYLOGFILE format) at `path`, replacing
    /// it: give it to Wireshark (`tls.keylog_file`) beside a pcap file. The file is readable
    /// by its owner only, as it decrypts the traced connections.
    pub fn write_key_log_to_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(self.tls_key_log.as_bytes())?;
        file.flush()
    }
}

/// The `epb_flags` word of a packet: its direction only.
fn direction_flags(direction: PacketDirection) -> u32 {
    match direction {
        PacketDirection::Ingress => EPB_FLAGS_INBOUND,
        PacketDirection::Egress => EPB_FLAGS_OUTBOUND,
    }
}

/// `conn=<id> http=<id>`, with the parts that are known; `None` when neither is.
fn packet_comment(packet: &CapturedPacket) -> Option<String> {
    let parts: Vec<String> = [("conn", &packet.conn_id), ("http", &packet.http_request_id)]
        .into_iter()
        .filter_map(|(key, id)| id.as_ref().map(|id| format!("{key}={id}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A Decryption Secrets Block holding a TLS key log (draft-ietf-opsawg-pcapng, section 4.7):
/// secrets type, secrets length, then the secrets. pcap-file 2.0.0 has no type for it, so it
/// goes out as an "unknown" block, whose framing (type, lengths, padding to 4 bytes) the
/// writer adds.
fn decryption_secrets(key_log: &[u8]) -> io::Result<UnknownBlock<'static>> {
    let len = u32::try_from(key_log.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "TLS key log larger than 4 GiB: cannot go into a pcapng block",
        )
    })?;
    let mut body = Vec::with_capacity(8 + key_log.len());
    match ENDIANNESS {
        Endianness::Little => {
            body.extend_from_slice(&SECRETS_TLS_KEY_LOG.to_le_bytes());
            body.extend_from_slice(&len.to_le_bytes());
        }
        Endianness::Big => {
            body.extend_from_slice(&SECRETS_TLS_KEY_LOG.to_be_bytes());
            body.extend_from_slice(&len.to_be_bytes());
        }
    }
    body.extend_from_slice(key_log);
    Ok(UnknownBlock {
        type_: DECRYPTION_SECRETS_BLOCK,
        // Not written: the writer computes the block length from the body.
        length: 0,
        value: Cow::Owned(body),
    })
}
