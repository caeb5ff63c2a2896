//! The maps shared by all programs. Names and sizes come from `nettrace-common`; userspace may
//! resize the ring buffer at load time.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use nettrace_common::{TracedSocket, limits};

/// Socket cookie -> owner of a traced socket. Filled by userspace before `connect()`.
#[map(name = "TRACED_SOCKETS")]
pub(crate) static TRACED_SOCKETS: HashMap<u64, TracedSocket> =
    HashMap::with_max_entries(limits::MAX_TRACED_SOCKETS, 0);

/// All events, in the order they were reserved.
#[map(name = "EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(limits::DEFAULT_RING_BYTES, 0);

/// Events lost because the ring buffer was full, per client slot and CPU.
#[map(name = "LOST_EVENTS")]
pub(crate) static LOST_EVENTS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(limits::MAX_CLIENTS, 0);
