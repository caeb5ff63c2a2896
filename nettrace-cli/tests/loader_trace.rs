//! `nettrace-loader trace -- curl ...` in a network namespace of its own, whose resolv.conf
//! (bind-mounted by `ip netns exec` from /etc/netns/<name>/resolv.conf) points at the test DNS
//! server on 127.0.0.1:53: the trace, taken from kernel events alone, holds the dial, the TCP
//! connection with its kernel facts and socket operations, the DNS query and answer, and the
//! capture. Also: a failing command still writes its trace, and `kill -9` of the loader leaves
//! nothing attached.
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use nettrace::model::{ConnProcess, HttpTrace};
use nettrace_tests::{
    fixtures::{
        dns::{DnsServer, Zone},
        http::HttpServer,
    },
    netns::{NetNs, NsThread},
    require_root,
    scenario::{EXAMPLE_HOST, TempDir, run_command},
    skip,
};

const LOADER: &str = env!("CARGO_BIN_EXE_nettrace-loader");
const LIMIT: Duration = Duration::from_secs(60);

/// A namespace with the DNS fixture on 127.0.0.1:53 (example.test -> 127.0.0.1), a plain
/// HTTP server, and a resolv.conf for `ip netns exec`.
struct Lab {
    _servers: NsThread,
    http_port: u16,
    resolv_dir: PathBuf,
    ns: NetNs,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let ns = NetNs::new(tag).expect("creating the namespace");
        let resolv_dir = Path::new("/etc/netns").join(ns.name());
        std::fs::create_dir_all(&resolv_dir).expect("creating /etc/netns/<name>");
        std::fs::write(
            resolv_dir.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
        )
        .expect("writing resolv.conf");
        let (tx, rx) = std::sync::mpsc::channel();
        let servers = ns.spawn(move || async move {
            let zone = Zone::new().a(EXAMPLE_HOST, [Ipv4Addr::LOCALHOST]);
            let dns = DnsServer::start_at(SocketAddr::from((Ipv4Addr::LOCALHOST, 53)), zone)
                .await
                .expect("DNS fixture on port 53");
            let http = HttpServer::plain().await.expect("HTTP fixture");
            let _ = tx.send(http.addr().port());
            std::future::pending::<()>().await;
            drop((dns, http));
        });
        let http_port = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the fixtures started");
        Self {
            _servers: servers,
            http_port,
            resolv_dir,
            ns,
        }
    }

    /// `nettrace-loader trace <args> -- ip netns exec <ns> <command>`, with the loader in the
    /// namespace's network (its capture interfaces and conntrack are the namespace's) but in
    /// the host's mounts (`ip netns exec` remounts /sys, hiding the cgroup file system), and
    /// the command run by `ip netns exec` for the namespace's resolv.conf.
    fn loader(&self, args: &[&str], command: &[&str]) -> Command {
        let mut loader = Command::new("nsenter");
        loader
            .arg(format!("--net=/run/netns/{}", self.ns.name()))
            .arg(LOADER)
            .arg("trace")
            .args(args)
            .args(["--", "ip", "netns", "exec", self.ns.name()])
            .args(command);
        loader
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.resolv_dir);
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn read_trace(path: &Path) -> HttpTrace {
    let text = std::fs::read_to_string(path).expect("the trace was written");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("trace does not parse: {e}\n{text}"))
}

#[test]
fn loader_traces_curl_with_dns_tcp_facts_and_capture() {
    const TEST: &str = "loader_traces_curl_with_dns_tcp_facts_and_capture";
    if !require_root(TEST) {
        return;
    }
    if !have("curl") || !have("tshark") {
        skip(TEST, "needs curl and tshark");
        return;
    }
    let lab = Lab::new("ldr");
    let dir = TempDir::new("loader-trace");
    let out = dir.path("trace.json");
    let pcaps = dir.path("pcap");
    let url = format!("http://{EXAMPLE_HOST}:{}/", lab.http_port);
    // `ip netns exec` and the shell exec their command: curl runs with the shell's pid.
    let pid_file = dir.path("curl.pid");
    let script = format!(
        "echo $$ > {}; exec curl -sS -o /dev/null {url}",
        pid_file.display()
    );
    let output = run_command(
        lab.loader(
            &[
                "-o",
                out.to_str().expect("utf-8 path"),
                "--pcap",
                "lo",
                "--pcap-dir",
                pcaps.to_str().expect("utf-8 path"),
            ],
            &["sh", "-c", &script],
        ),
        LIMIT,
    );
    assert_eq!(output.code, Some(0), "loader failed: {output:?}");
    let trace = read_trace(&out);
    let dump = serde_json::to_string_pretty(&trace).expect("json");
    let net = &trace.net_trace;
    let curl = ConnProcess {
        pid: std::fs::read_to_string(&pid_file)
            .expect("the shell wrote its pid")
            .trim()
            .parse()
            .expect("a pid"),
        comm: "curl".to_owned(),
    };

    // The dial and its TCP connection, with the kernel's facts and the socket operations.
    let http_addr = format!("127.0.0.1:{}", lab.http_port);
    let dial = net
        .dials
        .iter()
        .find(|d| d.dst_address == http_addr)
        .unwrap_or_else(|| panic!("no dial to {http_addr}:\n{dump}"));
    assert!(dial.dial_err.is_empty(), "{dump}");
    let conn = net
        .tcp_conns
        .iter()
        .find(|c| c.trace_id == dial.established_conn)
        .unwrap_or_else(|| panic!("the dial's connection is missing:\n{dump}"));
    assert!(conn.connected, "{dump}");
    assert_eq!(conn.process.as_ref(), Some(&curl), "{dump}");
    let waterfall = nettrace::waterfall::render(&trace);
    assert!(
        waterfall.contains(&format!("{http_addr} pid {} curl", curl.pid)),
        "{waterfall}"
    );
    assert_eq!(conn.addr_tuple.dst_port, lab.http_port);
    assert_ne!(conn.addr_tuple.src_port, 0, "{dump}");
    assert!(
        conn.total_sent_bytes > 0 && conn.total_recv_bytes > 0,
        "{dump}"
    );
    let kernel = conn
        .kernel
        .as_ref()
        .unwrap_or_else(|| panic!("no kernel facts:\n{dump}"));
    assert!(
        kernel.states.iter().any(|s| s.to == "established"),
        "{dump}"
    );
    assert!(kernel.segs_out > 0 && kernel.bytes_received > 0, "{dump}");
    let ops = conn
        .socket_trace
        .as_ref()
        .unwrap_or_else(|| panic!("no socket operations:\n{dump}"));
    assert!(!ops.socket_ops.is_empty(), "{dump}");

    // The DNS exchange over UDP, parsed from the copied datagrams.
    let udp = net
        .udp_conns
        .iter()
        .find(|u| u.addr_tuple.dst_port == 53)
        .unwrap_or_else(|| panic!("no UDP connection to the DNS server:\n{dump}"));
    assert_eq!(
        udp.process.as_ref().map(|p| p.pid),
        Some(curl.pid),
        "{dump}"
    );
    let dns = net
        .dns_queries
        .iter()
        .find(|q| q.connection == udp.trace_id)
        .unwrap_or_else(|| panic!("no DNS query trace:\n{dump}"));
    let wanted = format!("{EXAMPLE_HOST}.");
    assert!(
        dns.dns_query_msgs
            .iter()
            .any(|m| m.questions.iter().any(|q| q.name == wanted)),
        "{dump}"
    );
    assert!(
        dns.dns_reply_msgs
            .iter()
            .any(|m| m.answers.iter().any(|a| a.resolved_val == "127.0.0.1")),
        "{dump}"
    );

    // The capture holds the DNS exchange and the HTTP connection.
    let pcap = pcaps.join("lo.pcap");
    assert!(pcaps.join("lo.pcapng").exists());
    let count = |filter: &str| -> usize {
        let out = Command::new("tshark")
            .args(["-r", pcap.to_str().expect("utf-8"), "-Y", filter])
            .output()
            .expect("running tshark");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert!(
        count("dns.qry.name == \"example.test\"") >= 2,
        "DNS missing in the capture"
    );
    assert!(
        count(&format!("tcp.port == {}", lab.http_port)) >= 3,
        "TCP missing in the capture"
    );
}

#[test]
fn loader_writes_the_trace_of_a_failing_command() {
    const TEST: &str = "loader_writes_the_trace_of_a_failing_command";
    if !require_root(TEST) {
        return;
    }
    if !have("curl") {
        skip(TEST, "needs curl");
        return;
    }
    let lab = Lab::new("ldrfail");
    let dir = TempDir::new("loader-fail");
    let out = dir.path("trace.json");
    // Nothing listens on port 9 of the namespace's loopback: the connection is refused.
    let output = run_command(
        lab.loader(
            &["-o", out.to_str().expect("utf-8 path")],
            &["curl", "-sS", "http://127.0.0.1:9/"],
        ),
        LIMIT,
    );
    assert_eq!(
        output.code,
        Some(7),
        "curl's exit code passes through: {output:?}"
    );
    let trace = read_trace(&out);
    let dump = serde_json::to_string_pretty(&trace).expect("json");
    let dial = trace
        .net_trace
        .dials
        .iter()
        .find(|d| d.dst_address == "127.0.0.1:9")
        .unwrap_or_else(|| panic!("no dial:\n{dump}"));
    assert!(dial.dial_err.contains("refused"), "{dump}");
    assert!(dial.established_conn.is_empty(), "{dump}");
}

/// `trace --pid P` traces P and its descendants only, not the other processes of P's cgroup:
/// P is a shell sharing this test's cgroup; once the loader says it traces, the test connects
/// to a loopback server itself, then lets the shell run curl against the same server. The
/// trace holds curl's connection alone, and P's family is moved back afterwards.
#[test]
fn loader_pid_traces_the_process_and_its_descendants_only() {
    use std::{
        io::{BufRead, BufReader, Read, Write},
        net::{TcpListener, TcpStream},
        process::Stdio,
        sync::mpsc,
    };
    const TEST: &str = "loader_pid_traces_the_process_and_its_descendants_only";
    if !require_root(TEST) {
        return;
    }
    if !have("curl") {
        skip(TEST, "needs curl");
        return;
    }
    // A loopback HTTP server answering the test's and curl's request, then ending.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the server");
    let server = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let dir = TempDir::new("loader-pid");
    let out = dir.path("trace.json");
    // P: a shell of this test's cgroup that runs curl (a descendant born while traced) once
    // told to on its stdin, and then ends (which ends the trace).
    let mut shell = Command::new("sh")
        .args([
            "-c",
            &format!("read go; curl -sS -m 10 -o /dev/null http://{server}/from-curl"),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("starting the shell");
    let mut loader = Command::new(LOADER)
        .args(["trace", "-o", out.to_str().expect("utf-8 path"), "--pid"])
        .arg(shell.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the loader");
    let loader_pid = loader.id();
    // The loader's messages, line by line; the first that says it traces ends the wait.
    let (lines_tx, lines) = mpsc::channel();
    let stderr = loader.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut said = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("tracing process") => break,
            Ok(line) => said.push(line),
            Err(e) => {
                let _ = loader.kill();
                let _ = shell.kill();
                panic!("the loader never said it traces ({e}): {said:?}");
            }
        }
    }
    let ours = cgroup2_root().join(
        std::fs::read_to_string("/proc/self/cgroup")
            .expect("our cgroup")
            .lines()
            .find_map(|l| l.strip_prefix("0::/"))
            .expect("a cgroup v2 entry")
            .trim(),
    );
    let moved_to = ours.join(format!("nettrace-loader-{loader_pid}"));
    let procs = std::fs::read_to_string(moved_to.join("cgroup.procs")).unwrap_or_default();
    assert!(
        procs.lines().any(|l| l.trim() == shell.id().to_string()),
        "the shell is not in {moved_to:?}: {procs:?}"
    );

    // Another process of the shell's former cgroup (this test) connects: not traced.
    let mut other = TcpStream::connect(server).expect("connecting from the test");
    let other_port = other.local_addr().expect("local address").port();
    other
        .write_all(b"GET /from-test HTTP/1.0\r\n\r\n")
        .expect("sending");
    let _ = other.read(&mut [0u8; 256]);
    drop(other);
    shell
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(b"go\n")
        .expect("telling the shell to go");

    // The shell ends after curl, and the loader after the shell.
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let shell = shell.wait();
        let _ = done_tx.send((loader.wait(), shell));
    });
    let Ok((status, shell_status)) = done.recv_timeout(LIMIT) else {
        let _ = Command::new("kill")
            .args(["-9", &loader_pid.to_string()])
            .status();
        panic!("the loader did not end with the shell");
    };
    assert!(
        shell_status.expect("the shell's status").success(),
        "curl failed"
    );
    let status = status.expect("the loader's status");
    let said: Vec<String> = said.into_iter().chain(lines.try_iter()).collect();
    assert!(status.success(), "loader: {status}: {said:?}");

    let trace = read_trace(&out);
    let dump = serde_json::to_string_pretty(&trace).expect("json");
    let conns = &trace.net_trace.tcp_conns;
    assert!(
        conns.iter().all(|c| c.addr_tuple.src_port != other_port),
        "the test's own connection was traced:\n{dump}"
    );
    let to_server: Vec<_> = conns
        .iter()
        .filter(|c| c.addr_tuple.dst_port == server.port())
        .collect();
    assert_eq!(to_server.len(), 1, "{dump}");
    let curl = to_server[0].process.as_ref().expect("its process");
    assert_eq!(curl.comm, "curl", "{dump}");
    assert!(to_server[0].connected, "{dump}");
    // Moved back, and the loader's cgroup removed.
    assert!(!moved_to.exists(), "{moved_to:?} left behind: {said:?}");
}

/// How many programs are attached to `cgroup` at `cgroup/sock_create`
/// (`BPF_PROG_QUERY`, as `bpftool cgroup show` asks).
fn sock_create_programs(cgroup: &Path) -> u32 {
    use std::os::fd::AsRawFd;
    const BPF_PROG_QUERY: libc::c_long = 16;
    const BPF_CGROUP_INET_SOCK_CREATE: u32 = 2;
    let dir = std::fs::File::open(cgroup).expect("opening the cgroup");
    // union bpf_attr, `query` member: target_fd, attach_type, query_flags, attach_flags,
    // prog_ids (u64), prog_cnt (u32), ...; the rest stays zero.
    let mut attr = [0u32; 16];
    attr[0] = dir.as_raw_fd() as u32;
    attr[1] = BPF_CGROUP_INET_SOCK_CREATE;
    // SAFETY: `attr` is a zeroed, writable buffer of 64 bytes, at least the size of the
    // `query` member of `union bpf_attr`; the kernel only writes `prog_cnt` (and ids, not
    // asked for).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    assert_eq!(rc, 0, "BPF_PROG_QUERY: {}", std::io::Error::last_os_error());
    attr[6]
}

#[test]
fn loader_killed_leaves_nothing_attached_and_restarts() {
    const TEST: &str = "loader_killed_leaves_nothing_attached_and_restarts";
    if !require_root(TEST) {
        return;
    }
    let mut loader = Command::new(LOADER)
        .args(["trace", "-o", "/dev/null", "--", "sleep", "30"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the loader");
    let cgroup = cgroup2_root().join(format!("nettrace-loader-{}", loader.id()));
    // The command joins the cgroup only after every program is attached to it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sleeper = loop {
        let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
        if let Some(pid) = procs.lines().next() {
            break pid.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the command never ran in {cgroup:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(sock_create_programs(&cgroup), 1, "nothing attached");
    loader.kill().expect("kill -9");
    let _ = loader.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sock_create_programs(&cgroup) != 0 {
        assert!(Instant::now() < deadline, "still attached after kill -9");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill").args(["-9", &sleeper]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::remove_dir(&cgroup).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A new loader works at once.
    let output = run_command(
        {
            let mut c = Command::new(LOADER);
            c.args(["trace", "-o", "/dev/null", "--", "true"]);
            c
        },
        LIMIT,
    );
    assert_eq!(output.code, Some(0), "restart failed: {output:?}");
}

fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    mounts
        .lines()
        .find_map(|line| {
            let mut f = line.split_whitespace();
            let (_, target, kind) = (f.next()?, f.next()?, f.next()?);
            (kind == "cgroup2").then(|| PathBuf::from(target))
        })
        .expect("a cgroup2 mount")
}

#[test]
fn loader_streams_one_trace_per_closed_connection() {
    const TEST: &str = "loader_streams_one_trace_per_closed_connection";
    if !require_root(TEST) {
        return;
    }
    if !have("curl") {
        skip(TEST, "needs curl");
        return;
    }
    let lab = Lab::new("lds");
    let dir = TempDir::new("loader-stream");
    let out = dir.path("trace.jsonl");
    let url = format!("http://127.0.0.1:{}/", lab.http_port);
    let script = format!("curl -sS -o /dev/null {url} && curl -sS -o /dev/null {url}");
    let output = run_command(
        lab.loader(
            &["--stream", "-o", out.to_str().expect("utf-8 path")],
            &["sh", "-c", &script],
        ),
        LIMIT,
    );
    assert_eq!(output.code, Some(0), "loader failed: {output:?}");
    let text = std::fs::read_to_string(&out).expect("the stream was written");
    let traces: Vec<HttpTrace> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let to_server: Vec<_> = traces
        .iter()
        .filter(|t| {
            t.net_trace
                .tcp_conns
                .iter()
                .any(|c| c.addr_tuple.dst_port == lab.http_port)
        })
        .collect();
    assert_eq!(to_server.len(), 2, "one line per curl connection:\n{text}");
    for trace in &to_server {
        let net = &trace.net_trace;
        assert_eq!(net.tcp_conns.len(), 1, "{text}");
        assert_eq!(net.dials.len(), 1, "{text}");
        assert_eq!(net.tcp_conns[0].from_dial, net.dials[0].trace_id);
        assert!(net.tcp_conns[0].total_recv_bytes > 0, "{text}");
    }
    assert_ne!(
        to_server[0].net_trace.tcp_conns[0].trace_id,
        to_server[1].net_trace.tcp_conns[0].trace_id
    );
}
