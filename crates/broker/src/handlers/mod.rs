//! Request dispatch: frame -> header -> typed request -> handler -> encoded response.
//!
//! Every request goes decode -> handle -> encode. This module decodes and encodes; each file
//! is one request family, and each API in it is one function named for the API in snake case
//! (`groups::join` for JoinGroup, `fetch::fetch` for Fetch, `offsets::commit` for
//! OffsetCommit), taking the broker, the [`RequestContext`] when it needs it, and the decoded
//! request, and returning the response message (Produce in two steps: `produce::append` in
//! arrival order, then `produce::finish` once durable). Decoding of untrusted bytes happens only in
//! [`decode_request`], which refuses versions we do not advertise and contains any panic in
//! the protocol library; the process-wide allocation guard (see the `shoal` binary) bounds the
//! library's pre-allocation from untrusted lengths.
//!
//! Unknown API keys and unadvertised versions close the connection (as Kafka does), except
//! ApiVersions, which answers `UNSUPPORTED_VERSION` in v0 with the versions we support, and
//! Produce v0-2, which answers `UNSUPPORTED_VERSION` (see [`produce::legacy_unsupported`]).

pub mod admin;
pub mod api_versions;
pub mod authz;
pub mod config_catalog;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod partitions;
pub mod produce;
pub mod quotas;
pub mod security;
pub mod share;
pub mod txn;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::auth::acl::Operation;
use crate::auth::quota::QuotaType;
use crate::state::Broker;

/// A piece of a response frame.
#[derive(Debug)]
pub enum Part {
    Bytes(Bytes),
    /// Stored batches, sent from their segment file (`sendfile`).
    File(shoal_log::FileSlice),
}

/// What the connection does after a request.
pub enum Outcome {
    /// Write this frame (length prefix included).
    Respond(BytesMut),
    /// Write these pieces, in order: one frame (length prefix included).
    RespondParts(Vec<Part>),
    /// Produce with acks=0: nothing to write.
    NoResponse,
    /// Close the connection (malformed or unsupported request).
    Close(String),
    /// A Produce whose batches are appended; the future resolves (to one of the other
    /// variants) once they are durable. The connection may read and append further Produce
    /// requests meanwhile, and writes the responses in request order.
    Deferred(std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Respond(b) => write!(f, "Respond({} bytes)", b.len()),
            Outcome::RespondParts(p) => write!(f, "RespondParts({} parts)", p.len()),
            Outcome::NoResponse => f.write_str("NoResponse"),
            Outcome::Close(r) => write!(f, "Close({r})"),
            Outcome::Deferred(_) => f.write_str("Deferred"),
        }
    }
}

/// Facts about a connection the handlers need.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    /// Unique per connection in this process.
    pub id: u64,
    /// The name of the listener it came in on (`PLAINTEXT`, `SSL`, ...): Metadata and
    /// FindCoordinator answer with that listener's advertised address.
    pub listener: std::sync::Arc<str>,
    /// Who it authenticated as (`User:ANONYMOUS` without TLS client certificate or SASL).
    pub principal: std::sync::Arc<crate::auth::principal::KafkaPrincipal>,
    /// Set by [`dispatch`] when a client quota throttles the request: for how long (ms) the
    /// connection must read no further request (KIP-219). The reader takes it (resetting it
    /// to 0) after each request.
    pub mute_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ConnInfo {
    /// A connection on the `PLAINTEXT` listener as `User:ANONYMOUS` (tests, in-process
    /// callers).
    pub fn plaintext(peer: std::net::SocketAddr, id: u64) -> Self {
        Self {
            peer,
            id,
            listener: std::sync::Arc::from("PLAINTEXT"),
            principal: std::sync::Arc::new(crate::auth::principal::KafkaPrincipal::anonymous()),
            mute_ms: Default::default(),
        }
    }
}

/// Everything a handler knows about the request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_version: i16,
    pub client_id: String,
    pub peer: std::net::SocketAddr,
    /// The connection's id ([`ConnInfo::id`]).
    pub connection_id: u64,
    /// [`ConnInfo::listener`].
    pub listener: std::sync::Arc<str>,
    /// [`ConnInfo::principal`].
    pub principal: std::sync::Arc<crate::auth::principal::KafkaPrincipal>,
}

/// Decodes the request body for `api_key` at `version`. The only place untrusted request
/// bytes are decoded: [`shoal_wire::decode`] first walks the body and refuses any array count,
/// string or bytes length larger than the bytes left in the frame (Kafka's rule), so no
/// allocation is sized from an unchecked length, then decodes it with kafka-protocol.
///
/// Errors: a message when the version is not advertised, a length exceeds the frame, the body
/// is malformed, or the decoder panicked (caught).
pub fn decode_request(
    api_key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<RequestKind, String> {
    if !api_versions::is_supported(api_key, version) {
        return Err(format!("{api_key:?} v{version} is not supported"));
    }
    shoal_wire::decode(api_key, version, body)
        .map_err(|e| format!("malformed {api_key:?} v{version} request: {e}"))
}

/// Encodes a response frame: length, header (v0 or v1 per API/version), body.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0, 0, 0, 0]);
    let header_version = api_key.response_header_version(version);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let len = (buf.len() - 4) as i32;
    buf.get_mut(0..4)
        .ok_or("short buffer")?
        .copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

fn peek_i16(frame: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
}

/// Handles one request frame (without its length prefix).
pub async fn dispatch(broker: &Broker, frame: Bytes, conn: &ConnInfo) -> Outcome {
    let (Some(key), Some(version)) = (peek_i16(&frame, 0), peek_i16(&frame, 2)) else {
        return Outcome::Close("truncated request header".into());
    };
    let Ok(api_key) = ApiKey::try_from(key) else {
        return Outcome::Close(format!("unknown api key {key}"));
    };
    let header_version =
        if api_key == ApiKey::ApiVersions && !api_versions::is_supported(api_key, version) {
            // An ApiVersions we do not know: read the v1 header part Kafka guarantees.
            1
        } else if api_key == ApiKey::Produce && (0..=2).contains(&version) {
            1
        } else {
            api_key.request_header_version(version)
        };
    let frame_bytes = frame.len() + 4;
    let mut body = frame;
    let header = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        RequestHeader::decode(&mut body, header_version)
    })) {
        Ok(Ok(h)) => h,
        _ => return Outcome::Close("malformed request header".into()),
    };
    let ctx = RequestContext {
        api_version: version,
        client_id: header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        peer: conn.peer,
        connection_id: conn.id,
        listener: std::sync::Arc::clone(&conn.listener),
        principal: std::sync::Arc::clone(&conn.principal),
    };
    let correlation_id = header.correlation_id;
    tracing::trace!(peer = %conn.peer, api = ?api_key, version, correlation_id, client_id = %ctx.client_id, "request");
    if api_key == ApiKey::ApiVersions && !api_versions::is_supported(api_key, version) {
        let resp = api_versions::unsupported_version_response();
        return respond(
            ApiKey::ApiVersions,
            0,
            correlation_id,
            &ResponseKind::ApiVersions(resp),
        );
    }
    if api_key == ApiKey::Produce && (0..=2).contains(&version) {
        return match produce::legacy_unsupported(&body, version, correlation_id) {
            Some(frame) => Outcome::Respond(frame),
            None => Outcome::Close("malformed legacy produce request".into()),
        };
    }
    let request = match decode_request(api_key, version, &mut body) {
        Ok(r) => r,
        Err(e) => return Outcome::Close(e),
    };
    match authz::check(broker, &ctx, api_key, &request) {
        Ok(None) => {}
        Ok(Some(refused)) => return respond(api_key, version, correlation_id, &refused),
        Err(why) => {
            tracing::info!(peer = %ctx.peer, principal = %ctx.principal, reason = %why, "request not authorized");
            return Outcome::Close(why);
        }
    }
    let mut mutations = quotas::Mutations::new(broker, &ctx, api_key, version);
    let mut busy = std::time::Duration::ZERO;
    let handled = {
        let mut running = std::pin::pin!(handle(
            broker,
            &ctx,
            api_key,
            version,
            request,
            &mut mutations
        ));
        // Only the time spent running the handler counts towards `request_percentage`, not
        // the time it waits (long polls, parked joins), as Kafka counts request-thread time.
        std::future::poll_fn(|cx| {
            let started = std::time::Instant::now();
            let polled = std::future::Future::poll(running.as_mut(), cx);
            busy += started.elapsed();
            polled
        })
        .await
    };
    let mutation_throttle = mutations.throttle.clone();
    quotas::answer(
        broker,
        &ctx,
        conn,
        (api_key, version, correlation_id),
        frame_bytes,
        busy,
        mutation_throttle,
        handled,
    )
}

/// Runs a config API (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs) on the resources
/// the principal may `$op` and answers the others with their authorization error
/// ([`authz::refuse_config_resources`]) in `$field` rows of type `$row`.
macro_rules! per_config_resource {
    ($broker:expr, $ctx:expr, $op:expr, $req:ident, $call:expr, $field:ident, $row:ty) => {{
        let denied = authz::refuse_config_resources($broker, $ctx, $op, &mut $req.resources, |c| {
            (c.resource_type, &c.resource_name)
        });
        let mut resp = $call;
        resp.$field
            .extend(denied.into_iter().map(|(t, name, error)| {
                <$row>::default()
                    .with_error_code(error)
                    .with_resource_type(t)
                    .with_resource_name(name)
            }));
        resp
    }};
}

/// What a handler produced, before quotas and encoding.
pub(crate) enum Handled {
    Response(ResponseKind),
    /// A Produce, appended; answered once durable.
    Produce(produce::PendingProduce),
    /// A Fetch and its file ranges ([`fetch::respond`]).
    Fetch(
        kafka_protocol::messages::FetchResponse,
        Vec<(Bytes, shoal_log::FileSlice)>,
    ),
    /// Answered (or closed) already.
    Done(Outcome),
}

/// Runs the handler for a decoded, authorized request.
async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    api_key: ApiKey,
    version: i16,
    request: RequestKind,
    mutations: &mut quotas::Mutations<'_>,
) -> Handled {
    let _ = api_key;
    let response = match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(api_versions::api_versions(version))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::metadata(broker, ctx, r)),
        RequestKind::Produce(r) => {
            // Produce v12+ adds the transaction's new partitions first (KIP-890 part 2);
            // awaited here, so this connection's later requests still append after it.
            let refused = if let Some(denied) = produce::transactional_id_refusals(broker, ctx, &r)
            {
                denied
            } else if version >= 12 {
                produce::add_to_transaction(broker, &r).await
            } else {
                produce::Refused::new()
            };
            // Appended now, in arrival order; answered once durable.
            return Handled::Produce(produce::append(broker, ctx, r, &refused));
        }
        RequestKind::Fetch(mut r) => {
            // A consumer quota bounds one response to what it allows in its window (Kafka's
            // `getMaxValueInQuotaWindow`).
            let window = broker.quotas.max_value_in_window(
                QuotaType::Fetch,
                &ctx.principal.name,
                &ctx.client_id,
            );
            if let Some(window) = window {
                r.max_bytes = r.max_bytes.min(i32::try_from(window).unwrap_or(i32::MAX));
            }
            let (resp, slices) = fetch::fetch(broker, ctx, r).await;
            return Handled::Fetch(resp, slices);
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(fetch::list_offsets(broker, ctx, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(fetch::offset_for_leader_epoch(broker, ctx, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, ctx, r, mutations))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, ctx, r, mutations).await)
        }
        RequestKind::CreatePartitions(mut r) => {
            let denied =
                authz::refuse_topics(broker, ctx, Operation::Alter, &mut r.topics, |t| &t.name);
            let mut resp = admin::create_partitions(broker, r, mutations);
            resp.results.extend(denied.into_iter().map(|t| {
                kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
            }));
            ResponseKind::CreatePartitions(resp)
        }
        RequestKind::DescribeConfigs(mut r) => ResponseKind::DescribeConfigs(per_config_resource!(
            broker, ctx, Operation::DescribeConfigs, r, admin::describe_configs(broker, r).await, results, kafka_protocol::messages::describe_configs_response::DescribeConfigsResult
        )),
        RequestKind::AlterConfigs(mut r) => ResponseKind::AlterConfigs(per_config_resource!(
            broker, ctx, Operation::AlterConfigs, r, admin::alter_configs(broker, r), responses, kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse
        )),
        RequestKind::DeleteRecords(mut r) => {
            let denied =
                authz::refuse_topics(broker, ctx, Operation::Delete, &mut r.topics, |t| &t.name);
            let mut resp = partitions::delete_records(broker, r);
            resp.topics.extend(denied.into_iter().map(|t| {
                use kafka_protocol::messages::delete_records_response::*;
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_low_watermark(-1)
                                    .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                            })
                            .collect(),
                    )
            }));
            ResponseKind::DeleteRecords(resp)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(partitions::describe_log_dirs(broker, r))
        }
        RequestKind::AlterReplicaLogDirs(r) => {
            ResponseKind::AlterReplicaLogDirs(partitions::alter_replica_log_dirs(broker, r))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(partitions::elect_leaders(broker, r))
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            partitions::alter_partition_reassignments(broker, r),
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            partitions::list_partition_reassignments(broker, r),
        ),
        RequestKind::DescribeTopicPartitions(r) => {
            ResponseKind::DescribeTopicPartitions(partitions::describe_topic_partitions(broker, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(admin::describe_cluster(broker, ctx, r))
        }
        RequestKind::InitProducerId(r) => match r.transactional_id.as_ref() {
            Some(id) => {
                let id = id.0.to_string();
                ResponseKind::InitProducerId(txn::init_producer_id(broker, ctx, r, id).await)
            }
            None => ResponseKind::InitProducerId(produce::init_producer_id(broker, r)),
        },
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions(broker, ctx, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(broker, ctx, r).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(broker, ctx, r).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(broker, ctx, r).await),
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe_transactions(broker, r).await)
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(txn::list_transactions(broker, r).await)
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(txn::describe_producers(broker, r))
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(txn::write_txn_markers(broker, r).await)
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, ctx, r))
        }
        RequestKind::JoinGroup(r) => {
            let group_id = r.group_id.0.to_string();
            let resp = groups::join(broker, ctx, r).await;
            seen(
                broker,
                ctx,
                resp.error_code,
                group_id,
                resp.member_id.to_string(),
            );
            ResponseKind::JoinGroup(resp)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(broker, r).await),
        RequestKind::Heartbeat(r) => {
            let ids = (r.group_id.0.to_string(), r.member_id.to_string());
            let resp = groups::heartbeat(broker, r).await;
            seen(broker, ctx, resp.error_code, ids.0, ids.1);
            ResponseKind::Heartbeat(resp)
        }
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(broker, ctx, r).await),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(broker, r).await),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe(broker, r).await)
        }
        RequestKind::DeleteGroups(mut r) => {
            let refused = authz::undeletable_groups(broker, ctx, &mut r);
            let resp = groups::delete(broker, r).await;
            ResponseKind::DeleteGroups(authz::deleted_groups(resp, refused))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offsets::commit(broker, ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            let asked_all: Vec<bool> = if version >= 8 {
                r.groups.iter().map(|g| g.topics.is_none()).collect()
            } else {
                vec![r.topics.is_none()]
            };
            let resp = offsets::fetch(broker, ctx, r).await;
            ResponseKind::OffsetFetch(authz::filter_offset_fetch(broker, ctx, &asked_all, resp))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            let group_id = r.group_id.0.to_string();
            let resp = groups::consumer_heartbeat(broker, ctx, r).await;
            if resp.member_epoch >= 0 {
                let member_id = resp.member_id.as_ref().map(|m| m.to_string());
                if let Some(member_id) = member_id {
                    seen(broker, ctx, resp.error_code, group_id, member_id);
                }
            }
            ResponseKind::ConsumerGroupHeartbeat(resp)
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(groups::consumer_describe(broker, ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(mut r) => ResponseKind::IncrementalAlterConfigs(per_config_resource!(
            broker, ctx, Operation::AlterConfigs, r, admin::incremental_alter_configs(broker, r).await, responses, kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse
        )),
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offsets::delete(broker, r).await)
        }
        RequestKind::ShareGroupHeartbeat(r) => {
            ResponseKind::ShareGroupHeartbeat(share::heartbeat(broker, ctx, r).await)
        }
        RequestKind::ShareGroupDescribe(r) => {
            ResponseKind::ShareGroupDescribe(share::describe(broker, r).await)
        }
        RequestKind::ShareFetch(r) => ResponseKind::ShareFetch(share::fetch(broker, ctx, r).await),
        RequestKind::ShareAcknowledge(r) => {
            ResponseKind::ShareAcknowledge(share::acknowledge(broker, ctx, r).await)
        }
        RequestKind::DescribeShareGroupOffsets(r) => {
            ResponseKind::DescribeShareGroupOffsets(share::describe_offsets(broker, r).await)
        }
        RequestKind::AlterShareGroupOffsets(r) => {
            ResponseKind::AlterShareGroupOffsets(share::alter_offsets(broker, r).await)
        }
        RequestKind::DeleteShareGroupOffsets(r) => {
            ResponseKind::DeleteShareGroupOffsets(share::delete_offsets(broker, r).await)
        }
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            security::alter_user_scram_credentials(broker, ctx, r),
        ),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            security::describe_user_scram_credentials(broker, ctx, r),
        ),
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(security::create_acls(broker, ctx, r))
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(security::describe_acls(broker, ctx, r))
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(security::delete_acls(broker, ctx, r))
        }
        // SASL listeners answer these before dispatch (`server::sasl`); here the connection
        // is not in a SASL exchange, as Kafka's KafkaApis answers them.
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(
            kafka_protocol::messages::SaslHandshakeResponse::default()
                .with_error_code(code::ILLEGAL_SASL_STATE),
        ),
        RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(
            kafka_protocol::messages::SaslAuthenticateResponse::default()
                .with_error_code(code::ILLEGAL_SASL_STATE)
                .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_static_str(
                    "SaslAuthenticate request received outside a SASL exchange",
                ))),
        ),
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(quotas::describe_client_quotas(broker, ctx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(quotas::alter_client_quotas(broker, ctx, r))
        }
        other => return Handled::Done(Outcome::Close(format!("no handler for {other:?}"))),
    };
    Handled::Response(authz::filter_groups(broker, ctx, response))
}

/// Tells the coordinator which connection a group member uses, when
/// `group.connection.close.session.timeout.ms` is on (nothing is sent otherwise).
fn seen(
    broker: &Broker,
    ctx: &RequestContext,
    error_code: i16,
    group_id: String,
    member_id: String,
) {
    if broker.config.group_connection_close_session_timeout_ms >= 0
        && error_code == code::NONE
        && !member_id.is_empty()
    {
        broker
            .groups
            .member_seen(ctx.connection_id, group_id, member_id);
    }
}

/// Whether the connection's principal may do `op` on `resource` `name` (always, without an
/// authorizer): [`crate::auth::acl::Authorizer::authorize`].
pub fn allowed(
    broker: &Broker,
    ctx: &RequestContext,
    op: crate::auth::acl::Operation,
    resource: crate::auth::acl::ResourceType,
    name: &str,
) -> bool {
    broker
        .authorizer
        .authorize(&ctx.principal, ctx.peer.ip(), op, resource, name)
}

/// [`allowed`] on topic `name`.
pub fn topic_allowed(
    broker: &Broker,
    ctx: &RequestContext,
    op: crate::auth::acl::Operation,
    name: &str,
) -> bool {
    allowed(broker, ctx, op, crate::auth::acl::ResourceType::Topic, name)
}

/// [`allowed`] on the cluster resource (`kafka-cluster`).
pub fn cluster_allowed(
    broker: &Broker,
    ctx: &RequestContext,
    op: crate::auth::acl::Operation,
) -> bool {
    allowed(
        broker,
        ctx,
        op,
        crate::auth::acl::ResourceType::Cluster,
        "kafka-cluster",
    )
}

/// Encodes `body` as the answer to request `correlation_id`; a response that cannot be
/// encoded closes the connection.
pub fn respond(api_key: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> Outcome {
    match encode_response(api_key, version, correlation_id, body) {
        Ok(frame) => Outcome::Respond(frame),
        Err(e) => Outcome::Close(format!(
            "cannot encode {api_key:?} v{version} response: {e}"
        )),
    }
}

/// Kafka error codes used by the handlers (`org.apache.kafka.common.protocol.Errors`).
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const LOG_DIR_NOT_FOUND: i16 = 57;
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const SECURITY_DISABLED: i16 = 54;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    pub const RESOURCE_NOT_FOUND: i16 = 91;
    pub const DUPLICATE_RESOURCE: i16 = 92;
    pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
    pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
}
