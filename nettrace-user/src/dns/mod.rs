//! The traced stub resolver: host names to addresses over hickory-proto alone, with every
//! nameserver connection and DNS message recorded in the trace.
//!
//! Contents, one concern per file:
//! - `config.rs`: [`ResolverConfig`] from `/etc/resolv.conf` (nameservers, search, `ndots`,
//!   `timeout`, `attempts`) and `/etc/hosts`, or explicit values;
//! - `hosts.rs`: [`HostsTable`], the static names of `/etc/hosts`;
//! - `search.rs`: the candidate names of the search list (`ndots` as glibc);
//! - `message.rs`: the codec without I/O (query building, tolerant decoding, reply matching,
//!   hickory message to trace model);
//! - `transport.rs`: one exchange with one nameserver, UDP with TCP fallback;
//! - `resolver.rs`: the lookup (IP literals, hosts, nameserver selection, attempts, A and AAAA
//!   in parallel, address order);
//! - `error.rs`: [`ResolveError`] and [`ConfigError`].
//!
//! Differences from Go's nettrace (which hooks Go's resolver): every configured or given
//! nameserver is used, in order (Go used only the first of an explicit list); DNS over TCP is
//! framed and recorded correctly; answers of every type are recorded (Go skipped all but
//! A/AAAA/CNAME/NS/PTR/MX); malformed messages are recorded as far as they decode.
//!
//! The resolver itself is crate-internal (the HTTP client drives it); what a user configures is
//! public:
//!
//! ```
//! use std::{net::IpAddr, sync::Arc, time::Duration};
//! use nettrace::dns::{NameserverSelector, ResolverConfig};
//!
//! let config = ResolverConfig::default()
//!     .with_nameservers(vec!["10.0.0.2:53".parse().unwrap(), "10.1.0.2:53".parse().unwrap()])
//!     .with_timeout(Duration::from_secs(2));
//! let selector: NameserverSelector = Arc::new(|ip: IpAddr, _port: u16| {
//!     ip.to_string()
//!         .starts_with("10.1.")
//!         .then(|| "DNS server is from a different network".to_owned())
//! });
//! assert!(selector("10.1.0.2".parse().unwrap(), 53).is_some());
//! assert_eq!(config.nameservers.len(), 2);
//! ```
mod config;
mod error;
mod hosts;
pub(crate) mod message;
mod resolver;
mod search;
mod transport;

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;

use std::{net::IpAddr, sync::Arc};

pub use config::{DNS_PORT, HOSTS_PATH, RESOLV_CONF_PATH, ResolverConfig};
pub use error::{ConfigError, ResolveError, SkippedNameserver};
pub use hosts::HostsTable;
#[allow(unused_imports, reason = "used by the HTTP client's connector")]
pub(crate) use resolver::Resolver;

/// Decides, for a nameserver's IP and port, whether to skip it: `Some(reason)` skips it (the
/// trace lists it among the dial's skipped nameservers), `None` uses it.
pub type NameserverSelector = Arc<dyn Fn(IpAddr, u16) -> Option<String> + Send + Sync>;
