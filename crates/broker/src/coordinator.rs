//! Runtime for the sans-IO group coordinator: one task owns [`GroupCoordinator`], applies
//! requests in arrival order with the wall clock, keeps its timers, appends the records it
//! emits to `__consumer_offsets` and delivers replies only after those records are on disk.
//!
//! Startup replays `__consumer_offsets` through the same `replay` the live path uses.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use shoal_group::api::{
    CommitRequest, GroupDescription, GroupListing, JoinRequest, JoinResponse, SyncRequest,
    SyncResponse,
};
use shoal_group::api::{
    ConsumerGroupDescription, HeartbeatRequest, HeartbeatResponse, TopicCatalog,
};
use shoal_group::assignor::TopicMetadata;
use shoal_group::{
    CoordinatorConfig, GroupCoordinator, GroupError, GroupEvent, OffsetAndMetadata, Output, Record,
    Reply, RequestId, TimerKey,
};
use shoal_log::PartitionLog;
use tokio::sync::{mpsc, oneshot};

use crate::clock::now_ms;
use crate::durability::Flusher;
use crate::internal_log;
use crate::topics::Partition;

type Tx<T> = oneshot::Sender<T>;
type OffsetList = Vec<((String, i32), Option<OffsetAndMetadata>)>;

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

/// Cheap, cloneable handle the handlers use.
#[derive(Debug, Clone)]
pub struct CoordinatorHandle {
    tx: mpsc::UnboundedSender<Command>,
}

/// Error when the coordinator task is gone (broker shutting down).
fn gone<T>(_: T) -> GroupError {
    GroupError::CoordinatorNotAvailable
}

impl CoordinatorHandle {
    async fn call<T>(&self, make: impl FnOnce(Tx<T>) -> Command) -> Result<T, GroupError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(gone)?;
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
    pub async fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        self.call(|tx| Command::List { tx }).await
    }
}

/// The `direct` reply of [`Runtime::finish`]: sends `value` on `tx` once the output's records
/// are durable.
fn reply_after<T: Send + 'static>(tx: Tx<T>, value: T) -> Option<Box<dyn FnOnce() + Send>> {
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
) -> anyhow::Result<CoordinatorHandle> {
    let now = now_ms();
    let (core, start_out) = load(config, &offsets, now)?;
    let (tx, rx) = mpsc::unbounded_channel();
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
    };
    rt.apply_timers(&start_out.timers);
    tokio::spawn(rt.run(rx));
    Ok(CoordinatorHandle { tx })
}

/// Builds a coordinator from `__consumer_offsets`: replays every record, then arms the restored
/// members' session timers (the returned [`Output`]).
fn load(
    config: CoordinatorConfig,
    offsets: &Partition,
    now: i64,
) -> anyhow::Result<(GroupCoordinator, Output)> {
    let incarnation = uuid::Uuid::new_v4().as_u64_pair().0;
    let mut core = GroupCoordinator::new(config, incarnation);
    let mut replayed = 0usize;
    let log = offsets.log();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 4 << 20)?;
        if read.records.is_empty() {
            break;
        }
        for (off, key, value) in internal_log::decode_batches(read.records)? {
            offset = off + 1;
            let Some(key) = key else { continue };
            match Record::decode(&key, value.as_deref()) {
                Ok(r) => {
                    core.replay(&r, now);
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
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
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
                    let out = self.core.expire_offsets(now_ms());
                    self.finish(out, None);
                }
            }
        }
    }

    /// Replaces the coordinator with one rebuilt from `__consumer_offsets`.
    fn reload(&mut self) {
        let config = self.core.config().clone();
        match load(config, &self.offsets, now_ms()) {
            Ok((core, out)) => {
                self.core = core;
                self.parked.clear();
                self.deadlines.clear();
                self.queue.clear();
                self.apply_timers(&out.timers);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload group state; keeping the current one")
            }
        }
    }

    fn fire_due(&mut self) {
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
            Command::Commit(req, tx) => {
                let (errs, out) = self.core.commit(req, now);
                self.finish(out, reply_after(tx, errs));
            }
            Command::FetchOffsets {
                group_id,
                partitions,
                tx,
            } => {
                let _ = tx.send(self.core.fetch_offsets(&group_id, partitions.as_deref()));
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
            Command::Describe { group_id, tx } => drop(tx.send(self.core.describe(&group_id))),
            Command::List { tx } => drop(tx.send(self.core.list())),
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
                drop(tx.send(self.core.consumer_describe(&group_id)))
            }
            Command::ValidateOffsetFetch {
                group_id,
                member_id,
                member_epoch,
                tx,
            } => drop(tx.send(self.core.validate_offset_fetch(
                &group_id,
                member_id.as_deref(),
                member_epoch,
            ))),
            Command::TopicDeleted { topic, tx } => {
                let out = self.core.delete_topic_offsets(&topic, now);
                self.finish(out, reply_after(tx, ()));
            }
        }
    }

    /// Applies an [`Output`]: timers now; records appended now; replies (and `direct`) after
    /// the records are durable.
    fn finish(&mut self, out: Output, direct: Option<Box<dyn FnOnce() + Send>>) {
        self.apply_timers(&out.timers);
        out.events.iter().for_each(log_event);
        for r in &out.rebalances {
            self.metrics
                .rebalanced(&r.group_id, r.protocol, r.duration_ms);
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
        };
        if out.records.is_empty() {
            deliver();
            return;
        }
        let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = out
            .records
            .iter()
            .map(|r| (r.encode_key(), r.encode_value()))
            .collect();
        let appended = internal_log::encode_batch(&entries, now_ms())
            .map_err(|e| e.to_string())
            .and_then(|b| {
                self.offsets
                    .log()
                    .append(&b, now_ms())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = appended {
            // The in-memory state already holds what could not be written: rebuild it from the
            // log so it never claims more than is stored. Parked and current requests are
            // dropped; their clients see COORDINATOR_NOT_AVAILABLE and retry.
            tracing::error!(error = %e, "cannot append to __consumer_offsets; reloading group state from the log");
            drop(deliver);
            self.reload();
            return;
        }
        let flusher = self.flusher.clone();
        let part = Arc::clone(&self.offsets);
        tokio::spawn(async move {
            match flusher.sync(vec![part]).await {
                Ok(()) => deliver(),
                Err(e) => tracing::error!(error = %e, "cannot fsync __consumer_offsets"),
            }
        });
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
