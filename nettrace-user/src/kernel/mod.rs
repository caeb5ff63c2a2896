//! Kernel-side tracing: loads the embedded eBPF object, attaches its programs, registers the
//! sockets to trace (an entry stored in each socket, which the kernel frees with it; events
//! name their socket by cookie), and streams the decoded kernel events.
//!
//! Needs root or CAP_BPF + CAP_NET_ADMIN (loading programs and attaching to the cgroup v2 root)
//! and a kernel with BTF (`/sys/kernel/btf/vmlinux`). Programs and links belong to the
//! [`KernelTracer`]: dropping it (or the process dying) detaches everything.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nettrace::kernel::{ClientId, KernelConfig, KernelTracer};
//!
//! let (tracer, mut events) = KernelTracer::load(&KernelConfig::default())?;
//! let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
//! let cookie = tracer.register(std::os::fd::AsFd::as_fd(&socket), ClientId(0))?;
//! println!("events of {cookie}:");
//! socket.connect(&"127.0.0.1:80".parse::<std::net::SocketAddr>()?.into())?;
//! loop {
//!     let event = events.next().await?;
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
mod announce;
mod armed;
mod cgroup;
mod cgroup_programs;
mod error;
mod events;
mod flow;
mod flow_epoch;
mod hub;
mod lanes;
mod mapped;
mod object;
mod record;
mod tracer;

pub use crate::capture::CaptureInterfaceInfo;
pub use crate::event::{
    ClientId, ConnectCall, Direction, HeldStateChange, ImpliedStateChanges, KernelEvent,
    KernelProcess, KernelTcpState, MalformedRecord, PacketRecord, SockCallsRecord, SockMsgRecord,
    SockOp, SockOpsRecord, SocketCreated, SocketProtocol, SocketReleased, TcpCounters,
    TcpResetRecord, TcpStateChange,
};
pub(crate) use announce::Announcement;
pub use cgroup_programs::CgroupLinks;
pub use error::KernelError;
pub use events::{KernelEvents, READ_TICK};
pub use flow::{FlowProtocol, flow_directions, flow_key};
pub(crate) use hub::{CallReports, KernelClient, KernelHub, KernelSink, SocketEntry};
pub use tracer::{CaptureLinks, KernelConfig, KernelTracer, ProgramStats, enable_run_stats};
