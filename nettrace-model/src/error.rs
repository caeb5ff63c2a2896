//! Errors of the trace model: parsing the string forms of timestamps and enums.
//!
//! JSON reading is lenient where Go's is (an unknown enum name becomes the "unrecognized" value),
//! so these errors come from [`std::str::FromStr`] on the model types and from timestamps that Go
//! would also reject (or that Go would silently mangle, see [`ModelError::NegativeRelativeTimestamp`]).
//!
//! ```
//! use nettrace_model::{ModelError, TcpState};
//!
//! let err = "half-open".parse::<TcpState>().unwrap_err();
//! assert!(matches!(err, ModelError::UnknownName { kind: "TCP state", .. }));
//! ```

/// An error of the trace model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A string is not one of the names of an enum (e.g. `"half-open"` as a TCP state).
    #[error("unknown {kind} name {name:?}")]
    UnknownName {
        /// What was being parsed, e.g. `"TCP state"`.
        kind: &'static str,
        /// The offending string.
        name: String,
    },
    /// A number is outside the values of an enum (e.g. 10 as a TCP state).
    #[error("{value} is not a valid {kind}")]
    OutOfRange {
        /// What was being converted, e.g. `"TCP state"`.
        kind: &'static str,
        /// The offending number.
        value: u64,
    },
    /// A relative timestamp is not of the form `+<ms>ms` with a `u32` number of milliseconds.
    #[error("invalid relative timestamp {input:?}: expected \"+<milliseconds>ms\"")]
    InvalidRelativeTimestamp {
        /// The offending string.
        input: String,
    },
    /// A relative timestamp is negative (`"-5ms"`). Go drops the sign silently; this model
    /// rejects it because relative timestamps count milliseconds since the trace began.
    #[error("negative relative timestamp {input:?}: relative timestamps cannot precede the trace")]
    NegativeRelativeTimestamp {
        /// The offending string.
        input: String,
    },
    /// An absolute timestamp is not valid RFC 3339.
    #[error("invalid absolute timestamp {input:?}")]
    InvalidAbsoluteTimestamp {
        /// The offending string.
        input: String,
        /// Why `time` rejected it.
        #[source]
        source: time::error::Parse,
    },
    /// An absolute timestamp has a year that RFC 3339 cannot express (before year 0).
    #[error("timestamp year {year} is outside the RFC 3339 range 0..=9999")]
    UnrepresentableTimestamp {
        /// The offending year.
        year: i32,
    },
    /// An IP address field holds neither an IP address nor one of the "unknown" forms
    /// (`""`, `"<nil>"`).
    #[error("invalid IP address {input:?}")]
    InvalidIpAddr {
        /// The offending string.
        input: String,
        /// Why it does not parse.
        #[source]
        source: std::net::AddrParseError,
    },
}
