//! Online migration between the classic and the consumer protocol (KIP-848, Kafka 4.x,
//! `group.consumer.migration.policy`), after Kafka's `ConsumerGroup.fromClassicGroup` and
//! `convertToClassicGroup`:
//!
//! - **upgrade**: a classic group with members becomes a consumer group when a
//!   ConsumerGroupHeartbeat joins it. Its members keep their partitions and generation (now
//!   their member epoch) and go on as classic members of the consumer group; parked
//!   JoinGroup/SyncGroup requests get REBALANCE_IN_PROGRESS. The classic record is written
//!   without members, then the consumer group's records.
//! - **downgrade**: when every member left in a consumer group speaks the classic protocol,
//!   the group becomes a classic group again (generation = the group epoch, members with
//!   their partitions) and starts a rebalance so they rejoin as a classic group.

use crate::api::TopicCatalog;
use crate::classic::{join_key, session_key, ClassicCtx, ClassicGroup, ClassicMember};
use crate::config::CoordinatorConfig;
use crate::consumer::classic_members::ClassicSeed;
use crate::consumer::ConsumerGroup;
use crate::error::GroupError;
use crate::types::{GroupEvent, Output, TimerKey};

/// Converts a classic group with members into a consumer group (see the module docs).
pub(crate) fn upgrade(
    group: &mut ClassicGroup,
    catalog: &dyn TopicCatalog,
    config: &CoordinatorConfig,
    now_ms: i64,
    out: &mut Output,
) -> ConsumerGroup {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let seeds: Vec<ClassicSeed> = group
        .sorted_members()
        .into_iter()
        .map(|m| ClassicSeed {
            member_id: m.member_id.clone(),
            instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols: m.protocols.clone(),
            subscription: m.metadata_for(&protocol),
            assignment: m.assignment.clone(),
        })
        .collect();
    for m in group.members.values_mut() {
        m.fail_parked(GroupError::RebalanceInProgress, out);
        out.cancel_timer(session_key(&group.group_id, &m.member_id));
    }
    for id in &group.pending_members {
        out.cancel_timer(session_key(&group.group_id, id));
    }
    out.cancel_timer(join_key(&group.group_id));
    out.cancel_timer(TimerKey::Sync {
        group_id: group.group_id.clone(),
        generation_id: group.generation_id,
    });
    // The classic record, without members (Kafka writes the same before the consumer
    // group's records).
    group.members.clear();
    group.pending_members.clear();
    group.static_members.clear();
    group.pending_sync.clear();
    group.state_timestamp_ms = now_ms;
    group.write_metadata(out);
    out.events.push(GroupEvent::Converted {
        group_id: group.group_id.clone(),
        from: "classic",
        to: "consumer",
    });
    ConsumerGroup::from_classic(
        &group.group_id,
        group.generation_id,
        seeds,
        catalog,
        &config.consumer,
        now_ms,
        out,
    )
}

/// Converts a consumer group whose members all speak the classic protocol back into a
/// classic group, when `group.consumer.migration.policy` allows it; `None` otherwise.
pub(crate) fn maybe_downgrade(
    group_id: &str,
    c: &mut ConsumerGroup,
    config: &CoordinatorConfig,
    now_ms: i64,
    has_offsets: bool,
    out: &mut Output,
) -> Result<Option<ClassicGroup>, GroupError> {
    if !config.consumer.migration_policy.allows_downgrade() || !c.only_classic_members() {
        return Ok(None);
    }
    let seeds = c.classic_seeds();
    let generation = c.group_epoch();
    for s in &seeds {
        out.cancel_timer(TimerKey::ConsumerSession {
            group_id: group_id.to_string(),
            member_id: s.member_id.clone(),
        });
        out.cancel_timer(TimerKey::ConsumerRebalance {
            group_id: group_id.to_string(),
            member_id: s.member_id.clone(),
        });
    }
    c.write_tombstones(group_id, out);
    let mut group = ClassicGroup::new(group_id, now_ms);
    for (i, s) in seeds.into_iter().enumerate() {
        if let Some(iid) = &s.instance_id {
            group
                .static_members
                .insert(iid.clone(), s.member_id.clone());
        }
        out.set_timer(
            session_key(group_id, &s.member_id),
            now_ms + i64::from(s.session_timeout_ms),
        );
        group.members.insert(
            s.member_id.clone(),
            ClassicMember {
                member_id: s.member_id,
                group_instance_id: s.instance_id,
                client_id: s.client_id,
                client_host: s.client_host,
                session_timeout_ms: s.session_timeout_ms,
                rebalance_timeout_ms: s.rebalance_timeout_ms,
                protocols: s.protocols,
                assignment: s.assignment,
                join_seq: i as u64,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            },
        );
    }
    group.generation_id = generation;
    group.protocol_type = Some("consumer".to_string());
    group.protocol_name = group.select_protocol();
    group.leader_id = group.sorted_members().first().map(|m| m.member_id.clone());
    group.start_stable(now_ms);
    group.write_metadata(out);
    out.events.push(GroupEvent::Converted {
        group_id: group_id.to_string(),
        from: "consumer",
        to: "classic",
    });
    let mut cx = ClassicCtx {
        config,
        now_ms,
        out,
        has_offsets,
    };
    group.prepare_rebalance(&mut cx, "group converted to the classic protocol")?;
    Ok(Some(group))
}
