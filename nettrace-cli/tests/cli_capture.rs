//! `nettrace get --pcap ...`: the packet capture files of the CLI, read by the real `tshark`,
//! including a traced HTTPS request that `tshark` decrypts with the recorded TLS secrets
//! (inside the pcapng, and from the .keys file beside the pcap). Unprivileged and without a
//! loader daemon, `--pcap` is refused with a clear error (through a daemon it works, see
//! `loader_serve_capture.rs`).
use std::{process::Command, time::Duration};

use nettrace_tests::{
    fixtures::tls::{LeafKind, ServerTlsOptions},
    require_root,
    scenario::{self, CommandOutput, EXAMPLE_HOST, TempDir},
    tshark::{have_tshark, tshark_fields, tshark_fields_with},
    unprivileged::{NOBODY, RunnableCopy, as_user},
};

const LIMIT: Duration = Duration::from_secs(30);

async fn run(command: Command) -> CommandOutput {
    tokio::task::spawn_blocking(move || scenario::run_command(command, LIMIT))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcap_files_of_a_traced_https_request_decrypt_in_tshark() {
    let test = "pcap_files_of_a_traced_https_request_decrypt_in_tshark";
    if !require_root(test) || !have_tshark(test) {
        return;
    }
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h1()).await;
    let dns = scenario::example_dns().await;
    let dir = TempDir::new("cli-capture");
    let ca = dir.write("ca.pem", pki.ca_pem());
    let pcap_dir = dir.path("captures");
    let url = server.url_with_host(EXAMPLE_HOST, "/bytes/2000");
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command
        .args(["get", &url, "--nameserver", &dns.addr().to_string()])
        .arg("--cacert")
        .arg(&ca)
        .args([
            "--no-keepalive",
            "--pcap",
            "lo",
            "--tls-keys",
            "--snaplen",
            "9216",
        ])
        .arg("--pcap-dir")
        .arg(&pcap_dir);
    let out = run(command).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let pcap = pcap_dir.join("lo.pcap");
    let pcapng = pcap_dir.join("lo.pcapng");
    let keys = pcap_dir.join("lo.keys");
    for file in [&pcap, &pcapng, &keys] {
        assert!(file.exists(), "{} was not written: {out:?}", file.display());
    }
    let decrypted = |file: &std::path::Path, extra: &[&str]| -> Vec<String> {
        let mut args = extra.to_vec();
        args.extend(["-Y", "http"]);
        tshark_fields_with(file, &args, &["http.request.uri", "http.response.code"])
            .into_iter()
            .map(|row| row.concat())
            .collect()
    };
    let expected = vec!["/bytes/2000".to_owned(), "200".to_owned()];
    assert_eq!(
        decrypted(&pcapng, &[]),
        expected,
        "secrets inside the pcapng"
    );
    let keylog = format!("tls.keylog_file:{}", keys.display());
    assert_eq!(
        decrypted(&pcap, &["-o", &keylog]),
        expected,
        "pcap + key log"
    );
    assert!(
        decrypted(&pcap, &[]).is_empty(),
        "nothing readable without the secrets"
    );
    // DNS exchanges are in the capture too, named as such by tshark.
    let dns_rows = tshark_fields(&pcap, &["dns.qry.name"]);
    assert!(
        dns_rows.iter().any(|row| row[0] == EXAMPLE_HOST),
        "{dns_rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_pcap_is_refused_with_the_privilege_named() {
    if !require_root("unprivileged_pcap_is_refused_with_the_privilege_named (switches to nobody)") {
        return;
    }
    // Without a daemon: no socket at the default path, and no other path named.
    let default = std::path::Path::new(nettrace::daemon::DEFAULT_SOCKET_PATH);
    assert!(
        !default.exists(),
        "a daemon listens at {} (tests start theirs on temporary paths): stop it",
        default.display()
    );
    let server = scenario::plain_server().await;
    let binary = RunnableCopy::of(std::path::Path::new(env!("CARGO_BIN_EXE_nettrace")));
    let mut command = as_user(NOBODY, binary.path());
    command.env_remove(nettrace::daemon::SOCKET_PATH_ENV);
    command.args([
        "get",
        &server.url("/"),
        "--pcap",
        "lo",
        "--pcap-dir",
        "/tmp",
    ]);
    let out = run(command).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("packet capture unavailable")
            && out.stderr.contains("CAP_BPF + CAP_NET_ADMIN"),
        "{out:?}"
    );
}
