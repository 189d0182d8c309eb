//! DescribeClientQuotas and AlterClientQuotas (KIP-546, v0-1): the client quotas of
//! [`crate::auth::quota`], validated and matched as Kafka's controller does
//! (`ClientQuotaControlManager`, `ClientQuotasImage`).

use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::{cluster_allowed, code, Outcome, RequestContext};
use crate::auth::acl::Operation;
use crate::auth::quota::{validate_entity, validate_key, Entity, EntityType, QuotaType, Throttle};
use crate::state::Broker;

/// `MatchType` values of a DescribeClientQuotas component.
const MATCH_TYPE_EXACT: i8 = 0;
const MATCH_TYPE_DEFAULT: i8 = 1;
const MATCH_TYPE_SPECIFIED: i8 = 2;

fn wire_entity<T>(entity: &Entity, make: impl Fn(StrBytes, Option<StrBytes>) -> T) -> Vec<T> {
    entity
        .iter()
        .map(|(t, n)| {
            make(
                StrBytes::from_static_str(t.name()),
                n.clone().map(StrBytes::from_string),
            )
        })
        .collect()
}

/// Handles DescribeClientQuotas: every stored entity matching all the filter's components
/// (EXACT: that name; DEFAULT: the default entity; SPECIFIED: any name of the type, default
/// included), with `strict` also requiring no further entity types; no component and not
/// strict: every entity.
///
/// Errors (top level, `entries` null): CLUSTER_AUTHORIZATION_FAILED without DESCRIBE_CONFIGS
/// on the cluster; INVALID_REQUEST for a malformed filter (match string with the wrong match
/// type, unknown match type, an entity type twice, `ip` with `user` or `client-id`);
/// UNSUPPORTED_VERSION for an entity type other than `user`, `client-id` and `ip`.
pub fn describe_client_quotas(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let failed = |error: i16, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(error)
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_entries(None)
    };
    if !cluster_allowed(broker, ctx, Operation::DescribeConfigs) {
        return failed(
            code::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.".into(),
        );
    }
    // Per entity type: Some(name) for EXACT/DEFAULT (name None = default), None for SPECIFIED.
    let mut filter: Vec<(EntityType, Option<Option<String>>)> = Vec::new();
    for c in &req.components {
        let t = c.entity_type.as_str();
        if t.is_empty() {
            return failed(code::INVALID_REQUEST, "Invalid empty entity type.".into());
        }
        let Some(ty) = EntityType::from_name(t) else {
            return failed(
                code::UNSUPPORTED_VERSION,
                format!("Unsupported entity type {t}"),
            );
        };
        if filter.iter().any(|(f, _)| *f == ty) {
            return failed(
                code::INVALID_REQUEST,
                format!("Entity type {t} cannot appear more than once in the filter."),
            );
        }
        let want = match (c.match_type, c._match.as_ref()) {
            (MATCH_TYPE_EXACT, Some(m)) => Some(Some(m.to_string())),
            (MATCH_TYPE_DEFAULT, None) => Some(None),
            (MATCH_TYPE_SPECIFIED, None) => None,
            (MATCH_TYPE_EXACT, None) => {
                return failed(
                    code::INVALID_REQUEST,
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                )
            }
            (MATCH_TYPE_DEFAULT | MATCH_TYPE_SPECIFIED, Some(_)) => {
                return failed(
                    code::INVALID_REQUEST,
                    "Request specified a match string with a match type that takes none.".into(),
                )
            }
            (other, _) => {
                return failed(code::INVALID_REQUEST, format!("Unknown match type {other}"))
            }
        };
        filter.push((ty, want));
    }
    let has = |ty| filter.iter().any(|(f, _)| *f == ty);
    if has(EntityType::Ip) && (has(EntityType::User) || has(EntityType::ClientId)) {
        return failed(
            code::INVALID_REQUEST,
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into(),
        );
    }
    let entries = broker
        .quotas
        .all()
        .into_iter()
        .filter(|(entity, _)| {
            if filter.is_empty() {
                return !req.strict;
            }
            let each = filter
                .iter()
                .all(|(ty, want)| match (entity.get(ty), want) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(name), Some(want)) => name == want,
                });
            each && (!req.strict || entity.len() == filter.len())
        })
        .map(|(entity, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(wire_entity(&entity, |t, n| {
                    describe_client_quotas_response::EntityData::default()
                        .with_entity_type(t)
                        .with_entity_name(n)
                }))
                .with_values(
                    values
                        .into_iter()
                        .map(|(k, v)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(StrBytes::from_string(k))
                                .with_value(v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default()
        .with_error_code(code::NONE)
        .with_entries(Some(entries))
}

/// Handles AlterClientQuotas: each entry's operations (set a key to a value, or remove it;
/// removing an unset key is no error) are validated, then applied durably unless
/// `validate_only`. Entries succeed or fail on their own.
///
/// Errors, per entry: CLUSTER_AUTHORIZATION_FAILED without ALTER_CONFIGS on the cluster;
/// INVALID_REQUEST for a malformed entity ([`validate_entity`]), an entity already altered in
/// this request, a key named twice, an unknown key or one the entity cannot have, a value not
/// above zero, or a fractional value for a byte or connection rate; KAFKA_STORAGE_ERROR when
/// the record cannot be written.
pub fn alter_client_quotas(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let authorized = cluster_allowed(broker, ctx, Operation::AlterConfigs);
    let mut seen: Vec<Entity> = Vec::new();
    let entries = req
        .entries
        .into_iter()
        .map(|entry| {
            let wire: Vec<alter_client_quotas_response::EntityData> = entry
                .entity
                .iter()
                .map(|e| {
                    alter_client_quotas_response::EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            let result = if authorized {
                alter_one(broker, &entry, req.validate_only, &mut seen)
            } else {
                Err((
                    code::CLUSTER_AUTHORIZATION_FAILED,
                    "Cluster authorization failed.".to_string(),
                ))
            };
            let (error, message) = match result {
                Ok(()) => (code::NONE, None),
                Err((c, m)) => (c, Some(StrBytes::from_string(m))),
            };
            alter_client_quotas_response::EntryData::default()
                .with_error_code(error)
                .with_error_message(message)
                .with_entity(wire)
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

fn alter_one(
    broker: &Broker,
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
    validate_only: bool,
    seen: &mut Vec<Entity>,
) -> Result<(), (i16, String)> {
    let invalid = |m: String| (code::INVALID_REQUEST, m);
    let components: Vec<(String, Option<String>)> = entry
        .entity
        .iter()
        .map(|e| {
            (
                e.entity_type.to_string(),
                e.entity_name.as_ref().map(|n| n.to_string()),
            )
        })
        .collect();
    let entity = validate_entity(&components).map_err(invalid)?;
    if seen.contains(&entity) {
        return Err(invalid(format!(
            "Ignoring duplicate entity {}",
            crate::auth::quota::describe_entity(&entity)
        )));
    }
    seen.push(entity.clone());
    let mut ops: Vec<(String, Option<f64>)> = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let key = op.key.to_string();
        if ops.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!(
                "Duplicate quota key {key} not updating quota for this entity"
            )));
        }
        if op.remove {
            ops.push((key, None));
            continue;
        }
        let whole = validate_key(&entity, &key).map_err(invalid)?;
        let v = op.value;
        if !v.is_finite() || v <= 0.0 {
            return Err(invalid(format!(
                "Invalid value {v} for configuration key {key}: must be positive"
            )));
        }
        if whole && ((v - v.round()).abs() > 1e-6 || v > i64::MAX as f64) {
            return Err(invalid(format!(
                "Invalid value {v} for configuration key {key}: must be a whole number"
            )));
        }
        ops.push((key, Some(if whole { v.round() } else { v })));
    }
    if validate_only {
        return Ok(());
    }
    broker
        .quotas
        .alter(&broker.topics, &entity, &ops)
        .map_err(|e| (code::KAFKA_STORAGE_ERROR, e))
}

/// One request's controller-mutation quota (KIP-599): CreateTopics, CreatePartitions and
/// DeleteTopics take a token per partition they create or delete, through [`Mutations::take`].
pub struct Mutations<'a> {
    broker: &'a Broker,
    ctx: &'a RequestContext,
    /// CreateTopics v6+, CreatePartitions v3+, DeleteTopics v5+: refuse once the quota is
    /// used up; older versions are accepted and throttled.
    strict: bool,
    /// The longest throttle taken so far.
    pub throttle: Throttle,
}

impl<'a> Mutations<'a> {
    /// The quota for a request of `api` at `version` on `ctx`'s connection.
    pub fn new(broker: &'a Broker, ctx: &'a RequestContext, api: ApiKey, version: i16) -> Self {
        let strict = match api {
            ApiKey::CreateTopics => version >= 6,
            ApiKey::CreatePartitions => version >= 3,
            ApiKey::DeleteTopics => version >= 5,
            _ => false,
        };
        Self {
            broker,
            ctx,
            strict,
            throttle: Throttle::default(),
        }
    }

    /// Takes `partitions` tokens before a topic is created, grown or deleted.
    ///
    /// Errors: THROTTLING_QUOTA_EXCEEDED (strict versions, quota used up): the topic is not
    /// touched, and the response's throttle time says when to retry.
    pub fn take(&mut self, partitions: u32) -> Result<(), (i16, String)> {
        let taken = self.broker.quotas.mutate(
            &self.ctx.principal.name,
            &self.ctx.client_id,
            partitions,
            self.strict,
        );
        let (Ok(t) | Err(t)) = &taken;
        if t.ms > self.throttle.ms {
            self.throttle = t.clone();
        }
        taken.map(|_| ()).map_err(|_| {
            (
                code::THROTTLING_QUOTA_EXCEEDED,
                "The throttling quota has been exceeded.".to_string(),
            )
        })
    }
}

/// Sets `throttle_time_ms` on a response that has the field.
fn set_throttle(r: &mut ResponseKind, ms: i32) {
    macro_rules! set {
        ($($v:ident),* $(,)?) => {
            match r {
                $(ResponseKind::$v(x) => x.throttle_time_ms = ms,)*
                _ => {}
            }
        };
    }
    set!(
        AddOffsetsToTxn,
        AddPartitionsToTxn,
        AlterClientQuotas,
        AlterConfigs,
        AlterPartitionReassignments,
        AlterReplicaLogDirs,
        AlterShareGroupOffsets,
        AlterUserScramCredentials,
        ApiVersions,
        ConsumerGroupDescribe,
        ConsumerGroupHeartbeat,
        CreateAcls,
        CreatePartitions,
        CreateTopics,
        DeleteAcls,
        DeleteGroups,
        DeleteRecords,
        DeleteShareGroupOffsets,
        DeleteTopics,
        DescribeAcls,
        DescribeClientQuotas,
        DescribeCluster,
        DescribeConfigs,
        DescribeGroups,
        DescribeLogDirs,
        DescribeProducers,
        DescribeShareGroupOffsets,
        DescribeTopicPartitions,
        DescribeTransactions,
        DescribeUserScramCredentials,
        ElectLeaders,
        EndTxn,
        Fetch,
        FindCoordinator,
        Heartbeat,
        IncrementalAlterConfigs,
        InitProducerId,
        JoinGroup,
        LeaveGroup,
        ListGroups,
        ListOffsets,
        ListPartitionReassignments,
        ListTransactions,
        Metadata,
        OffsetCommit,
        OffsetDelete,
        OffsetFetch,
        OffsetForLeaderEpoch,
        Produce,
        ShareAcknowledge,
        ShareFetch,
        ShareGroupDescribe,
        ShareGroupHeartbeat,
        SyncGroup,
        TxnOffsetCommit,
    );
}

/// Encodes `body` with `throttle_ms` in its `throttle_time_ms`; a version without the field
/// is encoded without it (the mute still applies, as Kafka throttles clients that predate
/// KIP-219 by the mute alone).
fn respond_throttled(
    (api_key, version, correlation_id): (ApiKey, i16, i32),
    mut body: ResponseKind,
    throttle_ms: u64,
) -> Outcome {
    if throttle_ms > 0 {
        set_throttle(&mut body, i32::try_from(throttle_ms).unwrap_or(i32::MAX));
        if let Ok(frame) = super::encode_response(api_key, version, correlation_id, &body) {
            return Outcome::Respond(frame);
        }
        set_throttle(&mut body, 0);
    }
    super::respond(api_key, version, correlation_id, &body)
}

/// Applies client quotas to a handled request and encodes its answer: request time (percent
/// of a thread: `busy` × 100 / 1 s; WriteTxnMarkers, a cluster action, is exempt), Produce
/// request bytes (`frame_bytes`), Fetch response bytes. The longest throttle goes into the
/// response's `throttle_time_ms` and into `conn.mute_ms`; a throttled Fetch is answered
/// without data and its bytes do not count (Kafka's `KafkaApis`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn answer(
    broker: &Broker,
    ctx: &RequestContext,
    conn: &super::ConnInfo,
    request: (ApiKey, i16, i32),
    frame_bytes: usize,
    busy: std::time::Duration,
    mutations: Throttle,
    handled: super::Handled,
) -> Outcome {
    use super::Handled;
    let quotas = &broker.quotas;
    let (user, client) = (ctx.principal.name.as_str(), ctx.client_id.as_str());
    let (api_key, version, correlation_id) = request;
    let enabled = quotas.enabled();
    let note = |ty: QuotaType, t: &Throttle| {
        if t.ms > 0 {
            broker
                .metrics
                .throttled(ty.label(), &t.tags.0, &t.tags.1, t.ms);
        }
        t.ms
    };
    let mut throttle = note(QuotaType::ControllerMutation, &mutations);
    if enabled && api_key != ApiKey::WriteTxnMarkers {
        let percent_seconds = busy.as_secs_f64() * 100.0;
        let t = quotas.record(QuotaType::Request, user, client, percent_seconds);
        throttle = throttle.max(note(QuotaType::Request, &t));
    }
    let outcome = match handled {
        Handled::Done(o) => o,
        Handled::Response(body) => respond_throttled(request, body, throttle),
        Handled::Produce(pending) => {
            if enabled {
                let t = quotas.record(QuotaType::Produce, user, client, frame_bytes as f64);
                throttle = throttle.max(note(QuotaType::Produce, &t));
            }
            let flusher = broker.flusher.clone();
            let ms = throttle;
            Outcome::Deferred(Box::pin(async move {
                match super::produce::finish(&flusher, pending).await {
                    Some(resp) => respond_throttled(request, ResponseKind::Produce(resp), ms),
                    None => Outcome::NoResponse,
                }
            }))
        }
        Handled::Fetch(mut resp, mut slices) => {
            if enabled {
                let size = fetch_bytes(&resp, &slices) as f64;
                let t = quotas.record(QuotaType::Fetch, user, client, size);
                throttle = throttle.max(note(QuotaType::Fetch, &t));
                if throttle > 0 {
                    quotas.unrecord(QuotaType::Fetch, user, client, size);
                    resp = kafka_protocol::messages::FetchResponse::default()
                        .with_error_code(code::NONE)
                        .with_session_id(0);
                    slices.clear();
                }
            }
            resp.throttle_time_ms = i32::try_from(throttle).unwrap_or(i32::MAX);
            super::fetch::respond(version, correlation_id, resp, slices)
        }
    };
    let _ = api_key;
    if throttle > 0 {
        conn.mute_ms
            .fetch_max(throttle, std::sync::atomic::Ordering::Relaxed);
    }
    outcome
}

/// Record bytes a Fetch response carries: in-memory records plus file ranges (whose
/// 16-byte sentinels stand in the records).
fn fetch_bytes(
    resp: &kafka_protocol::messages::FetchResponse,
    slices: &[(bytes::Bytes, shoal_log::FileSlice)],
) -> usize {
    let in_memory: usize = resp
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .sum();
    let sentinels: usize = slices.iter().map(|(m, _)| m.len()).sum();
    let ranges: usize = slices.iter().map(|(_, s)| s.len).sum();
    in_memory.saturating_sub(sentinels) + ranges
}
