//! Fuzz target `copied_packet`: the checks are `nettrace::fuzz_api::copied_packet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nettrace::fuzz_api::copied_packet(data));
