//! Zeroed memory that goes straight back to the operating system when freed: on Linux an
//! anonymous mapping of its own, elsewhere `alloc_zeroed`.
//!
//! For hotmeter's large per-thread blocks (an arena's chunk table, a thread's sampling
//! ring). From the heap they would land in the recording thread's malloc arena, whose pages
//! glibc keeps resident after a ring is freed (two exited threads kept 164 KiB of rings'
//! pages in `examples/memory.rs`); and once glibc's adaptive mmap threshold has grown past
//! a block's size it serves the block from the heap and zeroes, so makes resident, every
//! page of it. A mapping's pages become resident only when written and are returned by
//! `munmap`.

use std::alloc::Layout;
use std::ptr::NonNull;

/// `layout.size()` (non-zero) zeroed bytes at `layout.align()` (at most a page), or
/// `handle_alloc_error`. Free with [`unmap_zeroed`].
pub(crate) fn map_zeroed(layout: Layout) -> NonNull<u8> {
    debug_assert!(layout.size() > 0 && layout.align() <= 4096);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: a fresh private anonymous mapping, no address hint: nothing else is affected.
    // Mappings are page-aligned, which satisfies `layout.align()` (at most a page).
    let p = unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            layout.size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            core::ptr::null_mut()
        } else {
            p.cast::<u8>()
        }
    };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: the layout has a non-zero size (asserted by the callers' types).
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

/// Frees what [`map_zeroed`] returned.
///
/// # Safety
/// `p` came from `map_zeroed(layout)` with this `layout`, nothing refers to it any more,
/// and it is freed once.
pub(crate) unsafe fn unmap_zeroed(p: NonNull<u8>, layout: Layout) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: the caller's contract: the whole mapping `map_zeroed` made, unused now.
    unsafe {
        libc::munmap(p.as_ptr().cast(), layout.size());
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: the caller's contract: allocated by `alloc_zeroed` with this layout.
    unsafe {
        std::alloc::dealloc(p.as_ptr(), layout);
    }
}

/// A fixed-length slice of `T` in zeroed memory from [`map_zeroed`]. Its elements are
/// never dropped: `T` must not need drop (checked at compile time), and all-zero bytes
/// must be a valid `T` (the caller of [`ZeroedSlice::new`] promises it).
pub(crate) struct ZeroedSlice<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: a `ZeroedSlice<T>` owns its `T`s as a `Box<[T]>` does: sending it sends them.
unsafe impl<T: Send> Send for ZeroedSlice<T> {}
// SAFETY: shared access hands out only `&[T]`, as `Box<[T]>` does.
unsafe impl<T: Sync> Sync for ZeroedSlice<T> {}

impl<T> ZeroedSlice<T> {
    const NO_DROP: () = assert!(!std::mem::needs_drop::<T>(), "elements are never dropped");

    /// `len` (at least 1) zeroed elements.
    ///
    /// # Safety
    /// All-zero bytes are a valid `T`.
    pub(crate) unsafe fn new(len: usize) -> Self {
        let () = Self::NO_DROP;
        const {
            assert!(
                size_of::<T>() > 0,
                "a zero-sized element has no pages to map"
            )
        };
        let ptr = map_zeroed(Self::layout(len)).cast::<T>();
        Self { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        Layout::array::<T>(len.max(1)).expect("a slice that fits the address space")
    }
}

impl<T> core::ops::Deref for ZeroedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised (zeroed, valid by `new`'s contract) `T`s,
        // alive as long as `self`; only shared references are handed out.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for ZeroedSlice<T> {
    fn drop(&mut self) {
        // SAFETY: from `map_zeroed` with this layout in `new`; no reference outlives `self`
        // (`deref` borrows it), and this is the one drop.
        unsafe { unmap_zeroed(self.ptr.cast(), Self::layout(self.len)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn a_zeroed_slice_reads_zero_and_keeps_what_is_written() {
        // SAFETY: zero bits are a valid `AtomicU64`.
        let s = unsafe { ZeroedSlice::<[AtomicU64; 4]>::new(3000) };
        assert_eq!(s.len(), 3000);
        assert!(s.iter().flatten().all(|a| a.load(Ordering::Relaxed) == 0));
        s[2999][3].store(7, Ordering::Relaxed);
        s[0][0].store(1, Ordering::Relaxed);
        assert_eq!(s[2999][3].load(Ordering::Relaxed), 7);
        assert_eq!(s[0][0].load(Ordering::Relaxed), 1);
    }
}
