//! The `ARMED` flag: non-zero while anything is registered, so that the programs that run for
//! every socket and packet of the machine stop after one array load while nothing is traced.
//!
//! The flag is a superset: it is set before the first registration reaches a map and cleared
//! only after the last one was released, so a program never skips a socket or flow while it
//! is registered. (A socket's entry lives as long as the socket: a socket released while
//! still open may go unseen once nothing else keeps the programs armed, as intended.)
//! Its value is a generation, new each time the programs are armed again: the port-pair marks of
//! `FLOW_PORTS` (the TC programs' pre-filter) count only in the generation that wrote them, so
//! re-arming clears them all at once.
//!
//! With a disarm delay ([`Armed::set_disarm_delay`], the hub's choice), the flag outlives the
//! last hold by that long: a client that opens one connection after another then writes the
//! flag once, not twice per connection (two syscalls each). The hub's ring thread calls
//! [`Armed::disarm_if_idle`] on its tick.
use std::time::{Duration, Instant};

use aya::maps::{Array, MapData};
use nettrace_common::{FlowKey, map_name};
// Holds are our own sockets' cookies and flows, and interface indexes: a fast hash will do
// (a socket's release, on the hub's thread, costs one lookup).
use rustc_hash::FxHashSet as HashSet;

use super::{KernelError, tracer::map_error};
use crate::SocketCookie;

/// One reason to keep the flag set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Hold {
    /// A socket, by cookie.
    Socket(u64),
    /// A flow direction registered for capture.
    Flow(FlowKey),
    /// An interface capturing ICMP or ARP.
    Interface(u32),
}

/// What keeps the flag set, and the flag's map.
pub(super) struct Armed {
    flag: Array<MapData, u32>,
    ports: Array<MapData, u32>,
    /// The generation written while armed (never zero).
    generation: u32,
    /// The sockets held, by cookie: apart from the other holds, a key a quarter of a
    /// [`Hold`]'s size to hash and move at every traced socket's release.
    sockets: HashSet<u64>,
    /// The flows and interfaces held.
    holds: HashSet<Hold>,
    /// Traced cgroups: their programs register sockets in the kernel, unseen here.
    cgroups: usize,
    /// The value in the map now.
    written: u32,
    /// How long the flag stays set once nothing holds it (`None`: cleared at once).
    disarm_delay: Option<Duration>,
    /// Since when nothing holds the flag while it is still set (lingering).
    idle_since: Option<Instant>,
}

impl Armed {
    pub(super) fn new(flag: Array<MapData, u32>, ports: Array<MapData, u32>) -> Self {
        Self {
            flag,
            ports,
            generation: 0,
            sockets: HashSet::default(),
            holds: HashSet::default(),
            cgroups: 0,
            written: 0,
            disarm_delay: None,
            idle_since: None,
        }
    }

    /// Keeps the flag set for `delay` after its last hold is released (`None`: clear it at
    /// once, the default).
    pub(super) fn set_disarm_delay(&mut self, delay: Option<Duration>) -> Result<(), KernelError> {
        self.disarm_delay = delay;
        self.clear_if_idle()
    }

    /// Clears a lingering flag once nothing has held it for the disarm delay.
    pub(super) fn disarm_if_idle(&mut self, now: Instant) -> Result<(), KernelError> {
        let expired = match (self.idle_since, self.disarm_delay) {
            (Some(since), Some(delay)) => now.saturating_duration_since(since) >= delay,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if expired && !self.is_held() && self.written != 0 {
            self.write(0)?;
        }
        Ok(())
    }

    /// Takes `hold`; call it before the registration it stands for reaches a map.
    pub(super) fn hold(&mut self, hold: Hold) -> Result<(), KernelError> {
        self.set_if_idle()?;
        match hold {
            Hold::Socket(cookie) => self.sockets.insert(cookie),
            other => self.holds.insert(other),
        };
        Ok(())
    }

    /// Releases `hold`; call it after the registration it stands for was undone (or failed
    /// to reach it). Releasing what is not held does nothing.
    pub(super) fn release(&mut self, hold: &Hold) -> Result<(), KernelError> {
        let held = match hold {
            Hold::Socket(cookie) => self.sockets.remove(cookie),
            other => self.holds.remove(other),
        };
        if held {
            self.clear_if_idle()?;
        }
        Ok(())
    }

    /// [`Self::release`] of the holds of many sockets: all removed, then the flag cleared
    /// once if nothing holds it any more.
    pub(super) fn release_sockets(&mut self, cookies: &[SocketCookie]) -> Result<(), KernelError> {
        let mut released = false;
        for cookie in cookies {
            released |= self.sockets.remove(&cookie.0);
        }
        if released {
            self.clear_if_idle()?;
        }
        Ok(())
    }

    /// Marks the pair of ports of `key` in the current generation; call it after
    /// [`Self::hold`] and before the flow reaches its map.
    pub(super) fn mark_port_pair(&mut self, key: &FlowKey) -> Result<(), KernelError> {
        self.ports
            .set(key.port_pair_slot(), self.generation, 0)
            .map_err(map_error(map_name::FLOW_PORTS, "set"))
    }

    /// A traced cgroup begins (before its programs are attached).
    pub(super) fn hold_cgroup(&mut self) -> Result<(), KernelError> {
        self.set_if_idle()?;
        self.cgroups += 1;
        Ok(())
    }

    /// A traced cgroup ended (after its programs were detached).
    pub(super) fn release_cgroup(&mut self) -> Result<(), KernelError> {
        self.cgroups = self.cgroups.saturating_sub(1);
        self.clear_if_idle()
    }

    /// Whether the flag is set (held, or lingering after its last hold).
    pub(super) fn is_set(&self) -> bool {
        self.written != 0
    }

    /// Whether anything holds the flag.
    fn is_held(&self) -> bool {
        !self.sockets.is_empty() || !self.holds.is_empty() || self.cgroups > 0
    }

    fn set_if_idle(&mut self) -> Result<(), KernelError> {
        if self.is_held() {
            return Ok(());
        }
        self.idle_since = None;
        if self.written != 0 {
            // Still set (lingering): the generation and its port-pair marks carry on.
            return Ok(());
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        self.write(self.generation)
    }

    fn clear_if_idle(&mut self) -> Result<(), KernelError> {
        if self.is_held() || self.written == 0 {
            return Ok(());
        }
        if self.disarm_delay.is_some() {
            self.idle_since.get_or_insert_with(Instant::now);
            return Ok(());
        }
        self.write(0)
    }

    fn write(&mut self, value: u32) -> Result<(), KernelError> {
        self.flag
            .set(0, value, 0)
            .map_err(map_error(map_name::ARMED, "set"))?;
        self.written = value;
        if value == 0 {
            self.idle_since = None;
        }
        Ok(())
    }
}
