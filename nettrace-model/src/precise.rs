//! [`PreciseTimes`]: a record's timestamps in microseconds, beside Go's whole milliseconds.
//!
//! Go's JSON keeps relative timestamps in whole milliseconds (`"+12ms"`), which turns every step
//! on loopback into `0ms`. A tracer that knows better (this project's recorder keeps monotonic
//! instants) adds the same timestamps in microseconds since `traceBeginAt` under the extension
//! key `preciseUs`, keyed by the JSON name of the timestamp they refine. Go-era readers ignore
//! the key; it is omitted when empty (traces written by Go, the loader's traces).
//!
//! ```
//! use nettrace_model::{HttpReqTrace, PreciseTimes, Timestamp};
//!
//! let mut req = HttpReqTrace { req_sent_at: Timestamp::Relative(3), ..Default::default() };
//! req.precise_us.set("reqSentAt", 3_417);
//! let json = serde_json::to_value(&req).unwrap();
//! assert_eq!(json["reqSentAt"], "+3ms");
//! assert_eq!(json["preciseUs"]["reqSentAt"], 3417);
//! assert_eq!(req.precise_us.get("reqSentAt"), Some(3_417));
//! ```
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Microseconds since the trace began, per timestamp of a record, keyed by the timestamp's JSON
/// name (`reqSentAt`, `handshakeEndAt`, ...). JSON: an object, e.g. `{"reqSentAt": 3417}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PreciseTimes(pub BTreeMap<String, u64>);

impl PreciseTimes {
    /// The time of the timestamp named `key`, µs since the trace began, if recorded.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.get(key).copied()
    }

    /// Records the timestamp named `key` as `us` µs since the trace began.
    pub fn set(&mut self, key: &str, us: u64) {
        self.0.insert(key.to_owned(), us);
    }

    /// True when nothing is recorded (the key is then omitted).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
