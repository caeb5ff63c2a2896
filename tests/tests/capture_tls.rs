//! The TLS secrets a capture carries really decrypt its packets: a TLS 1.3 exchange between
//! rustls endpoints in memory, its bytes framed as Ethernet/IPv4/TCP packets, is written as
//! pcapng (secrets inside) and as pcap plus a key log file, and `tshark` finds the HTTP
//! request and response in both — and nothing without the secrets.
//!
//! Without `tshark` the test is skipped loudly.
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use etherparse::PacketBuilder;
use nettrace::capture::{CapturedPacket, LinkKind, PacketCapture, PacketDirection};
use nettrace::model::TraceId;
use nettrace::tls::KeyLogRecorder;
use nettrace_tests::fixtures::tls::{ALPN_HTTP11, LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{self, EXAMPLE_HOST, TempDir};
use nettrace_tests::tshark::{have_tshark, tshark_fields_with};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use time::{OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-11-26 10:00:00 UTC);
const CLIENT: ([u8; 6], [u8; 4], u16) = ([0x02, 0, 0, 0, 0, 1], [10, 0, 0, 1], 40_000);
const SERVER: ([u8; 6], [u8; 4], u16) = ([0x02, 0, 0, 0, 0, 2], [10, 0, 0, 2], 443);
const REQUEST: &[u8] = b"GET /traced HTTP/1.1\r\nHost: example.test\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// One TCP connection's packets, as a capture on the client's interface would hold them.
struct Flow {
    packets: Vec<CapturedPacket>,
    /// Next sequence number of the client and of the server.
    seq: [u32; 2],
}

impl Flow {
    /// A flow that starts with the three-way handshake.
    fn open() -> Self {
        let mut flow = Self {
            packets: Vec::new(),
            seq: [1000, 5000],
        };
        flow.segment(true, Flags::Syn, &[]);
        flow.segment(false, Flags::SynAck, &[]);
        flow.segment(true, Flags::Ack, &[]);
        flow
    }

    /// One segment with `payload`, from the client when `from_client`.
    fn segment(&mut self, from_client: bool, flags: Flags, payload: &[u8]) {
        let (me, peer, mine, theirs) = if from_client {
            (CLIENT, SERVER, 0, 1)
        } else {
            (SERVER, CLIENT, 1, 0)
        };
        let builder = PacketBuilder::ethernet2(me.0, peer.0)
            .ipv4(me.1, peer.1, 64)
            .tcp(me.2, peer.2, self.seq[mine], 65535);
        let builder = match flags {
            Flags::Syn => builder.syn(),
            Flags::SynAck => builder.syn().ack(self.seq[theirs]),
            Flags::Ack => builder.ack(self.seq[theirs]),
            Flags::Data => builder.psh().ack(self.seq[theirs]),
        };
        let mut data = Vec::new();
        builder
            .write(&mut data, payload)
            .expect("building a segment");
        let len = u32::try_from(payload.len()).expect("small segment");
        self.seq[mine] += len + u32::from(matches!(flags, Flags::Syn | Flags::SynAck));
        let n = i64::try_from(self.packets.len()).expect("few packets");
        self.packets.push(CapturedPacket {
            timestamp: T0 + time::Duration::microseconds(100 * n),
            original_len: u32::try_from(data.len()).expect("small packet"),
            data: Bytes::from(data),
            direction: if from_client {
                PacketDirection::Egress
            } else {
                PacketDirection::Ingress
            },
            conn_id: Some(TraceId::new("tid-1")),
            http_request_id: None,
        });
    }
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    Data,
}

/// Moves every pending TLS byte between the endpoints, one segment per write, until
/// neither has anything to send.
fn pump(flow: &mut Flow, client: &mut ClientConnection, server: &mut ServerConnection) {
    loop {
        let mut moved = false;
        while client.wants_write() {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes).expect("client TLS bytes");
            flow.segment(true, Flags::Data, &bytes);
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                server.read_tls(&mut rest).expect("server reads");
                server.process_new_packets().expect("server TLS state");
            }
            moved = true;
        }
        while server.wants_write() {
            let mut bytes = Vec::new();
            server.write_tls(&mut bytes).expect("server TLS bytes");
            flow.segment(false, Flags::Data, &bytes);
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                client.read_tls(&mut rest).expect("client reads");
                client.process_new_packets().expect("client TLS state");
            }
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// Plaintext received so far by an endpoint.
fn received(reader: &mut rustls::Reader<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    match reader.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("reading plaintext: {e}"),
    }
    bytes
}

/// A TLS 1.3 HTTP exchange as a capture, and the client's key log.
fn tls_capture() -> PacketCapture {
    let pki = scenario::pki();
    let server_config = pki
        .leaf(LeafKind::Valid)
        .and_then(|leaf| leaf.server_config(&ServerTlsOptions::h1()))
        .unwrap_or_else(|e| panic!("server TLS config: {e:?}"));
    let keys = Arc::new(KeyLogRecorder::default());
    let mut client_config = (*pki.client_config(&[ALPN_HTTP11])).clone();
    client_config.key_log = keys.clone();
    let name = ServerName::try_from(EXAMPLE_HOST).expect("a DNS name");
    let mut client =
        ClientConnection::new(Arc::new(client_config), name).expect("client connection");
    let mut server = ServerConnection::new(server_config).expect("server connection");

    let mut flow = Flow::open();
    pump(&mut flow, &mut client, &mut server);
    assert!(!client.is_handshaking() && !server.is_handshaking());
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    client.writer().write_all(REQUEST).expect("request");
    pump(&mut flow, &mut client, &mut server);
    assert_eq!(received(&mut server.reader()), REQUEST);
    server.writer().write_all(RESPONSE).expect("response");
    pump(&mut flow, &mut client, &mut server);
    assert_eq!(received(&mut client.reader()), RESPONSE);

    PacketCapture {
        interface_name: "lo".to_owned(),
        link_kind: LinkKind::Ethernet,
        snap_len: 65535,
        packets: flow.packets,
        tls_key_log: keys.snapshot(),
        ..PacketCapture::default()
    }
}

/// The HTTP request URIs and response codes tshark finds in `file` (with `args`).
fn http_seen(file: &std::path::Path, args: &[String]) -> Vec<String> {
    let mut extra: Vec<&str> = args.iter().map(String::as_str).collect();
    extra.extend(["-Y", "http"]);
    tshark_fields_with(file, &extra, &["http.request.uri", "http.response.code"])
        .into_iter()
        .map(|row| row.concat().trim().to_owned())
        .collect()
}

#[test]
fn tshark_decrypts_with_the_captured_secrets() {
    let test = "tshark_decrypts_with_the_captured_secrets";
    if !have_tshark(test) {
        return;
    }
    let capture = tls_capture();
    assert!(
        capture.tls_key_log.contains("CLIENT_TRAFFIC_SECRET_0 "),
        "{}",
        capture.tls_key_log
    );
    let dir = TempDir::new("capture-tls");
    let decrypted = vec!["/traced".to_owned(), "200".to_owned()];

    // pcapng: the secrets travel in the file.
    let pcapng = dir.path("tls.pcapng");
    capture.write_pcapng_to_file(&pcapng).expect("pcapng");
    assert_eq!(http_seen(&pcapng, &[]), decrypted);

    // pcap: the secrets beside it, in a key log file.
    let pcap = dir.path("tls.pcap");
    let keys = dir.path("tls.keys");
    capture.write_to_file(&pcap).expect("pcap");
    capture.write_key_log_to_file(&keys).expect("key log");
    let keylog_pref = format!("tls.keylog_file:{}", keys.display());
    assert_eq!(http_seen(&pcap, &["-o".to_owned(), keylog_pref]), decrypted);

    // Without secrets, nothing: the decryption above came from them.
    let bare = PacketCapture {
        tls_key_log: String::new(),
        ..capture
    };
    let no_keys = dir.path("bare.pcapng");
    bare.write_pcapng_to_file(&no_keys).expect("pcapng");
    assert_eq!(http_seen(&no_keys, &[]), Vec::<String>::new());
    assert_eq!(http_seen(&pcap, &[]), Vec::<String>::new());
}
