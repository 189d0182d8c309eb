//! Structure-aware property test of [`shoal_wire::decode`], the fallback beside the
//! coverage-guided target in `crates/wire/fuzz` (scripts/fuzz.sh): for every advertised (API,
//! version), valid bodies from the schema are mutated (a length overwritten with an extreme
//! value, bytes flipped, inserted or removed, the body truncated or spliced with another) and
//! decoded. Nothing may panic, and no single allocation while decoding may exceed
//! `ALLOC_FACTOR` times the body plus `ALLOC_SLACK`, the property the bounds walk exists for
//! (without it a 14-byte body asks for hundreds of GiB). `SHOAL_MUTATIONS` sets the mutations
//! per version (default 400; the soak in docs/operations.md uses 100000).

#![allow(unsafe_code)] // the measuring allocator below, test-only

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use shoal_wire::gen::{body, Rng};
use shoal_wire::{decode, schema, versions, DecodeError};

/// Forwards to `System` and records the largest single allocation since the last reset.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: a pure forwarder to `System` with the caller's layout; it only records the size.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

/// A decoded element costs at most this many bytes of memory per byte of wire.
const ALLOC_FACTOR: usize = 64;
/// Fixed allowance (maps, small vectors).
const ALLOC_SLACK: usize = 64 * 1024;

const EXTREMES: &[&[u8]] = &[
    &[0x7f, 0xff, 0xff, 0xff],       // int32 MAX
    &[0xff, 0xff, 0xff, 0xff],       // -1 (null)
    &[0x80, 0x00, 0x00, 0x00],       // int32 MIN
    &[0x7f, 0xff],                   // int16 MAX
    &[0xff, 0xfe],                   // int16 -2
    &[0xff, 0xff, 0xff, 0xff, 0x0f], // varint u32::MAX
    &[0xff, 0xff, 0xff, 0xff, 0xff], // over-long varint
    &[0x80, 0x80, 0x80, 0x80, 0x01], // varint 2^28
    &[0x00],
    &[0x01],
];

fn mutate(rng: &mut Rng, mut b: Vec<u8>, other: &[u8]) -> Vec<u8> {
    for _ in 0..=rng.below(3) {
        let at = if b.is_empty() {
            0
        } else {
            rng.below(b.len() as u64) as usize
        };
        match rng.below(6) {
            0 => {
                let e = EXTREMES[rng.below(EXTREMES.len() as u64) as usize];
                for (i, &x) in e.iter().enumerate() {
                    if let Some(slot) = b.get_mut(at + i) {
                        *slot = x;
                    }
                }
            }
            1 => {
                if let Some(slot) = b.get_mut(at) {
                    *slot ^= 1 << rng.below(8);
                }
            }
            2 => b.insert(at.min(b.len()), rng.next_u64() as u8),
            3 => {
                if at < b.len() {
                    b.remove(at);
                }
            }
            4 => b.truncate(at),
            _ => {
                b.truncate(at);
                let from = rng.below(other.len() as u64 + 1) as usize;
                b.extend_from_slice(other.get(from..).unwrap_or_default());
            }
        }
    }
    b
}

#[test]
fn mutated_bodies_never_panic_and_never_allocate_beyond_the_frame() {
    let per_version: usize = std::env::var("SHOAL_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mut rng = Rng(0x00c0_ffee_5eed_0005);
    let (mut total, mut decoded, mut refused_by_walk) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for (key, version) in versions() {
        let (Some(req), Ok(api)) = (schema(key, version), ApiKey::try_from(key)) else {
            failures.push(format!("{key} v{version}: no schema"));
            continue;
        };
        let mut prev = body(req, version, &mut rng);
        for _ in 0..per_version {
            let valid = body(req, version, &mut rng);
            let input = mutate(&mut rng, valid.clone(), &prev);
            prev = valid;
            let len = input.len();
            let mut buf = Bytes::from(input.clone());
            LARGEST.store(0, Ordering::Relaxed);
            let result = decode(api, version, &mut buf);
            let largest = LARGEST.load(Ordering::Relaxed);
            total += 1;
            match result {
                Ok(_) => decoded += 1,
                Err(DecodeError::Bounds(_)) => refused_by_walk += 1,
                Err(DecodeError::Panicked) => failures.push(format!(
                    "{api:?} v{version}: decoder panicked on {input:02x?}"
                )),
                Err(_) => {}
            }
            if largest > ALLOC_FACTOR * len + ALLOC_SLACK {
                failures.push(format!(
                    "{api:?} v{version}: one allocation of {largest} bytes for a {len}-byte body: {input:02x?}"
                ));
            }
            if failures.len() > 20 {
                break;
            }
        }
    }
    eprintln!(
        "{total} mutated bodies: {decoded} decoded, {refused_by_walk} refused by the bounds walk"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        decoded > 0 && refused_by_walk > 0,
        "mutations exercised both outcomes"
    );
}
