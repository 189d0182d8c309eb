//! What the bounds walk costs against the decode it guards, on requests real clients sent.
//!
//!   cargo run --release -p shoal-wire --example walk_cost [CORPUS_DIR] [ROUNDS]
//!
//! CORPUS_DIR (default crates/wire/fuzz/corpus/requests, written by scripts/capture-corpus.py)
//! holds fuzz inputs: API key and version (2 bytes each, big-endian), then the body. Each round
//! times, over every file, kafka-protocol's decode alone, then `shoal_wire::check` (the walk)
//! alone; ROUNDS (default 200) rounds alternate the two so the machine's noise falls on both.
//! Prints ns per request for each and the walk as a fraction of the decode.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/requests").to_string()
    });
    let rounds: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(200);
    let mut inputs: Vec<(ApiKey, i16, Bytes)> = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let data = std::fs::read(entry?.path())?;
        let Some((&[a, b, c, d], body)) = data.split_first_chunk::<4>() else {
            continue;
        };
        let (key, version) = (i16::from_be_bytes([a, b]), i16::from_be_bytes([c, d]));
        let Ok(api) = ApiKey::try_from(key) else {
            continue;
        };
        // Only what decodes fully both ways, so both columns time the same work.
        let body = Bytes::copy_from_slice(body);
        if shoal_wire::decode(api, version, &mut body.clone()).is_ok() {
            inputs.push((api, version, body));
        }
    }
    if inputs.is_empty() {
        return Err(format!("no decodable requests in {dir}").into());
    }
    let bytes: usize = inputs.iter().map(|(_, _, b)| b.len()).sum();
    let (mut decode, mut walk) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = Instant::now();
        for (api, version, body) in &inputs {
            let r = RequestKind::decode(*api, &mut body.clone(), *version);
            std::hint::black_box(r.is_ok());
        }
        decode += t.elapsed();
        let t = Instant::now();
        for (api, version, body) in &inputs {
            let r = shoal_wire::check(*api as i16, *version, body);
            std::hint::black_box(r.is_ok());
        }
        walk += t.elapsed();
    }
    let n = f64::from(rounds) * inputs.len() as f64;
    let per = |d: Duration| d.as_nanos() as f64 / n;
    println!(
        "{} requests ({} bytes of bodies), {rounds} rounds: decode {:.0} ns/request, \
         walk {:.0} ns/request, walk/decode {:.3}",
        inputs.len(),
        bytes,
        per(decode),
        per(walk),
        per(walk) / per(decode)
    );
    Ok(())
}
