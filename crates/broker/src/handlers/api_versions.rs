//! ApiVersions and the table of what Shoal serves. Only versions handled correctly are
//! advertised (docs/compatibility.md has the matrix). Produce is advertised from v0 because
//! librdkafka <= 2.11 only compresses with gzip/snappy/lz4 when it sees Produce v0 advertised;
//! v0-2 are answered with `UNSUPPORTED_VERSION`.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::code;

/// `(api, min, max)` advertised in ApiVersions.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
];

/// Whether `version` of `api` is served (Produce v0-2 are advertised but answered with an
/// error, so they count as not supported here).
pub fn is_supported(api: ApiKey, version: i16) -> bool {
    if api == ApiKey::Produce && version < 3 {
        return false;
    }
    SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == api && (*min..=*max).contains(&version))
}

fn table() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(k, min, max)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

/// `transaction.version` (KIP-890 part 2): the level Shoal finalizes.
pub const TRANSACTION_VERSION: i16 = 2;

/// The ApiVersions response for request `version`. v3+ carries the features (KIP-584):
/// `transaction.version` finalized at 2 (min = max = 2, epoch 0: clients ignore an epoch of
/// -1), which makes a Java client (4.0+) run transaction version 2; it is listed among the
/// supported features (0-2) only for v4, as Kafka leaves out features whose minimum is 0
/// below v4 (KAFKA-17011).
pub fn api_versions(version: i16) -> ApiVersionsResponse {
    use kafka_protocol::messages::api_versions_response::{
        FinalizedFeatureKey, SupportedFeatureKey,
    };
    let name = || kafka_protocol::protocol::StrBytes::from_static_str("transaction.version");
    let supported = if version >= 4 {
        vec![SupportedFeatureKey::default()
            .with_name(name())
            .with_min_version(0)
            .with_max_version(TRANSACTION_VERSION)]
    } else {
        Vec::new()
    };
    ApiVersionsResponse::default()
        .with_error_code(code::NONE)
        .with_api_keys(table())
        .with_supported_features(supported)
        .with_finalized_features_epoch(0)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(name())
            .with_max_version_level(TRANSACTION_VERSION)
            .with_min_version_level(TRANSACTION_VERSION)])
}

/// Answer to an ApiVersions version we do not serve: `UNSUPPORTED_VERSION` with our table,
/// encoded as v0 so any client can read it (KIP-511).
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(code::UNSUPPORTED_VERSION)
        .with_api_keys(table())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every version served has a bounds schema in `shoal-wire`, and `shoal-wire` has none for
    /// a version not served (regenerate with `scripts/gen-wire-schemas.py` after changing
    /// [`SUPPORTED`]).
    #[test]
    fn every_served_version_has_a_wire_schema_and_no_other() {
        let mut missing = Vec::new();
        for &(api, min, max) in SUPPORTED {
            for v in min..=max {
                if is_supported(api, v) && shoal_wire::schema(api as i16, v).is_none() {
                    missing.push(format!("{api:?} v{v}"));
                }
            }
        }
        assert!(missing.is_empty(), "no wire schema for {missing:?}");
        let extra: Vec<_> = shoal_wire::versions()
            .filter(|&(k, v)| ApiKey::try_from(k).map_or(true, |api| !is_supported(api, v)))
            .collect();
        assert!(
            extra.is_empty(),
            "schemas for versions not served: {extra:?}"
        );
    }
}
