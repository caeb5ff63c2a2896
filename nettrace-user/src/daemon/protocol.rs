//! The daemon's messages, one per `SOCK_SEQPACKET` packet.
//!
//! A client sends JSON [`Request`]s (at most [`MAX_REQUEST`] bytes). The daemon sends
//! [`Frame`]s: a tag byte, then either a JSON [`Message`] (the reply to the oldest unanswered
//! request, replies come in request order) or one kernel event as the exact ring-buffer record
//! the programs wrote (a `#[repr(C)]` record of `nettrace-common`), at most [`MAX_RECORD`]
//! bytes, which the client decodes as the daemon does.
//!
//! Because the records go over as they are, the client and the daemon must agree on their
//! layout: the first request of a connection is [`Request::Hello`] with the client's
//! [`VERSION`], and the daemon answers [`Message::Hello`] with the same version, or refuses
//! (an error reply naming both, with its own version in [`Message::Error::version`]) and then
//! refuses every other request until a hello it accepts. A daemon older than the handshake
//! answers the hello as an unknown request ([`predates_handshake`]). The JSON requests and
//! replies only ever gain optional fields that an older peer may leave out, or new requests
//! that an older daemon refuses as malformed (the client then does without: e.g.
//! [`Request::ConnectFailed`]); a change that an older peer would misread needs a new
//! [`VERSION`] too.
//!
//! ```
//! use nettrace::daemon::protocol::{Frame, Message};
//! let bytes = Frame::encode_reply(&Message::Ok { cookie: 7 });
//! assert_eq!(Frame::decode(&bytes), Ok(Frame::Reply(Message::Ok { cookie: 7 })));
//! ```
use serde::{Deserialize, Serialize};

/// The version of the records and messages this build exchanges with the daemon, sent in
/// [`Request::Hello`]: the record layout version of `nettrace-common` (see its documentation
/// for what takes a new one). Client and daemon must have the same.
pub const VERSION: u32 = nettrace_common::RECORD_LAYOUT_VERSION;

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
    /// The version handshake, the first request of every connection: the client's
    /// [`VERSION`]. Reply [`Message::Hello`] when it is the daemon's, else an error reply
    /// naming both (no other request is served before a hello the daemon accepts).
    Hello {
        /// The client's [`VERSION`].
        version: u32,
    },
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
    /// The TCP socket whose descriptor comes with the message (exactly one; registered by
    /// this client before) failed to connect at once: reply [`Message::CloseReported`],
    /// whether the programs reported its transition to CLOSE. When they did not, none will
    /// come (the connect failed before any state the kernel reports), and the client may
    /// unregister it without waiting for one.
    ConnectFailed {},
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
        /// The daemon's [`VERSION`], when it refused a [`Request::Hello`] for another
        /// version (absent otherwise, and from daemons older than the handshake).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
    },
    /// The daemon accepted the client's [`Request::Hello`]: its own [`VERSION`].
    Hello {
        /// The daemon's version.
        version: u32,
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
    /// The answer to [`Request::ConnectFailed`].
    CloseReported {
        /// Whether the programs reported the socket's transition to CLOSE since it last
        /// connected.
        reported: bool,
    },
}

impl Message {
    /// An error reply (one that names no version).
    pub fn error(error: impl Into<String>) -> Self {
        Self::Error {
            error: error.into(),
            version: None,
        }
    }
}

/// Whether `error`, the error reply to a [`Request::Hello`], comes from a daemon that predates
/// the handshake: such a daemon reads `hello` as an unknown operation and says so in the
/// words of its JSON reader (serde's "unknown variant").
pub fn predates_handshake(error: &str) -> bool {
    error.contains("unknown variant `hello`")
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

    #[test]
    fn hello_round_trips_and_names_only_a_version() {
        let parse = |s: &str| serde_json::from_str::<Request>(s);
        let hello = Request::Hello { version: VERSION };
        let bytes = serde_json::to_vec(&hello).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            format!(r#"{{"op":"hello","version":{VERSION}}}"#)
        );
        assert_eq!(serde_json::from_slice::<Request>(&bytes).ok(), Some(hello));
        assert!(parse(r#"{"op":"hello"}"#).is_err());
        assert!(parse(r#"{"op":"hello","version":"1"}"#).is_err());
        assert!(parse(r#"{"op":"hello","version":-1}"#).is_err());
        assert!(parse(r#"{"op":"hello","version":1,"cookie":5}"#).is_err());
        assert_eq!(VERSION, nettrace_common::RECORD_LAYOUT_VERSION);

        let accepted = Message::Hello { version: VERSION };
        assert_eq!(
            Frame::decode(&Frame::encode_reply(&accepted)),
            Ok(Frame::Reply(accepted))
        );
    }

    #[test]
    fn an_error_reply_names_a_version_only_when_it_refuses_one() {
        let plain = Frame::encode_reply(&Message::error("no"));
        assert_eq!(&plain[..], br#"R{"type":"error","error":"no"}"#);
        let refusal = Message::Error {
            error: "version mismatch".to_owned(),
            version: Some(7),
        };
        let bytes = Frame::encode_reply(&refusal);
        assert_eq!(
            &bytes[..],
            br#"R{"type":"error","error":"version mismatch","version":7}"#
        );
        assert_eq!(Frame::decode(&bytes), Ok(Frame::Reply(refusal)));
        // An error reply as daemons before the handshake wrote it still reads.
        assert_eq!(
            Frame::decode(br#"R{"type":"error","error":"no"}"#),
            Ok(Frame::Reply(Message::error("no")))
        );
    }

    /// The requests of a daemon built before the handshake, as it reads them.
    #[derive(Debug, Deserialize)]
    #[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
    #[allow(dead_code)] // Only parsed.
    enum RequestBeforeHello {
        Register {},
        Unregister { cookie: u64 },
        Sync {},
        Status {},
        Capture(CaptureRequest),
        CaptureFlow {},
    }

    #[test]
    fn an_old_daemons_answer_to_hello_is_recognised() {
        let hello = serde_json::to_vec(&Request::Hello { version: VERSION }).unwrap();
        // The old daemon's reply: "malformed request: " and its JSON reader's error.
        let error = serde_json::from_slice::<RequestBeforeHello>(&hello).unwrap_err();
        let answer = format!("malformed request: {error}");
        assert!(predates_handshake(&answer), "{answer}");
        // Other refusals are not taken for it.
        assert!(!predates_handshake(
            "malformed request: unknown variant `nope`"
        ));
        assert!(!predates_handshake(
            "too many sessions for this user (at most 64)"
        ));
        assert!(!predates_handshake("hello was said already"));
    }
}
