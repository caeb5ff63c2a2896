//! Fuzz target `connect_reply`: the checks are `nettrace::fuzz_api::connect_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nettrace::fuzz_api::connect_reply(data));
