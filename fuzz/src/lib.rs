//! What every fuzz target shares: an allocator that refuses any single allocation above
//! [`CAP`] (a size read from a hostile file must be checked before allocating, so a refused
//! allocation — an abort the fuzzer reports as a crash — is a bug), and a scratch folder for the
//! readers that take a path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;

/// The largest single allocation a reader may make from fuzzed input: 1 GiB.
pub const CAP: usize = 1 << 30;

/// The system allocator, refusing allocations above [`CAP`].
pub struct CappedAlloc;

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// A folder of this process for the readers that take a path (`/dev/shm` when there is one).
pub fn scratch() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("partlearn-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
