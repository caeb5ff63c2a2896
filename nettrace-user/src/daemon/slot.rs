//! [`KernelSlot`]: what a daemon session needs from its client's slot in the kernel hub.
//!
//! A session registers and unregisters the sockets its client proved it holds, drains the
//! hub and reads the slot's lost counters for `sync`, starts the slot's capture and
//! registers UDP flows for the capture requests, and reads whether a socket whose connect
//! failed had its CLOSE reported. Nothing else: the isolation rules (whose
//! socket is whose, the limits) are the session's, so they are tested against a fake slot
//! without root (`server_tests`), while [`KernelClient`] does the kernel work.
//!
//! ```ignore
//! fn trace<S: KernelSlot>(slot: &S, socket: BorrowedFd<'_>, cookie: SocketCookie) -> Result<(), S::Error> {
//!     slot.register(socket, cookie)
//! }
//! ```
use std::{net::SocketAddr, os::fd::BorrowedFd};

use crate::{
    SocketCookie,
    capture::PacketCaptureOptions,
    kernel::{
        CallReports, CaptureInterfaceInfo, FlowProtocol, KernelClient, KernelError, SocketEntry,
    },
};

/// One client's slot, as its session uses it (statically dispatched).
pub(super) trait KernelSlot {
    /// Why a call failed ([`KernelError`] for the real slot).
    type Error: std::error::Error + 'static;

    /// Traces `socket` (whose cookie is `cookie`) in this slot.
    fn register(&self, socket: BorrowedFd<'_>, cookie: SocketCookie) -> Result<(), Self::Error>;

    /// Stops tracing a closed socket of this slot and capturing its flows.
    fn unregister(&self, cookie: SocketCookie) -> Result<(), Self::Error>;

    /// Hands every pending kernel event to its client.
    fn drain(&self);

    /// Events of this slot the kernel lost.
    fn lost_events(&self) -> Result<u64, Self::Error>;

    /// Packets of this slot the kernel lost.
    fn lost_packets(&self) -> Result<u64, Self::Error>;

    /// Starts this slot's capture; returns the interfaces found.
    fn start_capture(
        &self,
        options: &PacketCaptureOptions,
    ) -> Result<Vec<CaptureInterfaceInfo>, Self::Error>;

    /// Whether the programs reported a transition to CLOSE of `socket` (registered as
    /// `cookie`) since it last connected; `None` when its entry cannot be read or names
    /// another socket.
    fn close_reported(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
    ) -> Result<Option<bool>, Self::Error>;

    /// Captures the packets between `local` and `remote` as the socket's.
    fn register_flow(
        &self,
        cookie: SocketCookie,
        protocol: FlowProtocol,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), Self::Error>;
}

impl KernelSlot for KernelClient {
    type Error = KernelError;

    fn register(&self, socket: BorrowedFd<'_>, cookie: SocketCookie) -> Result<(), KernelError> {
        // The daemon does not keep its clients' descriptors: each call is sent.
        KernelClient::register(
            self,
            socket,
            cookie,
            CallReports::EachCall,
            SocketEntry::ToStore,
        )
    }

    fn unregister(&self, cookie: SocketCookie) -> Result<(), KernelError> {
        KernelClient::unregister(self, cookie)
    }

    fn drain(&self) {
        KernelClient::drain(self);
    }

    fn lost_events(&self) -> Result<u64, KernelError> {
        KernelClient::lost_events(self)
    }

    fn lost_packets(&self) -> Result<u64, KernelError> {
        KernelClient::lost_packets(self)
    }

    fn start_capture(
        &self,
        options: &PacketCaptureOptions,
    ) -> Result<Vec<CaptureInterfaceInfo>, KernelError> {
        KernelClient::start_capture(self, options)
    }

    fn close_reported(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
    ) -> Result<Option<bool>, KernelError> {
        KernelClient::close_reported(self, socket, cookie)
    }

    fn register_flow(
        &self,
        cookie: SocketCookie,
        protocol: FlowProtocol,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), KernelError> {
        KernelClient::register_flow(self, cookie, protocol, local, remote)
    }
}
