//! [`TcpState`]: the TCP state of a connection as conntrack sees it.
//!
//! Part of a [`ConntrackEntry`](super::ConntrackEntry) (`tcpState`, omitted for
//! [`TcpState::None`]). The JSON names are Go's, including its `"sync-recv"` spelling.
//!
//! ```
//! use nettrace_model::TcpState;
//!
//! assert_eq!(TcpState::SynRecv.to_string(), "sync-recv");
//! assert_eq!("syn-recv".parse::<TcpState>().unwrap(), TcpState::SynRecv);
//! assert_eq!(TcpState::try_from(6).unwrap(), TcpState::LastAck);
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ModelError;
use super::go_names::{self, GoNamed};

/// TCP connection state as seen by conntrack (`tcp_conntrack_names` in
/// `nf_conntrack_proto_tcp.c`); the numbers are Go's constants.
///
/// JSON: Go's names. [`TcpState::SynRecv`] is written `"sync-recv"` (Go's typo, kept so Go
/// consumers read it) and read from `"sync-recv"` or `"syn-recv"`; `null`, `""` and unknown
/// names read as [`TcpState::None`], as in Go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    /// Not available (e.g. a UDP entry). JSON `"none"` (and omitted in `ConntrackEntry`).
    #[default]
    None = 0,
    /// SYN sent. JSON `"syn-sent"`.
    SynSent = 1,
    /// SYN-ACK seen. JSON `"sync-recv"` (Go's spelling; `"syn-recv"` is read too).
    SynRecv = 2,
    /// Handshake completed. JSON `"established"`.
    Established = 3,
    /// FIN seen. JSON `"fin-wait"`.
    FinWait = 4,
    /// ACK seen after FIN. JSON `"close-wait"`.
    CloseWait = 5,
    /// FIN seen after FIN. JSON `"last-ack"`.
    LastAck = 6,
    /// Last ACK seen. JSON `"time-wait"`.
    TimeWait = 7,
    /// Closed (RST). JSON `"close"`.
    Close = 8,
    /// SYN seen from the reply direction (simultaneous open). JSON `"syn-sent2"`.
    SynSent2 = 9,
}

impl TcpState {
    /// Every state, in numeric order.
    pub const ALL: [Self; 10] = go_names::values(<Self as GoNamed>::NAMES);

    /// The name written to JSON.
    pub const fn as_str(self) -> &'static str {
        <Self as GoNamed>::NAMES[self as usize].0
    }

    /// Go's numeric value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for [`TcpState::None`].
    pub fn is_none(&self) -> bool {
        *self == Self::None
    }
}

impl GoNamed for TcpState {
    const KIND: &'static str = "TCP state";
    /// Every state, in numeric order (indexed by [`TcpState::as_u8`]), with Go's names.
    const NAMES: &'static [(&'static str, Self)] = &[
        ("none", Self::None),
        ("syn-sent", Self::SynSent),
        ("sync-recv", Self::SynRecv),
        ("established", Self::Established),
        ("fin-wait", Self::FinWait),
        ("close-wait", Self::CloseWait),
        ("last-ack", Self::LastAck),
        ("time-wait", Self::TimeWait),
        ("close", Self::Close),
        ("syn-sent2", Self::SynSent2),
    ];
    /// The correct spelling of Go's `"sync-recv"`.
    const ALIASES: &'static [(&'static str, Self)] = &[("syn-recv", Self::SynRecv)];
    const UNRECOGNIZED: Self = Self::None;
    const UNRECOGNIZED_NAME: &'static str = "none";
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TcpState {
    type Err = ModelError;

    /// Go's names, plus `"sync-recv"` (what Go writes) and `""` (none).
    fn from_str(input: &str) -> Result<Self, ModelError> {
        Self::from_go_name(input)
    }
}

impl TryFrom<u8> for TcpState {
    type Error = ModelError;

    fn try_from(value: u8) -> Result<Self, ModelError> {
        go_names::from_u8(&Self::ALL, Self::KIND, value)
    }
}

impl From<TcpState> for u8 {
    fn from(state: TcpState) -> Self {
        state.as_u8()
    }
}

impl Serialize for TcpState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        go_names::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for TcpState {
    /// Reads the names of [`TcpState::from_str`]; `null` and unknown names read as `None`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        go_names::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_state_names_and_numbers() {
        let names = [
            "none",
            "syn-sent",
            "sync-recv",
            "established",
            "fin-wait",
            "close-wait",
            "last-ack",
            "time-wait",
            "close",
            "syn-sent2",
        ];
        for (i, state) in TcpState::ALL.into_iter().enumerate() {
            assert_eq!(state.as_u8() as usize, i);
            assert_eq!(TcpState::try_from(state.as_u8()).unwrap(), state);
            assert_eq!(state.as_str(), names[i]);
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", names[i]));
            assert_eq!(serde_json::from_str::<TcpState>(&json).unwrap(), state);
        }
        assert!(TcpState::try_from(10).is_err());
        assert_eq!("syn-recv".parse::<TcpState>().unwrap(), TcpState::SynRecv);
        assert_eq!("sync-recv".parse::<TcpState>().unwrap(), TcpState::SynRecv);
        assert!("half-open".parse::<TcpState>().is_err());
        for lenient in ["null", r#""""#, r#""half-open""#] {
            assert_eq!(
                serde_json::from_str::<TcpState>(lenient).unwrap(),
                TcpState::None
            );
        }
    }
}
