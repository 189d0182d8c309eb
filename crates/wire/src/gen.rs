//! A structure-aware generator of valid request bodies from [`crate::schema`]: every field
//! present in the version, arrays of 0..=3 elements, ASCII strings, known tagged fields with
//! their right sizes and unknown ones. The schema's own test decodes what it writes with
//! kafka-protocol (which must succeed and consume every byte), and the fuzz targets and the
//! long property run start from its output.

use crate::schema::{Request, F, T};

/// xorshift64*: deterministic, so a failure reproduces from its seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Unknown tags the generator adds: no request knows tags this high.
const UNKNOWN_TAG: u32 = 1000;

/// A valid body of `req` at `version`.
pub fn body(req: &Request, version: i16, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    fields(
        req.fields,
        version,
        version >= req.flexible_from,
        rng,
        &mut out,
    );
    out
}

fn uvarint(mut v: u32, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn length(n: usize, flexible: bool, short: bool, out: &mut Vec<u8>) {
    if flexible {
        uvarint(n as u32 + 1, out);
    } else if short {
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else {
        out.extend_from_slice(&(n as i32).to_be_bytes());
    }
}

fn fields(fs: &[F], version: i16, flexible: bool, rng: &mut Rng, out: &mut Vec<u8>) {
    for field in fs.iter().filter(|f| f.tag.is_none() && f.present(version)) {
        value(&field.t, version, flexible, rng, out);
    }
    if flexible {
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        for field in fs.iter().filter(|f| f.present(version)) {
            if let Some(tag) = field.tag {
                if rng.below(2) == 0 {
                    let mut v = Vec::new();
                    value(&field.t, version, flexible, rng, &mut v);
                    tags.push((tag, v));
                }
            }
        }
        if rng.below(4) == 0 {
            let n = rng.below(4) as usize;
            tags.push((UNKNOWN_TAG + rng.below(50) as u32, random_bytes(n, rng)));
        }
        tags.sort_by_key(|(t, _)| *t);
        uvarint(tags.len() as u32, out);
        for (tag, v) in tags {
            uvarint(tag, out);
            uvarint(v.len() as u32, out);
            out.extend_from_slice(&v);
        }
    }
}

fn random_bytes(n: usize, rng: &mut Rng) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn value(t: &T, version: i16, flexible: bool, rng: &mut Rng, out: &mut Vec<u8>) {
    match t {
        T::Bool => out.push(rng.below(2) as u8),
        T::I8 => out.push(rng.next_u64() as u8),
        T::I16 | T::U16 => out.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes()),
        T::I32 => out.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes()),
        T::I64 | T::F64 => out.extend_from_slice(&rng.next_u64().to_be_bytes()),
        T::Uuid => out.extend_from_slice(&random_bytes(16, rng)),
        T::Str => {
            let n = rng.below(9) as usize;
            length(n, flexible, true, out);
            out.extend((0..n).map(|_| b'a' + rng.below(26) as u8));
        }
        T::Bytes => {
            let n = rng.below(9) as usize;
            length(n, flexible, false, out);
            out.extend_from_slice(&random_bytes(n, rng));
        }
        T::Array(elem) => {
            let n = rng.below(4) as usize;
            length(n, flexible, false, out);
            for _ in 0..n {
                value(elem, version, flexible, rng, out);
            }
        }
        T::Struct(fs) => fields(fs, version, flexible, rng, out),
        T::OptStruct(fs) => {
            if rng.below(2) == 0 {
                out.push(0xff);
            } else {
                out.push(1);
                fields(fs, version, flexible, rng, out);
            }
        }
    }
}
