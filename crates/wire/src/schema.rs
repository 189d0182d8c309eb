//! The wire shapes of request bodies, as Kafka's message JSON specs give them
//! (`clients/src/main/resources/common/message/*Request.json`), reduced to what decoding reads:
//! each field's type and the versions it is present in, the first flexible version (KIP-482:
//! compact strings, arrays and bytes, tagged-field buffers), and the tagged fields a decoder
//! knows. Nullability is not recorded: a null (-1 or compact 0) length is always accepted by the
//! walker, the decoder refuses it where the field is not nullable.

/// A field's type on the wire.
#[derive(Debug)]
pub enum T {
    /// `bool`, one byte.
    Bool,
    /// `int8`.
    I8,
    /// `int16`.
    I16,
    /// `uint16`.
    U16,
    /// `int32`.
    I32,
    /// `int64`.
    I64,
    /// `float64`.
    F64,
    /// `uuid`, 16 bytes.
    Uuid,
    /// `string`: int16 length (non-flexible) or unsigned varint length + 1 (flexible).
    Str,
    /// `bytes` and `records`: int32 length (non-flexible) or unsigned varint length + 1.
    Bytes,
    /// `[]T`: int32 count (non-flexible) or unsigned varint count + 1 (flexible).
    Array(&'static T),
    /// A nested struct (always present).
    Struct(&'static [F]),
    /// A nullable struct field: an int8 marker (1 = present) then the struct.
    OptStruct(&'static [F]),
}

/// Version bound meaning "this version and every later one".
pub const MAX: i16 = i16::MAX;

/// One field: its type and the versions (inclusive) it is present in; `tag` is set for a
/// tagged field (read from the tagged-field buffer of flexible versions, never in place).
#[derive(Debug)]
pub struct F {
    pub lo: i16,
    pub hi: i16,
    pub tag: Option<u32>,
    pub t: T,
}

/// A field present in versions `lo..=hi`.
pub const fn f(lo: i16, hi: i16, t: T) -> F {
    F {
        lo,
        hi,
        tag: None,
        t,
    }
}

/// A tagged field `tag`, known in versions `lo..=hi`.
pub const fn tagged(lo: i16, hi: i16, tag: u32, t: T) -> F {
    F {
        lo,
        hi,
        tag: Some(tag),
        t,
    }
}

/// One request body: the API key, the advertised versions (inclusive), the first flexible
/// version (`MAX` when none is), and its top-level fields.
#[derive(Debug)]
pub struct Request {
    pub api_key: i16,
    pub min: i16,
    pub max: i16,
    pub flexible_from: i16,
    pub fields: &'static [F],
}

impl F {
    /// Whether the field is present in `version`.
    pub fn present(&self, version: i16) -> bool {
        (self.lo..=self.hi).contains(&version)
    }
}
