//! Fuzz target `daemon_session`: the checks are `nettrace::fuzz_api::daemon_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nettrace::fuzz_api::daemon_session(data));
