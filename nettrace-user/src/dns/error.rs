//! [`ResolveError`]: why a name lookup failed, and [`ConfigError`]: why the resolver
//! configuration could not be read.
//!
//! Callers match on the variant: a negative answer ([`ResolveError::NxDomain`],
//! [`ResolveError::NoAddresses`]) is a fact about the name, every other variant a failure of the
//! path to the nameservers (which the trace then explains in detail).
//!
//! ```
//! use nettrace::dns::ResolveError;
//!
//! let error = ResolveError::NxDomain { name: "nope.example".into() };
//! assert_eq!(error.to_string(), "no such host \"nope.example\" (NXDOMAIN)");
//! assert!(error.is_negative_answer());
//! ```
use std::{fmt, io, net::SocketAddr, path::PathBuf, time::Duration};

use crate::model::DnsRCode;

/// Why a name lookup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name cannot be put in a DNS query (empty, too long, a bad label).
    #[error("invalid host name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A nameserver said that the name does not exist (rcode NXDOMAIN), for every name of the
    /// search list.
    #[error("no such host {name:?} (NXDOMAIN)")]
    NxDomain {
        /// The name as given.
        name: String,
    },
    /// The name exists but has no A or AAAA record.
    #[error("no addresses for host {name:?}")]
    NoAddresses {
        /// The name as given.
        name: String,
    },
    /// A nameserver answered SERVFAIL.
    #[error("nameserver {server} answered SERVFAIL")]
    ServerFailure {
        /// The nameserver.
        server: SocketAddr,
    },
    /// A nameserver answered with an error rcode other than NXDOMAIN and SERVFAIL (REFUSED,
    /// NOTIMP, FORMERR, ...).
    #[error("nameserver {server} answered rcode {code} ({rcode})", code = rcode.code())]
    Rcode {
        /// The nameserver.
        server: SocketAddr,
        /// The response code.
        rcode: DnsRCode,
    },
    /// A nameserver did not answer in time.
    #[error("nameserver {server} did not answer within {timeout:?}")]
    Timeout {
        /// The nameserver.
        server: SocketAddr,
        /// The per-attempt timeout.
        timeout: Duration,
    },
    /// The nameserver selector skipped every configured nameserver.
    #[error("all nameservers skipped: {}", SkippedList(skipped))]
    AllNameserversSkipped {
        /// Each skipped nameserver with the reason.
        skipped: Vec<SkippedNameserver>,
    },
    /// No nameserver is configured.
    #[error("no nameservers configured")]
    NoNameservers,
    /// A reply to our query could not be decoded.
    #[error("malformed reply from nameserver {server}: {detail}")]
    Malformed {
        /// The nameserver.
        server: SocketAddr,
        /// What could not be decoded.
        detail: String,
    },
    /// A socket call towards a nameserver failed.
    #[error("{op} failed for nameserver {server}: {source}")]
    Io {
        /// The nameserver.
        server: SocketAddr,
        /// The failed call (`"connect udp"`, `"send"`, `"read tcp"`, ...).
        op: &'static str,
        /// The error of the call.
        #[source]
        source: io::Error,
    },
}

impl ResolveError {
    /// True when a nameserver answered that the name has no address (NXDOMAIN or no A/AAAA
    /// record), as opposed to a failure to get an answer.
    pub fn is_negative_answer(&self) -> bool {
        matches!(self, Self::NxDomain { .. } | Self::NoAddresses { .. })
    }
}

/// A nameserver skipped by the selector, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedNameserver {
    /// The nameserver.
    pub nameserver: SocketAddr,
    /// The reason the selector gave.
    pub reason: String,
}

/// Formats skipped nameservers as `addr: reason; addr: reason`.
struct SkippedList<'a>(&'a [SkippedNameserver]);

impl fmt::Display for SkippedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, skipped) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", skipped.nameserver, skipped.reason)?;
        }
        Ok(())
    }
}

/// Why the resolver configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Reading a configuration file failed (a missing file is not an error).
    #[error("reading {path:?} failed: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error of the read.
        #[source]
        source: io::Error,
    },
    /// A nameserver is not `ip`, `ip:port` or `[ipv6]:port`.
    #[error("invalid nameserver address {input:?}")]
    InvalidNameserver {
        /// The text given.
        input: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_skipped_lists_every_reason() {
        let error = ResolveError::AllNameserversSkipped {
            skipped: vec![
                SkippedNameserver {
                    nameserver: "10.0.0.1:53".parse().unwrap(),
                    reason: "other network".into(),
                },
                SkippedNameserver {
                    nameserver: "[2001:db8::1]:53".parse().unwrap(),
                    reason: "no IPv6".into(),
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "all nameservers skipped: 10.0.0.1:53: other network; [2001:db8::1]:53: no IPv6"
        );
        let rcode = ResolveError::Rcode {
            server: "10.0.0.1:53".parse().unwrap(),
            rcode: DnsRCode::REFUSED,
        };
        assert_eq!(
            rcode.to_string(),
            "nameserver 10.0.0.1:53 answered rcode 5 (query-refused)"
        );
        assert!(!rcode.is_negative_answer());
    }
}
