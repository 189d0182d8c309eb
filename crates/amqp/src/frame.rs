//! AMQP 0-9-1 framing over a byte buffer: bounded reading of whole frames, and writing of
//! methods and messages. The codec (methods, properties, field tables) is `amq-protocol`'s;
//! this module only checks what a codec cannot know: the negotiated `frame_max`, the frame
//! end octet, and which failures are whose (AMQP 0-9-1 §4.2.3, RabbitMQ's reply codes).
//!
//! Invariant: a frame is parsed only once all of it is buffered and its size is within
//! `frame_max`, so a peer cannot make the broker allocate more than `frame_max` per frame.

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic::AMQPProperties, AMQPClass};
use bytes::{Buf, BytesMut};

/// The AMQP 0-9-1 protocol header a client sends first, and what the server answers (then
/// closes) to any other header (AMQP 0-9-1 §4.2.2).
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Bytes of a frame around its payload: type (1), channel (2), size (4) and the end octet.
pub const FRAME_OVERHEAD: usize = 8;
const FRAME_END: u8 = 0xCE;

/// Why the buffered input is not a frame. Each maps to a connection-level close (or, for
/// [`FrameError::Oversized`] before tuning, a plain close).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Payload larger than the negotiated `frame_max` allows (501 FRAME_ERROR).
    #[error("FRAME_ERROR - frame of {size} bytes exceeds frame_max {frame_max}")]
    Oversized { size: usize, frame_max: usize },
    /// A frame type that AMQP 0-9-1 does not define, or a missing frame end (501).
    #[error("FRAME_ERROR - {0}")]
    Malformed(String),
    /// A method frame naming a class or method Shoal does not know (540 NOT_IMPLEMENTED).
    #[error("NOT_IMPLEMENTED - unknown method class {class_id} method {method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    /// A known method whose arguments do not decode (502 SYNTAX_ERROR).
    #[error("SYNTAX_ERROR - cannot decode method class {class_id} method {method_id}")]
    Syntax { class_id: u16, method_id: u16 },
}

impl FrameError {
    /// The AMQP reply code of the connection close this error causes.
    pub fn reply_code(&self) -> u16 {
        match self {
            FrameError::Oversized { .. } | FrameError::Malformed(_) => 501,
            FrameError::UnknownMethod { .. } => 540,
            FrameError::Syntax { .. } => 502,
        }
    }
}

/// The (class, method) ids AMQP 0-9-1 defines (with RabbitMQ's extensions: confirm,
/// basic.nack, connection.blocked, connection.update-secret).
fn known_method(class_id: u16, method_id: u16) -> bool {
    let methods: &[u16] = match class_id {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method_id)
}

/// Takes one whole frame off the front of `buf`, or `Ok(None)` if more bytes are needed.
/// `frame_max` is the negotiated maximum frame size in bytes (header and end octet
/// included; 0 = the 128 KiB cap Shoal applies before tuning).
///
/// Errors: [`FrameError`] (the connection must close; nothing was consumed).
pub fn take_frame(buf: &mut BytesMut, frame_max: usize) -> Result<Option<AMQPFrame>, FrameError> {
    let Some(head) = buf.get(0..7) else {
        return Ok(None);
    };
    let kind = head[0];
    if !matches!(kind, 1 | 2 | 3 | 8) {
        return Err(FrameError::Malformed(format!("unknown frame type {kind}")));
    }
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    let limit = if frame_max == 0 { 131_072 } else { frame_max };
    if size + FRAME_OVERHEAD > limit {
        return Err(FrameError::Oversized {
            size: size + FRAME_OVERHEAD,
            frame_max: limit,
        });
    }
    let total = 7 + size + 1;
    if buf.len() < total {
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(FrameError::Malformed("frame end octet missing".into()));
    }
    let parsed = parse_frame(&buf[..total]);
    let frame = match parsed {
        Ok((_, frame)) => frame,
        Err(_) => {
            if kind == 1 && size >= 4 {
                let class_id = u16::from_be_bytes([buf[7], buf[8]]);
                let method_id = u16::from_be_bytes([buf[9], buf[10]]);
                if known_method(class_id, method_id) {
                    return Err(FrameError::Syntax {
                        class_id,
                        method_id,
                    });
                }
                return Err(FrameError::UnknownMethod {
                    class_id,
                    method_id,
                });
            }
            return Err(FrameError::Malformed(format!(
                "cannot decode frame of type {kind}"
            )));
        }
    };
    buf.advance(total);
    Ok(Some(frame))
}

/// Appends the encoding of `frame` to `out`.
pub fn write_frame(out: &mut Vec<u8>, frame: &AMQPFrame) {
    let buf = std::mem::take(out);
    match cookie_factory::gen_simple(gen_frame(frame), buf) {
        Ok(b) => *out = b,
        Err(e) => {
            // Encoding into a Vec only fails on values the codec refuses (a short string
            // over 255 bytes): never sent, and said loudly.
            tracing::error!(error = ?e, "cannot encode AMQP frame");
        }
    }
}

/// Appends a method frame on `channel`.
pub fn write_method(out: &mut Vec<u8>, channel: u16, method: AMQPClass) {
    write_frame(out, &AMQPFrame::Method(channel, method));
}

/// Appends a message: the method (`basic.deliver`, `basic.get-ok` or `basic.return`), its
/// content header and its body split into frames of at most `frame_max` bytes.
pub fn write_message(
    out: &mut Vec<u8>,
    channel: u16,
    method: AMQPClass,
    properties: AMQPProperties,
    body: &[u8],
    frame_max: usize,
) {
    write_method(out, channel, method);
    write_frame(
        out,
        &AMQPFrame::Header(
            channel,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties,
            },
        ),
    );
    let chunk = frame_max.max(4096) - FRAME_OVERHEAD;
    for part in body.chunks(chunk) {
        // The body frame by hand: copying the payload once into the output is all it takes.
        out.push(3);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
        out.push(FRAME_END);
    }
}

/// Appends a heartbeat frame.
pub fn write_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::channel;

    #[test]
    fn a_frame_arriving_in_pieces_is_taken_whole_once_complete() {
        let mut out = Vec::new();
        write_method(
            &mut out,
            3,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&out[..5]);
        assert_eq!(take_frame(&mut buf, 4096), Ok(None));
        buf.extend_from_slice(&out[5..]);
        let f = take_frame(&mut buf, 4096).expect("valid").expect("whole");
        assert_eq!(f.channel_id(), 3);
        assert!(buf.is_empty());
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_buffered() {
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0x10, 0, 0][..]);
        assert!(matches!(
            take_frame(&mut buf, 4096),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[test]
    fn unknown_methods_and_bad_frame_types_are_told_apart() {
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE][..]);
        assert_eq!(
            take_frame(&mut buf, 4096),
            Err(FrameError::UnknownMethod {
                class_id: 99,
                method_id: 1
            })
        );
        let mut buf = BytesMut::from(&[7u8, 0, 1, 0, 0, 0, 0, 0xCE][..]);
        assert!(matches!(
            take_frame(&mut buf, 4096),
            Err(FrameError::Malformed(_))
        ));
        let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0x00][..]);
        assert!(matches!(
            take_frame(&mut buf, 4096),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn a_body_is_split_at_frame_max() {
        let mut out = Vec::new();
        write_message(
            &mut out,
            1,
            AMQPClass::Basic(amq_protocol::protocol::basic::AMQPMethod::Deliver(
                amq_protocol::protocol::basic::Deliver {
                    consumer_tag: "c".into(),
                    delivery_tag: 1,
                    redelivered: false,
                    exchange: "".into(),
                    routing_key: "q".into(),
                },
            )),
            AMQPProperties::default(),
            &[7u8; 10_000],
            4096,
        );
        let mut buf = BytesMut::from(&out[..]);
        let mut bodies = Vec::new();
        while let Some(f) = take_frame(&mut buf, 4096).expect("valid") {
            if let AMQPFrame::Body(_, b) = f {
                bodies.push(b.len());
            }
        }
        assert_eq!(bodies, vec![4088, 4088, 1824]);
    }
}
