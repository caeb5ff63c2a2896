//! [`IdSource`]: where the recorder and the kernel-event translator get the IDs of the records
//! they create themselves (a DNS query trace; a program's dials, connections and TLS tunnels).
//!
//! In production that is the process-wide generator ([`TraceId::generate`], which honours
//! `set_id_generator`); a test passes its own sequence, so that the trace it expects does not
//! depend on what other tests generated meanwhile.
//!
//! ```ignore
//! // crate-internal
//! let mut n = 0;
//! let mut ids = IdSource::new(move || {
//!     n += 1;
//!     TraceId::from(format!("dns-{n}"))
//! });
//! assert_eq!(ids.next_id(), "dns-1");
//! ```
use std::fmt;

use crate::model::TraceId;

/// A source of fresh trace IDs (see the module docs).
pub(crate) struct IdSource(Box<dyn FnMut() -> TraceId + Send>);

impl IdSource {
    /// IDs from the process-wide generator ([`TraceId::generate`]).
    pub(crate) fn global() -> Self {
        Self(Box::new(TraceId::generate))
    }

    /// IDs from `generate`, which must not repeat one.
    #[cfg_attr(not(test), allow(dead_code))] // The seam of the recorder's and translator's tests.
    pub(crate) fn new(generate: impl FnMut() -> TraceId + Send + 'static) -> Self {
        Self(Box::new(generate))
    }

    /// A fresh ID.
    pub(crate) fn next_id(&mut self) -> TraceId {
        (self.0)()
    }
}

impl fmt::Debug for IdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdSource")
    }
}
