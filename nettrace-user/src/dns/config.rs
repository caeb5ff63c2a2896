//! [`ResolverConfig`]: nameservers, search list, `ndots`, timeout and attempts (from
//! `/etc/resolv.conf`, parsed with the `resolv-conf` crate), the hosts table (`/etc/hosts`), and
//! overrides.
//!
//! Read as glibc does: the search list is the last `search` or `domain` line; `ndots`,
//! `timeout` and `attempts` come from `options` with glibc's defaults (1, 5 s, 2) and caps
//! (15, 30 s, 5); lines the parser does not understand are ignored (and logged). A missing
//! file means defaults: no nameserver (lookups then fail with
//! [`ResolveError::NoNameservers`](super::ResolveError::NoNameservers), rather than silently
//! asking `127.0.0.1` as glibc does), and an empty hosts table. An IPv6 nameserver's `%zone` is
//! kept only when numeric.
//!
//! ```
//! use std::time::Duration;
//! use nettrace::dns::ResolverConfig;
//!
//! let config = ResolverConfig::parse_resolv_conf(
//!     "nameserver 10.0.0.2\nsearch corp.example\noptions ndots:2 timeout:1 attempts:3\n",
//! )
//! .with_nameservers(vec!["192.0.2.53:5353".parse().unwrap()]);
//! assert_eq!(config.nameservers[0].port(), 5353);
//! assert_eq!(config.search, ["corp.example"]);
//! assert_eq!((config.ndots, config.timeout, config.attempts), (2, Duration::from_secs(1), 3));
//! ```
use std::{
    io,
    net::{IpAddr, SocketAddr, SocketAddrV6},
    path::Path,
    time::Duration,
};

use resolv_conf::ScopedIp;

use super::{ConfigError, HostsTable};

/// The system's resolver configuration file.
pub const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";
/// The system's static hosts file.
pub const HOSTS_PATH: &str = "/etc/hosts";
/// The DNS port.
pub const DNS_PORT: u16 = 53;

const DEFAULT_NDOTS: u8 = 1;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_ATTEMPTS: u8 = 2;
const MAX_NDOTS: u32 = 15;
const MAX_TIMEOUT_SECS: u32 = 30;
const MAX_ATTEMPTS: u32 = 5;

/// How names are resolved: where to ask, which names to try, how long to wait.
///
/// Fields are public: change them after [`ResolverConfig::from_system`] (or the `with_`
/// methods) to override the system configuration. Marked `non_exhaustive`: start from
/// [`ResolverConfig::default`] or a constructor.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolverConfig {
    /// Nameservers, asked in this order (every entry is used).
    pub nameservers: Vec<SocketAddr>,
    /// Domains appended to relative names (the search list).
    pub search: Vec<String>,
    /// A name with at least this many dots is first tried as it is, before the search list.
    pub ndots: u8,
    /// How long to wait for each reply (per nameserver, per attempt, per transport).
    pub timeout: Duration,
    /// How many times the list of nameservers is tried (at least once).
    pub attempts: u8,
    /// Static names, consulted before DNS.
    pub hosts: HostsTable,
}

impl Default for ResolverConfig {
    /// No nameserver, no search list, glibc's defaults, empty hosts table.
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: DEFAULT_NDOTS,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            hosts: HostsTable::default(),
        }
    }
}

impl ResolverConfig {
    /// Reads `/etc/resolv.conf` and `/etc/hosts`.
    pub fn from_system() -> Result<Self, ConfigError> {
        Self::from_files(RESOLV_CONF_PATH, HOSTS_PATH)
    }

    /// Reads a resolv.conf and a hosts file; a missing file counts as empty.
    pub fn from_files(
        resolv_conf: impl AsRef<Path>,
        hosts: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        let mut config = match read_optional(resolv_conf.as_ref())? {
            Some(text) => Self::parse_resolv_conf(&text),
            None => Self::default(),
        };
        if let Some(text) = read_optional(hosts.as_ref())? {
            config.hosts = HostsTable::parse(&text);
        }
        Ok(config)
    }

    /// Parses the text of a resolv.conf (hosts table left empty).
    pub fn parse_resolv_conf(text: &str) -> Self {
        let (parsed, errors) = resolv_conf::Config::parse_with_errors(text.as_bytes());
        for error in errors {
            tracing::debug!(%error, "resolv.conf: line ignored");
        }
        Self {
            nameservers: parsed.nameservers.iter().map(nameserver_addr).collect(),
            search: parsed.get_last_search_or_domain().cloned().collect(),
            ndots: clamp_u8(parsed.ndots, MAX_NDOTS),
            timeout: Duration::from_secs(parsed.timeout.min(MAX_TIMEOUT_SECS).into()),
            attempts: clamp_u8(parsed.attempts, MAX_ATTEMPTS).max(1),
            hosts: HostsTable::default(),
        }
    }

    /// Replaces the nameservers (e.g. with an explicit list; every entry is used, in order).
    pub fn with_nameservers(mut self, nameservers: Vec<SocketAddr>) -> Self {
        self.nameservers = nameservers;
        self
    }

    /// Replaces the per-reply timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replaces the number of attempts (at least 1 is made).
    pub fn with_attempts(mut self, attempts: u8) -> Self {
        self.attempts = attempts;
        self
    }

    /// Parses a nameserver given as `ip`, `ip:port` or `[ipv6]:port` (port 53 by default).
    pub fn parse_nameserver(input: &str) -> Result<SocketAddr, ConfigError> {
        if let Ok(addr) = input.parse::<SocketAddr>() {
            return Ok(addr);
        }
        let bare = input
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(input);
        bare.parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
            .map_err(|_| ConfigError::InvalidNameserver {
                input: input.to_owned(),
            })
    }
}

/// Reads a file, `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The socket address of a resolv.conf nameserver (port 53; a numeric IPv6 zone kept).
fn nameserver_addr(ip: &ScopedIp) -> SocketAddr {
    match ip {
        ScopedIp::V4(v4) => SocketAddr::new(IpAddr::V4(*v4), DNS_PORT),
        ScopedIp::V6(v6, zone) => {
            let scope = zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(0);
            SocketAddr::V6(SocketAddrV6::new(*v6, DNS_PORT, 0, scope))
        }
    }
}

/// `value` capped at `max` (which fits a `u8`).
fn clamp_u8(value: u32, max: u32) -> u8 {
    u8::try_from(value.min(max)).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use std::{fs, path::PathBuf};

    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("nettrace-dns-{}-{name}", std::process::id()))
    }

    #[test]
    fn parses_glibc_options_with_caps_and_last_search_wins() {
        let config = ResolverConfig::parse_resolv_conf(
            "# generated\n\
             nameserver 10.0.0.1\n\
             nameserver 2001:db8::53\n\
             nameserver fe80::1%2\n\
             domain first.example\n\
             search a.example b.example\n\
             options ndots:40 timeout:99 attempts:0 rotate edns0 unknown-option\n\
             bogus directive\n",
        );
        assert_eq!(
            config.nameservers,
            [
                "10.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
                "[fe80::1%2]:53".parse().unwrap(),
            ]
        );
        assert_eq!(config.search, ["a.example", "b.example"]);
        assert_eq!(config.ndots, 15);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.attempts, 1);

        let defaults = ResolverConfig::parse_resolv_conf("domain only.example\n");
        assert!(defaults.nameservers.is_empty());
        assert_eq!(defaults.search, ["only.example"]);
        assert_eq!(
            (defaults.ndots, defaults.timeout, defaults.attempts),
            (1, Duration::from_secs(5), 2)
        );
    }

    #[test]
    fn from_files_reads_both_and_treats_missing_as_empty() {
        let resolv = temp_path("resolv.conf");
        let hosts = temp_path("hosts");
        fs::write(&resolv, "nameserver 192.0.2.1\noptions timeout:2\n").unwrap();
        fs::write(&hosts, "192.0.2.7 printer.lan\n").unwrap();
        let config = ResolverConfig::from_files(&resolv, &hosts).unwrap();
        assert_eq!(config.nameservers, ["192.0.2.1:53".parse().unwrap()]);
        assert_eq!(config.timeout, Duration::from_secs(2));
        assert!(config.hosts.lookup("printer.lan").is_some());

        let missing = ResolverConfig::from_files(temp_path("none1"), temp_path("none2")).unwrap();
        assert_eq!(missing, ResolverConfig::default());
        let unreadable = ResolverConfig::from_files(std::env::temp_dir(), &hosts);
        assert!(matches!(unreadable, Err(ConfigError::Read { .. })));
        fs::remove_file(resolv).unwrap();
        fs::remove_file(hosts).unwrap();
    }

    #[test]
    fn parses_nameserver_forms() {
        let parse = ResolverConfig::parse_nameserver;
        assert_eq!(parse("10.0.0.1").unwrap(), "10.0.0.1:53".parse().unwrap());
        assert_eq!(parse("10.0.0.1:5353").unwrap().port(), 5353);
        assert_eq!(
            parse("2001:db8::1").unwrap(),
            "[2001:db8::1]:53".parse().unwrap()
        );
        assert_eq!(parse("[2001:db8::1]").unwrap().port(), 53);
        assert_eq!(parse("[2001:db8::1]:54").unwrap().port(), 54);
        assert!(matches!(
            parse("dns.example:53"),
            Err(ConfigError::InvalidNameserver { .. })
        ));
    }
}
