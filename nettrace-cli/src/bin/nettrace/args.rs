//! Command-line arguments of `nettrace`.
use std::{net::IpAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Trace every network operation behind HTTP requests.
#[derive(Parser, Debug)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Send HTTP request(s) through one traced client and print the trace (JSON as Go's
    /// nettrace writes it, or a waterfall). Exit code 0 when every request got a response,
    /// 1 when one failed, 2 on a usage error.
    Get(Box<GetArgs>),
    /// Show a trace JSON file written by this tool or by Go nettrace.
    Show(ShowArgs),
}

/// Output formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// The trace as JSON (Go nettrace's format).
    Json,
    /// A readable timeline.
    Waterfall,
}

/// How much of the header fields is recorded.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Headers {
    /// No header fields.
    None,
    /// Names only.
    Names,
    /// Names and value lengths.
    Lengths,
    /// Names and values.
    Values,
}

/// Whether the eBPF programs trace the sockets.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// When the process may load eBPF programs.
    Auto,
    /// Never.
    Off,
    /// Always; fail otherwise.
    Require,
}

#[derive(Args, Debug)]
pub(crate) struct GetArgs {
    /// The URL to request.
    pub(crate) url: String,
    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub(crate) method: String,
    /// Request body.
    #[arg(short = 'd', long)]
    pub(crate) data: Option<String>,
    /// Request header 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Nameserver IP:PORT to use instead of /etc/resolv.conf's (repeatable, used in order).
    #[arg(long = "nameserver", value_name = "IP:PORT")]
    pub(crate) nameservers: Vec<String>,
    /// Skip this nameserver IP[:PORT] (repeatable); recorded as skipped.
    #[arg(long = "skip-nameserver", value_name = "IP[:PORT]")]
    pub(crate) skip_nameservers: Vec<String>,
    /// Source IP address for connections and DNS queries.
    #[arg(long)]
    pub(crate) source_ip: Option<IpAddr>,
    /// Proxy URL (http:// or https://) for the request(s); `http://user:password@host:port`
    /// logs in with Basic credentials (the trace shows the password as `***`).
    #[arg(long)]
    pub(crate) proxy: Option<String>,
    /// PEM file of root certificates that replace the system's (a self-signed server
    /// certificate may be one: it is trusted for the names it holds).
    #[arg(long)]
    pub(crate) cacert: Option<PathBuf>,
    /// Do not fail when the server's certificate does not verify; the trace still records
    /// what verification said (`tlsTunnels[].insecure`, `certVerifyErr`).
    #[arg(short = 'k', long)]
    pub(crate) insecure: bool,
    /// PEM file of the client certificate (chain, leaf first) for servers that ask for one;
    /// the key is read from --key, else from this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// Offer HTTP/2 (ALPN h2).
    #[arg(long)]
    pub(crate) http2: bool,
    /// Time limit for each whole request, in seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
    /// Time limit for each TCP handshake, in seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) connect_timeout: Option<f64>,
    /// Time limit for each TLS handshake, in seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) tls_timeout: Option<f64>,
    /// One request per connection.
    #[arg(long)]
    pub(crate) no_keepalive: bool,
    /// Send the request N times, one after the other, through the same client.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) repeat: u32,
    /// With --repeat: clear the trace after each request and print one trace per request
    /// (one JSON document per line).
    #[arg(long)]
    pub(crate) clear_trace: bool,
    /// Header fields to record.
    #[arg(long = "headers", value_enum, default_value_t = Headers::None)]
    pub(crate) headers_mode: Headers,
    /// Do not record this header field (repeatable).
    #[arg(long = "exclude-header", value_name = "NAME")]
    pub(crate) exclude_headers: Vec<String>,
    /// Record every socket read and write.
    #[arg(long)]
    pub(crate) sock_trace: bool,
    /// Record every DNS query and reply.
    #[arg(long)]
    pub(crate) dns_trace: bool,
    /// Kernel facts from eBPF: auto (when permitted), off, or require (fail without them).
    #[arg(long, value_enum, default_value_t = Kernel::Auto)]
    pub(crate) kernel: Kernel,
    /// The socket of the loader daemon (`nettrace-loader serve`), used for kernel facts when
    /// this process may not load the programs [default: $NETTRACE_DAEMON_SOCKET, else
    /// /run/nettrace/loader.sock].
    #[arg(long, value_name = "PATH")]
    pub(crate) daemon_socket: Option<std::path::PathBuf>,
    /// Capture the traced connections' packets on this interface (repeatable). Needs the
    /// privilege to load eBPF programs (root, or CAP_BPF + CAP_NET_ADMIN), or a running
    /// `nettrace-loader serve` (then without --icmp and --arp).
    #[arg(long = "pcap", value_name = "IFACE")]
    pub(crate) pcap: Vec<String>,
    /// Folder for the captures: DIR/<iface>.pcap and DIR/<iface>.pcapng (and, with
    /// --tls-keys, DIR/<iface>.keys in SSLKEYLOGFILE format). Default: the current folder.
    #[arg(long, value_name = "DIR")]
    pub(crate) pcap_dir: Option<PathBuf>,
    /// Bytes kept of each captured packet (1 to 9216).
    #[arg(
        long,
        value_name = "N",
        default_value_t = nettrace::capture::DEFAULT_SNAPLEN,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(nettrace::capture::MAX_SNAPLEN))
    )]
    pub(crate) snaplen: u32,
    /// Bytes kept per interface; later packets are dropped and the capture marked truncated.
    #[arg(long, value_name = "BYTES", default_value_t = nettrace::capture::DEFAULT_TOTAL_SIZE_LIMIT)]
    pub(crate) pcap_limit: usize,
    /// Also capture every ICMP and ICMPv6 packet on the interfaces.
    #[arg(long)]
    pub(crate) icmp: bool,
    /// Also capture every ARP packet on the interfaces.
    #[arg(long)]
    pub(crate) arp: bool,
    /// Capture only the headers of TCP packets.
    #[arg(long)]
    pub(crate) tcp_no_payload: bool,
    /// Record the TLS secrets of the traced connections, so that Wireshark decrypts them (in
    /// the .pcapng, and in a .keys file beside the .pcap). Without --pcap: written to
    /// FILE.keys beside --output FILE, else to nettrace.keys in the current folder.
    /// (SSLKEYLOGFILE=PATH appends them to PATH in any case, as curl does.)
    #[arg(long)]
    pub(crate) tls_keys: bool,
    /// Attach each connection's netfilter conntrack (NAT) entry; needs CAP_NET_ADMIN.
    #[arg(long)]
    pub(crate) conntrack: bool,
    /// Description stored in the trace.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Write the trace here instead of standard output.
    #[arg(short = 'o', long)]
    pub(crate) output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub(crate) format: Format,
}

#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// The trace JSON file (`-`: standard input); at most 256 MiB.
    pub(crate) file: PathBuf,
    /// Output format (json re-emits the file unchanged after checking it).
    #[arg(long, value_enum, default_value_t = Format::Waterfall)]
    pub(crate) format: Format,
}
