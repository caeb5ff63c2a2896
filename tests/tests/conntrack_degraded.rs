//! Root scenarios for `WithConntrack` where the kernel cannot give everything: no conntrack
//! active in the namespace (no entries), and counters off (`nf_conntrack_acct=0`: entries
//! without counters). The request and the rest of the trace are unaffected, the log says what
//! is missing and why, and the library changes no system setting.
use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use nettrace::client::{HttpClientConfig, TraceOptions};
use nettrace_tests::{
    NFT,
    netns::NetNs,
    require_root, require_tools,
    scenario::{self, dump, get_ok},
};

/// Everything logged while it is the thread's subscriber.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// One traced GET inside `ns` with conntrack on, logging into the returned buffer.
fn traced_get(ns: &NetNs) -> (nettrace::model::HttpTrace, String) {
    let log = LogBuffer::default();
    let writer = log.clone();
    let trace = ns.enter(move || {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = scenario::plain_server().await;
            let client = scenario::client(
                HttpClientConfig {
                    disable_keep_alive: true,
                    ..HttpClientConfig::default()
                },
                TraceOptions {
                    conntrack: true,
                    logging: true,
                    ..scenario::full_options()
                },
            );
            get_ok(&client, &server.url("/bytes/100")).await;
            scenario::trace(&client, "degraded conntrack")
        })
    });
    (trace, log.text())
}

fn acct(ns: &NetNs) -> String {
    let out = ns.run(&["sysctl", "-n", "net.netfilter.nf_conntrack_acct"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn without_active_conntrack_the_trace_has_no_entries_and_the_log_says_why() {
    if !require_root("without_active_conntrack_the_trace_has_no_entries_and_the_log_says_why") {
        return;
    }
    // A fresh namespace: no rule asks for conntrack, so it tracks nothing.
    let ns = NetNs::new("ct-none").expect("namespace");
    let (trace, log) = traced_get(&ns);
    assert_eq!(trace.http_requests[0].resp_status_code, 200);
    let conn = &trace.net_trace.tcp_conns[0];
    assert!(conn.conntrack.is_none(), "{}", dump(&trace));
    assert!(
        log.contains("conntrack: no entry") && log.contains("not active"),
        "the log says why: {log}"
    );
}

#[test]
fn with_counters_off_entries_come_without_counters_and_the_log_says_why() {
    if !require_root("with_counters_off_entries_come_without_counters_and_the_log_says_why")
        || !require_tools(
            "with_counters_off_entries_come_without_counters_and_the_log_says_why",
            &[NFT],
        )
    {
        return;
    }
    let ns = NetNs::new("ct-noacct").expect("namespace");
    ns.nft(
        "table inet track {
            chain out { type filter hook output priority 0; ct state new accept; }
        }",
    );
    ns.sysctl("net.netfilter.nf_conntrack_acct", "0");
    let (trace, log) = traced_get(&ns);
    let conn = &trace.net_trace.tcp_conns[0];
    let entry = conn
        .conntrack
        .as_ref()
        .unwrap_or_else(|| panic!("the entry itself exists: {}", dump(&trace)));
    assert!(entry.addr_orig.src().is_some());
    assert_eq!(
        (
            entry.packets_sent,
            entry.packets_recv,
            entry.bytes_sent,
            entry.bytes_recv
        ),
        (0, 0, 0, 0)
    );
    assert!(log.contains("nf_conntrack_acct"), "the log says why: {log}");
    assert_eq!(acct(&ns), "0", "the library changed no setting");
}
