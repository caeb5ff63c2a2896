//! Fuzz target `dns_message`: the checks are `nettrace::fuzz_api::dns_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nettrace::fuzz_api::dns_message(data));
