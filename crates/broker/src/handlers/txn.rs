//! Transactions (KIP-98): InitProducerId with a `transactional_id`, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit and EndTxn, and the admin side: DescribeTransactions,
//! ListTransactions, DescribeProducers and WriteTxnMarkers (the admin abort). The state machine is [`shoal_txn`]; its runtime
//! [`crate::txn_coordinator`]; this module decodes, maps errors to Kafka's codes and encodes.
//!
//! PRODUCER_FENCED (KIP-588) goes to request versions that know it (InitProducerId v4+,
//! AddPartitionsToTxn / AddOffsetsToTxn / EndTxn v2+, TxnOffsetCommit v3+); older ones get
//! INVALID_PRODUCER_EPOCH, as Kafka answers them.

use std::collections::BTreeMap;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use shoal_txn::TxnError;

use super::{code, RequestContext};
use crate::clock::now_ms;
use crate::state::Broker;
use crate::topics::CONSUMER_OFFSETS;
use crate::txn_coordinator::Unverified;

/// The Kafka error code for `e` in a request of `version`, where `fenced_since` is the first
/// version that knows PRODUCER_FENCED.
pub fn txn_error_code(e: TxnError, version: i16, fenced_since: i16) -> i16 {
    match e {
        TxnError::InvalidRequest => code::INVALID_REQUEST,
        TxnError::InvalidTransactionTimeout => code::INVALID_TRANSACTION_TIMEOUT,
        TxnError::ConcurrentTransactions => code::CONCURRENT_TRANSACTIONS,
        TxnError::ProducerFenced if version >= fenced_since => code::PRODUCER_FENCED,
        TxnError::ProducerFenced => code::INVALID_PRODUCER_EPOCH,
        TxnError::InvalidProducerIdMapping => code::INVALID_PRODUCER_ID_MAPPING,
        TxnError::InvalidTxnState => code::INVALID_TXN_STATE,
        TxnError::TransactionalIdNotFound => code::TRANSACTIONAL_ID_NOT_FOUND,
        TxnError::CoordinatorNotAvailable => code::COORDINATOR_NOT_AVAILABLE,
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The `__consumer_offsets` partition holding `group_id`'s offsets (Shoal has one).
fn offsets_partition(_group_id: &str) -> (String, i32) {
    (CONSUMER_OFFSETS.to_string(), 0)
}

/// InitProducerId with a `transactional_id`: the producer id and a bumped epoch, fencing
/// earlier producers of the id (an Ongoing transaction of theirs is aborted first, answered
/// CONCURRENT_TRANSACTIONS for the client to retry). Errors: INVALID_REQUEST,
/// INVALID_TRANSACTION_TIMEOUT, CONCURRENT_TRANSACTIONS, PRODUCER_FENCED (v4+; KIP-360
/// callers naming a producer that is not current), COORDINATOR_NOT_AVAILABLE.
pub async fn init_producer_id(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
    transactional_id: String,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    // Allocated ahead in case the coordinator needs a new id; an unused one is only a gap.
    let fresh = match broker.topics.allocate_producer_id() {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate producer id");
            None
        }
    };
    match broker
        .txns
        .init_producer_id(
            transactional_id,
            req.transaction_timeout_ms,
            expected,
            fresh,
        )
        .await
    {
        Ok((pid, epoch)) => resp
            .with_error_code(code::NONE)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(e) => resp.with_error_code(txn_error_code(e, ctx.api_version, 4)),
    }
}

/// AddPartitionsToTxn. v0-3 (clients): one transaction, every partition answered with the
/// same code; partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION and the others
/// OPERATION_NOT_ATTEMPTED, as Kafka answers. v4-5 (batched, KIP-890): per transaction, and
/// `verify_only` checks without adding (INVALID_TXN_STATE for partitions not in the
/// transaction).
pub async fn add_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let v = ctx.api_version;
    if v <= 3 {
        let topics = add_one(
            broker,
            v,
            req.v3_and_below_transactional_id.0.to_string(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            req.v3_and_below_topics,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics);
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in req.transactions {
        let id = t.transactional_id.0.to_string();
        let topics = add_one(
            broker,
            v,
            id.clone(),
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            t.topics,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default()
        .with_error_code(code::NONE)
        .with_results_by_transaction(results)
}

async fn add_one(
    broker: &Broker,
    version: i16,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: Vec<kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut wanted: Vec<(String, i32)> = Vec::new();
    let mut unknown = false;
    for t in &topics {
        let name = t.name.0.to_string();
        for p in &t.partitions {
            if broker.topics.partition(&name, *p).is_none() {
                unknown = true;
            }
            wanted.push((name.clone(), *p));
        }
    }
    let mut codes: BTreeMap<(String, i32), i16> = BTreeMap::new();
    if unknown {
        for (t, p) in &wanted {
            let c = if broker.topics.partition(t, *p).is_none() {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                code::OPERATION_NOT_ATTEMPTED
            };
            codes.insert((t.clone(), *p), c);
        }
    } else if verify_only {
        for (t, p) in &wanted {
            let c = match broker
                .txns
                .verifier
                .check(producer_id, producer_epoch, t, *p)
            {
                Ok(()) => code::NONE,
                Err(Unverified::Fenced) => code::INVALID_PRODUCER_EPOCH,
                Err(Unverified::NotInTransaction) => code::INVALID_TXN_STATE,
            };
            codes.insert((t.clone(), *p), c);
        }
    } else {
        let r = broker
            .txns
            .add_partitions(
                transactional_id,
                producer_id,
                producer_epoch,
                wanted.clone(),
                0,
            )
            .await;
        let c = match r {
            Ok(()) => code::NONE,
            Err(e) => txn_error_code(e, version, 2),
        };
        for tp in &wanted {
            codes.insert(tp.clone(), c);
        }
    }
    topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(
                                    codes
                                        .get(&(name.clone(), *p))
                                        .copied()
                                        .unwrap_or(code::NONE),
                                )
                        })
                        .collect(),
                )
        })
        .collect()
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction, so
/// TxnOffsetCommit may follow. Errors: as AddPartitionsToTxn; INVALID_GROUP_ID for an empty
/// group id.
pub async fn add_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let group_id = req.group_id.0.to_string();
    if group_id.is_empty() {
        return AddOffsetsToTxnResponse::default().with_error_code(code::INVALID_GROUP_ID);
    }
    let r = broker
        .txns
        .add_partitions(
            req.transactional_id.0.to_string(),
            req.producer_id.0,
            req.producer_epoch,
            vec![offsets_partition(&group_id)],
            0,
        )
        .await;
    AddOffsetsToTxnResponse::default().with_error_code(match r {
        Ok(()) => code::NONE,
        Err(e) => txn_error_code(e, ctx.api_version, 2),
    })
}

/// TxnOffsetCommit: offsets committed in the producer's transaction, visible to OffsetFetch
/// once the transaction commits (the COMMIT marker in `__consumer_offsets`). The group's
/// offsets partition must be in the transaction (AddOffsetsToTxn first; INVALID_TXN_STATE
/// otherwise, PRODUCER_FENCED (v3+) for a stale epoch). With `member_id` and
/// `generation_id` (v3+, KIP-447) the member is checked as for OffsetCommit.
pub async fn txn_offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let (ot, op) = offsets_partition(&group_id);
    let mut verified = broker
        .txns
        .verifier
        .check(req.producer_id.0, req.producer_epoch, &ot, op);
    // v5+ (KIP-890 part 2): the offsets partition joins the transaction here, as Kafka's
    // group coordinator adds it; no retry of CONCURRENT_TRANSACTIONS (Kafka has none here).
    let mut add_error = None;
    if ctx.api_version >= 5 && verified == Err(Unverified::NotInTransaction) && !group_id.is_empty()
    {
        let r = broker
            .txns
            .add_partitions(
                req.transactional_id.0.to_string(),
                req.producer_id.0,
                req.producer_epoch,
                vec![(ot.clone(), op)],
                2,
            )
            .await;
        match r {
            Ok(()) => {
                verified =
                    broker
                        .txns
                        .verifier
                        .check(req.producer_id.0, req.producer_epoch, &ot, op)
            }
            Err(TxnError::ProducerFenced) => add_error = Some(code::INVALID_PRODUCER_EPOCH),
            Err(e) => add_error = Some(txn_error_code(e, ctx.api_version, 3)),
        }
    }
    let mut parts = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            parts.push(shoal_group::api::CommitPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let n = parts.len();
    let codes: Vec<i16> = match verified {
        _ if add_error.is_some() => vec![add_error.unwrap_or(code::NONE); n],
        Err(Unverified::Fenced) => {
            let c = txn_error_code(TxnError::ProducerFenced, ctx.api_version, 3);
            vec![c; n]
        }
        Err(Unverified::NotInTransaction) => vec![code::INVALID_TXN_STATE; n],
        Ok(()) if group_id.is_empty() => vec![code::INVALID_GROUP_ID; n],
        Ok(()) => {
            let r = broker
                .groups
                .txn_commit(shoal_group::api::TxnCommitRequest {
                    group_id,
                    producer_id: req.producer_id.0,
                    producer_epoch: req.producer_epoch,
                    generation_id: req.generation_id,
                    member_id: req.member_id.to_string(),
                    group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
                    partitions: parts,
                })
                .await;
            match r {
                Ok(errs) => errs.into_iter().map(shoal_group::code_of).collect(),
                Err(e) => vec![shoal_group::code_of(Some(e)); n],
            }
        }
    };
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(codes.next().unwrap_or(code::NONE))
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// EndTxn: commits or aborts the transaction; answered once its markers are written in
/// every partition (so a `read_committed` consumer sees a committed transaction once its
/// producer is told). Errors: INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED (v2+),
/// CONCURRENT_TRANSACTIONS, INVALID_TXN_STATE.
///
/// v5+ is transaction version 2 (KIP-890 part 2; Kafka derives it from the version alone):
/// the epoch is bumped by every commit or abort, and the answer's `producer_id` /
/// `producer_epoch` are what the client goes on with (-1/-1 with an error).
pub async fn end_txn(broker: &Broker, ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    let tv2 = ctx.api_version >= 5;
    // Only an exhausted epoch needs a new producer id; an unused one is only a gap.
    let fresh = if tv2 && req.producer_epoch >= i16::MAX - 1 {
        broker.topics.allocate_producer_id().ok()
    } else {
        None
    };
    let r = broker
        .txns
        .end_txn(
            req.transactional_id.0.to_string(),
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            tv2,
            fresh,
        )
        .await;
    match r {
        Ok((pid, epoch)) => EndTxnResponse::default()
            .with_error_code(code::NONE)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(e) => EndTxnResponse::default()
            .with_error_code(txn_error_code(e, ctx.api_version, 2))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// DescribeTransactions: each id's state, producer, timeout, start time and partitions
/// (TRANSACTIONAL_ID_NOT_FOUND for an unknown id).
pub async fn describe_transactions(
    broker: &Broker,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let base = TransactionState::default()
            .with_transactional_id(id.clone())
            .with_transaction_state(s(""))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        states.push(match broker.txns.describe(id.0.to_string()).await {
            Ok(d) => {
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (t, p) in d.partitions {
                    topics.entry(t).or_default().push(p);
                }
                base.with_error_code(code::NONE)
                    .with_transaction_state(s(d.state.name()))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_timestamp_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(s(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
            }
            Err(e) => base.with_error_code(txn_error_code(e, 0, 0)),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions (v0-2): filtered by state names (unknown ones listed back in
/// `unknown_state_filters`), producer ids, `duration_filter` (v1: running longer than this,
/// ms; -1 none) and `transactional_id_pattern` (v2, a regular expression).
pub async fn list_transactions(
    broker: &Broker,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    use kafka_protocol::messages::list_transactions_response::TransactionState;
    const STATES: [&str; 8] = [
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
        "Dead",
        "PrepareEpochFence",
    ];
    let unknown: Vec<StrBytes> = req
        .state_filters
        .iter()
        .filter(|f| !STATES.contains(&f.as_str()))
        .cloned()
        .collect();
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => Some(r),
            Err(_) => {
                return ListTransactionsResponse::default().with_error_code(code::INVALID_REQUEST)
            }
        },
        None => None,
    };
    let now = now_ms();
    let all = match broker.txns.list().await {
        Ok(all) => all,
        Err(e) => {
            return ListTransactionsResponse::default().with_error_code(txn_error_code(e, 0, 0))
        }
    };
    let states = all
        .into_iter()
        .filter(|d| {
            (req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == d.state.name()))
                && (req.producer_id_filters.is_empty()
                    || req.producer_id_filters.iter().any(|p| p.0 == d.producer_id))
                && (req.duration_filter < 0
                    || (d.start_timestamp_ms >= 0
                        && now - d.start_timestamp_ms > req.duration_filter))
                && pattern
                    .as_ref()
                    .is_none_or(|r| r.is_match(&d.transactional_id))
        })
        .map(|d| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(s(d.transactional_id)))
                .with_producer_id(ProducerId(d.producer_id))
                .with_transaction_state(s(d.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_error_code(code::NONE)
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

/// DescribeProducers: each partition's idempotent and transactional producers (id, epoch,
/// last sequence, last timestamp, the first offset of their open transaction or -1);
/// UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist.
pub fn describe_producers(
    broker: &Broker,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let resp = PartitionResponse::default().with_partition_index(i);
                    let Some(p) = broker.topics.partition(&name, i) else {
                        return resp.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let log = p.log();
                    let open = log.open_transactions();
                    let producers = log
                        .producers()
                        .into_iter()
                        .map(|(pid, epoch, seq, ts)| {
                            let start = open
                                .iter()
                                .find(|(p, _, _)| *p == pid)
                                .map_or(-1, |(_, _, first)| *first);
                            ProducerState::default()
                                .with_producer_id(ProducerId(pid))
                                .with_producer_epoch(i32::from(epoch))
                                .with_last_sequence(seq)
                                .with_last_timestamp(ts)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(start)
                        })
                        .collect();
                    resp.with_error_code(code::NONE)
                        .with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// WriteTxnMarkers (v1): writes a COMMIT (`transaction_result` true) or ABORT marker for
/// `producer_id`/`producer_epoch` to each listed partition, fsyncs them, then answers. On one
/// node the transaction coordinator writes its own markers; this request is what Kafka's admin
/// abort of a hanging transaction sends (KIP-664, `kafka-transactions.sh abort`,
/// `coordinator_epoch` -1). Per partition: UNKNOWN_TOPIC_OR_PARTITION for a partition that does
/// not exist, INVALID_PRODUCER_EPOCH when the producer has a newer epoch there (nothing
/// written), KAFKA_STORAGE_ERROR when the log cannot be written or synced. A marker for
/// `__consumer_offsets` completes the producer's pending transactional offset commits.
pub async fn write_txn_markers(
    broker: &Broker,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut markers = Vec::with_capacity(req.markers.len());
    for m in req.markers {
        let kind = if m.transaction_result {
            shoal_log::ControlType::Commit
        } else {
            shoal_log::ControlType::Abort
        };
        let pid = m.producer_id.0;
        let mut results: Vec<(TopicName, Vec<(i32, i16)>)> = Vec::with_capacity(m.topics.len());
        let mut written = Vec::new();
        for t in m.topics {
            let name = t.name.0.to_string();
            let mut parts = Vec::with_capacity(t.partition_indexes.len());
            for i in t.partition_indexes {
                let error = if name == CONSUMER_OFFSETS {
                    match broker
                        .groups
                        .complete_txn(pid, m.producer_epoch, m.transaction_result)
                        .await
                    {
                        Ok(()) => code::NONE,
                        Err(e) => {
                            tracing::warn!(producer_id = pid, error = %e, "WriteTxnMarkers: cannot complete transactional offsets");
                            code::KAFKA_STORAGE_ERROR
                        }
                    }
                } else if let Some(p) = broker.topics.partition(&name, i) {
                    let appended = p.log().append_marker(
                        pid,
                        m.producer_epoch,
                        kind,
                        m.coordinator_epoch.max(0),
                        now_ms(),
                    );
                    match appended {
                        Ok(_) => {
                            written.push((p, parts.len(), results.len()));
                            code::NONE
                        }
                        Err(shoal_log::LogError::InvalidProducerEpoch { .. }) => {
                            code::INVALID_PRODUCER_EPOCH
                        }
                        Err(e) => {
                            tracing::warn!(topic = %name, partition = i, error = %e, "WriteTxnMarkers: cannot append a marker");
                            code::KAFKA_STORAGE_ERROR
                        }
                    }
                } else {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                };
                parts.push((i, error));
            }
            results.push((t.name, parts));
        }
        if !written.is_empty() {
            let sync = broker
                .flusher
                .sync(written.iter().map(|(p, _, _)| p.clone()).collect())
                .await;
            if let Err(e) = sync {
                tracing::warn!(error = %e, "WriteTxnMarkers: cannot sync the markers");
                for (_, part, topic) in &written {
                    results[*topic].1[*part].1 = code::KAFKA_STORAGE_ERROR;
                }
            }
            broker.notify_appended();
        }
        let topics = results
            .into_iter()
            .map(|(name, parts)| {
                WritableTxnMarkerTopicResult::default()
                    .with_name(name)
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(i, e)| {
                                WritableTxnMarkerPartitionResult::default()
                                    .with_partition_index(i)
                                    .with_error_code(e)
                            })
                            .collect(),
                    )
            })
            .collect();
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
