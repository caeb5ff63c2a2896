//! Errors of the kernel side. Each names the step that failed and keeps its cause.
//!
//! The causes from aya (the eBPF loader) are kept boxed: they stay available as `source()`
//! (and can be downcast to aya's types by a caller that depends on aya itself), but aya's
//! types are not part of this crate's API.
//!
//! ```
//! use nettrace::kernel::KernelError;
//!
//! let error = KernelError::Program {
//!     name: "nettrace_sock_ops",
//!     step: "attach",
//!     source: std::io::Error::from(std::io::ErrorKind::PermissionDenied).into(),
//! };
//! assert_eq!(error.to_string(), "program nettrace_sock_ops: attach failed");
//! assert!(std::error::Error::source(&error).is_some());
//! ```
use std::{error::Error, io};

/// Why loading, attaching or using the eBPF programs failed. More reasons may come: a match
/// on it needs a catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The process may not load BPF programs (needs root or CAP_BPF and CAP_NET_ADMIN).
    #[error("not permitted to load eBPF programs (needs root or CAP_BPF + CAP_NET_ADMIN)")]
    NotPermitted(#[source] Box<dyn Error + Send + Sync>),
    /// The embedded object could not be loaded into the kernel.
    #[error("loading the eBPF object failed")]
    Load(#[source] Box<dyn Error + Send + Sync>),
    /// The kernel's BTF (`/sys/kernel/btf/vmlinux`) could not be read.
    #[error("reading the kernel BTF failed")]
    Btf(#[source] Box<dyn Error + Send + Sync>),
    /// The object lacks a program or a map the library expects.
    #[error("the eBPF object has no {kind} named {name}")]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// Loading or attaching one program failed.
    #[error("program {name}: {step} failed")]
    Program {
        /// The program's name.
        name: &'static str,
        /// "load" or "attach".
        step: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// A map operation failed.
    #[error("map {name}: {step} failed")]
    Map {
        /// The map's name.
        name: &'static str,
        /// What was attempted.
        step: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// The cgroup v2 root could not be found or opened.
    #[error("opening the cgroup v2 root failed")]
    Cgroup(#[source] io::Error),
    /// Another client of this process already traces a cgroup (the programs read one shared
    /// setting).
    #[error("a cgroup is already traced by this process")]
    CgroupBusy,
    /// A socket's cookie (`SO_COOKIE`) could not be read.
    #[error("reading the socket's cookie failed")]
    Cookie(#[source] io::Error),
    /// Waiting on the ring buffer's descriptor failed.
    #[error("polling the event ring buffer failed")]
    Poll(#[source] io::Error),
    /// The number of possible CPUs (for per-CPU counters) could not be read.
    #[error("reading the possible CPUs failed")]
    Cpus(#[source] io::Error),
    /// Run statistics could not be turned on.
    #[error("enabling eBPF run statistics failed")]
    Stats(#[source] io::Error),
    /// The thread that watches the ring buffer could not run.
    #[error("starting the kernel event thread failed")]
    Thread(#[source] io::Error),
    /// Every client slot of the process is taken.
    #[error(
        "no free kernel client slot (at most {} traced clients per process)",
        nettrace_common::limits::MAX_CLIENTS
    )]
    NoClientSlot,
    /// [`super::KernelTracer::load`] was called outside a tokio runtime.
    #[error("the kernel tracer must be loaded inside a tokio runtime")]
    NoRuntime,
    /// The capture options were refused (see [`crate::capture::PacketCaptureOptions::validate`]).
    #[error("the capture options are invalid")]
    CaptureOptions(#[from] crate::capture::CaptureOptionsError),
    /// A capture interface could not be found or cannot be captured.
    #[error("capture interface {name} is unavailable")]
    Interface {
        /// The interface's name.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The calling thread's network namespace could not be identified.
    #[error("reading the network namespace failed")]
    Netns(#[source] io::Error),
    /// The client has no kernel link (kernel tracing is off or could not start).
    #[error("the client has no kernel tracing")]
    Unavailable,
    /// A tracer that already has this part was given a second one (a kernel link, a kernel
    /// event translator): a bug in the caller, refused rather than ignored.
    #[error("the tracer already has {0}")]
    AlreadyAttached(&'static str),
    /// A flow's packets are captured for another client's socket already (the first
    /// registration keeps them).
    #[error("the flow {local} -> {remote} is captured for another client")]
    FlowTaken {
        /// The flow's local end.
        local: std::net::SocketAddr,
        /// The flow's remote end.
        remote: std::net::SocketAddr,
    },
    /// The loader daemon refused or failed a request made for this client. The cause is the
    /// daemon's error (a [`crate::daemon::DaemonError`]), boxed: the daemon's errors contain
    /// kernel errors, not the other way round.
    #[error("through the nettrace-loader daemon")]
    Daemon(#[source] Box<dyn Error + Send + Sync>),
    /// A ring-buffer record did not match any known layout.
    #[error("malformed kernel event: {0}")]
    MalformedEvent(String),
}

impl From<crate::event::MalformedRecord> for KernelError {
    fn from(record: crate::event::MalformedRecord) -> Self {
        Self::MalformedEvent(record.0)
    }
}
