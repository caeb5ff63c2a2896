//! The `ring_record` target: kernel records as the ring buffers (in-process hub) and the
//! loader daemon (daemon link) hand them over (`KernelEvent::decode`, `decode_shared`), and
//! the daemon link's classification of its frames.
use std::mem::size_of;

use bytes::Bytes;
use nettrace_common::{
    ConnectEvent, EventHeader, PacketEvent, SockCallsEvent, SockCreateEvent, SockMsgEvent,
    SockOpsEvent, SockReleaseEvent, TcpResetEvent, TcpStateEvent, event_kind,
};

use crate::{
    daemon::{
        link::Incoming,
        protocol::{Frame, MAX_RECORD},
    },
    event::{DecodedRecord, KernelEvent, SockOpsRecord},
};

/// Decodes `data` as one ring-buffer record both ways and checks that they agree, that a
/// record shorter than its kind's layout is an error, that a packet's bytes are the record's
/// own, and that the daemon link counts a record frame that does not decode as malformed
/// (and hands on one that does).
pub fn ring_record(data: &[u8]) {
    let copied = KernelEvent::decode(data);
    let shared = KernelEvent::decode_shared(&Bytes::copy_from_slice(data), 0..data.len(), |raw| {
        SockOpsRecord::from_raw(raw).map(Box::new)
    })
    .map(DecodedRecord::boxed);
    assert_eq!(copied, shared, "both decoders agree");
    if let Ok(event) = &copied {
        let kind = header_kind(data).expect("a decoded record has a header");
        assert!(
            data.len() >= layout_size(kind).expect("a decoded record has a known kind"),
            "a record of {} bytes decoded as kind {kind}",
            data.len()
        );
        if let KernelEvent::Packet(packet) = event {
            let start = size_of::<PacketEvent>();
            let end = start + packet.data.len();
            assert_eq!(data.get(start..end), Some(&packet.data[..]), "packet bytes");
        }
    }
    // The same record as the daemon sends it.
    let mut frame = vec![b'E'];
    frame.extend_from_slice(data);
    match Incoming::of(&frame) {
        Incoming::Event(event, record) => {
            assert_eq!(Some(&event), copied.as_ref().ok());
            assert_eq!(record, data);
        }
        Incoming::Malformed(_) => assert!(copied.is_err() || data.len() > MAX_RECORD),
        Incoming::Reply(reply) => panic!("a record frame taken for a reply: {reply:?}"),
    }
    // The bytes as a frame of any tag: a reply tag always answers a request.
    let incoming = Incoming::of(data);
    assert_eq!(
        Frame::is_reply(data),
        matches!(incoming, Incoming::Reply(_)),
        "{incoming:?}"
    );
}

/// The kind of a record with a whole header.
fn header_kind(data: &[u8]) -> Option<u32> {
    (data.len() >= size_of::<EventHeader>()).then(|| {
        // `kind` is the header's first field.
        u32::from_ne_bytes([data[0], data[1], data[2], data[3]])
    })
}

/// The size of the layout of a record kind.
fn layout_size(kind: u32) -> Option<usize> {
    Some(match kind {
        event_kind::TCP_STATE => size_of::<TcpStateEvent>(),
        event_kind::SOCK_OPS => size_of::<SockOpsEvent>(),
        event_kind::SOCK_MSG => size_of::<SockMsgEvent>(),
        event_kind::SOCK_CALLS => size_of::<SockCallsEvent>(),
        event_kind::TCP_RESET => size_of::<TcpResetEvent>(),
        event_kind::PACKET => size_of::<PacketEvent>(),
        event_kind::SOCK_CREATE => size_of::<SockCreateEvent>(),
        event_kind::SOCK_RELEASE => size_of::<SockReleaseEvent>(),
        event_kind::CONNECT => size_of::<ConnectEvent>(),
        _ => return None,
    })
}
