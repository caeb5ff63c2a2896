//! Conntrack records: [`ConntrackEntry`] and its [`ConntrackStatus`] flags.
//!
//! A connection's netfilter conntrack entry (from ctnetlink) tells whether and how it was NATed,
//! the TCP state conntrack saw, and packet/byte counters. JSON as Go writes it:
//! - `status`: known flag names joined with `|` in ascending bit order (Go's order is random),
//!   `""` for none; unknown bits are not written; unknown names are ignored when reading.
//! - `tcpState`: a [`TcpState`] name, omitted for [`TcpState::None`] (UDP).
//!
//! ```
//! use nettrace_model::ConntrackStatus;
//!
//! let status = ConntrackStatus::SEEN_REPLY | ConntrackStatus::ASSURED | ConntrackStatus::CONFIRMED;
//! assert_eq!(status.to_string(), "seen-reply|assured|confirmed");
//! assert_eq!("confirmed|bogus|assured".parse::<ConntrackStatus>().unwrap(),
//!            ConntrackStatus::ASSURED | ConntrackStatus::CONFIRMED);
//! ```

use std::convert::Infallible;
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::serde_util::nullable_str;
use super::{AddrTuple, TcpState, Timestamp};

/// One conntrack entry (one tracked connection), under a TCP or UDP connection record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConntrackEntry {
    /// When this entry was obtained.
    pub captured_at: Timestamp,
    /// Status flags.
    pub status: ConntrackStatus,
    /// TCP state seen by conntrack; [`TcpState::None`] (omitted) for UDP.
    #[serde(skip_serializing_if = "TcpState::is_none")]
    pub tcp_state: TcpState,
    /// Mark of the connection (CONNMARK).
    pub mark: u32,
    /// Addresses in the original direction (client to server), before NAT.
    pub addr_orig: AddrTuple,
    /// Addresses in the reply direction (server to client), after NAT.
    pub addr_reply: AddrTuple,
    /// Packets sent towards the remote endpoint (original-direction counter).
    pub packets_sent: u64,
    /// Packets received from the remote endpoint (reply-direction counter).
    pub packets_recv: u64,
    /// Bytes sent towards the remote endpoint.
    pub bytes_sent: u64,
    /// Bytes received from the remote endpoint.
    pub bytes_recv: u64,
}

/// Go's spelling of [`ConntrackEntry`] (`ConntractEntry`), for readers of the Go API.
pub type ConntractEntry = ConntrackEntry;

/// Status flags of a conntrack entry (`enum ip_conntrack_status`, uapi
/// `linux/netfilter/nf_conntrack_common.h`).
///
/// Keeps all 32 bits as received; only the [known flags](ConntrackStatus::KNOWN) have names and
/// only they are written to JSON: joined with `|` in ascending bit order (Go's order is random),
/// `""` for none. Reading ignores unknown names and accepts any order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConntrackStatus(u32);

impl ConntrackStatus {
    /// `expected`: an expected connection.
    pub const EXPECTED: Self = Self(1);
    /// `seen-reply`: packets seen in both directions.
    pub const SEEN_REPLY: Self = Self(1 << 1);
    /// `assured`: never early-expired.
    pub const ASSURED: Self = Self(1 << 2);
    /// `confirmed`: the original packet has left the box.
    pub const CONFIRMED: Self = Self(1 << 3);
    /// `src-nat`: needs source NAT in the original direction.
    pub const SRC_NAT: Self = Self(1 << 4);
    /// `dst-nat`: needs destination NAT in the original direction.
    pub const DST_NAT: Self = Self(1 << 5);
    /// `seq-adjust`: TCP sequence numbers need adjusting.
    pub const SEQ_ADJUST: Self = Self(1 << 6);
    /// `src-nat-done`: source NAT was performed.
    pub const SRC_NAT_DONE: Self = Self(1 << 7);
    /// `dst-nat-done`: destination NAT was performed.
    pub const DST_NAT_DONE: Self = Self(1 << 8);
    /// `dying`: being removed.
    pub const DYING: Self = Self(1 << 9);
    /// `fixed-timeout`: has a fixed timeout.
    pub const FIXED_TIMEOUT: Self = Self(1 << 10);
    /// `template`: a template entry.
    pub const TEMPLATE: Self = Self(1 << 11);
    /// `untracked`: a fake untracked entry (obsolete).
    pub const UNTRACKED: Self = Self(1 << 12);
    /// `helper`: a helper was explicitly attached.
    pub const HELPER: Self = Self(1 << 13);
    /// `offload`: offloaded to a flow table.
    pub const OFFLOAD: Self = Self(1 << 14);

    /// The named flags with their JSON names, in ascending bit order (the order written).
    pub const KNOWN: [(&'static str, Self); 15] = [
        ("expected", Self::EXPECTED),
        ("seen-reply", Self::SEEN_REPLY),
        ("assured", Self::ASSURED),
        ("confirmed", Self::CONFIRMED),
        ("src-nat", Self::SRC_NAT),
        ("dst-nat", Self::DST_NAT),
        ("seq-adjust", Self::SEQ_ADJUST),
        ("src-nat-done", Self::SRC_NAT_DONE),
        ("dst-nat-done", Self::DST_NAT_DONE),
        ("dying", Self::DYING),
        ("fixed-timeout", Self::FIXED_TIMEOUT),
        ("template", Self::TEMPLATE),
        ("untracked", Self::UNTRACKED),
        ("helper", Self::HELPER),
        ("offload", Self::OFFLOAD),
    ];

    /// The bits of all named flags.
    pub const KNOWN_BITS: u32 = (1 << 15) - 1;

    /// Flags from raw bits (all bits kept, named or not).
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Only the named flags of `self` (what JSON keeps).
    pub const fn known(self) -> Self {
        Self(self.0 & Self::KNOWN_BITS)
    }

    /// True if every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Flags from `|`-joined names; unknown names are ignored, as in Go.
    pub fn from_names(input: &str) -> Self {
        input
            .split('|')
            .filter_map(|part| Self::KNOWN.iter().find(|(name, _)| *name == part))
            .fold(Self::default(), |status, (_, flag)| status | *flag)
    }

    /// The names of the set flags, in ascending bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::KNOWN
            .into_iter()
            .filter(move |(_, flag)| self.contains(*flag))
            .map(|(name, _)| name)
    }
}

impl BitOr for ConntrackStatus {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for ConntrackStatus {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for ConntrackStatus {
    type Output = Self;

    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl From<u32> for ConntrackStatus {
    fn from(bits: u32) -> Self {
        Self(bits)
    }
}

impl From<ConntrackStatus> for u32 {
    fn from(status: ConntrackStatus) -> Self {
        status.0
    }
}

impl fmt::Display for ConntrackStatus {
    /// Named flags joined with `|` in ascending bit order; `""` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl FromStr for ConntrackStatus {
    type Err = Infallible;

    /// Splits on `|`; unknown names are ignored, as in Go.
    fn from_str(input: &str) -> Result<Self, Infallible> {
        Ok(Self::from_names(input))
    }
}

impl Serialize for ConntrackStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConntrackStatus {
    /// Reads the `|`-joined names; `null` and `""` are no flags.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        nullable_str(deserializer, |s| Ok(Self::from_names(s)))
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    #[test]
    fn status_names_ascending_and_unknown_bits_dropped() {
        let status = ConntrackStatus::from_bits(0x8000_0000)
            | ConntrackStatus::DST_NAT_DONE
            | ConntrackStatus::SEEN_REPLY
            | ConntrackStatus::SRC_NAT;
        assert_eq!(status.to_string(), "seen-reply|src-nat|dst-nat-done");
        assert_eq!(ConntrackStatus::default().to_string(), "");
        assert_eq!(ConntrackStatus::from_bits(0xFFFF_8000).to_string(), "");
        let all = ConntrackStatus::from_bits(u32::MAX).to_string();
        let names: Vec<&str> = ConntrackStatus::KNOWN.iter().map(|(n, _)| *n).collect();
        assert_eq!(all, names.join("|"));
        for (i, (_, flag)) in ConntrackStatus::KNOWN.iter().enumerate() {
            assert_eq!(flag.bits(), 1 << i);
        }
    }

    #[test]
    fn status_reads_any_order_ignoring_unknown() {
        let go = "assured|src-nat|confirmed|src-nat-done|dst-nat-done|seen-reply";
        let status: ConntrackStatus = serde_json::from_str(&format!("\"{go}\"")).unwrap();
        assert_eq!(status.bits(), 2 | 4 | 8 | 16 | 128 | 256);
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#""seen-reply|assured|confirmed|src-nat|src-nat-done|dst-nat-done""#
        );
        for empty in ["null", r#""""#, r#""nonsense""#, r#""||""#] {
            let status: ConntrackStatus = serde_json::from_str(empty).unwrap();
            assert!(status.is_empty(), "{empty}");
        }
    }

    fn entry(tcp_state: TcpState) -> ConntrackEntry {
        let ip = |a, b, c, d| Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
        ConntrackEntry {
            captured_at: Timestamp::Relative(1075),
            status: ConntrackStatus::SEEN_REPLY | ConntrackStatus::ASSURED,
            tcp_state,
            mark: 7,
            addr_orig: AddrTuple {
                src_ip: ip(192, 168, 99, 1),
                src_port: 33623,
                dst_ip: ip(142, 251, 36, 132),
                dst_port: 443,
            },
            addr_reply: AddrTuple {
                src_ip: ip(142, 251, 36, 132),
                src_port: 443,
                dst_ip: ip(192, 168, 88, 2),
                dst_port: 33623,
            },
            packets_sent: 24,
            packets_recv: 17,
            bytes_sent: 1991,
            bytes_recv: 13549,
        }
    }

    #[test]
    fn entry_round_trip_and_tcp_state_omitted_for_udp() {
        let tcp = entry(TcpState::LastAck);
        let json = serde_json::to_value(&tcp).unwrap();
        assert_eq!(json["tcpState"], "last-ack");
        assert_eq!(json["status"], "seen-reply|assured");
        assert_eq!(json["addrReply"]["dstIP"], "192.168.88.2");
        assert_eq!(serde_json::from_value::<ConntrackEntry>(json).unwrap(), tcp);

        let udp = entry(TcpState::None);
        let json = serde_json::to_value(&udp).unwrap();
        assert!(json.get("tcpState").is_none());
        assert_eq!(serde_json::from_value::<ConntrackEntry>(json).unwrap(), udp);
    }
}
