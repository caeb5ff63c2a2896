//! The trace model (placeholder, written next).
