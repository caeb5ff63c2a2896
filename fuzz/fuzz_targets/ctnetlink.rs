//! Fuzz target `ctnetlink`: the checks are `nettrace::fuzz_api::ctnetlink`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nettrace::fuzz_api::ctnetlink(data));
