//! The compiled eBPF object, built by `cargo xtask build-ebpf` and committed, embedded so that
//! the library builds on stable Rust without an eBPF toolchain.

/// Bytes of `nettrace-user/ebpf/nettrace.bpf.o`, 8-byte aligned as the ELF parser needs.
pub(crate) static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!("../../ebpf/nettrace.bpf.o");
