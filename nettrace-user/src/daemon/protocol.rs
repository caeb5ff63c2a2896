//! The daemon's messages, one per `SOCK_SEQPACKET` packet.
//!
//! A client sends JSON [`Request`]s (at most [`MAX_REQUEST`] bytes). The daemon sends
//! [`Frame`]s: a tag byte, then either a JSON [`Message`] (the reply to the oldest unanswered
//! request, replies come in request order) or one kernel event as the exact ring-buffer record
//! the programs wrote (a `#[repr(C)]` record of `nettrace-common`), at most [`MAX_RECORD`]
//! bytes, which the client decodes as the daemon does.
//!
//! ```
//! use nettrace::daemon::protocol::{Frame, Message};
//! let bytes = Frame::encode_reply(&Message::Ok { cookie: 7 });
//! assert_eq!(Frame::decode(&bytes), Ok(Frame::Reply(Message::Ok { cookie: 7 })));
//! ```
use serde::{Deserialize, Serialize};

/// Largest request the daemon reads; longer ones are cut and rejected.
pub const MAX_REQUEST: usize = 4096;

/// Largest kernel record forwarded: a packet record with the most bytes the programs copy.
pub const MAX_RECORD: usize = std::mem::size_of::<nettrace_common::PacketEvent>()
    + nettrace_common::limits::MAX_PACKET_BYTES as usize;

/// Largest frame the daemon sends.
pub const MAX_FRAME: usize = 1 + MAX_RECORD;

/// Tag of a frame holding a JSON [`Message`].
const REPLY_TAG: u8 = b'R';
/// Tag of a frame holding a kernel record.
pub(crate) const RECORD_TAG: u8 = b'E';

/// What a client asks. Variants without fields are written `{}` so that unknown fields
/// (a cookie or descriptor number smuggled into `register`) are rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Trace the socket whose descriptor comes with the message (exactly one).
    Register {},
    /// Stop tracing a socket this client registered (no descriptor: the socket may be
    /// closed by now; only the client's own cookies are accepted).
    Unregister {
        /// The cookie the `register` reply gave.
        cookie: u64,
    },
    /// Hand on every kernel event that happened before the request, then reply
    /// [`Message::Synced`].
    Sync {},
    /// Reply [`Message::Status`].
    Status {},
    /// Capture the packets of this client's sockets on the named interfaces of the daemon's
    /// network namespace; reply [`Message::Capturing`]. Once per connection, before the
    /// sockets to capture are registered (the kernel registers a TCP socket's flow at
    /// connect). ICMP and ARP packets belong to no socket: asking for them is refused.
    Capture(CaptureRequest),
    /// Capture the packets of the connected UDP socket whose descriptor comes with the
    /// message (exactly one; registered by this client before, with capture on). The daemon
    /// reads the flow's addresses from the descriptor itself; reply [`Message::Ok`].
    CaptureFlow {},
}

/// What a [`Request::Capture`] asks for (the total size limit stays with the client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Interface names.
    pub interfaces: Vec<String>,
    /// Bytes kept of each packet at most.
    pub snaplen: u32,
    /// Capture only the TCP packets without payload (Go's `TCPWithoutPayload`).
    #[serde(default)]
    pub tcp_without_payload: bool,
    /// Capture TCP packets with their payload cut after the TCP header. Sent only when set,
    /// so that a daemon that predates it still understands every other request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tcp_headers_only: bool,
    /// Every ICMP packet of the interfaces: always refused (other users' packets).
    #[serde(default)]
    pub include_icmp: bool,
    /// Every ARP packet of the interfaces: always refused (other users' packets).
    #[serde(default)]
    pub include_arp: bool,
}

/// An interface the daemon captures on, as [`Message::Capturing`] names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureInterface {
    /// Its name.
    pub name: String,
    /// Its index in the daemon's network namespace (the packet records carry it).
    pub index: u32,
    /// Raw IP (no link-layer header) rather than Ethernet.
    pub raw_ip: bool,
    /// A loopback device.
    pub loopback: bool,
}

/// What the daemon replies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// A registration succeeded (or an unregistration: the cookie it removed).
    Ok {
        /// The socket cookie read from the descriptor.
        cookie: u64,
    },
    /// A request failed.
    Error {
        /// Why.
        error: String,
    },
    /// Every event before the sync request has been sent ahead of this reply.
    Synced {
        /// Events of this client the daemon dropped because its socket buffer was full (the
        /// client read too slowly), since it connected.
        dropped: u64,
        /// Events of this client's slot the kernel lost (ring buffer full), since it
        /// connected.
        lost_events: u64,
        /// Packets of this client's slot the kernel lost, since it connected.
        lost_packets: u64,
    },
    /// What the daemon holds: for a root client, everyone's; otherwise the client's own.
    Status {
        /// Connected clients.
        clients: u64,
        /// Registered sockets.
        sockets: u64,
    },
    /// Capture started: the interfaces found, in the order asked for.
    Capturing {
        /// The interfaces.
        interfaces: Vec<CaptureInterface>,
    },
}

/// One message from the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A reply.
    Reply(Message),
    /// A kernel event: a ring-buffer record.
    Record(&'a [u8]),
}

impl<'a> Frame<'a> {
    /// The bytes of a reply frame.
    pub fn encode_reply(message: &Message) -> Vec<u8> {
        let mut bytes = vec![REPLY_TAG];
        // Serializing these plain enums cannot fail; an empty body is rejected by the reader.
        let _ = serde_json::to_writer(&mut bytes, message);
        bytes
    }

    /// Whether `bytes` is tagged as a reply (well formed or not).
    pub fn is_reply(bytes: &[u8]) -> bool {
        bytes.first() == Some(&REPLY_TAG)
    }

    /// Reads a frame; an unknown tag, a malformed reply or an oversized record is an error.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&REPLY_TAG, body)) => serde_json::from_slice(body)
                .map(Frame::Reply)
                .map_err(|e| format!("malformed reply: {e}")),
            Some((&RECORD_TAG, record)) if record.len() <= MAX_RECORD => Ok(Frame::Record(record)),
            Some((&RECORD_TAG, record)) => Err(format!(
                "record of {} bytes is longer than {MAX_RECORD}",
                record.len()
            )),
            Some((tag, _)) => Err(format!("unknown frame tag {tag:#04x}")),
            None => Err("empty frame".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_hostile_ones_fail() {
        let synced = Message::Synced {
            dropped: 1,
            lost_events: 2,
            lost_packets: 3,
        };
        assert_eq!(
            Frame::decode(&Frame::encode_reply(&synced)),
            Ok(Frame::Reply(synced))
        );
        assert_eq!(Frame::decode(b"Eabc"), Ok(Frame::Record(b"abc")));
        let mut long = vec![RECORD_TAG];
        long.resize(MAX_FRAME + 1, 0);
        assert!(Frame::decode(&long).is_err());
        assert!(Frame::decode(b"").is_err());
        assert!(Frame::decode(b"X{}").is_err());
        assert!(Frame::decode(b"R{\"type\":\"nope\"}").is_err());
        assert!(Frame::decode(b"R\xff").is_err());
    }

    #[test]
    fn requests_name_no_cookie_or_descriptor_to_register() {
        let parse = |s: &str| serde_json::from_str::<Request>(s);
        assert_eq!(
            parse(r#"{"op":"register"}"#).ok(),
            Some(Request::Register {})
        );
        assert!(parse(r#"{"op":"register","cookie":5}"#).is_err());
        assert!(parse(r#"{"op":"register","fd":3}"#).is_err());
        assert_eq!(
            parse(r#"{"op":"unregister","cookie":5}"#).ok(),
            Some(Request::Unregister { cookie: 5 })
        );
        assert!(parse(r#"{"op":"sync","x":1}"#).is_err());
        assert!(parse(r#"{"op":"capture-flow","cookie":5}"#).is_err());
        assert!(
            parse(r#"{"op":"capture-flow","local":"1.2.3.4:5","remote":"1.2.3.4:6"}"#).is_err()
        );
    }

    #[test]
    fn capture_requests_round_trip_and_reject_unknown_fields() {
        let request = Request::Capture(CaptureRequest {
            interfaces: vec!["lo".to_owned()],
            snaplen: 100,
            tcp_without_payload: true,
            tcp_headers_only: false,
            include_icmp: false,
            include_arp: false,
        });
        let bytes = serde_json::to_vec(&request).unwrap();
        assert_eq!(
            serde_json::from_slice::<Request>(&bytes).ok(),
            Some(request)
        );
        let parse = |s: &str| serde_json::from_str::<Request>(s);
        assert!(parse(r#"{"op":"capture","interfaces":["lo"],"snaplen":1,"flows":[]}"#).is_err());
        assert!(parse(r#"{"op":"capture","interfaces":"lo","snaplen":1}"#).is_err());
        let capturing = Message::Capturing {
            interfaces: vec![CaptureInterface {
                name: "lo".to_owned(),
                index: 1,
                raw_ip: false,
                loopback: true,
            }],
        };
        assert_eq!(
            Frame::decode(&Frame::encode_reply(&capturing)),
            Ok(Frame::Reply(capturing))
        );
    }
}
