//! Unit tests of the diagnosis on hand-built traces.
use super::*;
