//! nettrace-loader.
fn main() {}
