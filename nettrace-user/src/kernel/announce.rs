//! Sockets the kernel registers as they are created (issue 16): a thread about to create a
//! socket it wants traced writes the socket's entry into its slot of the mapped
//! `ANNOUNCED_SOCKETS` array, and the `sock_create` program on the cgroup root, run by that
//! same thread inside its `socket()` call, stores the entry in the new socket and writes the
//! socket's cookie back into the slot. The registration call (`bpf()` on the socket's
//! descriptor) and the cookie read (`getsockopt(SO_COOKIE)`) are then not needed: two system
//! calls fewer per connection.
//!
//! The program knows a thread by its kernel thread id, which this process sees as its own
//! only in the initial PID namespace; elsewhere nothing is announced. A forked child shares
//! the mapping (and the kernel link) with its parent, and reads its own thread id again. A
//! thread whose slot another thread holds (same id modulo the slot count), or whose socket the
//! program could not register, registers it the ordinary way.
use std::{
    cell::Cell,
    marker::PhantomData,
    os::unix::fs::MetadataExt,
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

use aya::maps::Map;
use nettrace_common::{SocketAnnouncement, TracedSocket, announcement_state, limits, map_name};

use super::{KernelError, mapped::MappedArray};

/// The inode number of the initial PID namespace (`PROC_PID_INIT_INO`), fixed by the kernel.
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// The mapped slots, shared with the program.
pub(crate) struct Announcements {
    slots: NonNull<SocketAnnouncement>,
    /// The mapping that `slots` points into.
    _mapped: MappedArray,
}

// SAFETY: the mapping is process-wide memory; a slot is only written by the thread that took
// it with a compare-and-swap, and every shared field is accessed atomically or volatile.
unsafe impl Send for Announcements {}
// SAFETY: as above.
unsafe impl Sync for Announcements {}

impl std::fmt::Debug for Announcements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcements").finish_non_exhaustive()
    }
}

impl Announcements {
    /// Whether announcing can work here: this process's thread ids are the kernel's (it runs
    /// in the initial PID namespace), and forked children will read theirs again.
    pub(crate) fn possible() -> bool {
        forget_thread_id_in_forked_children();
        FORK_SAFE.load(Ordering::Relaxed)
            && std::fs::metadata("/proc/self/ns/pid")
                .is_ok_and(|namespace| namespace.ino() == INITIAL_PID_NAMESPACE)
    }

    /// Maps the `ANNOUNCED_SOCKETS` array (check [`Self::possible`] first).
    pub(crate) fn map(map: Map) -> Result<Self, KernelError> {
        let mapped = MappedArray::map(
            map,
            map_name::ANNOUNCED_SOCKETS,
            size_of::<SocketAnnouncement>(),
            limits::ANNOUNCEMENT_SLOTS as usize,
        )?;
        Ok(Self {
            slots: mapped.base().cast::<SocketAnnouncement>(),
            _mapped: mapped,
        })
    }

    /// Announces the socket the calling thread creates next, to be registered with `entry`.
    /// `None` when the thread's slot is taken (the caller registers the socket itself).
    pub(crate) fn announce(&self, entry: TracedSocket) -> Option<Announcement<'_>> {
        let thread = current_thread();
        let index = (thread & (limits::ANNOUNCEMENT_SLOTS - 1)) as usize;
        // SAFETY: `index` is below the slot count, so the slot lies inside the mapping.
        let slot = unsafe { self.slots.as_ptr().add(index) };
        // SAFETY: `thread` is a 4-byte aligned field of a live slot in shared memory, only
        // ever accessed atomically by userspace.
        let owner = unsafe { AtomicU32::from_ptr(&raw mut (*slot).thread) };
        owner
            .compare_exchange(0, thread, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // SAFETY: the slot is this thread's until the announcement is dropped: the program
        // reads it only inside this thread's system calls.
        unsafe {
            (&raw mut (*slot).socket).write_volatile(entry);
            state(slot).store(announcement_state::PENDING, Ordering::Release);
        }
        Some(Announcement {
            slot,
            _mapping: PhantomData,
        })
    }
}

/// A slot held by the calling thread, with its socket announced; freed when dropped. Not
/// `Send` (the raw pointer sees to it): the slot is the creating thread's, and only a socket
/// that thread creates can fill it.
pub(crate) struct Announcement<'a> {
    slot: *mut SocketAnnouncement,
    _mapping: PhantomData<&'a Announcements>,
}

impl Announcement<'_> {
    /// Call after the socket was created: its cookie when the kernel registered it.
    pub(crate) fn registered(self) -> Option<u64> {
        // SAFETY: the slot is held by this thread (see `Announcements::announce`), and the
        // program that wrote it ran inside this thread's `socket()` call, before this.
        unsafe {
            (state(self.slot).load(Ordering::Acquire) == announcement_state::DONE)
                .then(|| (&raw const (*self.slot).socket.cookie).read_volatile())
        }
    }
}

impl Drop for Announcement<'_> {
    fn drop(&mut self) {
        // SAFETY: the slot is held by this thread; it is released last.
        unsafe {
            state(self.slot).store(announcement_state::IDLE, Ordering::Relaxed);
            AtomicU32::from_ptr(&raw mut (*self.slot).thread).store(0, Ordering::Release);
        }
    }
}

/// The slot's state field, atomically.
///
/// # Safety
/// `slot` points to a live slot of the mapping.
unsafe fn state<'a>(slot: *mut SocketAnnouncement) -> &'a AtomicU32 {
    // SAFETY: the caller's promise; the field is 4-byte aligned.
    unsafe { AtomicU32::from_ptr(&raw mut (*slot).state) }
}

thread_local! {
    /// The calling thread's kernel id, read once (`gettid` is a system call); zero: not read
    /// yet, or forgotten in a forked child.
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
}

/// The calling thread's id, as the kernel (and the program) knows it.
fn current_thread() -> u32 {
    THREAD_ID.with(|id| {
        if id.get() == 0 {
            // SAFETY: `gettid` has no preconditions.
            id.set(unsafe { libc::gettid() } as u32);
        }
        id.get()
    })
}

/// Makes the child of a `fork()` read its thread id again: its one thread inherits the
/// forking thread's cached id, which is not its own (with it, the child could take the slot
/// of a parent's thread and be handed that thread's registration).
fn forget_thread_id_in_forked_children() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    /// Runs in the child right after `fork()`: a write to a thread-local, async-signal-safe.
    extern "C" fn forget() {
        THREAD_ID.with(|id| id.set(0));
    }
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only writes the calling thread's thread-local. A
        // failure (out of memory) leaves forked children to misuse slots, so announcements
        // are then not made at all (see `Announcements::possible`).
        let registered = unsafe { libc::pthread_atfork(None, None, Some(forget)) } == 0;
        FORK_SAFE.store(registered, Ordering::Relaxed);
    });
}

/// Whether [`forget_thread_id_in_forked_children`] registered its handler.
static FORK_SAFE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_reads_its_own_thread_id() {
        forget_thread_id_in_forked_children();
        assert!(FORK_SAFE.load(Ordering::Relaxed));
        let parent = current_thread();
        // SAFETY: the child only reads its thread id (a thread-local and `gettid`) and leaves
        // with `_exit`, all async-signal-safe, as a child of a threaded process must.
        match unsafe { libc::fork() } {
            0 => {
                let own = current_thread();
                // SAFETY: as above.
                let ok = own != parent && own == unsafe { libc::gettid() } as u32;
                // SAFETY: as above.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            child => {
                let mut status = 0;
                // SAFETY: waits for the child forked above; `status` is valid for writes.
                let waited = unsafe { libc::waitpid(child, &mut status, 0) };
                assert_eq!(waited, child);
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "the child kept its parent's thread id (status {status})"
                );
            }
        }
    }
}
