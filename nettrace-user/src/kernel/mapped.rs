//! [`MappedArray`]: the values of a mappable array map (`BPF_F_MMAPABLE`), mapped into this
//! process and shared with the programs.
use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
};

use aya::maps::{Map, MapData};

use super::KernelError;

/// The mapped values of an array map; unmapped when dropped.
pub(crate) struct MappedArray {
    base: NonNull<u8>,
    bytes: usize,
    /// The map, so that its memory stays the programs' while mapped here.
    _map: MapData,
}

impl std::fmt::Debug for MappedArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedArray")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl MappedArray {
    /// Maps the values of `map`, the array named `name`, created mappable with values of
    /// `value_bytes` (a multiple of 8) and `count` entries.
    pub(crate) fn map(
        map: Map,
        name: &'static str,
        value_bytes: usize,
        count: usize,
    ) -> Result<Self, KernelError> {
        let map_error = |source: io::Error| KernelError::Map {
            name,
            step: "mmap",
            source: Box::new(source),
        };
        let Map::Array(map) = map else {
            return Err(KernelError::Missing {
                kind: "array map",
                name,
            });
        };
        // SAFETY: `sysconf` has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| map_error(io::Error::last_os_error()))?;
        // The kernel lays the values out 8-byte aligned (the size is a multiple of 8) and maps
        // them from offset zero, whole pages.
        let bytes = (value_bytes * count).next_multiple_of(page);
        // SAFETY: a fresh shared mapping of the map's descriptor, whose value area is `bytes`
        // long (the array was created mappable with that many values); nothing else is
        // touched.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(map_error(io::Error::last_os_error()));
        }
        let base = NonNull::new(address.cast::<u8>())
            .ok_or_else(|| map_error(io::Error::other("mmap returned NULL")))?;
        Ok(Self {
            base,
            bytes,
            _map: map,
        })
    }

    /// The first value's first byte; the mapping is page-aligned.
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }
}

impl Drop for MappedArray {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; its users borrow `self`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}
