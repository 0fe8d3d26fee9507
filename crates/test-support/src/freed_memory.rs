//! An allocator that, while armed, searches every block freed for a
//! watched pattern: the test hook behind "key material is zeroized on
//! drop". A test binary installs it with
//! `#[global_allocator] static ALLOCATOR: FreedMemory = FreedMemory;`, arms
//! it with [`watch`] for the bytes of a secret, drops the value that held
//! them, and asks [`Watch::found`] how many freed blocks still held them.
//! A type that does not zeroize its heap memory on drop, or a parser that
//! leaves a copy in a buffer it frees, is found.
//!
//! It sees heap blocks only: a value on the stack, or a copy the compiler
//! made by moving one, is beyond it (tests box the value they check).
#![allow(
    unsafe_code,
    reason = "a global allocator is unsafe to implement: it forwards to the system allocator, and reads a block the caller gave back only before freeing it"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The length of a watched pattern.
pub const PATTERN_LEN: usize = 32;

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);
static PATTERN: [AtomicU8; PATTERN_LEN] = [const { AtomicU8::new(0) }; PATTERN_LEN];
/// One watch at a time in a test binary.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The system allocator, searching freed blocks while a [`Watch`] is armed.
pub struct FreedMemory;

// SAFETY: every call is forwarded unchanged to `System`; `dealloc` reads
// the block only while it is still allocated (before forwarding), within
// the `layout.size()` bytes its caller says it has.
unsafe impl GlobalAlloc for FreedMemory {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) && layout.size() >= PATTERN_LEN {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes that
            // this allocator handed out; it is freed only below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            let mut pattern = [0_u8; PATTERN_LEN];
            for (byte, watched) in pattern.iter_mut().zip(&PATTERN) {
                *byte = watched.load(Ordering::SeqCst);
            }
            if block.windows(PATTERN_LEN).any(|w| w == pattern) {
                FOUND.fetch_add(1, Ordering::SeqCst);
            }
        }
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// An armed watch; disarmed when dropped.
pub struct Watch {
    _one: MutexGuard<'static, ()>,
}

/// Arms the allocator for `pattern` (say, a key's bytes copied to the
/// stack). Watches in one binary run one after another.
pub fn watch(pattern: &[u8; PATTERN_LEN]) -> Watch {
    let one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (watched, byte) in PATTERN.iter().zip(pattern) {
        watched.store(*byte, Ordering::SeqCst);
    }
    FOUND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    Watch { _one: one }
}

impl Watch {
    /// How many blocks freed since [`watch`] held the pattern.
    pub fn found(&self) -> usize {
        FOUND.load(Ordering::SeqCst)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        ARMED.store(false, Ordering::SeqCst);
    }
}
