//! The global allocator of the gateway and of the load benchmark's Pingora
//! floor: mimalloc, asked through its plain `mi_malloc` whenever that already
//! gives the alignment a layout needs, as Rust's own `System` allocator asks
//! the C library's `malloc`.
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it asks `mi_malloc_aligned` for
//! every allocation, and mimalloc 3's aligned path serves only blocks of at
//! most 1 KiB on its fast path. Every larger block (a request's boxed future
//! of about 14 KB, header buffers, growing maps) took the generic path and was
//! over-allocated by its alignment: 17 to 18 such calls per proxied request,
//! about 180 instructions each (callgrind, README "How fast"), for an
//! alignment `mi_malloc` gives anyway.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every block `mi_malloc` returns of at least this size
/// (mimalloc's `MI_MAX_ALIGN_SIZE`, C's `max_align_t`); a smaller block is
/// aligned to its own size class, which a Rust layout's size is a multiple of.
const MALLOC_ALIGN: usize = 16;

/// mimalloc as the global allocator.
pub struct Mimalloc;

/// Whether `mi_malloc` of `size` bytes is aligned enough for `align` (the rule
/// of Rust's `System` allocator, with mimalloc's guarantee).
fn plain(align: usize, size: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes
// blocks of either path); each path returns null on failure, as `GlobalAlloc`
// asks, and a block aligned as the layout says (see `plain`; the test below
// checks it for every size class a request uses).
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if plain(align, size) {
            mi::mi_malloc(size).cast()
        } else {
            mi::mi_malloc_aligned(size, align).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if plain(align, size) {
            mi::mi_zalloc(size).cast()
        } else {
            mi::mi_zalloc_aligned(size, align).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if plain(align, new_size) {
            mi::mi_realloc(ptr.cast(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast(), new_size, align).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Every size up to 64 KiB in steps that cross each of mimalloc's size
    /// classes, at every alignment up to 4 KiB: each block is aligned as asked,
    /// writable across its size, kept aligned through growth, and freed.
    #[test]
    fn every_block_is_aligned_as_its_layout_asks() {
        let a = Mimalloc;
        let mut sizes: Vec<usize> = (1..=1024).collect();
        sizes.extend((1025..=65_536).step_by(61));
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            let mut held = Vec::new();
            for &size in &sizes {
                let size = size.next_multiple_of(align);
                let layout = Layout::from_size_align(size, align).expect("layout");
                for zeroed in [false, true] {
                    // SAFETY: a non-zero size; the block is freed below.
                    let p = unsafe {
                        if zeroed {
                            a.alloc_zeroed(layout)
                        } else {
                            a.alloc(layout)
                        }
                    };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    if zeroed {
                        // SAFETY: `size` bytes were just allocated.
                        let bytes = unsafe { core::slice::from_raw_parts(p, size) };
                        assert!(bytes.iter().all(|&b| b == 0));
                    }
                    // SAFETY: as above.
                    unsafe { p.write_bytes(0xa5, size) };
                    held.push((p, layout));
                }
            }
            // Keep some blocks alive while others are made, so that blocks come
            // from partly used pages too; then grow each, and free it.
            for (p, layout) in held {
                let bigger = layout.size() * 2 + 8;
                // SAFETY: `p` came from `a` with `layout`.
                let q = unsafe { a.realloc(p, layout, bigger) };
                assert!(!q.is_null());
                assert_eq!(q as usize % layout.align(), 0);
                // SAFETY: the old contents were kept.
                assert_eq!(unsafe { *q.add(layout.size() - 1) }, 0xa5);
                let grown = Layout::from_size_align(bigger, layout.align()).expect("layout");
                // SAFETY: `q` came from `a` with `grown`.
                unsafe { a.dealloc(q, grown) };
            }
        }
    }
}
