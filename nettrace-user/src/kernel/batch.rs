//! `BPF_MAP_DELETE_BATCH`: many keys out of a hash map in one syscall (aya 0.14 has no batch
//! operations). The traced-socket map loses one entry per connection, and one syscall per
//! entry was a measurable part of what kernel tracing costs per connection (issue 16).
use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

/// The command number (`enum bpf_cmd`, stable kernel ABI since 5.6).
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// The `batch` member of `union bpf_attr`, as the kernel lays it out.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Deletes `keys` from the hash map `map`; a key the map does not hold is skipped. Returns
/// how many entries were deleted.
pub(super) fn delete_batch(map: BorrowedFd<'_>, keys: &[u64]) -> io::Result<usize> {
    let mut deleted = 0;
    let mut rest = keys;
    // Each round deletes at least one key or skips a missing one: bounded by `keys.len()`.
    while !rest.is_empty() {
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: u32::try_from(rest.len()).unwrap_or(u32::MAX),
            map_fd: map.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is a valid, writable `bpf_attr` batch member of the size passed;
        // `keys` points to `count` readable u64 keys (the map's key size) that outlive the call.
        // The kernel reads the keys and writes only `attr.count`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_DELETE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        let done = (attr.count as usize).min(rest.len());
        deleted += done;
        if rc == 0 {
            break;
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ENOENT) {
            return Err(error);
        }
        // The key at `done` is not in the map: skip it and go on with the next.
        rest = rest.get(done + 1..).unwrap_or_default();
    }
    Ok(deleted)
}
