//! Runtime for the sans-IO group coordinator: one task owns [`GroupCoordinator`], applies
//! requests in arrival order with the wall clock, keeps its timers, appends the records it
//! emits to `__consumer_offsets` and delivers replies only after those records are on disk.
//!
//! Startup replays `__consumer_offsets` through the same `replay` the live path uses.
//!
//! Invariants:
//! - A reply is delivered only once every record appended before it was computed is durable:
//!   replies wait in `unsynced`, in append order, each with the log end offset that must be
//!   fsynced first (a reply without records of its own, reads included, waits behind the
//!   records already pending, since it may show their effect).
//! - When an append or an fsync of `__consumer_offsets` fails, the log is poisoned: replies
//!   still waiting are dropped (their clients get COORDINATOR_NOT_AVAILABLE; a commit so
//!   refused may or may not be there after a restart, as with any failed write, but nothing
//!   answered with success is lost), the state is rebuilt from the records below
//!   `synced_offset()` only (the unsynced tail may still be readable from the page cache but
//!   is not durable), and the coordinator turns read-only until the broker restarts:
//!   OffsetFetch, DescribeGroups, ListGroups and ConsumerGroupDescribe answer from that
//!   durable state, every request that could write answers COORDINATOR_NOT_AVAILABLE, and
//!   timers stop (docs/operations.md).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use shoal_group::api::{
    CommitRequest, GroupDescription, GroupListing, JoinRequest, JoinResponse, SyncRequest,
    SyncResponse,
};
use shoal_group::api::{
    ConsumerGroupDescription, HeartbeatRequest, HeartbeatResponse, TopicCatalog,
};
use shoal_group::api::{
    FetchStart, PartitionRead, ShareFetchOpen, ShareFetchPlan, ShareGroupDescription,
    ShareHeartbeatRequest, ShareHeartbeatResponse, SharePartitionKey,
};
use shoal_group::assignor::TopicMetadata;
use shoal_group::share::AcquiredRange;
use shoal_group::{
    CoordinatorConfig, GroupCoordinator, GroupError, GroupEvent, OffsetAndMetadata, Output, Record,
    Reply, RequestId, TimerKey,
};
use shoal_log::LogError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::durability::Flusher;
use crate::internal_log;
use crate::topics::Partition;

type Tx<T> = oneshot::Sender<T>;
type OffsetList = Vec<((String, i32), Option<OffsetAndMetadata>)>;
/// Records acquired per share-partition, and the lock duration (ms).
pub type Acquired = (Vec<(SharePartitionKey, Vec<AcquiredRange>)>, i64);
/// Each share-partition's start offset (`None`: no state).
pub type ShareOffsetList = Vec<(SharePartitionKey, Option<i64>)>;

/// A request to the coordinator task.
#[derive(Debug)]
enum Command {
    Join(JoinRequest, CatalogSnapshot, Tx<JoinResponse>),
    Sync(SyncRequest, Tx<SyncResponse>),
    Heartbeat {
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation_id: i32,
        tx: Tx<Option<GroupError>>,
    },
    Leave {
        group_id: String,
        members: Vec<(String, Option<String>)>,
        tx: Tx<Vec<Option<GroupError>>>,
    },
    Commit(CommitRequest, Tx<Vec<Option<GroupError>>>),
    TxnCommit(
        shoal_group::api::TxnCommitRequest,
        Tx<Vec<Option<GroupError>>>,
    ),
    CompleteTxn {
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        tx: Tx<()>,
    },
    PendingTxnPartitions {
        group_id: String,
        tx: Tx<std::collections::HashSet<(String, i32)>>,
    },
    FetchOffsets {
        group_id: String,
        partitions: Option<Vec<(String, i32)>>,
        tx: Tx<OffsetList>,
    },
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
        tx: Tx<Result<Vec<Option<GroupError>>, GroupError>>,
    },
    DeleteGroup {
        group_id: String,
        tx: Tx<Option<GroupError>>,
    },
    Describe {
        group_id: String,
        tx: Tx<Result<GroupDescription, GroupError>>,
    },
    ConsumerHeartbeat(HeartbeatRequest, CatalogSnapshot, Tx<HeartbeatResponse>),
    ConsumerDescribe {
        group_id: String,
        tx: Tx<Result<ConsumerGroupDescription, GroupError>>,
    },
    ValidateOffsetFetch {
        group_id: String,
        member_id: Option<String>,
        member_epoch: i32,
        tx: Tx<Option<GroupError>>,
    },
    List {
        tx: Tx<Vec<GroupListing>>,
    },
    TopicDeleted {
        topic: String,
        tx: Tx<()>,
    },
    ShareHeartbeat(
        ShareHeartbeatRequest,
        CatalogSnapshot,
        Tx<ShareHeartbeatResponse>,
    ),
    ShareOpen(ShareFetchOpen, Tx<Result<ShareFetchPlan, GroupError>>),
    SharePlan {
        group_id: String,
        member_id: String,
        tx: Tx<Vec<(SharePartitionKey, FetchStart)>>,
    },
    ShareAcquire {
        group_id: String,
        member_id: String,
        reads: Vec<PartitionRead>,
        max_records: usize,
        lock_ms: Option<i64>,
        tx: Tx<Acquired>,
    },
    ShareDescribe {
        group_id: String,
        tx: Tx<Result<ShareGroupDescription, GroupError>>,
    },
    ShareGroups {
        tx: Tx<Vec<ShareGroupDescription>>,
    },
    ShareOffsets {
        group_id: String,
        partitions: Option<Vec<SharePartitionKey>>,
        tx: Tx<Result<ShareOffsetList, GroupError>>,
    },
    AlterShareOffsets {
        group_id: String,
        offsets: Vec<(SharePartitionKey, i64)>,
        tx: Tx<Result<(), GroupError>>,
    },
    DeleteShareOffsets {
        group_id: String,
        partitions: Vec<SharePartitionKey>,
        tx: Tx<Result<(), GroupError>>,
    },
    GroupConfigs {
        group_id: String,
        tx: Tx<BTreeMap<String, String>>,
    },
    AlterGroupConfigs {
        group_id: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
        tx: Tx<Result<(), String>>,
    },
    ConnectionClosed {
        connection_id: u64,
    },
    MemberSeen {
        connection_id: u64,
        group_id: String,
        member_id: String,
    },
    DeadLettered {
        group_id: String,
        key: SharePartitionKey,
        offsets: Vec<i64>,
        tx: Tx<()>,
    },
}

impl Command {
    /// Whether handling it can change group state (emit records, change soft state or arm
    /// timers); refused while `__consumer_offsets` is poisoned.
    fn writes(&self) -> bool {
        match self {
            Command::Join(..)
            | Command::Sync(..)
            | Command::Heartbeat { .. }
            | Command::Leave { .. }
            | Command::Commit(..)
            | Command::TxnCommit(..)
            | Command::CompleteTxn { .. }
            | Command::DeleteOffsets { .. }
            | Command::DeleteGroup { .. }
            | Command::ConsumerHeartbeat(..)
            | Command::TopicDeleted { .. }
            | Command::ShareHeartbeat(..)
            | Command::ShareOpen(..)
            | Command::ShareAcquire { .. }
            | Command::AlterShareOffsets { .. }
            | Command::DeleteShareOffsets { .. }
            | Command::AlterGroupConfigs { .. }
            | Command::ConnectionClosed { .. }
            | Command::DeadLettered { .. }
            | Command::MemberSeen { .. } => true,
            Command::SharePlan { .. }
            | Command::ShareDescribe { .. }
            | Command::ShareGroups { .. }
            | Command::ShareOffsets { .. }
            | Command::GroupConfigs { .. }
            | Command::PendingTxnPartitions { .. } => false,
            Command::FetchOffsets { .. }
            | Command::Describe { .. }
            | Command::ConsumerDescribe { .. }
            | Command::ValidateOffsetFetch { .. }
            | Command::List { .. } => false,
        }
    }
}

/// The topics a ConsumerGroupHeartbeat is resolved against: every non-internal topic at the
/// time of the request.
#[derive(Debug, Default)]
pub struct CatalogSnapshot {
    pub topics: HashMap<String, TopicMetadata>,
}

impl TopicCatalog for CatalogSnapshot {
    fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.topics.get(name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }
}

/// Commands that may wait for the coordinator task. A connection has at most one group
/// request outstanding (only Produce is pipelined), so the queue holds about one command per
/// busy connection; 1024 absorbs a burst from that many at once (a command takes the task
/// microseconds) while bounding memory (a JoinGroup or ConsumerGroupHeartbeat carries a
/// snapshot of the topic catalog). When it is full, callers wait in `send` (back-pressure to
/// their connection). Nothing that runs on the coordinator task sends to it.
pub const COMMAND_QUEUE: usize = 1024;

/// Cheap, cloneable handle the handlers use.
#[derive(Debug, Clone)]
pub struct CoordinatorHandle {
    tx: mpsc::Sender<Command>,
    /// Bumped when share-group records become available again (released, lock expired):
    /// long-polling ShareFetches wait on it as on appends.
    pub share_released: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Error when the coordinator task is gone (broker shutting down).
fn gone<T>(_: T) -> GroupError {
    GroupError::CoordinatorNotAvailable
}

impl CoordinatorHandle {
    async fn call<T>(&self, make: impl FnOnce(Tx<T>) -> Command) -> Result<T, GroupError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(gone)?;
        rx.await.map_err(gone)
    }

    /// JoinGroup; resolves when the join phase completes (or at once on error, or for a
    /// classic member of a consumer-protocol group). `catalog` maps topic names to ids for
    /// the latter.
    pub async fn join(
        &self,
        req: JoinRequest,
        catalog: CatalogSnapshot,
    ) -> Result<JoinResponse, GroupError> {
        self.call(|tx| Command::Join(req, catalog, tx)).await
    }
    /// SyncGroup; resolves when the leader's assignment is stored (or at once).
    pub async fn sync(&self, req: SyncRequest) -> Result<SyncResponse, GroupError> {
        self.call(|tx| Command::Sync(req, tx)).await
    }
    /// Heartbeat; the error, if any, for the member.
    pub async fn heartbeat(
        &self,
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation_id: i32,
    ) -> Result<Option<GroupError>, GroupError> {
        self.call(|tx| Command::Heartbeat {
            group_id,
            member_id,
            instance_id,
            generation_id,
            tx,
        })
        .await
    }
    /// LeaveGroup; an error per member.
    pub async fn leave(
        &self,
        group_id: String,
        members: Vec<(String, Option<String>)>,
    ) -> Result<Vec<Option<GroupError>>, GroupError> {
        self.call(|tx| Command::Leave {
            group_id,
            members,
            tx,
        })
        .await
    }
    /// OffsetCommit; an error per partition, after the commit is durable.
    pub async fn commit(&self, req: CommitRequest) -> Result<Vec<Option<GroupError>>, GroupError> {
        self.call(|tx| Command::Commit(req, tx)).await
    }
    /// TxnOffsetCommit; an error per partition, once the transactional records are durable.
    pub async fn txn_commit(
        &self,
        req: shoal_group::api::TxnCommitRequest,
    ) -> Result<Vec<Option<GroupError>>, GroupError> {
        self.call(|tx| Command::TxnCommit(req, tx)).await
    }
    /// Ends `producer_id`'s transaction in `__consumer_offsets`: writes its marker and
    /// applies (commit) or drops its pending offsets; resolves once the marker is durable.
    ///
    /// Errors: COORDINATOR_NOT_AVAILABLE when the offsets log failed (the caller retries).
    pub async fn complete_txn(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), GroupError> {
        self.call(|tx| Command::CompleteTxn {
            producer_id,
            producer_epoch,
            commit,
            tx,
        })
        .await
    }
    /// Partitions of `group_id` with offsets pending in an open transaction.
    pub async fn pending_txn_partitions(
        &self,
        group_id: String,
    ) -> Result<std::collections::HashSet<(String, i32)>, GroupError> {
        self.call(|tx| Command::PendingTxnPartitions { group_id, tx })
            .await
    }
    /// OffsetFetch.
    pub async fn fetch_offsets(
        &self,
        group_id: String,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<OffsetList, GroupError> {
        self.call(|tx| Command::FetchOffsets {
            group_id,
            partitions,
            tx,
        })
        .await
    }
    /// OffsetDelete.
    pub async fn delete_offsets(
        &self,
        group_id: String,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Option<GroupError>>, GroupError> {
        self.call(|tx| Command::DeleteOffsets {
            group_id,
            partitions,
            tx,
        })
        .await?
    }
    /// DeleteGroups for one group.
    pub async fn delete_group(&self, group_id: String) -> Result<Option<GroupError>, GroupError> {
        self.call(|tx| Command::DeleteGroup { group_id, tx }).await
    }
    /// DescribeGroups for one group.
    pub async fn describe(&self, group_id: String) -> Result<GroupDescription, GroupError> {
        self.call(|tx| Command::Describe { group_id, tx }).await?
    }
    /// ConsumerGroupHeartbeat (KIP-848), resolved against `catalog`.
    pub async fn consumer_heartbeat(
        &self,
        req: HeartbeatRequest,
        catalog: CatalogSnapshot,
    ) -> Result<HeartbeatResponse, GroupError> {
        self.call(|tx| Command::ConsumerHeartbeat(req, catalog, tx))
            .await
    }
    /// ConsumerGroupDescribe for one group.
    pub async fn consumer_describe(
        &self,
        group_id: String,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        self.call(|tx| Command::ConsumerDescribe { group_id, tx })
            .await?
    }
    /// OffsetFetch v9's member check for consumer-protocol groups.
    pub async fn validate_offset_fetch(
        &self,
        group_id: String,
        member_id: Option<String>,
        member_epoch: i32,
    ) -> Result<Option<GroupError>, GroupError> {
        self.call(|tx| Command::ValidateOffsetFetch {
            group_id,
            member_id,
            member_epoch,
            tx,
        })
        .await
    }
    /// A topic was deleted: drop every group's offsets for it (durably).
    pub async fn topic_deleted(&self, topic: String) -> Result<(), GroupError> {
        self.call(|tx| Command::TopicDeleted { topic, tx }).await
    }
    /// ListGroups.
    /// ShareGroupHeartbeat (KIP-932).
    pub async fn share_heartbeat(
        &self,
        req: ShareHeartbeatRequest,
        catalog: CatalogSnapshot,
    ) -> Result<ShareHeartbeatResponse, GroupError> {
        self.call(|tx| Command::ShareHeartbeat(req, catalog, tx))
            .await
    }

    /// The session step of ShareFetch/ShareAcknowledge; answered once its acknowledgements
    /// are durable.
    pub async fn share_open(
        &self,
        req: ShareFetchOpen,
    ) -> Result<Result<ShareFetchPlan, GroupError>, GroupError> {
        self.call(|tx| Command::ShareOpen(req, tx)).await
    }

    /// Where a long-polling ShareFetch reads next.
    pub async fn share_plan(
        &self,
        group_id: String,
        member_id: String,
    ) -> Result<Vec<(SharePartitionKey, FetchStart)>, GroupError> {
        self.call(|tx| Command::SharePlan {
            group_id,
            member_id,
            tx,
        })
        .await
    }

    /// Acquires records in what a ShareFetch read; also returns the lock duration (ms).
    pub async fn share_acquire(
        &self,
        group_id: String,
        member_id: String,
        reads: Vec<PartitionRead>,
        max_records: usize,
    ) -> Result<Acquired, GroupError> {
        self.share_acquire_locked(group_id, member_id, reads, max_records, None)
            .await
    }

    /// [`CoordinatorHandle::share_acquire`] with the lock lasting `lock_ms` (ms) when given
    /// (see [`shoal_group::GroupCoordinator::share_acquire_locked`]).
    pub async fn share_acquire_locked(
        &self,
        group_id: String,
        member_id: String,
        reads: Vec<PartitionRead>,
        max_records: usize,
        lock_ms: Option<i64>,
    ) -> Result<Acquired, GroupError> {
        self.call(|tx| Command::ShareAcquire {
            group_id,
            member_id,
            reads,
            max_records,
            lock_ms,
            tx,
        })
        .await
    }

    /// ShareGroupDescribe for one group.
    pub async fn share_describe(
        &self,
        group_id: String,
    ) -> Result<Result<ShareGroupDescription, GroupError>, GroupError> {
        self.call(|tx| Command::ShareDescribe { group_id, tx })
            .await
    }

    /// Every share group, described.
    pub async fn share_groups(&self) -> Result<Vec<ShareGroupDescription>, GroupError> {
        self.call(|tx| Command::ShareGroups { tx }).await
    }

    /// DescribeShareGroupOffsets.
    pub async fn share_offsets(
        &self,
        group_id: String,
        partitions: Option<Vec<SharePartitionKey>>,
    ) -> Result<Result<ShareOffsetList, GroupError>, GroupError> {
        self.call(|tx| Command::ShareOffsets {
            group_id,
            partitions,
            tx,
        })
        .await
    }

    /// AlterShareGroupOffsets.
    pub async fn alter_share_offsets(
        &self,
        group_id: String,
        offsets: Vec<(SharePartitionKey, i64)>,
    ) -> Result<Result<(), GroupError>, GroupError> {
        self.call(|tx| Command::AlterShareOffsets {
            group_id,
            offsets,
            tx,
        })
        .await
    }

    /// DeleteShareGroupOffsets.
    pub async fn delete_share_offsets(
        &self,
        group_id: String,
        partitions: Vec<SharePartitionKey>,
    ) -> Result<Result<(), GroupError>, GroupError> {
        self.call(|tx| Command::DeleteShareOffsets {
            group_id,
            partitions,
            tx,
        })
        .await
    }

    /// The configs set on a group (DescribeConfigs, resource type GROUP).
    pub async fn group_configs(
        &self,
        group_id: String,
    ) -> Result<BTreeMap<String, String>, GroupError> {
        self.call(|tx| Command::GroupConfigs { group_id, tx }).await
    }

    /// IncrementalAlterConfigs on a GROUP resource. Inner error: INVALID_CONFIG's message.
    pub async fn alter_group_configs(
        &self,
        group_id: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<Result<(), String>, GroupError> {
        self.call(|tx| Command::AlterGroupConfigs {
            group_id,
            changes,
            validate_only,
            tx,
        })
        .await
    }

    /// The DLQ records of these share-group records are durable (KIP-1191).
    pub async fn share_dead_lettered(
        &self,
        group_id: String,
        key: SharePartitionKey,
        offsets: Vec<i64>,
    ) -> Result<(), GroupError> {
        self.call(|tx| Command::DeadLettered {
            group_id,
            key,
            offsets,
            tx,
        })
        .await
    }

    /// A group member was heard from on `connection_id` (for
    /// `group.connection.close.session.timeout.ms`). Never waits; dropped when the queue is
    /// full (the member then keeps its full session timeout).
    pub fn member_seen(&self, connection_id: u64, group_id: String, member_id: String) {
        let _ = self.tx.try_send(Command::MemberSeen {
            connection_id,
            group_id,
            member_id,
        });
    }

    /// A client connection closed (share-group fast release). Never waits: when the queue
    /// is full the release happens at lock expiry instead.
    pub fn connection_closed(&self, connection_id: u64) {
        let _ = self
            .tx
            .try_send(Command::ConnectionClosed { connection_id });
    }

    pub async fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        self.call(|tx| Command::List { tx }).await
    }
}

/// Replies to send once the records they depend on are durable.
type Delivery = Box<dyn FnOnce() + Send>;

/// What an fsync task of `__consumer_offsets` returns: the log end offset it was asked to
/// cover, and the outcome.
type Synced = (i64, Result<(), String>);

/// The `direct` reply of [`Runtime::finish`]: sends `value` on `tx` once the output's records
/// are durable.
fn reply_after<T: Send + 'static>(tx: Tx<T>, value: T) -> Option<Delivery> {
    Some(Box::new(move || {
        let _ = tx.send(value);
    }))
}

enum Parked {
    Join(Tx<JoinResponse>),
    Sync(Tx<SyncResponse>),
}

struct Runtime {
    core: GroupCoordinator,
    offsets: Arc<Partition>,
    flusher: Flusher,
    parked: HashMap<RequestId, Parked>,
    next_req: RequestId,
    deadlines: HashMap<TimerKey, i64>,
    queue: BTreeSet<(i64, TimerKey)>,
    retention_check_ms: i64,
    metrics: Arc<crate::metrics::Metrics>,
    /// The console's rebalance timeline.
    history: Arc<crate::history::History>,
    /// Replies waiting for an fsync, in append order, each with the offset below which the
    /// log must be durable before it is sent.
    unsynced: VecDeque<(i64, Delivery)>,
    /// fsyncs of `__consumer_offsets` in flight (one per append; the flusher merges them).
    fsyncs: JoinSet<Synced>,
    /// `__consumer_offsets` is poisoned: state is what was durable, writes are refused.
    read_only: bool,
    /// See [`CoordinatorHandle::share_released`].
    share_released: Arc<tokio::sync::watch::Sender<u64>>,
    /// Records to dead-letter, to the writer ([`crate::dead_letter`]).
    dead_letters: crate::dead_letter::DeadLetterTx,
    /// The connection each group member was last heard from on, and the reverse (for
    /// `group.connection.close.session.timeout.ms`; only fed when it is on).
    member_connection: HashMap<(String, String), u64>,
    connection_members: HashMap<u64, BTreeSet<(String, String)>>,
}

/// Replays `__consumer_offsets` into a new coordinator and starts its task.
///
/// Errors: a storage or decoding failure of the offsets log.
pub fn start(
    config: CoordinatorConfig,
    offsets: Arc<Partition>,
    flusher: Flusher,
    retention_check_ms: i64,
    metrics: Arc<crate::metrics::Metrics>,
    history: Arc<crate::history::History>,
    dead_letters: crate::dead_letter::DeadLetterTx,
) -> Result<CoordinatorHandle, crate::error::BrokerError> {
    let now = now_ms();
    let end = offsets.log().log_end_offset();
    let (core, start_out) = load(config, &offsets, end, now)?;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let mut rt = Runtime {
        core,
        offsets,
        flusher,
        parked: HashMap::new(),
        next_req: 0,
        deadlines: HashMap::new(),
        queue: BTreeSet::new(),
        retention_check_ms,
        metrics,
        history,
        unsynced: VecDeque::new(),
        fsyncs: JoinSet::new(),
        read_only: false,
        share_released: Arc::new(tokio::sync::watch::channel(0).0),
        dead_letters,
        member_connection: HashMap::new(),
        connection_members: HashMap::new(),
    };
    rt.apply_timers(&start_out.timers);
    // Records found ARCHIVING: their DLQ records are written (again).
    rt.finish(
        Output {
            share_archived: start_out.share_archived,
            ..Output::default()
        },
        None,
    );
    let share_released = Arc::clone(&rt.share_released);
    tokio::spawn(rt.run(rx));
    Ok(CoordinatorHandle { tx, share_released })
}

/// Builds a coordinator from `__consumer_offsets`: replays every record below `upto`, then arms
/// the restored members' session timers (the returned [`Output`]).
fn load(
    config: CoordinatorConfig,
    offsets: &Partition,
    upto: i64,
    now: i64,
) -> Result<(GroupCoordinator, Output), crate::error::BrokerError> {
    let incarnation = uuid::Uuid::new_v4().as_u64_pair().0;
    let mut core = GroupCoordinator::new(config, incarnation);
    let mut replayed = 0usize;
    let log = offsets.log();
    let mut offset = log.log_start_offset();
    let upto = upto.min(log.log_end_offset());
    while offset < upto {
        let read = log.read(offset, 4 << 20)?;
        if read.records.is_empty() {
            break;
        }
        for entry in internal_log::decode_entries(read.records)? {
            let off = entry.offset;
            if off >= upto {
                break;
            }
            offset = off + 1;
            if let Some((producer_id, Some(commit))) = entry.txn {
                core.replay_txn_marker(producer_id, commit, now);
                continue;
            }
            let Some(key) = entry.key else { continue };
            match Record::decode(&key, entry.value.as_deref()) {
                Ok(r) => {
                    match entry.txn {
                        Some((producer_id, _)) => core.replay_txn_offset(producer_id, &r),
                        None => core.replay(&r, now),
                    }
                    replayed += 1;
                }
                Err(e) => {
                    tracing::warn!(offset = off, error = %e, "skipping undecodable __consumer_offsets record")
                }
            }
        }
    }
    tracing::info!(records = replayed, "replayed __consumer_offsets");
    let out = core.start(now);
    Ok((core, out))
}

impl Runtime {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut retention_tick = tokio::time::interval(Duration::from_millis(
            self.retention_check_ms.max(1000) as u64,
        ));
        loop {
            let next = self.queue.iter().next().map(|(d, _)| *d);
            let sleep = async {
                match next {
                    Some(d) => {
                        tokio::time::sleep(Duration::from_millis((d - now_ms()).max(0) as u64))
                            .await
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                () = sleep => self.fire_due(),
                _ = retention_tick.tick() => {
                    if !self.read_only {
                        let out = self.core.expire_offsets(now_ms());
                        self.finish(out, None);
                    }
                }
                Some(done) = self.fsyncs.join_next() => {
                    let done = done.unwrap_or_else(|e| (0, Err(format!("fsync task failed: {e}"))));
                    self.synced(done);
                }
            }
        }
    }

    /// An fsync task ended: on success every reply waiting for offsets below `upto` goes out;
    /// on failure the state is rebuilt from what is durable.
    fn synced(&mut self, (upto, result): Synced) {
        match result {
            Ok(()) => self.release(upto),
            Err(e) if self.read_only => {
                tracing::debug!(error = %e, "another fsync of the poisoned __consumer_offsets failed")
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot fsync __consumer_offsets; reloading group state from what is durable");
                self.storage_failed();
            }
        }
    }

    /// Sends the replies that wait only for offsets below `durable`.
    fn release(&mut self, durable: i64) {
        while self
            .unsynced
            .front()
            .is_some_and(|(upto, _)| *upto <= durable)
        {
            if let Some((_, deliver)) = self.unsynced.pop_front() {
                deliver();
            }
        }
    }

    /// `__consumer_offsets` is poisoned (a failed append or fsync): replies whose records are
    /// durable go out, the others are dropped (COORDINATOR_NOT_AVAILABLE to their clients),
    /// the state is rebuilt from the durable records only, and the coordinator turns
    /// read-only.
    fn storage_failed(&mut self) {
        let durable = self.offsets.log().synced_offset();
        self.release(durable);
        self.unsynced.clear();
        self.read_only = true;
        self.reload(durable);
        tracing::error!(
            durable_offset = durable,
            "__consumer_offsets is poisoned: group coordinator is read-only (OffsetFetch and describe answer from durable state, other group requests get COORDINATOR_NOT_AVAILABLE) until the broker restarts"
        );
    }

    /// Replaces the coordinator with one rebuilt from the records of `__consumer_offsets` below
    /// `upto`. Parked requests are dropped (their clients get COORDINATOR_NOT_AVAILABLE and
    /// retry); timers are re-armed unless the coordinator is read-only.
    fn reload(&mut self, upto: i64) {
        let config = self.core.config().clone();
        match load(config, &self.offsets, upto, now_ms()) {
            Ok((core, out)) => {
                self.core = core;
                self.parked.clear();
                self.deadlines.clear();
                self.queue.clear();
                if !self.read_only {
                    self.apply_timers(&out.timers);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload group state; keeping the current one")
            }
        }
    }

    fn fire_due(&mut self) {
        if self.read_only {
            return;
        }
        let now = now_ms();
        while let Some((d, key)) = self.queue.iter().next().cloned() {
            if d > now {
                break;
            }
            self.queue.remove(&(d, key.clone()));
            self.deadlines.remove(&key);
            let out = self.core.on_timer(&key, now);
            self.finish(out, None);
        }
    }

    fn apply_timers(&mut self, timers: &[(TimerKey, Option<i64>)]) {
        for (key, deadline) in timers {
            if let Some(old) = self.deadlines.remove(key) {
                self.queue.remove(&(old, key.clone()));
            }
            if let Some(d) = deadline {
                self.deadlines.insert(key.clone(), *d);
                self.queue.insert((*d, key.clone()));
            }
        }
    }

    fn req_id(&mut self) -> RequestId {
        self.next_req += 1;
        self.next_req
    }

    fn handle(&mut self, cmd: Command) {
        if self.read_only && cmd.writes() {
            // Dropping the reply channel answers COORDINATOR_NOT_AVAILABLE.
            tracing::debug!(
                ?cmd,
                "refused: __consumer_offsets is poisoned, the coordinator is read-only"
            );
            return;
        }
        let now = now_ms();
        match cmd {
            Command::Join(req, catalog, tx) => {
                let id = self.req_id();
                self.parked.insert(id, Parked::Join(tx));
                let out = self.core.join_with(id, req, &catalog, now);
                self.finish(out, None);
            }
            Command::Sync(req, tx) => {
                let id = self.req_id();
                self.parked.insert(id, Parked::Sync(tx));
                let out = self.core.sync(id, req, now);
                self.finish(out, None);
            }
            Command::Heartbeat {
                group_id,
                member_id,
                instance_id,
                generation_id,
                tx,
            } => {
                let (err, out) = self.core.heartbeat(
                    &group_id,
                    &member_id,
                    instance_id.as_deref(),
                    generation_id,
                    now,
                );
                self.finish(out, reply_after(tx, err));
            }
            Command::Leave {
                group_id,
                members,
                tx,
            } => {
                let (errs, out) = self.core.leave(&group_id, &members, now);
                self.finish(out, reply_after(tx, errs));
            }
            Command::TxnCommit(req, tx) => {
                let (errs, out) = self.core.txn_commit(req, now);
                self.finish(out, reply_after(tx, errs));
            }
            Command::CompleteTxn {
                producer_id,
                producer_epoch,
                commit,
                tx,
            } => {
                let out = self
                    .core
                    .complete_txn(producer_id, producer_epoch, commit, now);
                self.finish(out, reply_after(tx, ()));
            }
            Command::PendingTxnPartitions { group_id, tx } => {
                let v = self.core.pending_txn_partitions(&group_id);
                self.after_pending(tx, v);
            }
            Command::Commit(req, tx) => {
                let (errs, out) = self.core.commit(req, now);
                self.finish(out, reply_after(tx, errs));
            }
            Command::FetchOffsets {
                group_id,
                partitions,
                tx,
            } => {
                let offsets = self.core.fetch_offsets(&group_id, partitions.as_deref());
                self.after_pending(tx, offsets);
            }
            Command::DeleteOffsets {
                group_id,
                partitions,
                tx,
            } => match self.core.delete_offsets(&group_id, &partitions, now) {
                Ok((errs, out)) => self.finish(out, reply_after(tx, Ok(errs))),
                Err(e) => drop(tx.send(Err(e))),
            },
            Command::DeleteGroup { group_id, tx } => match self.core.delete_group(&group_id, now) {
                Ok(out) => self.finish(out, reply_after(tx, None)),
                Err(e) => drop(tx.send(Some(e))),
            },
            Command::Describe { group_id, tx } => {
                let d = self.core.describe(&group_id);
                self.after_pending(tx, d);
            }
            Command::List { tx } => {
                let l = self.core.list();
                self.after_pending(tx, l);
            }
            Command::ConsumerHeartbeat(req, catalog, tx) => {
                let summary = format!(
                    "group={} member={} epoch={} owned={:?} topics={:?}",
                    req.group_id,
                    req.member_id,
                    req.member_epoch,
                    req.owned,
                    req.subscribed_topic_names
                );
                let (resp, out) = self.core.consumer_heartbeat(req, &catalog, now);
                tracing::debug!(request = %summary, error = ?resp.error, epoch = resp.member_epoch,
                    interval = resp.heartbeat_interval_ms, assignment = ?resp.assignment,
                    "ConsumerGroupHeartbeat");
                self.finish(out, reply_after(tx, resp));
            }
            Command::ConsumerDescribe { group_id, tx } => {
                let d = self.core.consumer_describe(&group_id);
                self.after_pending(tx, d);
            }
            Command::ValidateOffsetFetch {
                group_id,
                member_id,
                member_epoch,
                tx,
            } => {
                let v =
                    self.core
                        .validate_offset_fetch(&group_id, member_id.as_deref(), member_epoch);
                self.after_pending(tx, v);
            }
            Command::TopicDeleted { topic, tx } => {
                let out = self.core.delete_topic_offsets(&topic, now);
                self.finish(out, reply_after(tx, ()));
            }
            Command::ShareHeartbeat(req, catalog, tx) => {
                let (resp, out) = self.core.share_heartbeat(req, &catalog, now);
                self.finish(out, reply_after(tx, resp));
            }
            Command::ShareOpen(req, tx) => {
                let (result, out) = self.core.share_fetch_open(&req, now);
                self.finish(out, reply_after(tx, result));
            }
            Command::SharePlan {
                group_id,
                member_id,
                tx,
            } => {
                // Soft state only: answered at once (no record of its own to wait for).
                drop(tx.send(self.core.share_fetch_plan(&group_id, &member_id, now)));
            }
            Command::ShareAcquire {
                group_id,
                member_id,
                reads,
                max_records,
                lock_ms,
                tx,
            } => {
                let lock = lock_ms.unwrap_or(self.core.share_settings(&group_id).lock_ms);
                let (acquired, out) = self.core.share_acquire_locked(
                    &group_id,
                    &member_id,
                    &reads,
                    max_records,
                    lock_ms,
                    now,
                );
                let lock_ms = lock;
                self.finish(out, reply_after(tx, (acquired, lock_ms)));
            }
            Command::ShareDescribe { group_id, tx } => {
                let d = self.core.share_describe(&group_id);
                self.after_pending(tx, d);
            }
            Command::ShareGroups { tx } => {
                let d = self.core.share_groups();
                self.after_pending(tx, d);
            }
            Command::ShareOffsets {
                group_id,
                partitions,
                tx,
            } => {
                let o = self.core.share_offsets(&group_id, partitions.as_deref());
                self.after_pending(tx, o);
            }
            Command::AlterShareOffsets {
                group_id,
                offsets,
                tx,
            } => {
                let (r, out) = self.core.alter_share_offsets(&group_id, &offsets);
                self.finish(out, reply_after(tx, r));
            }
            Command::DeleteShareOffsets {
                group_id,
                partitions,
                tx,
            } => {
                let (r, out) = self.core.delete_share_offsets(&group_id, &partitions);
                self.finish(out, reply_after(tx, r));
            }
            Command::GroupConfigs { group_id, tx } => {
                let c = self.core.group_configs(&group_id);
                self.after_pending(tx, c);
            }
            Command::AlterGroupConfigs {
                group_id,
                changes,
                validate_only,
                tx,
            } => {
                let (r, out) = self
                    .core
                    .alter_group_configs(&group_id, &changes, validate_only);
                self.finish(out, reply_after(tx, r));
            }
            Command::DeadLettered {
                group_id,
                key,
                offsets,
                tx,
            } => {
                let out = self.core.share_dead_lettered(&group_id, &key, &offsets);
                self.finish(out, reply_after(tx, ()));
            }
            Command::MemberSeen {
                connection_id,
                group_id,
                member_id,
            } => {
                let key = (group_id, member_id);
                if let Some(old) = self.member_connection.insert(key.clone(), connection_id) {
                    if old != connection_id {
                        if let Some(set) = self.connection_members.get_mut(&old) {
                            set.remove(&key);
                        }
                    }
                }
                self.connection_members
                    .entry(connection_id)
                    .or_default()
                    .insert(key);
            }
            Command::ConnectionClosed { connection_id } => {
                let out = self.core.share_connection_closed(connection_id, now);
                self.finish(out, None);
                let grace = self.core.config().connection_close_session_timeout_ms;
                for key in self
                    .connection_members
                    .remove(&connection_id)
                    .unwrap_or_default()
                {
                    if self.member_connection.get(&key) != Some(&connection_id) {
                        continue;
                    }
                    self.member_connection.remove(&key);
                    if grace >= 0 {
                        tracing::debug!(group_id = %key.0, member_id = %key.1, grace_ms = grace,
                            "member's connection closed without LeaveGroup; shortening its session");
                        let out = self.core.shorten_session(&key.0, &key.1, now + grace);
                        self.finish(out, None);
                    }
                }
            }
        }
    }

    /// Answers a read once the records already pending are durable (it may show them).
    fn after_pending<T: Send + 'static>(&mut self, tx: Tx<T>, value: T) {
        self.finish(Output::default(), reply_after(tx, value));
    }

    /// Applies an [`Output`]: timers now; records appended now; replies (and `direct`) after
    /// the records, and every record appended before them, are durable.
    fn finish(&mut self, out: Output, direct: Option<Delivery>) {
        self.apply_timers(&out.timers);
        if out.share_wakeup {
            self.share_released.send_modify(|n| *n = n.wrapping_add(1));
        }
        let mut dead_letters = Vec::new();
        for a in &out.share_archived {
            self.metrics
                .share_archived(&a.group_id, &a.topic, a.partition, a.record.reason);
            if a.record.dead_letter {
                let eff = self.core.share_settings(&a.group_id);
                dead_letters.push(crate::dead_letter::DeadLetter {
                    group_id: a.group_id.clone(),
                    topic: a.topic.clone(),
                    partition: a.partition,
                    offset: a.record.offset,
                    delivery_count: a.record.delivery_count,
                    reason: a.record.reason,
                    // A group whose DLQ was unset while records were ARCHIVING: the writer
                    // finds "" unusable and archives them without a DLQ record.
                    dlq_topic: eff.dead_letter_topic.unwrap_or_default(),
                    copy_record: eff.dead_letter_copy,
                });
            }
        }
        // The DLQ records are written only after this output's records are durable (the
        // snapshots saying ARCHIVING), so a crash cannot leave a DLQ record for a record that
        // is still AVAILABLE after the restart.
        let dead_letters = (!dead_letters.is_empty()).then(|| {
            let tx = self.dead_letters.clone();
            move || {
                let _ = tx.send(dead_letters);
            }
        });
        for (group, topic, _partition, count, n) in &out.share_accepted {
            self.metrics.share_accepted(group, topic, *count, *n);
        }
        out.events.iter().for_each(log_event);
        for r in &out.rebalances {
            self.metrics
                .rebalanced(&r.group_id, r.protocol, r.duration_ms);
            self.history
                .add_rebalance(&r.group_id, r.protocol, r.duration_ms, now_ms());
        }
        let mut deliveries: Vec<(Parked, Reply)> = Vec::with_capacity(out.replies.len());
        for (id, reply) in out.replies {
            if let Some(p) = self.parked.remove(&id) {
                deliveries.push((p, reply));
            }
        }
        let deliver = move || {
            for (p, reply) in deliveries {
                match (p, reply) {
                    (Parked::Join(tx), Reply::Join(r)) => drop(tx.send(r)),
                    (Parked::Sync(tx), Reply::Sync(r)) => drop(tx.send(r)),
                    _ => tracing::error!("coordinator reply of the wrong kind"),
                }
            }
            if let Some(d) = direct {
                d();
            }
            if let Some(d) = dead_letters {
                d();
            }
        };
        if out.records.is_empty() && out.marker.is_none() {
            match self.unsynced.back() {
                None => deliver(),
                Some(&(upto, _)) => self.unsynced.push_back((upto, Box::new(deliver))),
            }
            return;
        }
        let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = out
            .records
            .iter()
            .map(|r| (r.encode_key(), r.encode_value()))
            .collect();
        let encoded = match out.transactional {
            _ if entries.is_empty() => Ok(None),
            Some((pid, epoch)) => {
                internal_log::encode_txn_batch(&entries, pid, epoch, now_ms()).map(Some)
            }
            None => internal_log::encode_batch(&entries, now_ms()).map(Some),
        };
        let appended = match encoded {
            Ok(batch) => {
                let mut log = self.offsets.log();
                let mut last = batch.map(|b| log.append(&b, now_ms())).transpose();
                if let (Ok(_), Some((pid, epoch, commit))) = (&last, out.marker) {
                    let kind = if commit {
                        shoal_log::ControlType::Commit
                    } else {
                        shoal_log::ControlType::Abort
                    };
                    last = log.append_marker(pid, epoch, kind, 0, now_ms()).map(Some);
                }
                last.and_then(|info| info.ok_or(LogError::Poisoned))
            }
            Err(e) => {
                // Nothing reached the log, but the in-memory state already holds it: rebuild
                // the state from the log so it never claims more than is stored. Parked and
                // current requests are dropped; their clients see COORDINATOR_NOT_AVAILABLE
                // and retry.
                tracing::error!(error = %e, "cannot encode __consumer_offsets records; reloading group state from the log");
                drop(deliver);
                let end = self.offsets.log().log_end_offset();
                self.reload(end);
                return;
            }
        };
        match appended {
            Ok(info) => {
                let upto = info.last_offset + 1;
                self.unsynced.push_back((upto, Box::new(deliver)));
                let flusher = self.flusher.clone();
                let part = Arc::clone(&self.offsets);
                self.fsyncs
                    .spawn(async move { (upto, flusher.sync(vec![part]).await) });
            }
            Err(e @ (LogError::Io(_) | LogError::Poisoned)) => {
                tracing::error!(error = %e, "cannot append to __consumer_offsets; reloading group state from what is durable");
                drop(deliver);
                self.storage_failed();
            }
            Err(e) => {
                tracing::error!(error = %e, "__consumer_offsets refused a batch; reloading group state from the log");
                drop(deliver);
                let end = self.offsets.log().log_end_offset();
                self.reload(end);
            }
        }
    }
}

/// Logs what happened to a group at INFO, as Kafka's group coordinator does, so that an
/// operator can explain a rebalance from the log alone (group, member, reason, generation).
fn log_event(event: &GroupEvent) {
    match event {
        GroupEvent::MemberRemoved {
            group_id,
            member_id,
            reason,
            generation_id,
        } => tracing::info!(group_id = %group_id, member_id = %member_id, reason = reason.as_str(),
            generation_id, "member removed from group"),
        GroupEvent::RebalanceStarted {
            group_id,
            generation_id,
            reason,
        } => {
            tracing::info!(group_id = %group_id, old_generation_id = generation_id, reason = %reason,
            "preparing to rebalance group")
        }
        GroupEvent::JoinCompleted {
            group_id,
            generation_id,
            members,
            leader,
            protocol,
        } => {
            tracing::info!(group_id = %group_id, generation_id, members, leader = leader.as_deref().unwrap_or(""),
            protocol = protocol.as_deref().unwrap_or(""), "join phase completed: new generation")
        }
        GroupEvent::Stabilized {
            group_id,
            generation_id,
        } => tracing::info!(group_id = %group_id, generation_id,
            "assignment received from the leader: group stable"),
        GroupEvent::TargetAssignmentComputed {
            group_id,
            assignment_epoch,
            members,
        } => tracing::info!(group_id = %group_id, assignment_epoch, members,
            "computed a new target assignment"),
        GroupEvent::Converted { group_id, from, to } => {
            tracing::info!(group_id = %group_id, from, to, "group converted")
        }
        GroupEvent::Refused { group_id, error } => {
            tracing::error!(group_id = %group_id, error = %error, "group coordinator refused a state change")
        }
    }
}
