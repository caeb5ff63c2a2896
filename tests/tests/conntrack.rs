//! Root scenarios for `WithConntrack`: real kernel conntrack in a namespace the test creates,
//! with nft source and destination NAT, so that reply tuples differ from the original ones.
//!
//! Layout inside the namespace (loopback only): the DNS fixture answers `example.test` with
//! 127.0.0.3; nft DNATs 127.0.0.3 to 127.0.0.1 (output hook) and SNATs the connection to the
//! HTTP fixture to source 127.0.0.2 (postrouting hook). Counters are on
//! (`nf_conntrack_acct=1`, set in the namespace only).
use std::{net::Ipv4Addr, time::Duration};

use nettrace::{
    client::{ClientError, HttpClient, HttpClientConfig, TraceOptions},
    conntrack::ConntrackError,
    model::{ConntrackEntry, ConntrackStatus, HttpTrace, TcpConnTrace, TcpState, UdpConnTrace},
};
use nettrace_tests::{
    CONNTRACK, NFT,
    fixtures::dns::Zone,
    netns::NetNs,
    require_root, require_tools,
    scenario::{self, dump, get_ok},
};

/// The address `example.test` resolves to; DNATed to 127.0.0.1.
const VIRTUAL_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The source address connections to the HTTP fixture are SNATed to.
const SNAT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A namespace with counters on and the NAT rules for connections to `http_port`.
fn nat_rules(ns: &NetNs, http_port: u16) {
    ns.nft(&format!(
        "table ip nettrace_test {{
            chain out {{ type nat hook output priority -100; ip daddr {VIRTUAL_IP} dnat to 127.0.0.1; }}
            chain post {{ type nat hook postrouting priority 100;
                ip daddr 127.0.0.1 tcp dport {http_port} snat to {SNAT_IP}; }}
        }}"
    ));
}

fn namespace(tag: &str) -> NetNs {
    let ns = NetNs::new(tag).unwrap_or_else(|e| panic!("creating a namespace: {e}"));
    ns.sysctl("net.netfilter.nf_conntrack_acct", "1");
    ns
}

fn conntrack_client(config: HttpClientConfig) -> HttpClient {
    scenario::client(
        HttpClientConfig {
            disable_keep_alive: true,
            ..config
        },
        TraceOptions {
            conntrack: true,
            ..scenario::full_options()
        },
    )
}

fn entry<'a>(ct: &'a Option<ConntrackEntry>, what: &str, trace: &HttpTrace) -> &'a ConntrackEntry {
    ct.as_ref()
        .unwrap_or_else(|| panic!("{what} has no conntrack entry\n{}", dump(trace)))
}

fn http_conn(trace: &HttpTrace) -> &TcpConnTrace {
    let conns: Vec<_> = trace
        .net_trace
        .tcp_conns
        .iter()
        .filter(|c| !c.from_resolver)
        .collect();
    assert_eq!(conns.len(), 1, "one HTTP connection\n{}", dump(trace));
    conns[0]
}

fn dns_conns(trace: &HttpTrace) -> Vec<&UdpConnTrace> {
    let conns: Vec<_> = trace.net_trace.udp_conns.iter().collect();
    assert!(
        !conns.is_empty(),
        "no UDP (DNS) connection\n{}",
        dump(trace)
    );
    conns
}

/// Conntrack counts IP packets: payload plus IP and TCP headers (20 + up to 60 bytes each).
fn assert_tcp_counters(ct: &ConntrackEntry, conn: &TcpConnTrace, trace: &HttpTrace) {
    assert!(ct.packets_sent > 0 && ct.packets_recv > 0, "{ct:?}");
    for (bytes, packets, payload) in [
        (ct.bytes_sent, ct.packets_sent, conn.total_sent_bytes),
        (ct.bytes_recv, ct.packets_recv, conn.total_recv_bytes),
    ] {
        assert!(
            bytes >= payload + 40 * packets && bytes <= payload + 120 * packets,
            "bytes {bytes} in {packets} packets for {payload} payload bytes\n{}",
            dump(trace)
        );
    }
}

/// A UDP datagram over IPv4 is its payload plus exactly 28 header bytes.
fn assert_udp_counters(ct: &ConntrackEntry, conn: &UdpConnTrace, trace: &HttpTrace) {
    assert!(ct.packets_sent >= 1 && ct.packets_recv >= 1, "{ct:?}");
    assert_eq!(
        ct.bytes_sent,
        conn.total_sent_bytes + 28 * ct.packets_sent,
        "{}",
        dump(trace)
    );
    assert_eq!(
        ct.bytes_recv,
        conn.total_recv_bytes + 28 * ct.packets_recv,
        "{}",
        dump(trace)
    );
}

#[test]
fn conntrack_nat_entries_for_tcp_and_udp() {
    if !require_root("conntrack_nat_entries_for_tcp_and_udp")
        || !require_tools("conntrack_nat_entries_for_tcp_and_udp", &[NFT])
    {
        return;
    }
    let ns = namespace("ct-nat");
    let trace = ns.block_on(|| async {
        let dns = scenario::dns_with(Zone::new().a(scenario::EXAMPLE_HOST, [VIRTUAL_IP])).await;
        let server = scenario::plain_server().await;
        nat_rules(&ns, server.addr().port());
        let client = conntrack_client(scenario::config_with_dns(&dns));
        let url = server.url_with_host(scenario::EXAMPLE_HOST, "/bytes/20000");
        get_ok(&client, &url).await;
        // The final state of a closed connection is taken as late as possible: wait (bounded)
        // until conntrack has seen the whole close.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let trace = scenario::trace(&client, "conntrack NAT");
            let ct = http_conn(&trace).conntrack.clone();
            let done = ct.is_some_and(|ct| ct.tcp_state == TcpState::TimeWait);
            if done || std::time::Instant::now() > deadline {
                break trace;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let tcp = http_conn(&trace);
    let ct = entry(&tcp.conntrack, "the HTTP connection", &trace);
    let local = (tcp.addr_tuple.src_ip, tcp.addr_tuple.src_port);
    assert_eq!(
        (ct.addr_orig.src_ip, ct.addr_orig.src_port),
        local,
        "{}",
        dump(&trace)
    );
    assert_eq!(ct.addr_orig.dst_ip, Some(VIRTUAL_IP.into()));
    assert_eq!(ct.addr_orig.dst_port, tcp.addr_tuple.dst_port);
    // Reply: from the real server to the SNAT address.
    assert_eq!(ct.addr_reply.src_ip, Some(Ipv4Addr::LOCALHOST.into()));
    assert_eq!(ct.addr_reply.src_port, tcp.addr_tuple.dst_port);
    assert_eq!(ct.addr_reply.dst_ip, Some(SNAT_IP.into()));
    assert_ne!(ct.addr_reply.dst_port, 0);
    for flag in [
        ConntrackStatus::CONFIRMED,
        ConntrackStatus::SEEN_REPLY,
        ConntrackStatus::ASSURED,
        ConntrackStatus::SRC_NAT,
        ConntrackStatus::DST_NAT,
        ConntrackStatus::SRC_NAT_DONE,
        ConntrackStatus::DST_NAT_DONE,
    ] {
        assert!(ct.status.contains(flag), "{} lacks {flag:?}", ct.status);
    }
    assert_eq!(ct.tcp_state, TcpState::TimeWait, "{}", dump(&trace));
    assert_tcp_counters(ct, tcp, &trace);
    scenario::assert_defined(&trace, &ct.captured_at, "conntrack capturedAt");
    scenario::assert_not_after(
        &trace,
        &tcp.conn_close_at,
        &ct.captured_at,
        "close <= capture",
    );

    for udp in dns_conns(&trace) {
        let ct = entry(&udp.conntrack, "a DNS connection", &trace);
        assert_eq!(ct.tcp_state, TcpState::None);
        assert!(
            ct.status
                .contains(ConntrackStatus::CONFIRMED | ConntrackStatus::SEEN_REPLY),
            "{}",
            ct.status
        );
        assert!(
            !ct.status.contains(ConntrackStatus::SRC_NAT),
            "{}",
            ct.status
        );
        assert_eq!(ct.addr_orig.dst_port, udp.addr_tuple.dst_port);
        assert_eq!(ct.addr_reply.src_port, udp.addr_tuple.dst_port);
        assert_udp_counters(ct, udp, &trace);
    }

    // JSON as Go writes it.
    let json = serde_json::to_value(&trace).unwrap();
    let tcp_json = &json["tcpConns"][0]["conntrack"];
    let status = tcp_json["status"].as_str().unwrap();
    assert!(
        status.contains("src-nat-done") && status.contains("seen-reply"),
        "{status}"
    );
    assert_eq!(tcp_json["tcpState"], "time-wait");
    assert_eq!(tcp_json["addrReply"]["dstIP"], SNAT_IP.to_string());
    let udp_json = &json["udpConns"][0]["conntrack"];
    assert!(udp_json.get("tcpState").is_none(), "{udp_json}");
}

#[test]
fn conntrack_destroy_event_keeps_the_final_entry() {
    if !require_root("conntrack_destroy_event_keeps_the_final_entry")
        || !require_tools(
            "conntrack_destroy_event_keeps_the_final_entry",
            &[NFT, CONNTRACK],
        )
    {
        return;
    }
    let ns = namespace("ct-destroy");
    // Short timeouts, in this namespace only: entries expire soon after the connections close.
    for key in [
        "nf_conntrack_udp_timeout",
        "nf_conntrack_tcp_timeout_time_wait",
        "nf_conntrack_tcp_timeout_fin_wait",
        "nf_conntrack_tcp_timeout_close_wait",
        "nf_conntrack_tcp_timeout_last_ack",
        "nf_conntrack_tcp_timeout_close",
    ] {
        ns.sysctl(&format!("net.netfilter.{key}"), "1");
    }
    let trace = ns.block_on(|| async {
        let dns = scenario::dns_with(Zone::new().a(scenario::EXAMPLE_HOST, [VIRTUAL_IP])).await;
        let server = scenario::plain_server().await;
        nat_rules(&ns, server.addr().port());
        let client = conntrack_client(scenario::config_with_dns(&dns));
        let url = server.url_with_host(scenario::EXAMPLE_HOST, "/bytes/3000");
        get_ok(&client, &url).await;
        // Wait (bounded) until the kernel no longer has the entries: listing them also reaps
        // the expired ones, which sends their destroy events.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let listed = ns.run(&["conntrack", "-L"]);
            let text = String::from_utf8_lossy(&listed.stdout).into_owned();
            if !text.contains("127.0.0.3")
                && !text.contains(&format!("dport={}", dns.addr().port()))
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "entries did not expire:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        scenario::trace(&client, "conntrack destroyed")
    });

    // The entries are gone from the kernel: what the trace holds came from the destroy
    // events, captured after the timeout (1 s) ran from the close.
    let tcp = http_conn(&trace);
    let ct = entry(&tcp.conntrack, "the HTTP connection", &trace);
    assert!(
        matches!(ct.tcp_state, TcpState::TimeWait | TcpState::Close),
        "{}",
        dump(&trace)
    );
    assert!(
        ct.status
            .contains(ConntrackStatus::SRC_NAT_DONE | ConntrackStatus::DST_NAT_DONE)
    );
    assert_tcp_counters(ct, tcp, &trace);
    let closed = scenario::time_of(&trace, &tcp.conn_close_at).expect("connClosedAt");
    let captured = scenario::time_of(&trace, &ct.captured_at).expect("capturedAt");
    assert!(
        captured - closed >= time::Duration::milliseconds(900),
        "captured {captured} closed {closed}\n{}",
        dump(&trace)
    );
    for udp in dns_conns(&trace) {
        let ct = entry(&udp.conntrack, "a DNS connection", &trace);
        assert_udp_counters(ct, udp, &trace);
        let closed = scenario::time_of(&trace, &udp.conn_close_at).expect("connClosedAt");
        let captured = scenario::time_of(&trace, &ct.captured_at).expect("capturedAt");
        assert!(
            captured - closed >= time::Duration::milliseconds(900),
            "{}",
            dump(&trace)
        );
    }
}

#[test]
fn conntrack_without_cap_net_admin_fails_construction() {
    if !require_root("conntrack_without_cap_net_admin_fails_construction") {
        return;
    }
    // Drop CAP_NET_ADMIN on one thread only (capabilities are per thread) and build there.
    let result = std::thread::spawn(|| {
        drop_cap_net_admin();
        HttpClient::new(
            HttpClientConfig::default(),
            TraceOptions {
                conntrack: true,
                ..TraceOptions::default()
            },
        )
        .map(drop)
    })
    .join()
    .unwrap();
    match result {
        Err(ClientError::Conntrack(ConntrackError::NotPermitted { .. })) => {}
        other => panic!("expected a NotPermitted conntrack error, got {other:?}"),
    }
    let error = format!(
        "{}",
        ConntrackError::NotPermitted {
            call: "x",
            source: std::io::Error::from_raw_os_error(libc::EPERM)
        }
    );
    assert!(error.contains("CAP_NET_ADMIN"), "{error}");
}

/// Removes CAP_NET_ADMIN from the calling thread's effective set.
fn drop_cap_net_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data structs, as the ABI requires;
    // pid 0 is the calling thread.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0
        );
    }
}

#[test]
fn conntrack_entry_for_an_ipv6_connection() {
    if !require_root("conntrack_entry_for_an_ipv6_connection")
        || !require_tools("conntrack_entry_for_an_ipv6_connection", &[NFT])
    {
        return;
    }
    let ns = namespace("ct-v6");
    ns.nft(
        "table inet track {
            chain out { type filter hook output priority 0; ct state new accept; }
        }",
    );
    let trace = ns.block_on(|| async {
        let server = nettrace_tests::fixtures::http::HttpServer::start(
            nettrace_tests::fixtures::http::HttpOptions {
                bind: nettrace_tests::fixtures::net::V6,
                ..Default::default()
            },
        )
        .await
        .expect("IPv6 fixture");
        let client = conntrack_client(HttpClientConfig::default());
        get_ok(&client, &server.url("/bytes/3000")).await;
        scenario::trace(&client, "conntrack IPv6")
    });
    let tcp = http_conn(&trace);
    let ct = entry(&tcp.conntrack, "the IPv6 connection", &trace);
    assert_eq!(ct.addr_orig, tcp.addr_tuple, "{}", dump(&trace));
    assert!(ct.addr_orig.src_ip.is_some_and(|ip| ip.is_ipv6()), "{ct:?}");
    assert!(ct.status.contains(ConntrackStatus::CONFIRMED), "{ct:?}");
    assert!(ct.bytes_recv > 3000, "counters on: {ct:?}");
}
