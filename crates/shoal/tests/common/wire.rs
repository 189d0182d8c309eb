//! Hand-built Kafka requests over a plain socket, for tests of what no client library here
//! sends (or sends wrongly on purpose).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Shoal;

pub fn connect(broker: &Shoal) -> TcpStream {
    let s = TcpStream::connect(&broker.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

pub fn send_raw(s: &mut TcpStream, payload: &[u8]) {
    s.write_all(&(payload.len() as i32).to_be_bytes())
        .expect("write len");
    s.write_all(payload).expect("write body");
}

/// Reads one response frame; `None` when the broker closed the connection.
pub fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(Bytes::from(buf))
}

pub fn request<Req: Encodable, Resp: Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    send_request(s, key, version, req);
    read_response(s, key, version)
}

pub fn send_request<Req: Encodable>(s: &mut TcpStream, key: ApiKey, version: i16, req: &Req) {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut buf, key.request_header_version(version))
        .expect("encode header");
    req.encode(&mut buf, version).expect("encode body");
    send_raw(s, &buf);
}

pub fn read_response<Resp: Decodable>(s: &mut TcpStream, key: ApiKey, version: i16) -> Resp {
    let mut frame = read_frame(s).expect("response frame");
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, 7);
    Resp::decode(&mut frame, version).expect("response body")
}
