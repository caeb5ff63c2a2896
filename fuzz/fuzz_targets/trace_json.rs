//! Fuzz target `trace_json`: the checks are `nettrace::fuzz_api::trace_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nettrace::fuzz_api::trace_json(data));
