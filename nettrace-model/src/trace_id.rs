//! Trace record identifiers ([`TraceId`]) and the process-wide ID generator.
//!
//! Every record that others refer to (dial, connection, TLS tunnel, DNS query, HTTP request) has
//! a [`TraceId`]; references between records are `TraceId`s too, with `""` meaning "none".
//! New IDs come from [`next_trace_id`] (or [`TraceId::generate`]), which by default returns
//! `tid-<n>` with `n` from a process-wide atomic counter in decimal, as Go's `AtomicCounterID`.
//! The generator can be replaced at run time with [`set_id_generator`] (Go: assigning
//! `IDGenerator`) and restored with [`reset_id_generator`].
//!
//! ```
//! use nettrace_model::{TraceId, next_trace_id};
//!
//! let id = next_trace_id();
//! assert!(id.as_str().starts_with("tid-"));
//! assert!(TraceId::default().is_empty());
//! assert_eq!(serde_json::to_string(&TraceId::new("tid-8")).unwrap(), r#""tid-8""#);
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

use super::serde_util::nullable_str;

/// Identifier of a trace record (dial, connection, TLS tunnel, DNS query, HTTP request).
///
/// A plain string in JSON. The empty ID (the [`Default`]) means "undefined" (Go's
/// `TraceID.Undefined()`), e.g. a dial without an established connection. JSON `null` reads as
/// the empty ID, as in Go. Cloning is cheap: records refer to each other by ID all the time,
/// so IDs of up to 23 bytes (every `tid-<n>`) are stored inline, without an allocation or a
/// shared count, and longer ones in a shared string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(SmolStr);

impl TraceId {
    /// Wraps an existing identifier (no validation: Go accepts any string).
    pub fn new(id: impl Into<String>) -> Self {
        Self(SmolStr::from(id.into()))
    }

    /// A fresh identifier from the current generator; same as [`next_trace_id`].
    pub fn generate() -> Self {
        next_trace_id()
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the undefined (empty) identifier.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The identifier as an owned string.
    pub fn into_string(self) -> String {
        self.0.to_string()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for TraceId {
    fn from(id: String) -> Self {
        Self(SmolStr::from(id))
    }
}

impl From<&str> for TraceId {
    fn from(id: &str) -> Self {
        Self(SmolStr::new(id))
    }
}

impl From<TraceId> for String {
    fn from(id: TraceId) -> Self {
        id.0.to_string()
    }
}

impl AsRef<str> for TraceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TraceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TraceId {
    fn eq(&self, other: &str) -> bool {
        self.0.as_str() == other
    }
}

impl PartialEq<&str> for TraceId {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        nullable_str(deserializer, |s| Ok(Self::from(s)))
    }
}

/// A replacement ID generator installed with [`set_id_generator`].
type Generator = Arc<dyn Fn() -> TraceId + Send + Sync>;

/// The counter of [`atomic_counter_id`]; the first ID is `tid-1`, as in Go.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The generator installed by the user, if any.
static GENERATOR: RwLock<Option<Generator>> = RwLock::new(None);
/// Whether [`GENERATOR`] holds a generator: readers that see false use the default counter
/// without taking the lock.
static CUSTOM_GENERATOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The default generator: `tid-<n>`, `n` a process-wide counter in decimal starting at 1
/// (Go's `AtomicCounterID`). IDs are unique within one process only.
pub fn atomic_counter_id() -> TraceId {
    counter_id(COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_add(1))
}

/// `tid-<n>`.
fn counter_id(n: u64) -> TraceId {
    // Formatted on the stack with a plain decimal writer: this runs for every record, and the
    // general formatting machinery costs several hundred instructions more.
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    let mut text = [0u8; 4 + 20];
    let len = 4 + digits.len();
    text[..4].copy_from_slice(b"tid-");
    text[4..len].copy_from_slice(digits.as_bytes());
    let text = std::str::from_utf8(&text[..len]).unwrap_or("tid-?");
    // Every ID below 10^19 fits inline; `new_inline` skips the checks `new` makes.
    TraceId(if text.len() <= INLINE_CAPACITY {
        SmolStr::new_inline(text)
    } else {
        SmolStr::new(text)
    })
}

/// The longest string `SmolStr` stores inline (`SmolStr::new_inline` panics above it).
const INLINE_CAPACITY: usize = 23;

/// A fresh identifier from the installed generator, or [`atomic_counter_id`] if none is.
pub fn next_trace_id() -> TraceId {
    // Clone the Arc and release the lock before calling it, so that a generator may itself
    // call `set_id_generator` without deadlocking.
    // Most processes never install a generator: skip the lock then.
    if !CUSTOM_GENERATOR.load(Ordering::Acquire) {
        return atomic_counter_id();
    }
    let custom = GENERATOR
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match custom {
        Some(generate) => generate(),
        None => atomic_counter_id(),
    }
}

/// Replaces the process-wide ID generator (Go: assigning `nettrace.IDGenerator`).
///
/// The generator must return IDs unique within the process; it is called from any thread.
pub fn set_id_generator(generator: impl Fn() -> TraceId + Send + Sync + 'static) {
    *GENERATOR.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(generator));
    CUSTOM_GENERATOR.store(true, Ordering::Release);
}

/// Restores the default generator, [`atomic_counter_id`]. Its counter is not reset.
pub fn reset_id_generator() {
    let mut generator = GENERATOR.write().unwrap_or_else(PoisonError::into_inner);
    *generator = None;
    CUSTOM_GENERATOR.store(false, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The generator is process-wide: unit tests only use the default counter; replacing the
    // generator is tested in tests/model_trace_id.rs (its own process).

    fn counter_of(id: &TraceId) -> u64 {
        id.as_str()
            .strip_prefix("tid-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a counter ID: {id}"))
    }

    #[test]
    fn counter_ids_are_decimal_and_increasing() {
        let a = atomic_counter_id();
        let b = atomic_counter_id();
        assert!(counter_of(&b) > counter_of(&a), "{a} then {b}");
        assert!(counter_of(&a) >= 1);
    }

    #[test]
    fn counter_ids_of_any_length() {
        for n in [1, 10_u64.pow(18), 10_u64.pow(19), u64::MAX] {
            assert_eq!(counter_id(n).as_str(), format!("tid-{n}"));
        }
    }

    #[test]
    fn serde_round_trip_and_null() {
        let id = TraceId::new("tid-42");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#""tid-42""#);
        assert_eq!(serde_json::from_str::<TraceId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TraceId>("null").unwrap().is_empty());
        assert!(serde_json::from_str::<TraceId>("7").is_err());
    }

    #[test]
    fn conversions_and_comparisons() {
        let id = TraceId::from("tid-1");
        assert_eq!(id, "tid-1");
        assert_eq!(id.to_string(), "tid-1");
        assert_eq!(String::from(id.clone()), "tid-1");
        let set: std::collections::HashSet<TraceId> = [id].into_iter().collect();
        assert!(set.contains("tid-1"));
    }
}
