//! Client quotas as Kafka defines and enforces them: bandwidth (KIP-13: `producer_byte_rate`,
//! `consumer_byte_rate`, bytes/s), request time (KIP-124: `request_percentage`, percent of one
//! request-handling thread), controller mutations (KIP-599: `controller_mutation_rate`,
//! partitions created or deleted per second), per user, client-id and their defaults (KIP-55).
//!
//! **Resolution** (KIP-55, Kafka's `DefaultQuotaCallback`): for a connection of user `u` and
//! client-id `c`, each quota type separately takes the first of these entities that sets it:
//! `{user=u, client-id=c}`, `{user=u, client-id=<default>}`, `{user=u}`,
//! `{user=<default>, client-id=c}`, `{user=<default>, client-id=<default>}`,
//! `{user=<default>}`, `{client-id=c}`, `{client-id=<default>}`. The entity that matched also
//! decides who shares the measured rate: a `{user=u}` quota is shared by every client of `u`,
//! a `{client-id=c}` quota by every user's client `c`, the others per (user, client-id) pair.
//! The user is the principal's name (`ANONYMOUS` without authentication), so `<default>` user
//! quotas apply to unauthenticated clients too.
//!
//! **Throttling** (KIP-219): each quota has a [`Bucket`] per sharer that drains at the quota's
//! rate; a client may run `quota.window.num − 1` windows of `quota.window.size.seconds`
//! (defaults 11 and 1 s: 10 s) ahead of its quota, the allowance Kafka's `Rate` gives. Past it,
//! the throttle time is how long the bucket needs to drain back; the response carries it in
//! `throttle_time_ms` and the connection reads no further request for that long
//! ([`crate::server`]). A request-time throttle is capped at one window, as Kafka caps it. A
//! throttled Fetch returns no data and its bytes do not count (Kafka's `KafkaApis`).
//! Controller mutations use the same bucket as KIP-599's token bucket (burst: `quota.window.num`
//! windows): a request that finds it empty is refused with `THROTTLING_QUOTA_EXCEEDED` (strict
//! mode, for the versions that know that error) or accepted and throttled (older versions).
//!
//! Quotas are records in `__shoal_metadata` under `ext/quota/<entity as JSON>` whose value is
//! a JSON object of quota keys and values (tombstone: the entity has no quota left), replayed
//! at start as Kafka keeps `ClientQuotaRecord`s in its metadata log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};

use crate::topics::TopicManager;

/// A quota entity type, as named on the wire (`ClientQuotaEntity`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum EntityType {
    #[serde(rename = "user")]
    User,
    #[serde(rename = "client-id")]
    ClientId,
    #[serde(rename = "ip")]
    Ip,
}

impl EntityType {
    /// The wire name: `user`, `client-id` or `ip`.
    pub fn name(self) -> &'static str {
        match self {
            EntityType::User => "user",
            EntityType::ClientId => "client-id",
            EntityType::Ip => "ip",
        }
    }

    /// The type a wire name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "user" => Some(EntityType::User),
            "client-id" => Some(EntityType::ClientId),
            "ip" => Some(EntityType::Ip),
            _ => None,
        }
    }
}

/// A quota entity: its components by type, each a name or `None` for the default entity
/// (`<default>`, a null name on the wire). Valid shapes: `{user}`, `{client-id}`,
/// `{user, client-id}`, `{ip}` ([`validate_entity`]).
pub type Entity = BTreeMap<EntityType, Option<String>>;

/// The quota types Shoal enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaType {
    /// `producer_byte_rate`: Produce request bytes per second.
    Produce,
    /// `consumer_byte_rate`: Fetch response bytes per second.
    Fetch,
    /// `request_percentage`: percent of one request-handling thread's time.
    Request,
    /// `controller_mutation_rate`: partitions created or deleted per second.
    ControllerMutation,
}

impl QuotaType {
    /// Every type, in Kafka's order.
    pub const ALL: [QuotaType; 4] = [
        QuotaType::Produce,
        QuotaType::Fetch,
        QuotaType::Request,
        QuotaType::ControllerMutation,
    ];

    /// The quota's configuration key.
    pub fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => "producer_byte_rate",
            QuotaType::Fetch => "consumer_byte_rate",
            QuotaType::Request => "request_percentage",
            QuotaType::ControllerMutation => "controller_mutation_rate",
        }
    }

    /// The metric label Kafka's quota managers use (`Produce`, `Fetch`, `Request`,
    /// `ControllerMutation`).
    pub fn label(self) -> &'static str {
        match self {
            QuotaType::Produce => "Produce",
            QuotaType::Fetch => "Fetch",
            QuotaType::Request => "Request",
            QuotaType::ControllerMutation => "ControllerMutation",
        }
    }

    fn index(self) -> usize {
        match self {
            QuotaType::Produce => 0,
            QuotaType::Fetch => 1,
            QuotaType::Request => 2,
            QuotaType::ControllerMutation => 3,
        }
    }
}

/// The `ip` entity's key (KIP-612): new connections per second from one address.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// Whether `key` may be set on an entity of this shape, and whether its value must be a whole
/// number. Byte rates and connection rates are `LONG` settings in Kafka; the others `DOUBLE`.
///
/// Errors: a message for an unknown key or one the entity cannot have.
pub fn validate_key(entity: &Entity, key: &str) -> Result<bool, String> {
    let ip = entity.contains_key(&EntityType::Ip);
    match key {
        "producer_byte_rate" | "consumer_byte_rate" if !ip => Ok(true),
        "request_percentage" | "controller_mutation_rate" if !ip => Ok(false),
        CONNECTION_CREATION_RATE if ip => Ok(true),
        "producer_byte_rate"
        | "consumer_byte_rate"
        | "request_percentage"
        | "controller_mutation_rate"
        | CONNECTION_CREATION_RATE => Err(format!(
            "Invalid configuration key {key} for {} entity",
            if ip { "ip" } else { "user or client-id" }
        )),
        _ => Err(format!("Invalid configuration key {key}")),
    }
}

/// Checks an entity's shape as Kafka does: `user`, `client-id` or both, or `ip` alone, each
/// type at most once; an `ip` name must be an IP address.
///
/// Errors: a message for the client (`INVALID_REQUEST`).
pub fn validate_entity(components: &[(String, Option<String>)]) -> Result<Entity, String> {
    let mut entity = Entity::new();
    for (t, name) in components {
        let Some(ty) = EntityType::from_name(t) else {
            return Err(format!("Unhandled client quota entity type: {t}"));
        };
        if entity.insert(ty, name.clone()).is_some() {
            return Err(format!("Duplicate {t} entity type"));
        }
        if ty == EntityType::Ip {
            if let Some(n) = name {
                if n.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("{n} is not a valid IP address"));
                }
            }
        }
        if name.as_deref() == Some("") {
            return Err(format!(
                "Empty {t} name (use a null name for the default entity)"
            ));
        }
    }
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    if entity.contains_key(&EntityType::Ip) && entity.len() > 1 {
        return Err(
            "Invalid quota entity combination: ip may not be combined with user or client-id"
                .into(),
        );
    }
    Ok(entity)
}

/// Renders an entity as Kafka's tools do: `user 'alice', client-id <default>`.
pub fn describe_entity(entity: &Entity) -> String {
    entity
        .iter()
        .map(|(t, n)| match n {
            Some(n) => format!("{} '{n}'", t.name()),
            None => format!("{} <default>", t.name()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who shares one measured rate: `(user, client-id)` tags, an empty string where the matched
/// quota does not distinguish (Kafka's quota metric tags).
pub type SensorTags = (String, String);

/// The limiter behind every quota: a bucket that drains at the quota's rate and fills with
/// what is recorded (bytes, percent-seconds, partitions). A client may run `allowance_ms`
/// ahead of its quota; beyond that it is throttled for the time the bucket needs to drain back
/// to the allowance. For a controller mutation quota this is exactly KIP-599's token bucket
/// (tokens = allowance − level). For bandwidth and request quotas it gives the same throttle
/// as Kafka's `(rate − quota) / quota × window` for a steady overshoot, and the same first
/// allowance (`quota × (quota.window.num − 1)` windows), but drains continuously instead of a
/// whole sample at a time, so a client that always has data sends at its quota over any
/// stretch of time instead of in bursts one measurement span apart (docs/compatibility.md).
#[derive(Debug, Clone)]
pub struct Bucket {
    level: f64,
    last_ms: u64,
}

impl Bucket {
    /// An empty bucket at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            level: 0.0,
            last_ms: now_ms,
        }
    }

    fn drain(&mut self, rate: f64, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.level = (self.level - elapsed * rate).max(0.0);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Adds `value` at `now_ms` against a quota of `rate` per second (negative: takes back a
    /// value recorded earlier).
    pub fn record(&mut self, value: f64, rate: f64, now_ms: u64) {
        self.drain(rate, now_ms);
        self.level = (self.level + value).max(0.0);
    }

    /// How long (ms) until the bucket has drained to `allowance_ms` of the quota `rate`; 0 if
    /// it is there already.
    pub fn throttle_ms(&mut self, rate: f64, allowance_ms: u64, now_ms: u64) -> u64 {
        self.drain(rate, now_ms);
        if rate <= 0.0 {
            return 0;
        }
        let over = self.level - rate * allowance_ms as f64 / 1000.0;
        if over <= 0.0 {
            0
        } else {
            (over / rate * 1000.0).ceil() as u64
        }
    }
}

/// Quota settings (`quota.window.num`, `quota.window.size.seconds`).
#[derive(Debug, Clone, Copy)]
pub struct QuotaConfig {
    pub samples: usize,
    pub window_ms: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            samples: 11,
            window_ms: 1000,
        }
    }
}

impl QuotaConfig {
    /// How far ahead of a bandwidth or request quota a client may run (ms):
    /// `quota.window.num − 1` windows.
    pub fn allowance_ms(&self) -> u64 {
        self.samples.saturating_sub(1) as u64 * self.window_ms
    }

    /// KIP-599's burst for controller mutations (ms of the quota): `quota.window.num`
    /// windows.
    pub fn mutation_burst_ms(&self) -> u64 {
        self.samples as u64 * self.window_ms
    }
}

/// Key prefix of quota records in `__shoal_metadata`.
pub const RECORD_PREFIX: &str = "ext/quota/";

/// What one request's quota check decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttle {
    /// How long (ms) the client is throttled: `throttle_time_ms` and the mute.
    pub ms: u64,
    /// Who shares the quota that throttled (metric tags); empty when `ms` is 0.
    pub tags: SensorTags,
}

/// Every client quota (persisted) and the rates measured against them (soft state).
#[derive(Debug)]
pub struct QuotaManager {
    config: QuotaConfig,
    quotas: RwLock<BTreeMap<Entity, BTreeMap<String, f64>>>,
    /// Buckets by quota type, then by who shares them.
    buckets: [Mutex<HashMap<SensorTags, Bucket>>; 4],
    /// Set once any user/client-id quota exists: until then no request pays for lookups.
    any: std::sync::atomic::AtomicBool,
    epoch: std::time::Instant,
}

impl QuotaManager {
    /// Replays the quota records `topics` holds. A record that does not parse is skipped with
    /// a warning.
    pub fn load(topics: &TopicManager, config: QuotaConfig) -> Self {
        let mut quotas = BTreeMap::new();
        for (key, value) in topics.extensions(RECORD_PREFIX) {
            let parsed = key
                .strip_prefix(RECORD_PREFIX)
                .and_then(|k| serde_json::from_str::<Entity>(k).ok())
                .zip(serde_json::from_slice::<BTreeMap<String, f64>>(&value).ok());
            match parsed {
                Some((entity, values)) => {
                    quotas.insert(entity, values);
                }
                None => tracing::warn!(%key, "unreadable client quota record skipped"),
            }
        }
        let manager = Self::new(config);
        *manager.quotas.write().unwrap_or_else(|e| e.into_inner()) = quotas;
        manager.refresh_any();
        manager
    }

    /// No quotas.
    pub fn new(config: QuotaConfig) -> Self {
        Self {
            config,
            quotas: RwLock::new(BTreeMap::new()),
            buckets: Default::default(),
            any: std::sync::atomic::AtomicBool::new(false),
            epoch: std::time::Instant::now(),
        }
    }

    /// Milliseconds on this manager's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn refresh_any(&self) {
        let any = self
            .quotas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .any(|e| !e.contains_key(&EntityType::Ip));
        self.any.store(any, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether any user or client-id quota is set.
    pub fn enabled(&self) -> bool {
        self.any.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every entity with its quotas.
    pub fn all(&self) -> BTreeMap<Entity, BTreeMap<String, f64>> {
        self.quotas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies `ops` (`(key, Some(value))` sets, `(key, None)` removes) to `entity` durably.
    /// Removing a key that is not set is not an error (as Kafka).
    ///
    /// Errors: storage (nothing changes).
    pub fn alter(
        &self,
        topics: &TopicManager,
        entity: &Entity,
        ops: &[(String, Option<f64>)],
    ) -> Result<(), String> {
        let mut quotas = self.quotas.write().unwrap_or_else(|e| e.into_inner());
        let mut values = quotas.get(entity).cloned().unwrap_or_default();
        for (k, v) in ops {
            match v {
                Some(v) => values.insert(k.clone(), *v),
                None => values.remove(k),
            };
        }
        let key = format!(
            "{RECORD_PREFIX}{}",
            serde_json::to_string(entity).map_err(|e| e.to_string())?
        );
        let record = if values.is_empty() {
            None
        } else {
            Some(serde_json::to_vec(&values).map_err(|e| e.to_string())?)
        };
        topics
            .put_extension(&key, record)
            .map_err(|e| e.to_string())?;
        if values.is_empty() {
            quotas.remove(entity);
        } else {
            quotas.insert(entity.clone(), values);
        }
        drop(quotas);
        self.refresh_any();
        Ok(())
    }

    /// The quota of `ty` for `user`/`client_id` and who shares its rate, per the KIP-55
    /// order (module docs); `None` if no entity sets it.
    pub fn resolve(&self, ty: QuotaType, user: &str, client_id: &str) -> Option<(f64, SensorTags)> {
        let quotas = self.quotas.read().unwrap_or_else(|e| e.into_inner());
        let key = ty.key();
        let u = || Some(user.to_string());
        let c = || Some(client_id.to_string());
        let both = |user: Option<String>, client: Option<String>| -> Entity {
            [(EntityType::User, user), (EntityType::ClientId, client)]
                .into_iter()
                .collect()
        };
        let one =
            |t: EntityType, name: Option<String>| -> Entity { [(t, name)].into_iter().collect() };
        // Who shares the rate: 0 = the (user, client-id) pair, 1 = the user, 2 = the client-id.
        let order: [(Entity, u8); 8] = [
            (both(u(), c()), 0),
            (both(u(), None), 0),
            (one(EntityType::User, u()), 1),
            (both(None, c()), 0),
            (both(None, None), 0),
            (one(EntityType::User, None), 1),
            (one(EntityType::ClientId, c()), 2),
            (one(EntityType::ClientId, None), 2),
        ];
        let found = order.into_iter().find_map(|(entity, share)| {
            let bound = *quotas.get(&entity)?.get(key)?;
            let tags = match share {
                0 => (user.to_string(), client_id.to_string()),
                1 => (user.to_string(), String::new()),
                _ => (String::new(), client_id.to_string()),
            };
            Some((bound, tags))
        });
        found
    }

    /// Records `value` (bytes, or percent-seconds of a thread for [`QuotaType::Request`])
    /// against the quota of `ty` for this user and client-id and returns the throttle it calls
    /// for (0 without a quota or under it). Request-time throttles are capped at one window.
    pub fn record(&self, ty: QuotaType, user: &str, client_id: &str, value: f64) -> Throttle {
        if !self.enabled() || ty == QuotaType::ControllerMutation {
            return Throttle::default();
        }
        let Some((rate, tags)) = self.resolve(ty, user, client_id) else {
            return Throttle::default();
        };
        let now = self.now_ms();
        let Some(buckets) = self.buckets.get(ty.index()) else {
            return Throttle::default();
        };
        let mut buckets = buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets
            .entry(tags.clone())
            .or_insert_with(|| Bucket::new(now));
        bucket.record(value, rate, now);
        let mut ms = bucket.throttle_ms(rate, self.config.allowance_ms(), now);
        if ty == QuotaType::Request {
            ms = ms.min(self.config.window_ms);
        }
        if ms == 0 {
            return Throttle::default();
        }
        Throttle { ms, tags }
    }

    /// Takes back `value` recorded for a Fetch whose data is not sent (it was throttled).
    pub fn unrecord(&self, ty: QuotaType, user: &str, client_id: &str, value: f64) {
        let Some((rate, tags)) = self.resolve(ty, user, client_id) else {
            return;
        };
        let now = self.now_ms();
        if let Some(buckets) = self.buckets.get(ty.index()) {
            let mut buckets = buckets.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(bucket) = buckets.get_mut(&tags) {
                bucket.record(-value, rate, now);
            }
        }
    }

    /// The most a Fetch may return in one response under the consumer quota (bytes): the
    /// quota times `quota.window.num − 1` windows, as Kafka bounds `fetch.max.bytes`; `None`
    /// without a quota.
    pub fn max_value_in_window(&self, ty: QuotaType, user: &str, client_id: &str) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        let (bound, _) = self.resolve(ty, user, client_id)?;
        Some((bound * self.config.allowance_ms() as f64 / 1000.0).max(1.0) as u64)
    }

    /// Controller mutations (KIP-599): takes `partitions` tokens. `strict` (CreateTopics v6+,
    /// CreatePartitions v3+, DeleteTopics v5+): if the bucket is already empty (below zero
    /// tokens) nothing is taken and `Err(throttle)` says how long until it is not; otherwise
    /// the tokens are taken (the bucket may go below zero) and `Ok` carries the throttle that
    /// leaves, which older versions (not strict) are throttled for.
    pub fn mutate(
        &self,
        user: &str,
        client_id: &str,
        partitions: u32,
        strict: bool,
    ) -> Result<Throttle, Throttle> {
        if !self.enabled() {
            return Ok(Throttle::default());
        }
        let Some((rate, tags)) = self.resolve(QuotaType::ControllerMutation, user, client_id)
        else {
            return Ok(Throttle::default());
        };
        let now = self.now_ms();
        let burst = self.config.mutation_burst_ms();
        let Some(buckets) = self.buckets.get(QuotaType::ControllerMutation.index()) else {
            return Ok(Throttle::default());
        };
        let mut buckets = buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets
            .entry(tags.clone())
            .or_insert_with(|| Bucket::new(now));
        let before = bucket.throttle_ms(rate, burst, now);
        if strict && before > 0 {
            return Err(Throttle { ms: before, tags });
        }
        bucket.record(f64::from(partitions), rate, now);
        let ms = bucket.throttle_ms(rate, burst, now);
        Ok(if ms == 0 {
            Throttle::default()
        } else {
            Throttle { ms, tags }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(EntityType, Option<&str>)]) -> Entity {
        parts
            .iter()
            .map(|(t, n)| (*t, n.map(str::to_string)))
            .collect()
    }

    fn manager_with(quotas: &[(Entity, &str, f64)]) -> QuotaManager {
        let m = QuotaManager::new(QuotaConfig::default());
        {
            let mut q = m.quotas.write().unwrap();
            for (e, k, v) in quotas {
                q.entry(e.clone()).or_default().insert(k.to_string(), *v);
            }
        }
        m.refresh_any();
        m
    }

    #[test]
    fn resolution_follows_kip55_order_per_quota_type() {
        use EntityType::*;
        let m = manager_with(&[
            (
                entity(&[(User, Some("alice")), (ClientId, Some("app"))]),
                "producer_byte_rate",
                1.0,
            ),
            (entity(&[(User, Some("alice"))]), "producer_byte_rate", 2.0),
            (entity(&[(User, Some("alice"))]), "consumer_byte_rate", 3.0),
            (entity(&[(User, None)]), "producer_byte_rate", 4.0),
            (
                entity(&[(User, None), (ClientId, None)]),
                "consumer_byte_rate",
                5.0,
            ),
            (
                entity(&[(ClientId, Some("app"))]),
                "request_percentage",
                6.0,
            ),
            (entity(&[(ClientId, None)]), "producer_byte_rate", 7.0),
        ]);
        let r = |t, u, c| m.resolve(t, u, c);
        let tags = |u: &str, c: &str| (u.to_string(), c.to_string());
        assert_eq!(
            r(QuotaType::Produce, "alice", "app"),
            Some((1.0, tags("alice", "app")))
        );
        assert_eq!(
            r(QuotaType::Produce, "alice", "other"),
            Some((2.0, tags("alice", "")))
        );
        // Each type falls through on its own: alice's consumer quota is her user one.
        assert_eq!(
            r(QuotaType::Fetch, "alice", "app"),
            Some((3.0, tags("alice", "")))
        );
        assert_eq!(
            r(QuotaType::Produce, "bob", "app"),
            Some((4.0, tags("bob", "")))
        );
        assert_eq!(
            r(QuotaType::Fetch, "bob", "app"),
            Some((5.0, tags("bob", "app")))
        );
        // A user-level default wins over a client-id quota.
        assert_eq!(
            r(QuotaType::Request, "bob", "app"),
            Some((6.0, tags("", "app")))
        );
        assert_eq!(r(QuotaType::ControllerMutation, "bob", "app"), None);
    }

    #[test]
    fn client_id_default_applies_without_user_quotas() {
        use EntityType::*;
        let m = manager_with(&[(entity(&[(ClientId, None)]), "producer_byte_rate", 7.0)]);
        assert_eq!(
            m.resolve(QuotaType::Produce, "ANONYMOUS", "x"),
            Some((7.0, (String::new(), "x".to_string())))
        );
    }

    #[test]
    fn bucket_allows_the_allowance_then_throttles_for_the_excess() {
        let mut b = Bucket::new(0);
        b.record(10_000.0, 1000.0, 0);
        // 10 s of a 1000/s quota is allowed ahead.
        assert_eq!(b.throttle_ms(1000.0, 10_000, 0), 0);
        b.record(1_000.0, 1000.0, 0);
        assert_eq!(b.throttle_ms(1000.0, 10_000, 0), 1_000);
        assert_eq!(b.throttle_ms(1000.0, 10_000, 500), 500);
        assert_eq!(b.throttle_ms(1000.0, 10_000, 1_000), 0);
        // Taken back: a throttled Fetch's bytes.
        b.record(-5_000.0, 1000.0, 1_000);
        assert_eq!(b.level, 5_000.0);
    }

    /// A producer that sends whenever it is not throttled (64 KiB requests, tried every
    /// 10 ms) sends its quota ± 1% over any 30 s once its first allowance is spent, whatever
    /// the phase.
    #[test]
    fn greedy_producer_sends_its_quota_over_any_30_s() {
        let quota = 1_048_576.0;
        let allowance = QuotaConfig::default().allowance_ms();
        let mut bucket = Bucket::new(0);
        let mut sent_at = Vec::new();
        let (mut t, mut muted_until) = (0u64, 0u64);
        while t < 80_000 {
            if t >= muted_until {
                bucket.record(65_536.0, quota, t);
                sent_at.push(t);
                muted_until = t + bucket.throttle_ms(quota, allowance, t);
            }
            t += 10;
        }
        for start in (12_000..50_000).step_by(700) {
            let n = sent_at
                .iter()
                .filter(|&&s| (start..start + 30_000).contains(&s))
                .count();
            let measured = n as f64 * 65_536.0 / 30.0;
            assert!(
                (measured / quota - 1.0).abs() < 0.01,
                "from {start} ms: {measured:.0} B/s against a quota of {quota} B/s"
            );
        }
    }

    #[test]
    fn token_bucket_strict_and_permissive() {
        use EntityType::*;
        let m = manager_with(&[(
            entity(&[(User, Some("u"))]),
            "controller_mutation_rate",
            1.0,
        )]);
        // Burst: 1/s × 11 windows of 1 s = 11 tokens.
        assert_eq!(m.mutate("u", "c", 11, true), Ok(Throttle::default()));
        // The bucket may go below zero once...
        let t = m.mutate("u", "c", 5, true).unwrap();
        assert!(t.ms >= 4_900 && t.ms <= 5_000, "{t:?}");
        // ...then strict requests are refused until it refills.
        let refused = m.mutate("u", "c", 1, true).unwrap_err();
        assert!(refused.ms > 4_000, "{refused:?}");
        // Permissive ones are taken and throttled.
        assert!(m.mutate("u", "c", 1, false).unwrap().ms > 5_000);
        // Others are not limited.
        assert_eq!(m.mutate("v", "c", 100, true), Ok(Throttle::default()));
    }

    #[test]
    fn entity_and_key_validation() {
        let e = |parts: &[(&str, Option<&str>)]| {
            validate_entity(
                &parts
                    .iter()
                    .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(e(&[("user", Some("a")), ("client-id", None)]).is_ok());
        assert!(e(&[("ip", Some("10.0.0.1"))]).is_ok());
        assert!(e(&[("ip", Some("nope"))]).is_err());
        assert!(e(&[("ip", None), ("user", None)]).is_err());
        assert!(e(&[("user", Some("a")), ("user", Some("b"))]).is_err());
        assert!(e(&[("group", Some("a"))]).is_err());
        assert!(e(&[]).is_err());
        let user = e(&[("user", Some("a"))]).unwrap();
        assert_eq!(validate_key(&user, "producer_byte_rate"), Ok(true));
        assert_eq!(validate_key(&user, "request_percentage"), Ok(false));
        assert!(validate_key(&user, "connection_creation_rate").is_err());
        assert!(validate_key(&user, "bogus").is_err());
    }
}
