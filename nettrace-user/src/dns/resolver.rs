//! [`Resolver`]: a host name to addresses, as glibc's stub resolver does it, with every
//! nameserver connection traced.
//!
//! Order of a lookup:
//! 1. an IP literal (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`) is the answer, no DNS;
//! 2. the hosts table, for the name as given;
//! 3. the nameservers: those the selector skips are reported (`NameserverSkipped`) and left
//!    out; none configured or all skipped ends the lookup with an error;
//! 4. each candidate name of the search list in turn ([`candidates`]), A and AAAA queried in
//!    parallel, each query on its own connections. A query tries every nameserver in order, for
//!    `attempts` rounds: an answer (NOERROR) or NXDOMAIN ends it, SERVFAIL, another rcode,
//!    a timeout, a malformed reply or an I/O error moves on to the next nameserver. The first
//!    candidate with an address is the answer.
//!
//! Addresses come deduplicated, the family of the source IP first (IPv4 first without one),
//! each family in the order the answers listed it: a simple, predictable stand-in for RFC 6724
//! that tries first what the configured source can reach.
//!
//! When no candidate has an address, the error is the first failure to get an answer
//! (timeout, SERVFAIL, ...) if there was one: saying "no such host" would hide that a server
//! failed. Otherwise it is [`ResolveError::NoAddresses`] if some candidate exists without A or
//! AAAA records, else [`ResolveError::NxDomain`].
//!
//! ```ignore
//! // crate-internal
//! let resolver = Resolver::new(ResolverConfig::from_system()?, None, None);
//! let addrs = resolver.lookup_ip(&sink, &dial, "example.com").await?;
//! ```
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{Name, RData, RecordType},
};

use super::{
    NameserverSelector, ResolveError, ResolverConfig, SkippedNameserver, message::build_query,
    search::candidates, transport::Exchange,
};
use crate::{event::Event, event::Sink, model::DnsRCode, model::TraceId};

/// A traced stub resolver.
#[derive(Clone)]
pub(crate) struct Resolver {
    config: Arc<ResolverConfig>,
    source_ip: Option<IpAddr>,
    selector: Option<NameserverSelector>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("config", &self.config)
            .field("source_ip", &self.source_ip)
            .field("selector", &self.selector.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// The context of one lookup.
#[derive(Clone, Copy)]
struct Lookup<'a> {
    sink: &'a Sink,
    dial: &'a TraceId,
    servers: &'a [SocketAddr],
}

impl Resolver {
    /// A resolver with `config`, binding resolver sockets to `source_ip` (except towards
    /// loopback nameservers), asking `selector` whether to skip each nameserver.
    pub(crate) fn new(
        config: impl Into<Arc<ResolverConfig>>,
        source_ip: Option<IpAddr>,
        selector: Option<NameserverSelector>,
    ) -> Self {
        Self {
            config: config.into(),
            source_ip,
            selector,
        }
    }

    /// The addresses of `host`, for the dial `dial`.
    pub(crate) async fn lookup_ip(
        &self,
        sink: &Sink,
        dial: &TraceId,
        host: &str,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        if let Some(ip) = ip_literal(host) {
            return Ok(vec![ip]);
        }
        if let Some(addrs) = self.config.hosts.lookup(host) {
            return Ok(order(addrs.to_vec(), self.source_ip));
        }
        let names = candidates(host, &self.config.search, self.config.ndots)?;
        let servers = self.servers(sink, dial)?;
        let lookup = Lookup {
            sink,
            dial,
            servers: &servers,
        };
        let mut outcome = Outcome::default();
        for name in &names {
            let (v4, v6) = tokio::join!(
                self.query(lookup, name, RecordType::A),
                self.query(lookup, name, RecordType::AAAA),
            );
            let mut addrs = Vec::new();
            for result in [v4, v6] {
                match result {
                    Ok(found) if found.is_empty() => outcome.no_data = true,
                    Ok(found) => addrs.extend(found),
                    Err(error) => outcome.add(error),
                }
            }
            if !addrs.is_empty() {
                return Ok(order(addrs, self.source_ip));
            }
        }
        Err(outcome.into_error(host))
    }

    /// The nameservers to ask; reports those the selector skips.
    fn servers(&self, sink: &Sink, dial: &TraceId) -> Result<Vec<SocketAddr>, ResolveError> {
        if self.config.nameservers.is_empty() {
            return Err(ResolveError::NoNameservers);
        }
        let mut usable = Vec::new();
        let mut skipped = Vec::new();
        for &server in &self.config.nameservers {
            let skip = self
                .selector
                .as_ref()
                .and_then(|select| select(server.ip(), server.port()));
            match skip {
                Some(reason) => {
                    sink.emit(Event::NameserverSkipped {
                        dial: dial.clone(),
                        nameserver: server.to_string(),
                        reason: reason.clone(),
                    });
                    skipped.push(SkippedNameserver {
                        nameserver: server,
                        reason,
                    });
                }
                None => usable.push(server),
            }
        }
        if usable.is_empty() {
            return Err(ResolveError::AllNameserversSkipped { skipped });
        }
        Ok(usable)
    }

    /// The `rtype` addresses of `name` (empty when it has none), from the first nameserver
    /// that answers NOERROR or NXDOMAIN.
    async fn query(
        &self,
        lookup: Lookup<'_>,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        let mut last_error = ResolveError::NoNameservers;
        for _ in 0..self.config.attempts.max(1) {
            for &server in lookup.servers {
                let query = build_query(name, rtype).map_err(|e| ResolveError::InvalidName {
                    name: name.to_ascii(),
                    reason: e.to_string(),
                })?;
                let exchange = Exchange {
                    sink: lookup.sink,
                    dial: lookup.dial,
                    server,
                    source_ip: self.source_ip,
                    timeout: self.config.timeout,
                };
                last_error = match exchange.run(&query).await {
                    Ok(reply) => match reply.metadata.response_code {
                        ResponseCode::NoError => return Ok(addresses(&reply, rtype)),
                        ResponseCode::NXDomain => {
                            return Err(ResolveError::NxDomain {
                                name: name.to_ascii(),
                            });
                        }
                        ResponseCode::ServFail => ResolveError::ServerFailure { server },
                        other => ResolveError::Rcode {
                            server,
                            rcode: DnsRCode(u16::from(other)),
                        },
                    },
                    Err(error) => error,
                };
                tracing::debug!(%server, %name, ?rtype, error = %last_error, "DNS query failed");
            }
        }
        Err(last_error)
    }
}

/// What the candidates that gave no address said.
#[derive(Default)]
struct Outcome {
    /// The first failure to get an answer.
    failure: Option<ResolveError>,
    /// Some candidate exists without records of a queried type.
    no_data: bool,
}

impl Outcome {
    fn add(&mut self, error: ResolveError) {
        match error {
            ResolveError::NxDomain { .. } => {}
            ResolveError::NoAddresses { .. } => self.no_data = true,
            other => {
                self.failure.get_or_insert(other);
            }
        }
    }

    fn into_error(self, host: &str) -> ResolveError {
        let name = host.to_owned();
        match self.failure {
            Some(failure) => failure,
            None if self.no_data => ResolveError::NoAddresses { name },
            None => ResolveError::NxDomain { name },
        }
    }
}

/// The `rtype` addresses in the answer section (whatever the owner name: CNAME chains end
/// there).
fn addresses(reply: &Message, rtype: RecordType) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) if rtype == RecordType::A => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) if rtype == RecordType::AAAA => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

/// `host` as an IP address, with or without IPv6 brackets.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Deduplicated, the source IP's family first (IPv4 without one), each family in order.
fn order(addrs: Vec<IpAddr>, source_ip: Option<IpAddr>) -> Vec<IpAddr> {
    let prefer_v6 = source_ip.is_some_and(|ip| ip.to_canonical().is_ipv6());
    let mut ordered: Vec<IpAddr> = Vec::with_capacity(addrs.len());
    for ip in addrs {
        if !ordered.contains(&ip) {
            ordered.push(ip);
        }
    }
    ordered.sort_by_key(|ip| ip.is_ipv6() != prefer_v6);
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn orders_by_source_family_then_answer_order_without_duplicates() {
        let mixed = ips(&["2001:db8::1", "192.0.2.2", "192.0.2.1", "2001:db8::1"]);
        assert_eq!(
            order(mixed.clone(), None),
            ips(&["192.0.2.2", "192.0.2.1", "2001:db8::1"])
        );
        assert_eq!(
            order(mixed, "2001:db8::99".parse().ok()),
            ips(&["2001:db8::1", "192.0.2.2", "192.0.2.1"])
        );
    }

    #[test]
    fn ip_literals_with_and_without_brackets() {
        assert_eq!(ip_literal("192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(ip_literal("[2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(ip_literal("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(ip_literal("example.com"), None);
        assert_eq!(ip_literal("[example.com]"), None);
    }
}
