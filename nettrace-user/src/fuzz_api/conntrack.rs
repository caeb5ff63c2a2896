//! The `ctnetlink` target: datagrams of the conntrack netlink socket
//! (`conntrack::message::decode_datagram`).
use crate::{
    conntrack::message::{Decoded, decode_datagram},
    model::ConntrackEntry,
};

/// A netlink message header's size: the least a message takes.
const NLMSG_HDRLEN: usize = 16;

/// Decodes `data` as one ctnetlink datagram and checks that it yields at most one item per
/// header's worth of bytes and that every entry becomes a model entry whose JSON reads back
/// equal in its JSON. (A message whose content is malformed is an error item and the next message is
/// read: its length held. "An error ends the datagram" was a wrong invariant, the first
/// finding of this target.)
pub fn ctnetlink(data: &[u8]) {
    let items = decode_datagram(data);
    assert!(
        items.len() <= data.len() / NLMSG_HDRLEN,
        "{} items",
        items.len()
    );
    for item in items {
        if let Ok(Decoded::Entry { msg, .. }) = item {
            let entry = msg.to_entry();
            let json = serde_json::to_string(&entry).expect("an entry writes");
            let back: ConntrackEntry = serde_json::from_str(&json).expect("an entry reads back");
            // Not equal entries: the status is written as Go's flag names, so a bit Go does
            // not name is not in the JSON (the second finding, a wrong invariant).
            assert_eq!(
                serde_json::to_string(&back).expect("writes again"),
                json,
                "the JSON is stable"
            );
        }
    }
}
