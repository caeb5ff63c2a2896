//! Kernel events decoded from ring-buffer records into typed values.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use bytes::Bytes;

use nettrace_common::{
    ConnectEvent, EstablishedCounters, EventHeader, HeldTransition, PacketEvent, SockCallsEvent,
    SockCreateEvent, SockMsgEvent, SockOpsEvent, SockReleaseEvent, SocketCalls, TcpResetEvent,
    TcpStateEvent, TracedSocket, direction, event_kind, family, limits::HELD_TRANSITIONS,
    sock_ops_record,
};

use super::kernel_socket::{ConnectCall, SocketCreated, SocketReleased};
use crate::{KernelTime, SocketCookie};

/// A traced client's slot in the kernel maps: it tags the client's sockets and indexes its
/// lost-event counter. Below [`nettrace_common::limits::MAX_CLIENTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u32);

impl ClientId {
    /// Not a slot: marks a packet that belongs to no flow (ICMP, ARP), for every client that
    /// captures its kind on its interface.
    pub const ANY: ClientId = ClientId(nettrace_common::ANY_CLIENT);
}

/// A ring-buffer record that matches no known layout (wrong size, unknown kind or value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed kernel event: {0}")]
pub struct MalformedRecord(pub(crate) String);

/// One event from the kernel about a traced socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    /// A TCP state transition.
    TcpState(TcpStateChange),
    /// A sock_ops callback (connect, established, retransmit, RTO, state change).
    SockOps(Box<SockOpsRecord>),
    /// A send or receive call.
    SockMsg(SockMsgRecord),
    /// The call totals of a socket that counts its calls in the kernel
    /// ([`nettrace_common::socket_flags::FOLD_CALLS`]).
    SockCalls(Box<SockCallsRecord>),
    /// A TCP reset sent or received.
    TcpReset(TcpResetRecord),
    /// A packet captured by a TC program (or copied by a cgroup skb program).
    Packet(PacketRecord),
    /// A socket created in a traced cgroup.
    SocketCreated(SocketCreated),
    /// A socket of a traced cgroup released.
    SocketReleased(SocketReleased),
    /// A `connect()` call in a traced cgroup.
    Connect(ConnectCall),
}

/// Which way data or a reset went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the traced socket.
    Sent,
    /// Received by the traced socket.
    Received,
}

impl Direction {
    fn from_raw(value: u32) -> Self {
        if value == direction::RECEIVED {
            Self::Received
        } else {
            Self::Sent
        }
    }
}

/// One send or receive call, as the kernel returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockMsgRecord {
    /// The socket.
    pub cookie: SocketCookie,
    /// The client that registered it.
    pub client: ClientId,
    /// When the call returned.
    pub time: KernelTime,
    /// Send or receive.
    pub direction: Direction,
    /// Bytes moved, or a negative errno.
    pub ret: i32,
    /// The call's `MSG_*` flags.
    pub flags: u32,
}

/// The send and receive calls of a socket so far, counted in the kernel: sent for a failed
/// call or a call after CLOSE, or read from the socket's entry by userspace, with what else
/// the entry keeps of the open connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockCallsRecord {
    /// The socket.
    pub cookie: SocketCookie,
    /// The client that registered it.
    pub client: ClientId,
    /// When the totals were taken.
    pub time: KernelTime,
    /// The totals.
    pub calls: SocketCalls,
    /// Read from the entry: the transitions it holds for the socket's next sock_ops record,
    /// oldest first (the first ones filled). That record carries them again.
    pub held: [Option<HeldStateChange>; HELD_TRANSITIONS],
    /// Read from the entry: when the connection was established and its counters then, kept
    /// there instead of a record ([`nettrace_common::TracedSocket::established`]).
    pub established: Option<(KernelTime, TcpCounters)>,
}

impl SockCallsRecord {
    /// The totals of `calls`, taken at `time`, with nothing else.
    pub(crate) fn totals(
        cookie: SocketCookie,
        client: ClientId,
        time: KernelTime,
        calls: SocketCalls,
    ) -> Self {
        Self {
            cookie,
            client,
            time,
            calls,
            held: [None; HELD_TRANSITIONS],
            established: None,
        }
    }

    /// What the entry `entry` of socket `cookie` keeps, read at `time`: the call totals, the
    /// transitions it holds (none if their count is out of range) and the counters of the
    /// handshake.
    pub(crate) fn from_entry(
        cookie: SocketCookie,
        client: ClientId,
        time: KernelTime,
        entry: &TracedSocket,
    ) -> Self {
        Self {
            held: held_state_changes(&entry.held, entry.held_count)
                .unwrap_or([None; HELD_TRANSITIONS]),
            established: TcpCounters::from_entry(&entry.established),
            ..Self::totals(cookie, client, time, entry.calls)
        }
    }

    /// The ring-buffer record of these totals (what the programs write), for totals read
    /// from a socket's entry that travel the same way as the kernel's. The entry's held
    /// transitions and counters are not in it: they reach only the in-process recorder.
    pub(crate) fn to_record(self) -> Bytes {
        let event = SockCallsEvent {
            header: EventHeader {
                kind: event_kind::SOCK_CALLS,
                client_id: self.client.0,
                timestamp_ns: self.time.0,
                cookie: self.cookie.0,
            },
            calls: self.calls,
        };
        Bytes::copy_from_slice(record_bytes(&event))
    }
}

/// A TCP reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpResetRecord {
    /// The socket.
    pub cookie: SocketCookie,
    /// The client that registered it.
    pub client: ClientId,
    /// When it happened.
    pub time: KernelTime,
    /// Sent or received.
    pub direction: Direction,
}

/// A captured packet: of a traced flow, or (ICMP, ARP) of no flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRecord {
    /// The traced socket of the flow; `SocketCookie(0)` for a packet of no flow.
    pub cookie: SocketCookie,
    /// The socket's client; [`ClientId::ANY`] for a packet of no flow.
    pub client: ClientId,
    /// When the TC program saw it; for a TCP segment a local socket sent, the departure time
    /// TCP gave it (its earliest departure time: when TCP built it, later if pacing holds
    /// it), which the library's readers cap at the moment they took the record (the hub,
    /// whose time the daemon forwards to its clients, and [`crate::kernel::KernelEvents`]).
    pub time: KernelTime,
    /// The interface it was seen on (index in its network namespace).
    pub ifindex: u32,
    /// Flow packets: sent or received by the traced socket. Others: egress or ingress.
    pub direction: Direction,
    /// The packet's whole length.
    pub packet_len: u32,
    /// Its first bytes (snap length, or the headers only).
    pub data: bytes::Bytes,
}

impl KernelEvent {
    /// The socket the event belongs to.
    pub fn cookie(&self) -> SocketCookie {
        match self {
            Self::TcpState(e) => e.cookie,
            Self::SockOps(e) => e.cookie,
            Self::SockMsg(e) => e.cookie,
            Self::SockCalls(e) => e.cookie,
            Self::TcpReset(e) => e.cookie,
            Self::Packet(e) => e.cookie,
            Self::SocketCreated(e) => e.cookie,
            Self::SocketReleased(e) => e.cookie,
            Self::Connect(e) => e.cookie,
        }
    }

    /// The client slot whose socket it is.
    pub fn client(&self) -> ClientId {
        match self {
            Self::TcpState(e) => e.client,
            Self::SockOps(e) => e.client,
            Self::SockMsg(e) => e.client,
            Self::SockCalls(e) => e.client,
            Self::TcpReset(e) => e.client,
            Self::Packet(e) => e.client,
            Self::SocketCreated(e) => e.client,
            Self::SocketReleased(e) => e.client,
            Self::Connect(e) => e.client,
        }
    }

    /// When the event happened, on the kernel's monotonic clock.
    pub fn time(&self) -> KernelTime {
        match self {
            Self::TcpState(e) => e.time,
            Self::SockOps(e) => e.time,
            Self::SockMsg(e) => e.time,
            Self::SockCalls(e) => e.time,
            Self::TcpReset(e) => e.time,
            Self::Packet(e) => e.time,
            Self::SocketCreated(e) => e.time,
            Self::SocketReleased(e) => e.time,
            Self::Connect(e) => e.time,
        }
    }

    /// Caps a packet's time at `read_at`, when its record was read (other events are left
    /// as they are). An outgoing TCP segment carries its departure time, which pacing can put
    /// ahead of the moment it was seen; no event is later than its reading. `read_at` is
    /// called only for a packet, so other events cost no clock read.
    pub(crate) fn cap_packet_time(&mut self, read_at: impl FnOnce() -> KernelTime) {
        if let Self::Packet(packet) = self {
            packet.time = packet.time.min(read_at());
        }
    }

    /// The state transitions a sock_ops record stands for besides itself, as the state
    /// records the kernel did not send for them: those it carries that happened before it
    /// ([`SockOpsRecord::held`], oldest first, each at its own time), which come before the
    /// record, and the one it stands for itself ([`SockOpsRecord::transition`], at the
    /// record's time), which comes after it. Whoever records transitions takes each event in
    /// that order ([`Self::with_implied`]). The totals read from a socket's entry
    /// ([`SockCallsRecord::held`]) imply the transitions held there so far, which the socket's
    /// next sock_ops record carries again: a transition may come twice, with the same time.
    pub fn implied_state_changes(&self) -> ImpliedStateChanges {
        self.implied().collect()
    }

    /// [`Self::implied_state_changes`], read where they lie.
    pub(crate) fn implied(&self) -> Implied<'_> {
        match self {
            Self::SockOps(record) => record.implied(),
            Self::SockCalls(totals) => Implied {
                cookie: totals.cookie,
                client: totals.client,
                held: &totals.held,
                after: None,
            },
            _ => Implied::NONE,
        }
    }

    /// The event with the state changes it stands for, in order
    /// ([`Self::implied_state_changes`]).
    pub fn with_implied(self) -> impl Iterator<Item = KernelEvent> {
        let ImpliedStateChanges { before, after } = self.implied_state_changes();
        let before = before.into_iter().flatten().map(KernelEvent::TcpState);
        before
            .chain(std::iter::once(self))
            .chain(after.map(KernelEvent::TcpState))
    }

    /// Decodes one ring-buffer record.
    pub(crate) fn decode(record: &[u8]) -> Result<Self, MalformedRecord> {
        Self::decode_with(
            record,
            |data| Bytes::copy_from_slice(&record[data]),
            |raw| SockOpsRecord::from_raw(raw).map(Box::new),
        )
        .map(DecodedRecord::boxed)
    }

    /// [`Self::decode`] of the record at `span` of a shared buffer: a packet's bytes are a
    /// view of the buffer, not a second copy; a sock_ops record goes to `sock_ops`, which
    /// decodes it where it is to be kept ([`DecodedRecord`]).
    pub(crate) fn decode_shared<T>(
        buffer: &Bytes,
        span: std::ops::Range<usize>,
        sock_ops: impl FnOnce(&SockOpsEvent) -> Result<T, MalformedRecord>,
    ) -> Result<DecodedRecord<T>, MalformedRecord> {
        let Some(record) = buffer.get(span.clone()) else {
            return Err(MalformedRecord(format!(
                "record at {span:?} of a buffer of {} bytes",
                buffer.len()
            )));
        };
        let packet_data = |data: std::ops::Range<usize>| {
            buffer.slice(span.start + data.start..span.start + data.end)
        };
        Self::decode_with(record, packet_data, sock_ops)
    }

    /// Decodes `record`; `packet_data` gives the bytes of a packet at a range already checked
    /// to lie inside the record, `sock_ops` decodes a sock_ops record.
    fn decode_with<T>(
        record: &[u8],
        packet_data: impl FnOnce(std::ops::Range<usize>) -> Bytes,
        sock_ops: impl FnOnce(&SockOpsEvent) -> Result<T, MalformedRecord>,
    ) -> Result<DecodedRecord<T>, MalformedRecord> {
        let header: EventHeader = read_record(record)?;
        let event = match header.kind {
            event_kind::TCP_STATE => {
                let e: TcpStateEvent = read_record(record)?;
                Ok(Self::TcpState(TcpStateChange {
                    cookie: SocketCookie(header.cookie),
                    client: ClientId(header.client_id),
                    time: KernelTime(header.timestamp_ns),
                    old: KernelTcpState::from(e.old_state),
                    new: KernelTcpState::from(e.new_state),
                }))
            }
            event_kind::SOCK_OPS => {
                return Ok(DecodedRecord::SockOps(with_record(record, sock_ops)??));
            }
            event_kind::SOCK_MSG => {
                let e: SockMsgEvent = read_record(record)?;
                Ok(Self::SockMsg(SockMsgRecord {
                    cookie: SocketCookie(header.cookie),
                    client: ClientId(header.client_id),
                    time: KernelTime(header.timestamp_ns),
                    direction: Direction::from_raw(e.direction),
                    ret: e.ret,
                    flags: e.flags,
                }))
            }
            event_kind::SOCK_CALLS => {
                let e: SockCallsEvent = read_record(record)?;
                Ok(Self::SockCalls(Box::new(SockCallsRecord::totals(
                    SocketCookie(header.cookie),
                    ClientId(header.client_id),
                    KernelTime(header.timestamp_ns),
                    e.calls,
                ))))
            }
            event_kind::TCP_RESET => {
                let e: TcpResetEvent = read_record(record)?;
                Ok(Self::TcpReset(TcpResetRecord {
                    cookie: SocketCookie(header.cookie),
                    client: ClientId(header.client_id),
                    time: KernelTime(header.timestamp_ns),
                    direction: Direction::from_raw(e.direction),
                }))
            }
            event_kind::PACKET => {
                let e: PacketEvent = read_record(record)?;
                let start = std::mem::size_of::<PacketEvent>();
                let data = start..start + e.captured_len as usize;
                if data.end > record.len() {
                    return Err(MalformedRecord(format!(
                        "packet record of {} bytes cannot hold {} captured bytes",
                        record.len(),
                        e.captured_len
                    )));
                }
                Ok(Self::Packet(PacketRecord {
                    cookie: SocketCookie(header.cookie),
                    client: ClientId(header.client_id),
                    time: KernelTime(header.timestamp_ns),
                    ifindex: e.ifindex,
                    direction: Direction::from_raw(e.direction),
                    packet_len: e.packet_len,
                    data: packet_data(data),
                }))
            }
            event_kind::SOCK_CREATE => Ok(Self::SocketCreated(SocketCreated::from_raw(
                &read_record::<SockCreateEvent>(record)?,
            )?)),
            event_kind::SOCK_RELEASE => Ok(Self::SocketReleased(SocketReleased::from_raw(
                &read_record::<SockReleaseEvent>(record)?,
            ))),
            event_kind::CONNECT => Ok(Self::Connect(ConnectCall::from_raw(&read_record::<
                ConnectEvent,
            >(
                record
            )?)?)),
            other => Err(MalformedRecord(format!(
                "unknown event kind {other} ({} bytes)",
                record.len()
            ))),
        }?;
        Ok(DecodedRecord::Event(event))
    }
}

/// The state changes an event stands for ([`KernelEvent::implied_state_changes`]) read where
/// they lie, each made as it is taken: the recorder takes them one by one from the drain's
/// batch instead of a copy of them all, made for each record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Implied<'a> {
    cookie: SocketCookie,
    client: ClientId,
    /// The transitions held for the record, oldest first (the first ones filled).
    held: &'a [Option<HeldStateChange>],
    /// The one it stands for itself, at its time.
    after: Option<(KernelTime, (KernelTcpState, KernelTcpState))>,
}

impl<'a> Implied<'a> {
    /// None at all.
    const NONE: Implied<'static> = Implied {
        cookie: SocketCookie(0),
        client: ClientId(0),
        held: &[],
        after: None,
    };

    fn change(
        &self,
        time: KernelTime,
        (old, new): (KernelTcpState, KernelTcpState),
    ) -> TcpStateChange {
        TcpStateChange {
            cookie: self.cookie,
            client: self.client,
            time,
            old,
            new,
        }
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.after.is_none() && self.held.iter().all(Option::is_none)
    }

    /// Those that happened before the record, oldest first.
    pub(crate) fn before(self) -> impl Iterator<Item = TcpStateChange> + 'a {
        self.held
            .iter()
            .flatten()
            .map(move |held| self.change(held.time, (held.old, held.new)))
    }

    /// The one the record stands for itself.
    pub(crate) fn after(&self) -> Option<TcpStateChange> {
        self.after
            .map(|(time, transition)| self.change(time, transition))
    }

    /// All of them, in the public form.
    fn collect(self) -> ImpliedStateChanges {
        let mut before = [None; HELD_TRANSITIONS];
        for (slot, held) in before.iter_mut().zip(self.held) {
            *slot = held.map(|held| self.change(held.time, (held.old, held.new)));
        }
        ImpliedStateChanges {
            before,
            after: self.after(),
        }
    }
}

/// A decoded record, its sock_ops record as the decoder's caller had it decoded
/// ([`KernelEvent::decode_shared`]). The hub decodes a whole drain before it hands any event
/// on, each sock_ops record straight into its place in the drain's batch
/// ([`SockOpsRecord::decode_into`]: no value of some 420 bytes moved there), and lends it on
/// from there as an [`UnboxedEvent`]. The in-process recorder reads it there, never boxed nor
/// copied; a sink that wants a [`KernelEvent`] gets it boxed as it is handed on
/// ([`UnboxedEvent::boxed`]), so that each box is freed before the next one is allocated and
/// the allocator hands the same memory back from its thread cache. Boxed all at once as they
/// were decoded, most boxes missed that cache, for some 300 instructions more per allocation
/// and free (two records per connection).
#[derive(Debug)]
pub(crate) enum DecodedRecord<T> {
    /// Any event but a sock_ops record.
    Event(KernelEvent),
    /// A sock_ops record.
    SockOps(T),
}

impl DecodedRecord<Box<SockOpsRecord>> {
    /// The event.
    pub(crate) fn boxed(self) -> KernelEvent {
        match self {
            Self::Event(event) => event,
            Self::SockOps(record) => KernelEvent::SockOps(record),
        }
    }
}

/// A decoded event as the hub hands it on: a sock_ops record lent from where the drain
/// decoded it ([`DecodedRecord`]), any other event moved on.
#[derive(Debug)]
pub(crate) enum UnboxedEvent<'a> {
    /// Any event but a sock_ops record.
    Event(KernelEvent),
    /// A sock_ops record.
    SockOps(&'a SockOpsRecord),
}

impl UnboxedEvent<'_> {
    /// The socket the event belongs to ([`KernelEvent::cookie`]).
    pub(crate) fn cookie(&self) -> SocketCookie {
        match self {
            Self::Event(event) => event.cookie(),
            Self::SockOps(record) => record.cookie,
        }
    }

    /// The state changes it stands for ([`KernelEvent::implied_state_changes`]), where they
    /// lie.
    pub(crate) fn implied(&self) -> Implied<'_> {
        match self {
            Self::Event(event) => event.implied(),
            Self::SockOps(record) => record.implied(),
        }
    }

    /// The event, its sock_ops record copied into a box.
    pub(crate) fn boxed(self) -> KernelEvent {
        match self {
            Self::Event(event) => event,
            Self::SockOps(record) => KernelEvent::SockOps(Box::new(*record)),
        }
    }
}

/// Reads a `#[repr(C)]` record from the start of `bytes`, checking its length.
fn read_record<T: aya::Pod>(bytes: &[u8]) -> Result<T, MalformedRecord> {
    with_record(bytes, |record: &T| *record)
}

/// Calls `f` with the `#[repr(C)]` record at the start of `bytes`, checking its length: the
/// record where it lies when `bytes` are aligned for it (a drain's records mostly are: the
/// event records' sizes are multiples of 8), a copy of it otherwise. A sock_ops record is
/// decoded from where it lies, not from a copy of its 264 bytes.
///
/// Nothing may write `bytes` while they are borrowed, which holds for every record decoded
/// here: a private copy (a drain's batch, a daemon's frame), a committed ring-buffer record
/// (the kernel writes none again before the reader releases it), or a lane's slot before the
/// reader's count moves past it (the programs write only slots that count has freed).
fn with_record<T: aya::Pod, R>(
    bytes: &[u8],
    f: impl FnOnce(&T) -> R,
) -> Result<R, MalformedRecord> {
    let size = std::mem::size_of::<T>();
    if bytes.len() < size {
        return Err(MalformedRecord(format!(
            "record of {} bytes is shorter than {} ({size} bytes)",
            bytes.len(),
            std::any::type_name::<T>()
        )));
    }
    let start = bytes.as_ptr().cast::<T>();
    if start.is_aligned() {
        // SAFETY: `bytes` holds at least size_of::<T>() bytes (checked above) from `start`,
        // which is aligned for `T` (checked); `T: Pod` is valid for any bit pattern; the
        // reference lives no longer than the borrow of `bytes`, which nothing writes meanwhile
        // (see above: a private copy, a committed ring record or a lane slot not yet freed).
        Ok(f(unsafe { &*start }))
    } else {
        // SAFETY: as above; read_unaligned makes no alignment assumption about the bytes.
        let record = unsafe { std::ptr::read_unaligned(start) };
        Ok(f(&record))
    }
}

/// The bytes of a `#[repr(C)]` record, as the programs write it (the inverse of
/// [`read_record`]).
pub(crate) fn record_bytes<T: aya::Pod>(record: &T) -> &[u8] {
    // SAFETY: `T` is Pod (no padding, any bit pattern valid), so all its bytes are
    // initialised and may be read for as long as `record` is borrowed.
    unsafe {
        std::slice::from_raw_parts(
            std::ptr::from_ref(record).cast::<u8>(),
            std::mem::size_of::<T>(),
        )
    }
}

/// A TCP state transition: sent by the `inet_sock_set_state` tracepoint, or one a sock_ops
/// record stands for ([`KernelEvent::implied_state_changes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpStateChange {
    /// The socket.
    pub cookie: SocketCookie,
    /// The client that registered it.
    pub client: ClientId,
    /// When it happened.
    pub time: KernelTime,
    /// State before.
    pub old: KernelTcpState,
    /// State after.
    pub new: KernelTcpState,
}

/// The state transitions a record stands for besides itself
/// ([`KernelEvent::implied_state_changes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpliedStateChanges {
    /// Those that happened before the record, oldest first: they come before it.
    pub before: [Option<TcpStateChange>; HELD_TRANSITIONS],
    /// The one the record stands for itself: it comes after it.
    pub after: Option<TcpStateChange>,
}

/// A TCP state transition the kernel held back for a later sock_ops record, which carries
/// it ([`SockOpsRecord::held`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldStateChange {
    /// When it happened.
    pub time: KernelTime,
    /// State before.
    pub old: KernelTcpState,
    /// State after.
    pub new: KernelTcpState,
}

/// TCP states as the kernel numbers them (`include/net/tcp_states.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelTcpState {
    /// TCP_ESTABLISHED (1).
    Established,
    /// TCP_SYN_SENT (2).
    SynSent,
    /// TCP_SYN_RECV (3).
    SynRecv,
    /// TCP_FIN_WAIT1 (4).
    FinWait1,
    /// TCP_FIN_WAIT2 (5).
    FinWait2,
    /// TCP_TIME_WAIT (6).
    TimeWait,
    /// TCP_CLOSE (7).
    Close,
    /// TCP_CLOSE_WAIT (8).
    CloseWait,
    /// TCP_LAST_ACK (9).
    LastAck,
    /// TCP_LISTEN (10).
    Listen,
    /// TCP_CLOSING (11).
    Closing,
    /// TCP_NEW_SYN_RECV (12).
    NewSynRecv,
    /// TCP_BOUND_INACTIVE (13).
    BoundInactive,
    /// A number this library does not know.
    Unknown(u32),
}

impl From<u32> for KernelTcpState {
    fn from(value: u32) -> Self {
        match value {
            1 => Self::Established,
            2 => Self::SynSent,
            3 => Self::SynRecv,
            4 => Self::FinWait1,
            5 => Self::FinWait2,
            6 => Self::TimeWait,
            7 => Self::Close,
            8 => Self::CloseWait,
            9 => Self::LastAck,
            10 => Self::Listen,
            11 => Self::Closing,
            12 => Self::NewSynRecv,
            13 => Self::BoundInactive,
            other => Self::Unknown(other),
        }
    }
}

/// The sock_ops callbacks that produce events (`BPF_SOCK_OPS_*_CB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SockOp {
    /// The SYN is about to be sent (3).
    Connect,
    /// The active side's handshake completed (4).
    ActiveEstablished,
    /// The passive side's handshake completed (5).
    PassiveEstablished,
    /// The retransmission timer fired (8); `args[0]` is the RTO count.
    Rto,
    /// A segment was retransmitted (9); `args[0]` is the sequence, `args[1]` the segment count.
    Retransmit,
    /// The TCP state changed (10); `args` are the old and new state.
    StateChange,
    /// An RTT sample (12).
    Rtt,
    /// Any other callback number.
    Other(u32),
}

impl From<u32> for SockOp {
    fn from(value: u32) -> Self {
        match value {
            3 => Self::Connect,
            4 => Self::ActiveEstablished,
            5 => Self::PassiveEstablished,
            8 => Self::Rto,
            9 => Self::Retransmit,
            10 => Self::StateChange,
            12 => Self::Rtt,
            other => Self::Other(other),
        }
    }
}

/// A sock_ops callback with the socket's addresses and TCP counters at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOpsRecord {
    /// The socket.
    pub cookie: SocketCookie,
    /// The client that registered it.
    pub client: ClientId,
    /// When it happened.
    pub time: KernelTime,
    /// Which callback.
    pub op: SockOp,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The callback's first two arguments; with [`Self::transition`], the old and new state
    /// (for the active-established callback, which has none, SYN-SENT and ESTABLISHED).
    pub args: [u32; 2],
    /// Kernel TCP state.
    pub state: KernelTcpState,
    /// The connection's TCP counters at the callback.
    pub counters: TcpCounters,
    /// Call totals of a socket that counts its calls in the kernel; zero otherwise.
    pub calls: SocketCalls,
    /// The state transition (old, new) this record also stands for: the kernel sent no
    /// state record of its own for it
    /// ([`nettrace_common::socket_flags::STATE_CALLBACKS`]).
    pub transition: Option<(KernelTcpState, KernelTcpState)>,
    /// Transitions of the socket before this record, oldest first, which the kernel sent no
    /// state record for: this record carries them (the first ones filled).
    pub held: [Option<HeldStateChange>; HELD_TRANSITIONS],
}

/// A connection's TCP counters at one moment: those of a sock_ops record
/// ([`SockOpsRecord::counters`]), or those kept in a socket's entry when it was established
/// ([`SockCallsRecord::established`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Smoothed RTT in microseconds.
    pub srtt_us: u32,
    /// Congestion window (segments).
    pub snd_cwnd: u32,
    /// Retransmitted segments so far.
    pub total_retrans: u32,
    /// Segments received.
    pub segs_in: u32,
    /// Segments sent.
    pub segs_out: u32,
    /// The kernel's smallest RTT sample in microseconds; `None` before the first.
    pub min_rtt_us: Option<u32>,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Payload bytes acknowledged by the peer.
    pub bytes_acked: u64,
}

impl TcpCounters {
    /// The counters a socket's entry keeps from its handshake, with when they were taken;
    /// `None` before it completed.
    pub(crate) fn from_entry(raw: &EstablishedCounters) -> Option<(KernelTime, Self)> {
        (raw.timestamp_ns != 0).then(|| {
            (
                KernelTime(raw.timestamp_ns),
                Self {
                    // The kernel keeps srtt in 1/8 microseconds.
                    srtt_us: raw.srtt_us >> 3,
                    snd_cwnd: raw.snd_cwnd,
                    total_retrans: raw.total_retrans,
                    segs_in: raw.segs_in,
                    segs_out: raw.segs_out,
                    min_rtt_us: (raw.min_rtt_us != NO_RTT).then_some(raw.min_rtt_us),
                    // Not kept: the handshake's are the SYN's alone.
                    bytes_received: 0,
                    bytes_acked: 0,
                },
            )
        })
    }
}

/// `tcp_sock.rtt_min` before the first RTT sample.
const NO_RTT: u32 = u32::MAX;

impl SockOpsRecord {
    /// [`KernelEvent::implied`] of this record.
    fn implied(&self) -> Implied<'_> {
        Implied {
            cookie: self.cookie,
            client: self.client,
            held: &self.held,
            after: self.transition.map(|transition| (self.time, transition)),
        }
    }

    /// A record with nothing in it, for [`Self::decode_into`] to write over.
    pub(crate) const BLANK: Self = Self {
        cookie: SocketCookie(0),
        client: ClientId(0),
        time: KernelTime(0),
        op: SockOp::Other(0),
        local: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        remote: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        args: [0; 2],
        state: KernelTcpState::Close,
        counters: TcpCounters {
            srtt_us: 0,
            snd_cwnd: 0,
            total_retrans: 0,
            segs_in: 0,
            segs_out: 0,
            min_rtt_us: None,
            bytes_received: 0,
            bytes_acked: 0,
        },
        calls: SocketCalls {
            send_calls: 0,
            recv_calls: 0,
            would_block: 0,
            send_errors: 0,
            recv_errors: 0,
            last_errno: 0,
            bytes_sent: 0,
            bytes_received: 0,
        },
        transition: None,
        held: [None; HELD_TRANSITIONS],
    };

    /// The record of raw record `e`.
    pub(crate) fn from_raw(e: &SockOpsEvent) -> Result<Self, MalformedRecord> {
        let mut record = Self::BLANK;
        record.decode_into(e)?;
        Ok(record)
    }

    /// Decodes raw record `e` into this record, field by field, in place of what it held
    /// (where a record is kept, no decoded value of some 420 bytes is moved there); a
    /// malformed one leaves it as it was.
    pub(crate) fn decode_into(&mut self, e: &SockOpsEvent) -> Result<(), MalformedRecord> {
        let ip = |words: &[u32; 4]| -> Result<IpAddr, MalformedRecord> {
            match e.family {
                family::INET => Ok(IpAddr::V4(Ipv4Addr::from(words[0].to_ne_bytes()))),
                family::INET6 => {
                    let mut bytes = [0u8; 16];
                    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
                        chunk.copy_from_slice(&word.to_ne_bytes());
                    }
                    Ok(IpAddr::V6(Ipv6Addr::from(bytes)))
                }
                other => Err(MalformedRecord(format!(
                    "sock_ops event with address family {other}"
                ))),
            }
        };
        let local = SocketAddr::new(ip(&e.local_addr)?, e.local_port as u16);
        let remote = SocketAddr::new(ip(&e.remote_addr)?, e.remote_port as u16);
        self.held = held_state_changes(&e.held, e.held_count).ok_or_else(|| {
            MalformedRecord(format!(
                "sock_ops event carrying {} held transitions (at most {HELD_TRANSITIONS})",
                e.held_count
            ))
        })?;
        self.cookie = SocketCookie(e.header.cookie);
        self.client = ClientId(e.header.client_id);
        self.time = KernelTime(e.header.timestamp_ns);
        self.op = SockOp::from(e.op);
        self.local = local;
        self.remote = remote;
        self.args = e.args;
        self.state = KernelTcpState::from(e.state);
        self.counters = TcpCounters {
            // The kernel keeps srtt in 1/8 microseconds.
            srtt_us: e.srtt_us >> 3,
            snd_cwnd: e.snd_cwnd,
            total_retrans: e.total_retrans,
            segs_in: e.segs_in,
            segs_out: e.segs_out,
            min_rtt_us: (e.record_flags & sock_ops_record::HAS_MIN_RTT != 0)
                .then_some(e.min_rtt_us),
            bytes_received: e.bytes_received,
            bytes_acked: e.bytes_acked,
        };
        self.calls = e.calls;
        self.transition = (e.record_flags & sock_ops_record::TRANSITION != 0).then(|| {
            (
                KernelTcpState::from(e.args[0]),
                KernelTcpState::from(e.args[1]),
            )
        });
        Ok(())
    }
}

/// The first `count` of the transitions `raw` (of a sock_ops record, [`SockOpsEvent::held`],
/// or of a socket's entry); `None` when `count` is more than there are.
pub(crate) fn held_state_changes(
    raw: &[HeldTransition; HELD_TRANSITIONS],
    count: u32,
) -> Option<[Option<HeldStateChange>; HELD_TRANSITIONS]> {
    let filled = raw.get(..usize::try_from(count).ok()?)?;
    let mut held = [None; HELD_TRANSITIONS];
    for (slot, raw) in held.iter_mut().zip(filled) {
        *slot = Some(HeldStateChange {
            time: KernelTime(raw.timestamp_ns),
            old: KernelTcpState::from(raw.old_state),
            new: KernelTcpState::from(raw.new_state),
        });
    }
    Some(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: aya::Pod>(value: &T) -> Vec<u8> {
        record_bytes(value).to_vec()
    }

    #[test]
    fn a_packet_time_is_capped_at_its_reading_and_other_events_are_left() {
        let packet = |time| {
            KernelEvent::Packet(PacketRecord {
                cookie: SocketCookie(7),
                client: ClientId(1),
                time: KernelTime(time),
                ifindex: 1,
                direction: Direction::Sent,
                packet_len: 66,
                data: bytes::Bytes::new(),
            })
        };
        // A paced segment's departure time ahead of the reading.
        let mut ahead = packet(2_000);
        ahead.cap_packet_time(|| KernelTime(1_500));
        assert_eq!(ahead.time(), KernelTime(1_500));
        // One seen before the reading keeps its time.
        let mut seen = packet(1_000);
        seen.cap_packet_time(|| KernelTime(1_500));
        assert_eq!(seen.time(), KernelTime(1_000));
        // Other events keep theirs, and cost no clock read.
        let mut released = KernelEvent::SocketReleased(SocketReleased {
            cookie: SocketCookie(7),
            client: ClientId(1),
            time: KernelTime(2_000),
        });
        released.cap_packet_time(|| unreachable!("read the clock for a socket's release"));
        assert_eq!(released.time(), KernelTime(2_000));
    }

    #[test]
    fn decodes_a_tcp_state_record() {
        let raw = TcpStateEvent {
            header: EventHeader {
                kind: event_kind::TCP_STATE,
                client_id: 3,
                timestamp_ns: 42,
                cookie: 7,
            },
            old_state: 7,
            new_state: 2,
        };
        let event = KernelEvent::decode(&bytes_of(&raw)).unwrap();
        assert_eq!(
            event,
            KernelEvent::TcpState(TcpStateChange {
                cookie: SocketCookie(7),
                client: ClientId(3),
                time: KernelTime(42),
                old: KernelTcpState::Close,
                new: KernelTcpState::SynSent,
            })
        );
    }

    #[test]
    fn decodes_sock_ops_addresses_in_network_order() {
        let raw = SockOpsEvent {
            header: EventHeader {
                kind: event_kind::SOCK_OPS,
                ..Default::default()
            },
            op: 4,
            family: family::INET,
            local_addr: [u32::from_ne_bytes([127, 0, 0, 1]), 0, 0, 0],
            remote_addr: [u32::from_ne_bytes([127, 0, 0, 2]), 0, 0, 0],
            local_port: 40000,
            remote_port: 8080,
            srtt_us: 80,
            ..Default::default()
        };
        let KernelEvent::SockOps(record) = KernelEvent::decode(&bytes_of(&raw)).unwrap() else {
            panic!("not a sock_ops record");
        };
        assert_eq!(record.op, SockOp::ActiveEstablished);
        assert_eq!(record.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(record.remote, "127.0.0.2:8080".parse().unwrap());
        assert_eq!(record.counters.srtt_us, 10);
        // The kernel's RTT minimum counts only with its flag (`u32::MAX` before a sample).
        let has_min_rtt = sock_ops_record::HAS_MIN_RTT;
        for (min_rtt_us, record_flags, decoded) in [
            (u32::MAX, 0, None),
            (900, has_min_rtt, Some(900)),
            (900, has_min_rtt | sock_ops_record::TRANSITION, Some(900)),
        ] {
            let raw = SockOpsEvent {
                min_rtt_us,
                record_flags,
                ..raw
            };
            let KernelEvent::SockOps(record) = KernelEvent::decode(&bytes_of(&raw)).unwrap() else {
                panic!("not a sock_ops record");
            };
            assert_eq!(record.counters.min_rtt_us, decoded);
        }
        // Without its flag a record stands for no transition; it and its arguments stay
        // what the callback gave.
        assert_eq!(record.transition, None);
        assert_eq!(
            KernelEvent::SockOps(record).with_implied().count(),
            1,
            "no implied state change"
        );
    }

    /// The state callback of socket 9 (client 2) to CLOSE from FIN-WAIT-2 at 77 ns, standing
    /// for that transition.
    fn closing_record() -> SockOpsEvent {
        SockOpsEvent {
            header: EventHeader {
                kind: event_kind::SOCK_OPS,
                client_id: 2,
                timestamp_ns: 77,
                cookie: 9,
            },
            op: 10,
            family: family::INET,
            args: [5, 7],
            record_flags: sock_ops_record::TRANSITION,
            ..Default::default()
        }
    }

    #[test]
    fn a_sock_ops_record_flagged_as_a_transition_is_followed_by_it() {
        let raw = closing_record();
        let event = KernelEvent::decode(&bytes_of(&raw)).unwrap();
        let events: Vec<_> = event.clone().with_implied().collect();
        let expected = TcpStateChange {
            cookie: SocketCookie(9),
            client: ClientId(2),
            time: KernelTime(77),
            old: KernelTcpState::FinWait2,
            new: KernelTcpState::Close,
        };
        assert_eq!(events, [event, KernelEvent::TcpState(expected)]);
    }

    #[test]
    fn transitions_a_sock_ops_record_carries_come_before_it_at_their_own_times() {
        let mut held = [nettrace_common::HeldTransition::default(); HELD_TRANSITIONS];
        // ESTABLISHED to FIN-WAIT-1 (application's close, held), FIN-WAIT-1 to FIN-WAIT-2.
        held[0] = nettrace_common::HeldTransition {
            timestamp_ns: 50,
            old_state: 1,
            new_state: 4,
        };
        held[1] = nettrace_common::HeldTransition {
            timestamp_ns: 60,
            old_state: 4,
            new_state: 5,
        };
        let raw = SockOpsEvent {
            held,
            held_count: 2,
            ..closing_record()
        };
        let event = KernelEvent::decode(&bytes_of(&raw)).unwrap();
        let change = |ms, old, new| {
            KernelEvent::TcpState(TcpStateChange {
                cookie: SocketCookie(9),
                client: ClientId(2),
                time: KernelTime(ms),
                old,
                new,
            })
        };
        let events: Vec<_> = event.clone().with_implied().collect();
        assert_eq!(
            events,
            [
                change(50, KernelTcpState::Established, KernelTcpState::FinWait1),
                change(60, KernelTcpState::FinWait1, KernelTcpState::FinWait2),
                event,
                change(77, KernelTcpState::FinWait2, KernelTcpState::Close),
            ]
        );
        // Only the count says which are filled.
        let one = SockOpsEvent {
            held_count: 1,
            ..raw
        };
        let event = KernelEvent::decode(&bytes_of(&one)).unwrap();
        assert_eq!(event.with_implied().count(), 3);
    }

    #[test]
    fn a_sock_ops_record_carrying_more_held_transitions_than_exist_is_malformed() {
        let raw = SockOpsEvent {
            header: EventHeader {
                kind: event_kind::SOCK_OPS,
                ..Default::default()
            },
            family: family::INET,
            held_count: HELD_TRANSITIONS as u32 + 1,
            ..Default::default()
        };
        let error = KernelEvent::decode(&bytes_of(&raw)).unwrap_err();
        assert!(error.to_string().contains("held transitions"), "{error}");
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(matches!(
            KernelEvent::decode(&[1, 0, 0]),
            Err(MalformedRecord(_))
        ));
        let unknown = EventHeader {
            kind: 99,
            ..Default::default()
        };
        let error = KernelEvent::decode(&bytes_of(&unknown)).unwrap_err();
        assert!(
            error.to_string().contains("unknown event kind 99"),
            "{error}"
        );
    }
}
