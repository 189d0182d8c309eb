//! Process-wide allocation guard for decoding untrusted requests.
//!
//! `kafka-protocol` 0.18 pre-allocates arrays from the length a client sends
//! (`Vec::with_capacity(n)` before reading any element; upstream issues #152/#161/#200). A
//! 14-byte frame claiming 2^31 elements asks for hundreds of GiB; the system allocator refuses
//! and Rust aborts the whole process. This allocator serves any single request of at least
//! [`HUGE`] bytes from an anonymous `MAP_NORESERVE` mapping instead: the kernel reserves
//! address space only, no memory is committed until touched, the decoder then fails on the
//! short buffer and the mapping is unmapped. Legitimate allocations never reach this size
//! (requests are capped by `socket.request.max.bytes`, 100 MiB by default), so normal memory
//! behaviour is unchanged. The broker test `oversized_array_length_does_not_abort_the_broker`
//! sends such a frame, and `tests/decode_fuzz.rs` decodes random and mutated frames under it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large (1 GiB) are served by `mmap(MAP_NORESERVE)`.
pub const HUGE: usize = 1 << 30;

/// The guard allocator; install it with `#[global_allocator]` in every binary (and decoder
/// test) that decodes untrusted requests.
#[derive(Debug)]
pub struct Guard;

// SAFETY: every pointer is either from `System` (small sizes) or from `mmap` (huge sizes) and
// is released by the same path, decided by the same `layout.size()` in `alloc` and `dealloc`.
// mmap returns page-aligned memory, which satisfies any alignment up to the page size; larger
// alignments go to `System`.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= HUGE && layout.align() <= 4096 {
            // SAFETY: anonymous private mapping, no file descriptor; checked for MAP_FAILED.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return std::ptr::null_mut();
            }
            return p.cast();
        }
        // SAFETY: forwarded with the caller's valid layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= HUGE && layout.align() <= 4096 {
            // SAFETY: `ptr` came from the mmap above with this exact size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= HUGE && layout.align() <= 4096 {
            // SAFETY: fresh anonymous mappings are zero-filled.
            return unsafe { self.alloc(layout) };
        }
        // SAFETY: forwarded with the caller's valid layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_huge = layout.size() >= HUGE && layout.align() <= 4096;
        let new_huge = new_size >= HUGE && layout.align() <= 4096;
        if !old_huge && !new_huge {
            // SAFETY: both sides are System allocations with the caller's layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the new layout is valid (same alignment, size checked by the caller).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: allocate, copy the overlapping prefix, release the old block.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
