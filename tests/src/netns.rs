//! Network namespaces for root tests: a uniquely named namespace that is deleted when dropped
//! (panics included), veth pairs, commands run inside (`nft`, `sysctl`), and code run inside
//! on a dedicated thread.
//!
//! Needs root and `ip` (iproute2); `nft` and `sysctl` when a test uses them.
//!
//! ```no_run
//! use nettrace_tests::netns::NetNs;
//!
//! let ns = NetNs::new("demo").unwrap();
//! ns.run(&["sysctl", "-w", "net.netfilter.nf_conntrack_acct=1"]);
//! ns.nft("table ip t { chain c { type filter hook output priority 0; ct state new accept; } }");
//! let port = ns.block_on(|| async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//!     listener.local_addr().unwrap().port()
//! });
//! # let _ = port;
//! ```
//!
//! Where code runs: [`NetNs::enter`] and [`NetNs::block_on`] run on a fresh thread that has
//! joined the namespace (`setns(CLONE_NEWNET)` affects only the calling thread). Threads
//! spawned from there (tokio's blocking pool included) inherit the namespace, and a socket
//! (netlink included) belongs to the namespace of the thread that opened it, for its whole
//! life, whichever thread uses it later.
use std::{
    fs::File,
    future::Future,
    io::{self, Write},
    os::fd::AsRawFd,
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

/// Prefix of every namespace these helpers create (stale ones are found by it).
pub const PREFIX: &str = "nettrace-t";

/// Limit on one `ip`/`nft`/`sysctl` command.
const COMMAND_LIMIT: Duration = Duration::from_secs(10);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace created for a test (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `nettrace-t-<tag>-<pid>-<n>` with its loopback up. Namespaces left behind by
    /// dead test processes (killed before their drop ran) are deleted first.
    pub fn new(tag: &str) -> io::Result<Self> {
        remove_stale();
        let name = format!(
            "{PREFIX}-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        command_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.try_run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`, `ip -n`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `argv` inside the namespace (`ip netns exec`); an error when it cannot start,
    /// exceeds [`COMMAND_LIMIT`] or exits non-zero (with its stderr).
    pub fn try_run(&self, argv: &[&str]) -> io::Result<Output> {
        self.try_run_with_input(argv, None)
    }

    /// [`NetNs::try_run`] that panics on failure.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.try_run(argv)
            .unwrap_or_else(|e| panic!("in netns {}: {argv:?}: {e}", self.name))
    }

    /// Runs `argv` inside the namespace with `input` on its stdin.
    pub fn try_run_with_input(&self, argv: &[&str], input: Option<&str>) -> io::Result<Output> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(argv);
        run_bounded(&mut command, input)
    }

    /// Loads an nft ruleset (`nft -f -`) into the namespace; panics on failure.
    pub fn nft(&self, ruleset: &str) {
        self.try_run_with_input(&["nft", "-f", "-"], Some(ruleset))
            .unwrap_or_else(|e| panic!("nft in {}: {e}\n{ruleset}", self.name));
    }

    /// Sets a (per-namespace) sysctl inside the namespace; panics on failure.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Runs `f` on a new thread that has joined the namespace, and returns its result
    /// (a panic in `f` is resumed here).
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let file = self.open();
        thread::scope(|scope| {
            let handle = scope.spawn(move || {
                join_netns(&file);
                f()
            });
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs the future made by `make` to completion on a current-thread tokio runtime inside
    /// the namespace (see [`NetNs::enter`]).
    pub fn block_on<F>(&self, make: impl FnOnce() -> F + Send) -> F::Output
    where
        F: Future,
        F::Output: Send,
    {
        self.enter(|| runtime().block_on(make()))
    }

    /// Runs the future made by `make` in the background, inside the namespace, on its own
    /// thread and runtime, until it ends or the returned handle is dropped.
    pub fn spawn<F>(&self, make: impl FnOnce() -> F + Send + 'static) -> NsThread
    where
        F: Future<Output = ()>,
    {
        let file = self.open();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = thread::spawn(move || {
            join_netns(&file);
            runtime().block_on(async move {
                tokio::select! {
                    () = make() => {}
                    _ = stopped => {}
                }
            });
        });
        NsThread {
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Adds a veth pair: `local_name` here with `local_cidr`, `peer_name` in `peer` (the root
    /// namespace when `None`) with `peer_cidr`; both ends up. The `None` end goes to this process's
    /// namespace and must have a name unique on the machine ([`unique_ifname`]); it goes away with this namespace.
    pub fn veth(
        &self,
        local_name: &str,
        local_cidr: &str,
        peer: Option<&NetNs>,
        peer_name: &str,
        peer_cidr: &str,
    ) -> io::Result<()> {
        // A pid names the namespace of that process: ours, for the root-side end.
        let own_pid = std::process::id().to_string();
        let peer_ns = peer.map_or(own_pid.as_str(), |ns| ns.name.as_str());
        let mut add = Command::new("ip");
        add.args(["-n", &self.name, "link", "add", local_name, "type", "veth"])
            .args(["peer", "name", peer_name, "netns", peer_ns]);
        command_ok(&mut add)?;
        command_ok(Command::new("ip").args([
            "-n", &self.name, "addr", "add", local_cidr, "dev", local_name,
        ]))?;
        command_ok(Command::new("ip").args(["-n", &self.name, "link", "set", local_name, "up"]))?;
        let on_peer = |args: &[&str]| match peer {
            Some(ns) => ns.try_run(&[&["ip"], args].concat()).map(drop),
            None => command_ok(Command::new("ip").args(args)),
        };
        on_peer(&["addr", "add", peer_cidr, "dev", peer_name])?;
        on_peer(&["link", "set", peer_name, "up"])
    }

    fn open(&self) -> File {
        File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("open netns {}: {e}", self.name))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = command_ok(Command::new("ip").args(["netns", "del", &self.name])) {
            let _ = writeln!(io::stderr(), "netns {}: delete failed: {e}", self.name);
        }
    }
}

/// A background task inside a namespace ([`NetNs::spawn`]); dropping it stops the task and
/// waits for its thread.
#[derive(Debug)]
pub struct NsThread {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Drop for NsThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
            && !thread::panicking()
        {
            panic!("a task inside a test namespace panicked");
        }
    }
}

/// An interface name unique on the machine (for veth ends in the root namespace), at most
/// 15 bytes.
pub fn unique_ifname(tag: char) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("nt{tag}{:x}{:x}", std::process::id() & 0xff_ffff, n & 0xfff)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

fn join_netns(file: &File) {
    // SAFETY: setns on a valid namespace fd; it changes only this thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        panic!("setns: {}", io::Error::last_os_error());
    }
}

/// Deletes namespaces of this prefix whose creating process is gone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
            continue;
        };
        // <tag>-<pid>-<n>: the pid is the second field from the end.
        let pid = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = command_ok(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

fn command_ok(command: &mut Command) -> io::Result<()> {
    run_bounded(command, None).map(drop)
}

/// Runs a command with a time limit; non-zero exit is an error carrying stderr.
fn run_bounded(command: &mut Command, input: Option<&str>) -> io::Result<Output> {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes())?;
    }
    // Read the pipes while waiting: a child whose output fills a pipe would never exit.
    let reader = |pipe: Option<Box<dyn io::Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + COMMAND_LIMIT;
    // Polling with a deadline: a child's exit cannot be awaited with a timeout in std.
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{command:?} took over {COMMAND_LIMIT:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if output.status.success() {
        Ok(output)
    } else {
        Err(io::Error::other(format!(
            "{command:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_isolates_and_is_deleted() {
        if !crate::require_root("netns::namespace_isolates_and_is_deleted") {
            return;
        }
        let ns = NetNs::new("self").unwrap();
        let name = ns.name().to_owned();
        assert!(std::path::Path::new(&format!("/run/netns/{name}")).exists());
        ns.veth(
            "v0",
            "10.231.0.1/24",
            None,
            &unique_ifname('s'),
            "10.231.0.2/24",
        )
        .unwrap();
        let links = String::from_utf8(ns.run(&["ip", "-o", "link"]).stdout).unwrap();
        assert!(links.contains("v0@"), "{links}");
        // Inside, the thread is in another namespace whose loopback is up.
        let netns_of_thread = || std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let outside = netns_of_thread();
        let inside = ns.block_on(|| async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            netns_of_thread()
        });
        assert_ne!(inside, outside);
        assert_eq!(ns.enter(netns_of_thread), inside);
        assert!(ns.try_run(&["false"]).is_err());
        drop(ns);
        assert!(!std::path::Path::new(&format!("/run/netns/{name}")).exists());
    }
}
