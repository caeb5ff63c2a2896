//! The seed corpora of the fuzz targets (`fuzz/corpus/<target>/seed-*`), made from the test
//! fixtures: real DNS messages, CONNECT replies, copied packets, ctnetlink datagrams, ring
//! records, daemon request frames and traces written by Go and by nettrace.
//!
//! `committed_seeds_are_current` fails when a committed seed differs from what the fixtures
//! make now; `NETTRACE_WRITE_SEEDS=1 cargo test -p nettrace-user --lib fuzz_api` writes them.
//! `every_corpus_input_passes_its_target` runs each committed input (seeds and the inputs of
//! former findings) through its target's checks, so a finding stays fixed.
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use etherparse::PacketBuilder;
use hickory_proto::{
    op::{Message, OpCode, Query, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME, MX, TXT},
    },
};
use netlink_packet_core::{DefaultNla, NLA_F_NESTED};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, Protocol};
use nettrace_common::{
    ConnectEvent, EventHeader, PacketEvent, SockCallsEvent, SockCreateEvent, SockMsgEvent,
    SockOpsEvent, SockReleaseEvent, SocketCalls, TcpResetEvent, TcpStateEvent, direction,
    event_kind, family,
};

use super::TARGETS;
use crate::{
    conntrack::message::tests::{datagram, nat_entry_attrs, nla, tuple},
    dns::message::build_query,
    translate::packet::tests::client_hello,
};

/// One seed: its target, its file name (without the `seed-` prefix) and its bytes.
type Seed = (&'static str, &'static str, Vec<u8>);

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

fn seeds() -> Vec<Seed> {
    let mut all = Vec::new();
    all.extend(dns_seeds());
    all.extend(connect_seeds());
    all.extend(packet_seeds());
    all.extend(ctnetlink_seeds());
    all.extend(ring_seeds());
    all.extend(daemon_seeds());
    all.extend(trace_seeds());
    all
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a fixture name")
}

fn dns_reply(rdatas: Vec<RData>, rcode: ResponseCode) -> Vec<u8> {
    let mut reply = Message::response(0x2a2a, OpCode::Query);
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = rcode;
    let rtype = rdatas.first().map_or(RecordType::A, RData::record_type);
    reply.add_query(Query::query(name("www.example.com."), rtype));
    for rdata in rdatas {
        reply.add_answer(Record::from_rdata(name("www.example.com."), 300, rdata));
    }
    reply.to_vec().expect("a fixture reply encodes")
}

fn dns_seeds() -> Vec<Seed> {
    let mut query = build_query(&name("WWW.Example.com."), RecordType::AAAA)
        .expect("a query")
        .bytes;
    // A fixed ID: the committed seed must not change with every run.
    query[..2].copy_from_slice(&[0x12, 0x34]);
    let addresses = dns_reply(
        vec![
            RData::CNAME(CNAME(name("edge.example.net."))),
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            RData::A(A(Ipv4Addr::new(192, 0, 2, 2))),
        ],
        ResponseCode::NoError,
    );
    let others = dns_reply(
        vec![
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
            RData::MX(MX::new(10, name("mail.example.com."))),
            RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
        ],
        ResponseCode::NoError,
    );
    let nxdomain = dns_reply(Vec::new(), ResponseCode::NXDomain);
    // Go's malformed replies: a reserved label prefix in an answer's owner, and in a CNAME's
    // RDATA followed by a valid A record (skipped, then kept).
    let header = |counts: [u8; 2]| {
        let mut h = vec![0, 9, 0x81, 0x80, 0, counts[0], 0, counts[1], 0, 0, 0, 0];
        h.extend(b"\x07example\x03com\x00\x00\x01\x00\x01");
        h
    };
    let mut bad_owner = header([1, 1]);
    bad_owner.extend(b"\x40bad\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01");
    let mut bad_cname = header([1, 2]);
    bad_cname.extend(b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x05\x40bad\x00");
    bad_cname.extend(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01");
    vec![
        ("dns_message", "query-aaaa-edns", query),
        ("dns_message", "reply-cname-a", addresses),
        ("dns_message", "reply-aaaa-mx-txt", others),
        ("dns_message", "reply-nxdomain", nxdomain),
        ("dns_message", "reply-bad-owner", bad_owner),
        ("dns_message", "reply-bad-cname-rdata", bad_cname),
    ]
}

fn connect_seeds() -> Vec<Seed> {
    let replies: [(&str, &[u8]); 5] = [
        (
            "established",
            b"HTTP/1.1 200 Connection established\r\n\r\nTUNNEL",
        ),
        (
            "forbidden",
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "auth-required",
            b"HTTP/1.0 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Basic realm=\"proxy\"\r\n\r\n",
        ),
        ("not-http", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
        ("cut", b"HTTP/1.1 200"),
    ];
    replies
        .into_iter()
        .map(|(name, bytes)| ("connect_reply", name, bytes.to_vec()))
        .collect()
}

fn packet_seeds() -> Vec<Seed> {
    let hello = client_hello("example.test");
    let build = |builder: etherparse::PacketBuilderStep<etherparse::TcpHeader>| {
        let mut out = Vec::new();
        builder.write(&mut out, &hello).expect("a fixture packet");
        out
    };
    let tcp4 = build(
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 443, 1000, 65535)
            .psh()
            .ack(2000),
    );
    let tcp6 = build(
        PacketBuilder::ipv6(
            Ipv6Addr::LOCALHOST.octets(),
            Ipv6Addr::LOCALHOST.octets(),
            64,
        )
        .tcp(40000, 443, 1, 65535)
        .ack(1),
    );
    let mut dns = Vec::new();
    PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 53], 64)
        .udp(40000, 53)
        .write(&mut dns, &dns_seeds()[0].2)
        .expect("a fixture packet");
    vec![
        ("copied_packet", "ipv4-tcp-client-hello", tcp4),
        ("copied_packet", "ipv6-tcp-client-hello", tcp6),
        ("copied_packet", "ipv4-udp-dns-query", dns),
        ("copied_packet", "client-hello-record", hello),
    ]
}

fn ctnetlink_seeds() -> Vec<Seed> {
    let udp = vec![ConntrackAttribute::CtaTupleOrig(tuple(
        [127, 0, 0, 1],
        5353,
        [127, 0, 0, 1],
        53,
        Protocol::Udp,
    ))];
    let mut two = datagram(2, ConntrackMessage::New(udp));
    two.extend(datagram(2, ConntrackMessage::Delete(nat_entry_attrs())));
    // An ACK (NLMSG_ERROR with code 0) for request 5.
    let mut ack = vec![36, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
    ack.extend([0; 4]);
    ack.extend([16, 0, 0, 0, 0, 1, 5, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
    // A message with a short counter (an error item), then a valid one: both are read.
    let mut short_counter = nat_entry_attrs();
    short_counter.push(ConntrackAttribute::Other(DefaultNla::new(
        9 | NLA_F_NESTED,
        nla(2, &[1, 2, 3]),
    )));
    let mut malformed_then_valid = datagram(3, ConntrackMessage::New(short_counter));
    malformed_then_valid.extend(datagram(4, ConntrackMessage::Delete(nat_entry_attrs())));
    vec![
        ("ctnetlink", "malformed-then-valid", malformed_then_valid),
        (
            "ctnetlink",
            "destroy-nat-tcp",
            datagram(9, ConntrackMessage::Delete(nat_entry_attrs())),
        ),
        (
            "ctnetlink",
            "get-nat-tcp",
            datagram(1, ConntrackMessage::Get(nat_entry_attrs())),
        ),
        ("ctnetlink", "new-udp-then-destroy", two),
        ("ctnetlink", "ack", ack),
    ]
}

/// The bytes of a `#[repr(C)]` record.
fn bytes_of<T: aya::Pod>(value: &T) -> Vec<u8> {
    crate::event::record_bytes(value).to_vec()
}

fn header(kind: u32) -> EventHeader {
    EventHeader {
        kind,
        client_id: 1,
        timestamp_ns: 1_000_000,
        cookie: 4242,
    }
}

fn ring_seeds() -> Vec<Seed> {
    let loopback = u32::from_ne_bytes([127, 0, 0, 1]);
    let sock_ops = SockOpsEvent {
        header: header(event_kind::SOCK_OPS),
        op: 4,
        family: family::INET,
        local_addr: [loopback, 0, 0, 0],
        remote_addr: [loopback, 0, 0, 0],
        local_port: 40000,
        remote_port: 443,
        srtt_us: 80,
        record_flags: nettrace_common::sock_ops_record::HAS_MIN_RTT,
        // The transition to SYN-SENT, held for this record (the active-established one).
        held: {
            let mut held = [nettrace_common::HeldTransition::default();
                nettrace_common::limits::HELD_TRANSITIONS];
            held[0] = nettrace_common::HeldTransition {
                timestamp_ns: 1,
                old_state: 7,
                new_state: 2,
            };
            held
        },
        held_count: 1,
        ..Default::default()
    };
    let mut packet = bytes_of(&PacketEvent {
        header: header(event_kind::PACKET),
        ifindex: 1,
        direction: direction::SENT,
        packet_len: 60,
        captured_len: 4,
    });
    packet.extend([0x45, 0, 0, 60]);
    let comm = *b"curl\0\0\0\0\0\0\0\0\0\0\0\0";
    vec![
        (
            "ring_record",
            "tcp-state",
            bytes_of(&TcpStateEvent {
                header: header(event_kind::TCP_STATE),
                old_state: 7,
                new_state: 2,
            }),
        ),
        ("ring_record", "sock-ops", bytes_of(&sock_ops)),
        (
            "ring_record",
            "sock-msg",
            bytes_of(&SockMsgEvent {
                header: header(event_kind::SOCK_MSG),
                direction: direction::RECEIVED,
                ret: 512,
                ..Default::default()
            }),
        ),
        (
            "ring_record",
            "sock-calls",
            bytes_of(&SockCallsEvent {
                header: header(event_kind::SOCK_CALLS),
                calls: SocketCalls {
                    send_calls: 2,
                    recv_calls: 3,
                    would_block: 1,
                    recv_errors: 1,
                    last_errno: 104,
                    bytes_sent: 300,
                    bytes_received: 5000,
                    ..Default::default()
                },
            }),
        ),
        (
            "ring_record",
            "tcp-reset",
            bytes_of(&TcpResetEvent {
                header: header(event_kind::TCP_RESET),
                ..Default::default()
            }),
        ),
        ("ring_record", "packet", packet),
        (
            "ring_record",
            "sock-create",
            bytes_of(&SockCreateEvent {
                header: header(event_kind::SOCK_CREATE),
                family: family::INET,
                sock_type: 1,
                protocol: 6,
                pid: 100,
                comm,
            }),
        ),
        (
            "ring_record",
            "sock-release",
            bytes_of(&SockReleaseEvent {
                header: header(event_kind::SOCK_RELEASE),
            }),
        ),
        (
            "ring_record",
            "connect",
            bytes_of(&ConnectEvent {
                header: header(event_kind::CONNECT),
                family: family::INET,
                protocol: 6,
                remote_addr: [loopback, 0, 0, 0],
                remote_port: 443,
                pid: 100,
                comm,
            }),
        ),
    ]
}

/// A daemon session frame (see `daemon/server_fuzz.rs`): `fds` descriptors from the first,
/// from the second client when `second`.
fn frame(fds: u8, second: bool, request: &str) -> Vec<u8> {
    let len = u16::try_from(request.len()).expect("a short request");
    let mut bytes = vec![fds | if second { 0x20 } else { 0 }];
    bytes.extend(len.to_be_bytes());
    bytes.extend(request.as_bytes());
    bytes
}

fn daemon_seeds() -> Vec<Seed> {
    const REGISTER: &str = r#"{"op":"register"}"#;
    let session = [
        frame(1, false, REGISTER),
        frame(1, true, REGISTER),
        frame(
            0,
            false,
            r#"{"op":"capture","interfaces":["lo"],"snaplen":128}"#,
        ),
        frame(1, false, r#"{"op":"capture-flow"}"#),
        frame(0, false, r#"{"op":"sync"}"#),
        frame(0, true, r#"{"op":"status"}"#),
        frame(0, false, r#"{"op":"unregister","cookie":1}"#),
    ]
    .concat();
    let hostile = [
        frame(0, false, "{"),
        frame(1, false, r#"{"op":"register","cookie":5}"#),
        frame(2, false, REGISTER),
        frame(
            0,
            false,
            r#"{"op":"capture","interfaces":["lo"],"snaplen":1,"include_icmp":true}"#,
        ),
        frame(0x10 | 1, false, REGISTER),
        frame(0, false, r#"{"op":"status"}"#),
    ]
    .concat();
    // The sessions have said hello already: another hello is refused, of any version (none
    // of this build's here, so that a new version leaves the seed as it is).
    let handshake = [
        frame(0, false, r#"{"op":"hello","version":0}"#),
        frame(0, true, r#"{"op":"hello","version":4294967295}"#),
        frame(1, false, r#"{"op":"hello","version":0}"#),
        frame(1, false, REGISTER),
    ]
    .concat();
    // A failed connect of an own socket, then without a descriptor, then another client's.
    const CONNECT_FAILED: &str = r#"{"op":"connect-failed"}"#;
    let connect_failed = [
        frame(1, false, REGISTER),
        frame(1, false, CONNECT_FAILED),
        frame(0, false, CONNECT_FAILED),
        frame(1, true, CONNECT_FAILED),
    ]
    .concat();
    vec![
        ("daemon_session", "register-capture-sync", session),
        ("daemon_session", "connect-failed", connect_failed),
        ("daemon_session", "hostile", hostile),
        ("daemon_session", "handshake", handshake),
    ]
}

fn trace_seeds() -> Vec<Seed> {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nettrace-cli/tests/golden");
    ["go_readme_example", "full_trace", "failed_tls"]
        .into_iter()
        .map(|name| {
            let path = golden.join(format!("{name}.json"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            ("trace_json", name, bytes)
        })
        .collect()
}

#[test]
fn committed_seeds_are_current() {
    let write = std::env::var_os("NETTRACE_WRITE_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let dir = corpus_dir().join(target);
        let path = dir.join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(&dir).expect("corpus folder");
            std::fs::write(&path, &bytes).expect("writing a seed");
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{path:?} is stale: NETTRACE_WRITE_SEEDS=1 cargo test -p nettrace-user --lib fuzz_api"
            );
        }
    }
}

#[test]
fn seeds_pass_their_targets() {
    for (target, name, bytes) in seeds() {
        let (_, run) = TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .expect("a known target");
        eprintln!("{target}/{name}");
        run(&bytes);
    }
}

#[test]
fn every_corpus_input_passes_its_target() {
    for (target, run) in TARGETS {
        let dir = corpus_dir().join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{dir:?} holds no seed");
        for path in inputs {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            eprintln!("{}", path.display());
            run(&bytes);
        }
    }
}
