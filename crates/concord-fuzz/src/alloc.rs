//! "No unbounded allocation", checked: a global allocator that watches the size of every single
//! allocation.
//!
//! A parser that trusts a declared length (`$600000000`, a 4-byte frame length, a varint count)
//! allocates before the bytes arrive; that is how one small request takes a node's memory. The
//! driver turns tracking on for the thread that runs an input and, afterwards, fails the input if
//! one allocation exceeded the target's budget ([`crate::driver::Target::max_alloc_bytes`]).
//!
//! An allocation so large that it would likely fail or swap the machine ([`ABORT_BYTES`], on any
//! thread) is not attempted: the input being run is saved first (see
//! [`crate::driver::save_running_inputs`]) and the process aborts, so the crash is kept even then.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Larger single allocations abort the run (after saving the input).
pub const ABORT_BYTES: usize = 1 << 30;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, plus the bookkeeping above.
pub struct Tracking;

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn note(size: usize) {
    if size > ABORT_BYTES {
        crate::driver::save_running_inputs(&format!("an allocation of {size} bytes was attempted"));
        std::process::abort();
    }
    // `try_with`: the thread-locals may already be gone while a thread exits.
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

/// Start counting this thread's largest allocation from zero.
pub fn start() {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
}

/// Stop counting; the largest single allocation since [`start`].
pub fn stop() -> usize {
    TRACKING.with(|t| t.set(false));
    LARGEST.with(Cell::get)
}
