//! The bounds walker: reads a request body exactly as kafka-protocol's decoder will (the same
//! fields, in the same order, the same tagged-field handling) without allocating, and refuses
//! the body when any array count, string or bytes length is larger than the bytes left in the
//! frame. That is Kafka's own rule (`ByteBufferAccessor`/`Readable`: "Tried to allocate a
//! collection of size N, but there are only M bytes remaining"). Once a body passes, every
//! allocation the decoder sizes from a length is bounded by the frame's size.

use crate::schema::{Request, F, T};

/// Why a body was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundsError {
    /// The body ended inside a field (`need` more bytes at byte offset `at`).
    Truncated { at: usize, need: usize },
    /// An array count, string or bytes length larger than the bytes left (offset `at`).
    TooLong {
        at: usize,
        len: u64,
        remaining: usize,
    },
    /// A negative length other than -1 (null).
    Negative { at: usize, len: i64 },
    /// A known tagged field sent in a version that does not have it.
    TagNotInVersion { tag: u32, version: i16 },
}

impl std::fmt::Display for BoundsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { at, need } => {
                write!(f, "body ends at byte {at}, {need} more bytes needed")
            }
            Self::TooLong { at, len, remaining } => write!(
                f,
                "length {len} at byte {at} exceeds the {remaining} bytes remaining in the frame"
            ),
            Self::Negative { at, len } => write!(f, "negative length {len} at byte {at}"),
            Self::TagNotInVersion { tag, version } => {
                write!(f, "tagged field {tag} is not valid in version {version}")
            }
        }
    }
}

impl std::error::Error for BoundsError {}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn skip(&mut self, n: usize) -> Result<(), BoundsError> {
        if self.remaining() < n {
            return Err(BoundsError::Truncated {
                at: self.pos,
                need: n - self.remaining(),
            });
        }
        self.pos += n;
        Ok(())
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], BoundsError> {
        let at = self.pos;
        self.skip(N)?;
        let mut out = [0u8; N];
        if let Some(s) = self.buf.get(at..at + N) {
            out.copy_from_slice(s);
        }
        Ok(out)
    }

    /// kafka-protocol's `UnsignedVarInt`: at most five bytes, high bits beyond 32 dropped.
    fn uvarint(&mut self) -> Result<u32, BoundsError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.fixed::<1>()?;
            value |= u32::from(b & 0x7f).wrapping_shl(i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// A length that the decoder will allocate or take: at most the bytes remaining.
    fn bounded(&mut self, at: usize, len: u64) -> Result<usize, BoundsError> {
        let remaining = self.remaining();
        match usize::try_from(len) {
            Ok(n) if n <= remaining => Ok(n),
            _ => Err(BoundsError::TooLong { at, len, remaining }),
        }
    }

    /// A string/bytes/array length: `Some(n)` (checked), `None` for null.
    fn length(&mut self, flexible: bool, short: bool) -> Result<Option<usize>, BoundsError> {
        let at = self.pos;
        let len: i64 = if flexible {
            match self.uvarint()? {
                0 => return Ok(None),
                n => i64::from(n) - 1,
            }
        } else if short {
            i64::from(i16::from_be_bytes(self.fixed::<2>()?))
        } else {
            i64::from(i32::from_be_bytes(self.fixed::<4>()?))
        };
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(BoundsError::Negative { at, len: n }),
            n => self.bounded(at, n.unsigned_abs()).map(Some),
        }
    }
}

/// Walks `body` as request `req` at `version`.
///
/// Errors: [`BoundsError`] when a length exceeds the bytes remaining, the body is truncated
/// inside a field, a length is negative, or a known tagged field is not valid in `version`.
/// Trailing bytes after the last field are accepted, as the decoder accepts them.
pub fn check(req: &Request, version: i16, body: &[u8]) -> Result<(), BoundsError> {
    let mut cur = Cursor { buf: body, pos: 0 };
    let flexible = version >= req.flexible_from;
    fields(req.fields, version, flexible, &mut cur)
}

fn fields(fs: &[F], version: i16, flexible: bool, cur: &mut Cursor<'_>) -> Result<(), BoundsError> {
    for field in fs.iter().filter(|f| f.tag.is_none() && f.present(version)) {
        value(&field.t, version, flexible, cur)?;
    }
    if flexible {
        let count = cur.uvarint()?;
        for _ in 0..count {
            let tag = cur.uvarint()?;
            let size_at = cur.pos;
            let size = cur.uvarint()?;
            match fs.iter().find(|f| f.tag == Some(tag)) {
                Some(field) if field.present(version) => {
                    value(&field.t, version, flexible, cur)?;
                }
                Some(_) => return Err(BoundsError::TagNotInVersion { tag, version }),
                None => {
                    let n = cur.bounded(size_at, u64::from(size))?;
                    cur.skip(n)?;
                }
            }
        }
    }
    Ok(())
}

fn value(t: &T, version: i16, flexible: bool, cur: &mut Cursor<'_>) -> Result<(), BoundsError> {
    match t {
        T::Bool | T::I8 => cur.skip(1),
        T::I16 | T::U16 => cur.skip(2),
        T::I32 => cur.skip(4),
        T::I64 | T::F64 => cur.skip(8),
        T::Uuid => cur.skip(16),
        T::Str => match cur.length(flexible, true)? {
            Some(n) => cur.skip(n),
            None => Ok(()),
        },
        T::Bytes => match cur.length(flexible, false)? {
            Some(n) => cur.skip(n),
            None => Ok(()),
        },
        T::Array(elem) => {
            if let Some(n) = cur.length(flexible, false)? {
                for _ in 0..n {
                    value(elem, version, flexible, cur)?;
                }
            }
            Ok(())
        }
        T::Struct(fs) => fields(fs, version, flexible, cur),
        T::OptStruct(fs) => {
            let [present] = cur.fixed::<1>()?;
            if present == 1 {
                fields(fs, version, flexible, cur)?;
            }
            Ok(())
        }
    }
}
