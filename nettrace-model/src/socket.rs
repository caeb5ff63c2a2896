//! Socket operation records: [`SocketTrace`], [`SocketOp`] and [`SocketOpType`].
//!
//! With socket tracing on, every read and write on a traced socket is recorded with its call
//! and return time, length and error. JSON as Go writes it: the op type as a name (`"read"`,
//! `"write"`, ...; unknown names read as [`SocketOpType::Unrecognized`]), `socketOps` `null` when
//! empty.
//!
//! ```
//! use nettrace_model::{SocketOp, SocketOpType, Timestamp};
//!
//! let op = SocketOp {
//!     op_type: SocketOpType::Read,
//!     call_at: Timestamp::Relative(127),
//!     return_at: Timestamp::Relative(152),
//!     data_len: 576,
//!     ..Default::default()
//! };
//! assert_eq!(serde_json::to_string(&op).unwrap(),
//!            r#"{"type":"read","callAt":"+127ms","returnAt":"+152ms","dataLen":576}"#);
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::go_names::{self, GoNamed};
use super::serde_util::null_when_empty;
use super::{ModelError, Timestamp};

/// The I/O operations performed over one socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SocketTrace {
    /// The operations in the order they were called. JSON `null` when empty.
    #[serde(with = "null_when_empty")]
    pub socket_ops: Vec<SocketOp>,
    /// Operations not logged because the per-connection limit was reached (extension; JSON
    /// `droppedSocketOps`, omitted when zero). The byte totals still count them.
    #[serde(rename = "droppedSocketOps", skip_serializing_if = "is_zero_u64")]
    pub dropped_ops: u64,
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

/// One I/O operation over a socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SocketOp {
    /// Which operation. JSON `type`.
    #[serde(rename = "type")]
    pub op_type: SocketOpType,
    /// When the caller started it.
    pub call_at: Timestamp,
    /// When it returned.
    pub return_at: Timestamp,
    /// The error it returned, if any. Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub return_err: String,
    /// For `read-from`/`write-to`: the peer as `host:port`. Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remote_addr: String,
    /// Bytes read or written.
    pub data_len: u32,
}

/// An operation over a socket; the numbers are Go's constants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SocketOpType {
    /// Not recognized. JSON `"unrecognized-op"`.
    #[default]
    Unrecognized = 0,
    /// Read from a connected socket. JSON `"read"`.
    Read = 1,
    /// Read a datagram with its source address. JSON `"read-from"`.
    ReadFrom = 2,
    /// Write to a connected socket. JSON `"write"`.
    Write = 3,
    /// Write a datagram to an address. JSON `"write-to"`.
    WriteTo = 4,
}

impl SocketOpType {
    /// Every type, in numeric order.
    pub const ALL: [Self; 5] = go_names::values(<Self as GoNamed>::NAMES);

    /// The name written to JSON.
    pub const fn as_str(self) -> &'static str {
        <Self as GoNamed>::NAMES[self as usize].0
    }

    /// Go's numeric value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

impl GoNamed for SocketOpType {
    const KIND: &'static str = "socket operation";
    /// Every type, in numeric order (indexed by [`SocketOpType::as_u8`]).
    const NAMES: &'static [(&'static str, Self)] = &[
        ("unrecognized-op", Self::Unrecognized),
        ("read", Self::Read),
        ("read-from", Self::ReadFrom),
        ("write", Self::Write),
        ("write-to", Self::WriteTo),
    ];
    const UNRECOGNIZED: Self = Self::Unrecognized;
    const UNRECOGNIZED_NAME: &'static str = "unrecognized-op";
}

impl fmt::Display for SocketOpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SocketOpType {
    type Err = ModelError;

    /// Go's names, plus `""` (unrecognized).
    fn from_str(input: &str) -> Result<Self, ModelError> {
        Self::from_go_name(input)
    }
}

impl TryFrom<u8> for SocketOpType {
    type Error = ModelError;

    fn try_from(value: u8) -> Result<Self, ModelError> {
        go_names::from_u8(&Self::ALL, Self::KIND, value)
    }
}

impl From<SocketOpType> for u8 {
    fn from(op: SocketOpType) -> Self {
        op.as_u8()
    }
}

impl Serialize for SocketOpType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        go_names::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for SocketOpType {
    /// Reads Go's names; `null` and unknown names read as `Unrecognized`, as in Go.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        go_names::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn op_type_names_and_numbers() {
        let names = ["unrecognized-op", "read", "read-from", "write", "write-to"];
        for (i, op) in SocketOpType::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(op.as_u8()), i);
            assert_eq!(SocketOpType::try_from(op.as_u8()).unwrap(), op);
            assert_eq!(serde_json::to_value(op).unwrap(), names[i]);
            assert_eq!(names[i].parse::<SocketOpType>().unwrap(), op);
        }
        assert!(SocketOpType::try_from(5).is_err());
        assert!("connect".parse::<SocketOpType>().is_err());
        for lenient in ["null", r#""""#, r#""connect""#] {
            let op: SocketOpType = serde_json::from_str(lenient).unwrap();
            assert_eq!(op, SocketOpType::Unrecognized, "{lenient}");
        }
    }

    #[test]
    fn socket_trace_round_trip() {
        let trace = SocketTrace {
            dropped_ops: 0,
            socket_ops: vec![
                SocketOp {
                    op_type: SocketOpType::WriteTo,
                    call_at: Timestamp::Relative(73),
                    return_at: Timestamp::Relative(74),
                    remote_addr: "8.8.8.8:53".into(),
                    data_len: 43,
                    ..Default::default()
                },
                SocketOp {
                    op_type: SocketOpType::Read,
                    call_at: Timestamp::Relative(240),
                    return_at: Timestamp::Relative(241),
                    return_err: "use of closed network connection".into(),
                    ..Default::default()
                },
            ],
        };
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(json["socketOps"][0]["remoteAddr"], "8.8.8.8:53");
        assert!(json["socketOps"][0].get("returnErr").is_none());
        assert_eq!(json["socketOps"][1]["dataLen"], 0);
        assert_eq!(serde_json::from_value::<SocketTrace>(json).unwrap(), trace);

        let empty = serde_json::to_value(SocketTrace::default()).unwrap();
        assert_eq!(empty, json!({"socketOps": null}));
        let from_array: SocketTrace = serde_json::from_value(json!({"socketOps": []})).unwrap();
        assert_eq!(from_array, SocketTrace::default());
    }
}
