//! The schemas are right: for every advertised (API, version), bodies generated from the schema
//! (random field values, arrays, tagged fields known and unknown) are accepted by the walk and
//! decoded by kafka-protocol, which consumes every byte. A schema missing, adding or mistyping a
//! field shifts what follows and fails here.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestKind};
use shoal_wire::gen::{body, Rng};
use shoal_wire::{check, schema, versions, DecodeError};

#[test]
fn generated_bodies_pass_the_walk_and_decode_completely() {
    let mut rng = Rng(0x5eed_0f5a_0a1d_0002);
    let mut failures = Vec::new();
    for (key, version) in versions() {
        let Some(req) = schema(key, version) else {
            failures.push(format!("{key} v{version}: no schema"));
            continue;
        };
        let Ok(api) = ApiKey::try_from(key) else {
            failures.push(format!("{key}: not an api key"));
            continue;
        };
        for i in 0..300 {
            let bytes = body(req, version, &mut rng);
            if let Err(e) = check(key, version, &bytes) {
                failures.push(format!("{api:?} v{version} #{i}: walk refused: {e}"));
                break;
            }
            let mut buf = Bytes::from(bytes.clone());
            match RequestKind::decode(api, &mut buf, version) {
                Ok(_) if buf.remaining() == 0 => {}
                Ok(_) => {
                    failures.push(format!(
                        "{api:?} v{version} #{i}: decoder left {} of {} bytes: {bytes:02x?}",
                        buf.remaining(),
                        bytes.len()
                    ));
                    break;
                }
                Err(e) => {
                    failures.push(format!(
                        "{api:?} v{version} #{i}: decoder refused: {e}: {bytes:02x?}"
                    ));
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_length_bomb_is_refused_before_decoding() {
    // JoinGroup v5 (non-flexible): group_id "g", session 0, rebalance 0, member_id "",
    // group_instance_id null, protocol_type "c", then protocols claiming i32::MAX elements.
    let mut b = Vec::new();
    b.extend_from_slice(&1i16.to_be_bytes());
    b.push(b'g');
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.push(b'c');
    b.extend_from_slice(&i32::MAX.to_be_bytes());
    match shoal_wire::decode(ApiKey::JoinGroup, 5, &mut Bytes::from(b)) {
        Err(DecodeError::Bounds(shoal_wire::BoundsError::TooLong { len, .. })) => {
            assert_eq!(len, i32::MAX as u64)
        }
        other => panic!("expected a bounds refusal, got {other:?}"),
    }
}
