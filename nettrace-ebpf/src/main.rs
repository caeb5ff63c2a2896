//! The eBPF programs of nettrace.
//!
//! The programs that run for every socket or packet of the machine first read
//! [`maps::ARMED`] and stop there while userspace has nothing registered. Then they look up
//! the socket's entry in [`maps::TRACED_SOCKETS`], stored in the socket itself (the TC
//! programs: the mark of the packet's pair of ports in [`maps::FLOW_PORTS`], then its flow); an untraced socket
//! costs that and nothing else. Traced sockets produce small `#[repr(C)]`
//! records (from `nettrace-common`) in the [`maps::EVENTS`] ring buffer; a record that does not
//! fit is counted in [`maps::LOST_EVENTS`] for the socket's client.
//!
//! One module per hook family: [`sock_ops`] (cgroup sock_ops callbacks), [`tcp_state`]
//! (`tp_btf/inet_sock_set_state`), [`sock_msg`] (`tp_btf/sock_{send,recv}_length`),
//! [`tcp_reset`] (`tp_btf/tcp_{send,receive}_reset`), [`capture`] (TC classifiers that copy
//! the packets of traced flows, found by 5-tuple in [`maps::TRACED_FLOWS`]), and the programs
//! attached to a traced cgroup: [`cgroup_sock`] (registers every TCP/UDP socket created there),
//! [`connect`] (`connect()` attempts) and [`cgroup_skb`] (DNS and TLS handshake packets).
#![no_std]
#![no_main]
// `atomic_xadd`: the BPF target has no atomic read-modify-write types (see `sock_msg`).
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod capture;
mod cgroup_skb;
mod cgroup_sock;
mod connect;
mod emit;
mod flows;
mod maps;
mod sock_msg;
mod sock_ops;
mod tcp_reset;
mod tcp_state;

/// The kernel requires a GPL-compatible licence for the helpers used here.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // eBPF programs cannot panic at run time: the verifier rejects any reachable panic path,
    // so this is never executed.
    loop {}
}
