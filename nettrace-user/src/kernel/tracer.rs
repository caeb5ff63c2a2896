//! [`KernelTracer`]: loads the embedded object, attaches its programs and owns the maps through
//! which userspace says which sockets to trace.
use std::{error::Error as _, fs::File, io, sync::Mutex};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray},
    programs::{BtfTracePoint, CgroupAttachMode, SockOps},
};
use nettrace_common::{TracedSocket, limits, map_name, program_name};

use super::{KernelError, KernelEvents, cgroup, object::EBPF_OBJECT};
use crate::SocketCookie;

/// A traced client's slot in the kernel maps: it tags the client's sockets and indexes its
/// lost-event counter. Below [`limits::MAX_CLIENTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u32);

/// How often a program ran and how long it took in all (kernel run statistics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program's name.
    pub name: String,
    /// Runs counted.
    pub run_count: u64,
    /// Time spent in those runs.
    pub run_time: std::time::Duration,
}

/// Turns on the kernel's run statistics of eBPF programs for as long as the returned
/// descriptor is open (`BPF_ENABLE_STATS`; the system setting is not touched).
pub fn enable_run_stats() -> Result<std::os::fd::OwnedFd, KernelError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| KernelError::Stats(e.io_error))
}

/// How to load the programs.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Size of the event ring buffer in bytes: a power of two and a multiple of the page size.
    pub ring_bytes: u32,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            ring_bytes: limits::DEFAULT_RING_BYTES,
        }
    }
}

/// The loaded and attached eBPF programs, and the maps to control them.
///
/// Dropping it detaches the programs (their links are file descriptors owned here).
pub struct KernelTracer {
    /// Owns the programs and their links; kept alive for as long as tracing runs.
    _ebpf: Ebpf,
    attachments: Vec<String>,
    traced: Mutex<HashMap<MapData, u64, TracedSocket>>,
    lost: Mutex<PerCpuArray<MapData, u64>>,
}

impl KernelTracer {
    /// Loads the programs, attaches them (the sock_ops program to the cgroup v2 root, the
    /// state tracepoint globally) and returns the tracer with the stream of its events.
    ///
    /// Must be called inside a tokio runtime (the event stream registers with its reactor).
    pub fn load(config: &KernelConfig) -> Result<(Self, KernelEvents), KernelError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(KernelError::NoRuntime);
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(map_name::EVENTS, config.ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| {
                if is_permission_error(&e) {
                    KernelError::NotPermitted(e)
                } else {
                    KernelError::Load(e)
                }
            })?;
        let btf = Btf::from_sys_fs().map_err(KernelError::Btf)?;
        let mut attachments = Vec::new();
        for (name, tracepoint) in [
            (program_name::INET_SOCK_SET_STATE, "inet_sock_set_state"),
            (program_name::SOCK_SEND_LENGTH, "sock_send_length"),
            (program_name::SOCK_RECV_LENGTH, "sock_recv_length"),
            (program_name::TCP_SEND_RESET, "tcp_send_reset"),
            (program_name::TCP_RECEIVE_RESET, "tcp_receive_reset"),
        ] {
            attachments.push(attach_btf_tracepoint(&mut ebpf, &btf, name, tracepoint)?);
        }
        attachments.push(attach_sock_ops(&mut ebpf)?);
        let traced = HashMap::try_from(take_map(&mut ebpf, map_name::TRACED_SOCKETS)?)
            .map_err(map_error(map_name::TRACED_SOCKETS, "open"))?;
        let lost = PerCpuArray::try_from(take_map(&mut ebpf, map_name::LOST_EVENTS)?)
            .map_err(map_error(map_name::LOST_EVENTS, "open"))?;
        let events = KernelEvents::new(take_map(&mut ebpf, map_name::EVENTS)?)?;
        let tracer = Self {
            _ebpf: ebpf,
            attachments,
            traced: Mutex::new(traced),
            lost: Mutex::new(lost),
        };
        Ok((tracer, events))
    }

    /// Starts tracing the socket with `cookie` on behalf of `client`. Call it before
    /// `connect()` so that the whole handshake is seen.
    pub fn register(&self, cookie: SocketCookie, client: ClientId) -> Result<(), KernelError> {
        let value = TracedSocket {
            client_id: client.0,
            ..TracedSocket::default()
        };
        self.traced_map()
            .insert(cookie.0, value, 0)
            .map_err(map_error(map_name::TRACED_SOCKETS, "insert"))
    }

    /// Stops tracing a socket. Unregistering a socket that is not registered is not an error.
    pub fn unregister(&self, cookie: SocketCookie) -> Result<(), KernelError> {
        match self.traced_map().remove(&cookie.0) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(map_error(map_name::TRACED_SOCKETS, "remove")(e)),
        }
    }

    /// Whether the socket is still traced. The programs forget a TCP socket by themselves when
    /// it reaches CLOSE.
    pub fn is_registered(&self, cookie: SocketCookie) -> Result<bool, KernelError> {
        match self.traced_map().get(&cookie.0, 0) {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(map_error(map_name::TRACED_SOCKETS, "lookup")(e)),
        }
    }

    /// One line per attached program: its name and where it is attached.
    pub fn attachments(&self) -> &[String] {
        &self.attachments
    }

    /// Run statistics of every program (`run_count`, `run_time`), counted by the kernel while
    /// statistics are on (see [`enable_run_stats`]); zero otherwise.
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, KernelError> {
        self._ebpf
            .programs()
            .map(|(name, program)| {
                let info = program.info().map_err(|source| KernelError::Program {
                    name: "statistics",
                    step: "read",
                    source,
                })?;
                Ok(ProgramStats {
                    name: name.to_owned(),
                    run_count: info.run_count(),
                    run_time: info.run_time(),
                })
            })
            .collect()
    }

    /// Events of `client` lost so far because the ring buffer was full (all CPUs).
    pub fn lost_events(&self, client: ClientId) -> Result<u64, KernelError> {
        let per_cpu = self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&client.0, 0)
            .map_err(map_error(map_name::LOST_EVENTS, "read"))?;
        Ok(per_cpu.iter().sum())
    }

    /// Sets the lost-event counter of `client` back to zero (for the next user of the slot).
    pub fn reset_lost_events(&self, client: ClientId) -> Result<(), KernelError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| KernelError::Cpus(e))?;
        let zeros =
            aya::maps::PerCpuValues::try_from(vec![0u64; cpus]).map_err(KernelError::Cpus)?;
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set(client.0, zeros, 0)
            .map_err(map_error(map_name::LOST_EVENTS, "reset"))
    }

    fn traced_map(&self) -> std::sync::MutexGuard<'_, HashMap<MapData, u64, TracedSocket>> {
        // A panic while holding the lock cannot leave the map handle inconsistent (every
        // operation is a single syscall), so a poisoned lock is still usable.
        self.traced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &Btf,
    name: &'static str,
    tracepoint: &str,
) -> Result<String, KernelError> {
    let program: &mut BtfTracePoint = program(ebpf, name)?
        .try_into()
        .map_err(program_error(name, "load"))?;
    program
        .load(tracepoint, btf)
        .map_err(program_error(name, "load"))?;
    program.attach().map_err(program_error(name, "attach"))?;
    Ok(format!("{name}: tp_btf/{tracepoint}"))
}

fn attach_sock_ops(ebpf: &mut Ebpf) -> Result<String, KernelError> {
    const NAME: &str = program_name::SOCK_OPS;
    let root = cgroup::cgroup2_root().map_err(KernelError::Cgroup)?;
    let cgroup = File::open(&root).map_err(KernelError::Cgroup)?;
    let program: &mut SockOps = program(ebpf, NAME)?
        .try_into()
        .map_err(program_error(NAME, "load"))?;
    program.load().map_err(program_error(NAME, "load"))?;
    program
        .attach(&cgroup, CgroupAttachMode::Single)
        .map_err(program_error(NAME, "attach"))?;
    Ok(format!("{NAME}: cgroup sock_ops on {}", root.display()))
}

fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::programs::Program, KernelError> {
    ebpf.program_mut(name).ok_or(KernelError::Missing {
        kind: "program",
        name,
    })
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, KernelError> {
    ebpf.take_map(name)
        .ok_or(KernelError::Missing { kind: "map", name })
}

fn program_error(
    name: &'static str,
    step: &'static str,
) -> impl FnOnce(aya::programs::ProgramError) -> KernelError {
    move |source| KernelError::Program { name, step, source }
}

fn map_error(
    name: &'static str,
    step: &'static str,
) -> impl FnOnce(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { name, step, source }
}

/// A lookup or delete of a key the map does not hold (the programs may have removed it).
fn is_not_found(error: &aya::maps::MapError) -> bool {
    match error {
        aya::maps::MapError::KeyNotFound => true,
        aya::maps::MapError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// True when some cause in the chain is EPERM/EACCES.
fn is_permission_error(error: &aya::EbpfError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::PermissionDenied
        {
            return true;
        }
        cause = e.source();
    }
    false
}
