//! libFuzzer target for `shoal_wire::fuzz_one`: bytes 0-1 API key, 2-3 version (big-endian),
//! the rest the request body. The contract is that `fuzz_one` never panics out and never aborts.
//!
//! Two detectors on top of libFuzzer's own (deadly signals, `-timeout`, `-rss_limit_mb`):
//!
//! * An allocation guard. Without a sanitizer (`cargo fuzz -s none`, the only mode on stable
//!   Rust) libFuzzer's `-malloc_limit_mb` does nothing, and an allocation sized from a length
//!   the client sent (the bug class the bounds walker exists for) is reserved lazily and never
//!   touched, so it would go unnoticed on a machine with enough RAM. Any single allocation larger
//!   than `SHOAL_FUZZ_MAX_ALLOC_MB` (default 256) prints a backtrace and aborts, which libFuzzer
//!   records as a crash.
//! * Panics. `shoal_wire::decode` catches a panic from kafka-protocol and returns
//!   `DecodeError::Panicked`; libfuzzer-sys's panic hook would abort on it anyway. By default the
//!   target honours the contract: a caught panic is reported once per source location on stderr
//!   and fuzzing goes on; a panic escaping `fuzz_one` aborts with its message and backtrace. With
//!   `SHOAL_FUZZ_PANIC=abort` every panic, caught or not, is a crash (to collect inputs that reach
//!   the decoder's safety net).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Largest single allocation allowed, in bytes (set from the environment at start).
static MAX_ALLOC: AtomicUsize = AtomicUsize::new(256 << 20);

struct Guard;

thread_local! {
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

impl Guard {
    #[inline]
    fn check(size: usize) {
        if size > MAX_ALLOC.load(Ordering::Relaxed) {
            too_big(size);
        }
    }
}

#[cold]
#[inline(never)]
fn too_big(size: usize) {
    // The report allocates (backtrace); allocations made while reporting are small and pass.
    if REPORTING.with(|r| r.replace(true)) {
        return;
    }
    let bt = std::backtrace::Backtrace::force_capture();
    let _ = writeln!(
        std::io::stderr(),
        "\n==shoal-fuzz== allocation of {size} bytes exceeds SHOAL_FUZZ_MAX_ALLOC_MB ({} bytes): \
         an allocation sized from an unchecked length\n{bt}",
        MAX_ALLOC.load(Ordering::Relaxed)
    );
    std::process::abort();
}

// SAFETY: every method forwards to `System` with the caller's arguments, after a size check.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Guard = Guard;

thread_local! {
    /// The last panic's report, for a panic that escapes `fuzz_one`.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics seen, by source location, with the backtrace of the first one there.
static SEEN: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

fn init() {
    if let Some(mb) = std::env::var("SHOAL_FUZZ_MAX_ALLOC_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        MAX_ALLOC.store(mb.saturating_mul(1 << 20), Ordering::Relaxed);
    }
    if std::env::var("SHOAL_FUZZ_PANIC").as_deref() == Ok("abort") {
        return; // keep libfuzzer-sys's hook: any panic aborts
    }
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "<unknown>".into());
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        let seen = seen.get_or_insert_with(HashMap::new);
        let bt = seen
            .entry(loc.clone())
            .or_insert_with(|| {
                let bt = std::backtrace::Backtrace::force_capture().to_string();
                eprintln!(
                    "==shoal-fuzz== panic at {loc}: {msg} (first at this location; if \
                     fuzz_one caught it fuzzing goes on)"
                );
                bt
            })
            .clone();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("panic at {loc}: {msg}\n{bt}")));
    }));
}

libfuzzer_sys::fuzz_target!(init: init(), |data: &[u8]| {
    if std::panic::catch_unwind(|| shoal_wire::fuzz_one(data)).is_err() {
        let report = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
        eprintln!("\n==shoal-fuzz== a panic escaped shoal_wire::fuzz_one: {report}");
        std::process::abort();
    }
});
