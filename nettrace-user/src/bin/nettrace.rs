//! nettrace CLI.
fn main() {}
