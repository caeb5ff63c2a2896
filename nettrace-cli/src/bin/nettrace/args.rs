//! Command-line arguments of `nettrace`.
use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{
    ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum,
};

/// Trace every network operation behind HTTP requests.
#[derive(Parser, Debug)]
#[command(version, about)]
pub(crate) struct Cli {
    /// More log lines on standard error: -v debug, -vv trace (RUST_LOG, when set, decides
    /// instead).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Parses the command line (exits with clap's message and code 2 on a usage error),
    /// keeping the order of the request body options, which clap's derive loses.
    pub(crate) fn parse_in_order() -> Self {
        let matches = Self::command().get_matches();
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        if let (Command::Get(get), Some(("get", matches))) =
            (&mut cli.command, matches.subcommand())
        {
            get.body = body_parts(matches);
        }
        cli
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Send HTTP request(s) through one traced client and print the trace (JSON as Go's
    /// nettrace writes it, or a waterfall). The body is counted and dropped, or written with
    /// --save-body. Exit code 0 when every request got a response, 1 when one failed, 2 on a
    /// usage error, 130 on SIGINT (Ctrl-C) and 143 on SIGTERM (the trace is written first).
    #[command(after_help = GET_EXAMPLES)]
    Get(Box<GetArgs>),
    /// Show a trace JSON file written by this tool or by Go nettrace.
    Show(ShowArgs),
    /// Explain a trace JSON file: why requests failed or were slow, with the evidence (trace
    /// IDs) and what to check next. Exit code 0 without an error finding, 1 with one, 2 when
    /// the file cannot be read.
    Explain(ExplainArgs),
}

/// Output formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// The trace as JSON (Go nettrace's format).
    Json,
    /// A readable timeline: phases as bars, a summary line per request (colour on a terminal,
    /// unless NO_COLOR is set).
    Waterfall,
    /// HAR 1.2 (HTTP Archive), for browser devtools and HAR viewers.
    Har,
    /// A self-contained HTML report (inline CSS and SVG, nothing fetched).
    Html,
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

/// Examples and curl habits, after the options of `nettrace get --help`.
const GET_EXAMPLES: &str = "\
Curl's habits:
  a URL without a scheme is http:// (nettrace get localhost:8100/);
  -d/--data, --data-binary and --data-raw send a body with POST unless -X says otherwise,
  as application/x-www-form-urlencoded unless -H gives a Content-Type; repeated, the parts
  are joined with '&' in command-line order; @FILE reads FILE (@- standard input), without
  its CR and LF for --data, byte for byte for --data-binary;
  --timeout, --connect-timeout and --tls-timeout take seconds (fractions allowed), 0 meaning
  no limit;
  the body goes to standard output only when asked (--save-body -), and never mixed with
  the trace: the trace then goes to -o FILE, or else to standard error;
  -o names the trace's file here, not the body's (that is --save-body);
  a body that takes over a second shows a progress line (bytes, rate, elapsed) on standard
  error when it is a terminal;
  Ctrl-C (or SIGTERM) cancels the request in flight and still writes the trace.

Examples:
  nettrace get https://example.com/ --format waterfall
  nettrace get localhost:8100/upload -d @form.txt -H 'X-Run: 7' -o trace.json
  nettrace get https://example.com/big.iso --save-body big.iso --sock-trace -o trace.json
  nettrace get https://example.com/data.json --save-body - -o trace.json | jq .";

/// One part of the request body, from -d/--data, --data-binary or --data-raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DataPart {
    /// Which option gave it.
    pub(crate) kind: DataKind,
    /// Its value as given (`@FILE` not read yet).
    pub(crate) value: String,
}

/// The body options, which differ in how they read `@FILE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataKind {
    /// -d/--data: `@FILE` is read without its CR and LF bytes.
    Data,
    /// --data-binary: `@FILE` is read byte for byte.
    Binary,
    /// --data-raw: no `@FILE`; the value is the data.
    Raw,
}

/// The body parts in command-line order (clap keeps each option's values apart).
fn body_parts(matches: &ArgMatches) -> Vec<DataPart> {
    let mut parts = Vec::new();
    for (id, kind) in [
        ("data", DataKind::Data),
        ("data_binary", DataKind::Binary),
        ("data_raw", DataKind::Raw),
    ] {
        if let (Some(values), Some(indices)) =
            (matches.get_many::<String>(id), matches.indices_of(id))
        {
            parts.extend(indices.zip(values).map(|(index, value)| {
                (
                    index,
                    DataPart {
                        kind,
                        value: value.clone(),
                    },
                )
            }));
        }
    }
    parts.sort_by_key(|(index, _)| *index);
    parts.into_iter().map(|(_, part)| part).collect()
}

/// A time limit in seconds: a number, 0 or more, where 0 means no limit (as in Go). Negative
/// numbers and NaN are usage errors.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs.is_nan() || secs < 0.0 {
        return Err(format!(
            "{text} is not 0 (no limit) or a positive number of seconds"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|error| format!("{text} seconds: {error}"))
}

#[derive(Args, Debug)]
pub(crate) struct GetArgs {
    /// The URL to request; without a scheme, http:// (as curl).
    pub(crate) url: String,
    /// HTTP method [default: GET, or POST with a request body].
    #[arg(short = 'X', long, value_name = "METHOD")]
    pub(crate) method: Option<String>,
    /// Request body, as curl's --data: @FILE reads FILE (@- standard input) and drops its CR
    /// and LF bytes. Repeatable: the parts are joined with '&'. POST unless -X is given.
    #[arg(short = 'd', long, value_name = "DATA")]
    pub(crate) data: Vec<String>,
    /// Request body, as curl's --data-binary: like --data, but @FILE is sent byte for byte.
    #[arg(long, value_name = "DATA")]
    pub(crate) data_binary: Vec<String>,
    /// Request body, as curl's --data-raw: like --data, but a leading @ is no file name.
    #[arg(long, value_name = "DATA")]
    pub(crate) data_raw: Vec<String>,
    /// The parts of --data, --data-binary and --data-raw in command-line order.
    #[arg(skip)]
    pub(crate) body: Vec<DataPart>,
    /// Write the response body to FILE as it arrives (`-`: standard output; the trace then
    /// goes to -o FILE, or else to standard error). Without it the body is counted and
    /// dropped. With --repeat, the bodies one after the other.
    #[arg(long, value_name = "FILE")]
    pub(crate) save_body: Option<PathBuf>,
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
    /// Time limit for each whole request, body included, in seconds; 0: no limit.
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true)]
    pub(crate) timeout: Option<Duration>,
    /// Time limit for each TCP handshake, in seconds; 0: no limit.
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true)]
    pub(crate) connect_timeout: Option<Duration>,
    /// Time limit for each TLS handshake, in seconds; 0: no limit.
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true)]
    pub(crate) tls_timeout: Option<Duration>,
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
    /// Capture only the TCP packets that carry no payload (SYN, FIN, RST, pure ACKs), as Go's
    /// TCPWithoutPayload.
    #[arg(long)]
    pub(crate) tcp_no_payload: bool,
    /// Capture every TCP packet, cut after its TCP header.
    #[arg(long)]
    pub(crate) tcp_headers_only: bool,
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
    /// Write the trace to FILE instead of standard output (`-`: standard output). Not the
    /// body, unlike curl's -o: see --save-body.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub(crate) format: Format,
    /// Print each request's trace as soon as the request is complete (one JSON document per
    /// line, also with --repeat), and let the tracer forget it: memory stays bounded however
    /// many requests are made.
    #[arg(long, conflicts_with = "clear_trace")]
    pub(crate) stream: bool,
    /// OpenTelemetry export.
    #[command(flatten)]
    pub(crate) otlp: crate::otlp::OtlpArgs,
}

#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// The trace JSON file (`-`: standard input); at most 256 MiB.
    pub(crate) file: PathBuf,
    /// Output format (json re-emits the file unchanged after checking it).
    #[arg(long, value_enum, default_value_t = Format::Waterfall)]
    pub(crate) format: Format,
    /// OpenTelemetry export.
    #[command(flatten)]
    pub(crate) otlp: crate::otlp::OtlpArgs,
}

#[derive(Args, Debug)]
pub(crate) struct ExplainArgs {
    /// The trace JSON file (`-`: standard input); at most 256 MiB.
    pub(crate) file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
    pub(crate) format: ExplainFormat,
}

/// Output formats of `explain`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExplainFormat {
    /// A verdict line, then each finding with its evidence and what to check next.
    Text,
    /// A JSON array of findings: {"code", "severity", "summary", "evidence": [traceIDs],
    /// "details", "nextStep"}.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_take_zero_and_fractions_and_refuse_negatives_and_nan() {
        assert_eq!(seconds("0"), Ok(Duration::ZERO));
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["-1", "-0.5", "NaN", "inf", "soon", ""] {
            assert!(seconds(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn body_parts_keep_command_line_order_across_options() {
        let matches = Cli::command()
            .try_get_matches_from([
                "nettrace",
                "get",
                "x",
                "--data-binary",
                "b",
                "-d",
                "a",
                "--data-raw",
                "@r",
                "-d",
                "c",
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(("get", get)) = matches.subcommand() else {
            panic!("no get");
        };
        let part = |kind, value: &str| DataPart {
            kind,
            value: value.to_owned(),
        };
        assert_eq!(
            body_parts(get),
            [
                part(DataKind::Binary, "b"),
                part(DataKind::Data, "a"),
                part(DataKind::Raw, "@r"),
                part(DataKind::Data, "c"),
            ]
        );
    }
}
