//! The programs attached to one traced cgroup: `cgroup/sock_create` and `sock_release`
//! (every TCP/UDP socket created there is registered by the kernel itself),
//! `cgroup/connect4`/`connect6` (each `connect()` with its process) and `cgroup_skb`
//! egress/ingress (DNS and TLS handshake packets, UDP flows for capture).
//!
//! Attaching makes cgroup links owned by the tracer: they go away with it, or with the
//! process (nothing is pinned).
use crate::sync::lock;
use std::{fs::File, path::Path};

use aya::{
    Ebpf,
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr,
        cgroup_skb::CgroupSkbLinkId, cgroup_sock::CgroupSockLinkId,
        cgroup_sock_addr::CgroupSockAddrLinkId,
    },
};
use nettrace_common::{TracedSocket, map_name, program_name};

use super::{
    ClientId, KernelError, KernelTracer,
    tracer::{map_error, program, program_error},
};

const SOCK: [&str; 2] = [program_name::SOCK_CREATE, program_name::SOCK_RELEASE];
const ADDR: [&str; 2] = [program_name::CONNECT4, program_name::CONNECT6];
const SKB: [(&str, CgroupSkbAttachType); 2] = [
    (program_name::CGROUP_SKB_EGRESS, CgroupSkbAttachType::Egress),
    (
        program_name::CGROUP_SKB_INGRESS,
        CgroupSkbAttachType::Ingress,
    ),
];

/// The links of the programs attached to one cgroup; give them back to
/// [`KernelTracer::detach_cgroup`] (or drop the tracer) to detach.
#[derive(Debug)]
pub struct CgroupLinks {
    sock: Vec<(&'static str, CgroupSockLinkId)>,
    addr: Vec<(&'static str, CgroupSockAddrLinkId)>,
    skb: Vec<(&'static str, CgroupSkbLinkId)>,
}

/// Loads the cgroup programs (with the others, so that a verifier problem shows at once),
/// the one on the cgroup root that registers announced sockets among them.
pub(super) fn load(ebpf: &mut Ebpf) -> Result<(), KernelError> {
    for name in SOCK
        .into_iter()
        .chain([program_name::SOCK_CREATE_ANNOUNCED])
    {
        sock(ebpf, name)?
            .load()
            .map_err(program_error(name, "load"))?;
    }
    for name in ADDR {
        addr(ebpf, name)?
            .load()
            .map_err(program_error(name, "load"))?;
    }
    for (name, _) in SKB {
        skb(ebpf, name)?
            .load()
            .map_err(program_error(name, "load"))?;
    }
    Ok(())
}

fn sock<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut CgroupSock, KernelError> {
    program(ebpf, name)?
        .try_into()
        .map_err(program_error(name, "open"))
}

/// Attaches the program that registers announced sockets to the cgroup root, like the
/// sock_ops program: the sockets threads announce are created in whatever cgroup their
/// process is in. (A link: it runs beside any other program there.)
pub(super) fn attach_announced(ebpf: &mut Ebpf) -> Result<(), KernelError> {
    const NAME: &str = program_name::SOCK_CREATE_ANNOUNCED;
    let root = super::cgroup::cgroup2_root().map_err(KernelError::Cgroup)?;
    let cgroup = File::open(&root).map_err(KernelError::Cgroup)?;
    sock(ebpf, NAME)?
        .attach(&cgroup, CgroupAttachMode::Single)
        .map_err(program_error(NAME, "attach"))?;
    Ok(())
}

fn addr<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut CgroupSockAddr, KernelError> {
    program(ebpf, name)?
        .try_into()
        .map_err(program_error(name, "open"))
}

fn skb<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut CgroupSkb, KernelError> {
    program(ebpf, name)?
        .try_into()
        .map_err(program_error(name, "open"))
}

impl KernelTracer {
    /// Traces every TCP and UDP socket created from now on in the cgroup (v2) at `path` and
    /// its descendants, for `client`, with [`nettrace_common::socket_flags`] bits `flags`.
    /// One cgroup per tracer: the programs read one shared setting.
    pub fn attach_cgroup(
        &self,
        path: &Path,
        client: ClientId,
        flags: u32,
    ) -> Result<CgroupLinks, KernelError> {
        let cgroup = File::open(path).map_err(KernelError::Cgroup)?;
        let mut armed = lock(&self.armed);
        armed.hold_cgroup()?;
        let setting = TracedSocket {
            client_id: client.0,
            flags,
            generation: self.generation(client),
            ..TracedSocket::default()
        };
        lock(&self.cgroup_trace)
            .set(0, setting, 0)
            .map_err(map_error(map_name::CGROUP_TRACE, "set"))?;
        let mut ebpf = lock(&self.ebpf);
        let mut links = CgroupLinks {
            sock: Vec::new(),
            addr: Vec::new(),
            skb: Vec::new(),
        };
        let attached = (|| {
            // Sockets first, then what reports on them.
            for name in SOCK {
                let id = sock(&mut ebpf, name)?
                    .attach(&cgroup, CgroupAttachMode::Single)
                    .map_err(program_error(name, "attach"))?;
                links.sock.push((name, id));
            }
            for name in ADDR {
                let id = addr(&mut ebpf, name)?
                    .attach(&cgroup, CgroupAttachMode::Single)
                    .map_err(program_error(name, "attach"))?;
                links.addr.push((name, id));
            }
            for (name, kind) in SKB {
                let id = skb(&mut ebpf, name)?
                    .attach(&cgroup, kind, CgroupAttachMode::Single)
                    .map_err(program_error(name, "attach"))?;
                links.skb.push((name, id));
            }
            Ok(())
        })();
        match attached {
            Ok(()) => Ok(links),
            Err(error) => {
                detach(&mut ebpf, links);
                drop(ebpf);
                if let Err(cleared) = armed.release_cgroup() {
                    tracing::warn!(%cleared, "clearing the armed flag failed");
                }
                Err(error)
            }
        }
    }

    /// Detaches what [`Self::attach_cgroup`] attached.
    pub fn detach_cgroup(&self, links: CgroupLinks) {
        let mut armed = lock(&self.armed);
        detach(&mut lock(&self.ebpf), links);
        if let Err(error) = armed.release_cgroup() {
            tracing::warn!(%error, "clearing the armed flag failed");
        }
    }
}

fn detach(ebpf: &mut Ebpf, links: CgroupLinks) {
    let mut failed = Vec::new();
    for (name, id) in links.sock {
        if let Err(e) =
            sock(ebpf, name).and_then(|p| p.detach(id).map_err(program_error(name, "detach")))
        {
            failed.push(e);
        }
    }
    for (name, id) in links.addr {
        if let Err(e) =
            addr(ebpf, name).and_then(|p| p.detach(id).map_err(program_error(name, "detach")))
        {
            failed.push(e);
        }
    }
    for (name, id) in links.skb {
        if let Err(e) =
            skb(ebpf, name).and_then(|p| p.detach(id).map_err(program_error(name, "detach")))
        {
            failed.push(e);
        }
    }
    for error in failed {
        tracing::warn!(%error, "detaching a cgroup program failed");
    }
}
