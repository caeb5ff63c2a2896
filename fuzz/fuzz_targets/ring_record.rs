//! Fuzz target `ring_record`: the checks are `nettrace::fuzz_api::ring_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nettrace::fuzz_api::ring_record(data));
