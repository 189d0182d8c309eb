//! ACLs with Kafka's model and rules (KIP-140 and KIP-290; Kafka's `StandardAuthorizer`):
//! bindings of a resource pattern (type, name, LITERAL or PREFIXED) to an entry (principal,
//! host, operation, ALLOW/DENY), and the decision for one action.
//!
//! The decision, as Kafka makes it: a principal in `super.users` may do everything. Otherwise
//! the ACLs whose pattern matches the resource (LITERAL with the same name or `*`, PREFIXED with
//! a prefix of the name) and whose principal (`User:*` matches anyone) and host (`*` matches
//! any) match are considered. Any DENY for the operation (or ALL) refuses; else an ALLOW for
//! it (or ALL, or an operation implying it: READ, WRITE, DELETE and ALTER imply DESCRIBE,
//! ALTER_CONFIGS implies DESCRIBE_CONFIGS) permits. With no ACL at all on the resource,
//! `allow.everyone.if.no.acl.found` (default false) decides.
//!
//! Bindings are records in `__shoal_metadata` under `ext/acl/<binding>` (tombstone = deleted),
//! replayed at start, as Kafka keeps `AccessControlEntryRecord`s in its metadata log.

use std::net::IpAddr;
use std::sync::RwLock;

use super::principal::KafkaPrincipal;
use crate::topics::TopicManager;

/// Kafka's `ResourceType` (wire values).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ResourceType {
    Any = 1,
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

/// Kafka's `PatternType`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum PatternType {
    Any = 1,
    Match = 2,
    Literal = 3,
    Prefixed = 4,
}

/// Kafka's `AclOperation`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Operation {
    Any = 1,
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

/// Kafka's `AclPermissionType`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Permission {
    Any = 1,
    Deny = 2,
    Allow = 3,
}

macro_rules! wire_enum {
    ($t:ty, $($v:ident),*) => {
        impl $t {
            /// From the wire value; `None` for UNKNOWN (0) and values Kafka does not define.
            pub fn from_wire(v: i8) -> Option<Self> {
                [$(Self::$v),*].into_iter().find(|x| *x as i8 == v)
            }
            /// The wire value.
            pub fn wire(self) -> i8 {
                self as i8
            }
            /// Kafka's name, upper case (`TRANSACTIONAL_ID`).
            pub fn name(self) -> String {
                let s = format!("{self:?}");
                let mut out = String::new();
                for (i, c) in s.chars().enumerate() {
                    if c.is_uppercase() && i > 0 {
                        out.push('_');
                    }
                    out.push(c.to_ascii_uppercase());
                }
                out
            }
            /// By Kafka's name, any case (`transactional-id` and `TransactionalId` too).
            pub fn from_name(name: &str) -> Option<Self> {
                let want: String = name.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_uppercase();
                [$(Self::$v),*].into_iter().find(|x| format!("{x:?}").to_ascii_uppercase() == want)
            }
        }
    };
}
wire_enum!(
    ResourceType,
    Any,
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User
);
wire_enum!(PatternType, Any, Match, Literal, Prefixed);
wire_enum!(
    Operation,
    Any,
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens
);
wire_enum!(Permission, Any, Deny, Allow);

/// One ACL (Kafka's `AclBinding`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:<name>` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Kafka's `AclBindingFilter`: `None` and the ANY values match everything; pattern MATCH
/// matches every pattern that would apply to the named resource.
#[derive(Debug, Clone, Default)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern_type: Option<PatternType>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclBinding {
    /// Checks a binding to create, as Kafka's CreateAcls does.
    ///
    /// Errors: Kafka's message for an ANY/MATCH type, pattern, operation or permission, a
    /// principal that is not `Type:name`, an empty resource name, or a CLUSTER resource not
    /// named `kafka-cluster`.
    pub fn validate(&self) -> Result<(), String> {
        if self.resource_type == ResourceType::Any {
            return Err("Invalid resource type: ANY".into());
        }
        if matches!(self.pattern_type, PatternType::Any | PatternType::Match) {
            return Err(format!(
                "Invalid pattern type: {}",
                self.pattern_type.name()
            ));
        }
        if self.operation == Operation::Any {
            return Err("Invalid operation: ANY".into());
        }
        if self.permission == Permission::Any {
            return Err("Invalid permission type: ANY".into());
        }
        if self.resource_name.is_empty() {
            return Err("Resource name must not be empty".into());
        }
        match self.principal.split_once(':') {
            Some((t, n)) if !t.is_empty() && !n.is_empty() => {}
            _ => return Err(format!("Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)", self.principal)),
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != "kafka-cluster" {
            return Err("The only valid name for the CLUSTER resource is kafka-cluster".into());
        }
        Ok(())
    }

    /// The key of its record in `__shoal_metadata`.
    fn record_key(&self) -> String {
        format!(
            "{RECORD_PREFIX}{}|{}|{}|{}|{}|{}|{}",
            self.resource_type.name(),
            self.pattern_type.name(),
            self.operation.name(),
            self.permission.name(),
            self.host,
            self.principal,
            self.resource_name
        )
    }

    fn pattern_applies(&self, resource: ResourceType, name: &str) -> bool {
        self.resource_type == resource
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

impl AclFilter {
    /// Whether `b` matches.
    pub fn matches(&self, b: &AclBinding) -> bool {
        let any = |o: Option<ResourceType>| {
            o.is_none_or(|t| t == ResourceType::Any || t == b.resource_type)
        };
        if !any(self.resource_type) {
            return false;
        }
        match (
            self.pattern_type.unwrap_or(PatternType::Any),
            &self.resource_name,
        ) {
            (PatternType::Match, Some(name)) => {
                let applies = match b.pattern_type {
                    PatternType::Literal => &b.resource_name == name || b.resource_name == "*",
                    PatternType::Prefixed => name.starts_with(&b.resource_name),
                    _ => false,
                };
                if !applies {
                    return false;
                }
            }
            (PatternType::Match, None) | (PatternType::Any, None) => {}
            (PatternType::Any, Some(name)) => {
                if &b.resource_name != name {
                    return false;
                }
            }
            (p, name) => {
                if p != b.pattern_type || name.as_ref().is_some_and(|n| n != &b.resource_name) {
                    return false;
                }
            }
        }
        self.principal.as_ref().is_none_or(|p| p == &b.principal)
            && self.host.as_ref().is_none_or(|h| h == &b.host)
            && self
                .operation
                .is_none_or(|o| o == Operation::Any || o == b.operation)
            && self
                .permission
                .is_none_or(|p| p == Permission::Any || p == b.permission)
    }
}

/// Key prefix of ACL records in `__shoal_metadata`.
pub const RECORD_PREFIX: &str = "ext/acl/";

/// Settings of the authorizer.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerConfig {
    /// `authorizer.class.name` set: ACLs are enforced and CreateAcls/DeleteAcls/DescribeAcls
    /// served (Kafka answers SECURITY_DISABLED without an authorizer).
    pub enabled: bool,
    /// `super.users` (`User:admin;User:ops`).
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found` (default false).
    pub allow_everyone_if_no_acl_found: bool,
}

/// The ACLs and the decision over them.
#[derive(Debug, Default)]
pub struct Authorizer {
    pub config: AuthorizerConfig,
    acls: RwLock<Vec<AclBinding>>,
}

impl Authorizer {
    /// Replays the ACL records `topics` holds; unreadable ones are skipped with a warning.
    pub fn load(config: AuthorizerConfig, topics: &TopicManager) -> Self {
        let mut acls = Vec::new();
        for (key, value) in topics.extensions(RECORD_PREFIX) {
            match serde_json::from_slice::<AclBinding>(&value) {
                Ok(b) => acls.push(b),
                Err(e) => tracing::warn!(%key, error = %e, "unreadable ACL record skipped"),
            }
        }
        acls.sort();
        Self {
            config,
            acls: RwLock::new(acls),
        }
    }

    /// An authorizer with these bindings in memory (tests).
    pub fn with_acls(config: AuthorizerConfig, mut acls: Vec<AclBinding>) -> Self {
        acls.sort();
        Self {
            config,
            acls: RwLock::new(acls),
        }
    }

    /// Whether `principal` connecting from `host` may do `op` on `resource` named `name`.
    /// Always true when no authorizer is configured.
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        op: Operation,
        resource: ResourceType,
        name: &str,
    ) -> bool {
        if !self.config.enabled {
            return true;
        }
        let who = principal.to_string();
        if self.config.super_users.iter().any(|s| s == &who) {
            return true;
        }
        let host = host.to_string();
        let acls = self.acls.read().unwrap_or_else(|e| e.into_inner());
        let on_resource: Vec<&AclBinding> = acls
            .iter()
            .filter(|b| b.pattern_applies(resource, name))
            .collect();
        if on_resource.is_empty() {
            return self.config.allow_everyone_if_no_acl_found;
        }
        let applies = |b: &&&AclBinding| {
            (b.principal == who || b.principal == format!("{}:*", principal.principal_type))
                && (b.host == "*" || b.host == host)
        };
        let mine: Vec<&&AclBinding> = on_resource.iter().filter(applies).collect();
        if mine.iter().any(|b| {
            b.permission == Permission::Deny && (b.operation == op || b.operation == Operation::All)
        }) {
            return false;
        }
        let implied: &[Operation] = match op {
            Operation::Describe => &[
                Operation::Describe,
                Operation::Read,
                Operation::Write,
                Operation::Delete,
                Operation::Alter,
            ],
            Operation::DescribeConfigs => &[Operation::DescribeConfigs, Operation::AlterConfigs],
            _ => std::slice::from_ref(&op),
        };
        mine.iter().any(|b| {
            b.permission == Permission::Allow
                && (b.operation == Operation::All || implied.contains(&b.operation))
        })
    }

    /// Whether `principal` may do `op` on *some* resource of type `resource` (Kafka's
    /// `authorizeByResourceType`, used for idempotent producers: WRITE on any topic): a super
    /// user, an ALLOW for it (or ALL) on any pattern, or no ACL of that type at all with
    /// `allow.everyone.if.no.acl.found`. DENY bindings are not subtracted pattern by pattern
    /// (Kafka does); a principal denied everywhere it is allowed is refused at its Produce.
    pub fn authorize_any(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        op: Operation,
        resource: ResourceType,
    ) -> bool {
        if !self.config.enabled {
            return true;
        }
        let who = principal.to_string();
        if self.config.super_users.iter().any(|s| s == &who) {
            return true;
        }
        let host = host.to_string();
        let acls = self.acls.read().unwrap_or_else(|e| e.into_inner());
        let of_type: Vec<&AclBinding> = acls
            .iter()
            .filter(|b| b.resource_type == resource)
            .collect();
        if of_type.is_empty() {
            return self.config.allow_everyone_if_no_acl_found;
        }
        of_type.iter().any(|b| {
            b.permission == Permission::Allow
                && (b.operation == op || b.operation == Operation::All)
                && (b.principal == who || b.principal == format!("{}:*", principal.principal_type))
                && (b.host == "*" || b.host == host)
        })
    }

    /// Bindings matching `filter`, in order.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Adds `binding` durably (adding one that exists changes nothing).
    ///
    /// Errors: storage.
    pub fn create(&self, topics: &TopicManager, binding: AclBinding) -> Result<(), String> {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        if acls.contains(&binding) {
            return Ok(());
        }
        let value = serde_json::to_vec(&binding).map_err(|e| e.to_string())?;
        topics
            .put_extension(&binding.record_key(), Some(value))
            .map_err(|e| e.to_string())?;
        acls.push(binding);
        acls.sort();
        Ok(())
    }

    /// Removes every binding matching `filter` durably; returns them.
    ///
    /// Errors: storage (bindings removed before the failure stay removed).
    pub fn delete(
        &self,
        topics: &TopicManager,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, String> {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        let mut failure = None;
        for b in acls.drain(..) {
            if failure.is_none() && filter.matches(&b) {
                match topics.put_extension(&b.record_key(), None) {
                    Ok(()) => removed.push(b),
                    Err(e) => {
                        failure = Some(e.to_string());
                        kept.push(b);
                    }
                }
            } else {
                kept.push(b);
            }
        }
        *acls = kept;
        match failure {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        who: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn kafka_decision_rules() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let config = AuthorizerConfig {
            enabled: true,
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: false,
        };
        let a = Authorizer::with_acls(
            config.clone(),
            vec![
                b(Topic, "orders", Literal, "User:alice", Write, Allow),
                b(Topic, "logs-", Prefixed, "User:*", Read, Allow),
                b(Topic, "logs-secret", Literal, "User:bob", Read, Deny),
                b(Topic, "*", Literal, "User:carol", All, Allow),
                b(Group, "g", Literal, "User:alice", Read, Allow),
            ],
        );
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let can = |who: &str, op, rt, name: &str| {
            a.authorize(&KafkaPrincipal::user(who), ip, op, rt, name)
        };
        assert!(can("alice", Write, Topic, "orders"));
        assert!(
            can("alice", Describe, Topic, "orders"),
            "WRITE implies DESCRIBE"
        );
        assert!(!can("alice", Read, Topic, "orders"));
        assert!(!can("alice", DescribeConfigs, Topic, "orders"));
        assert!(can("bob", Read, Topic, "logs-app"), "PREFIXED, User:*");
        assert!(!can("bob", Read, Topic, "logs-secret"), "DENY wins");
        assert!(can("dave", Read, Topic, "logs-secret"));
        assert!(
            can("carol", Delete, Topic, "anything"),
            "ALL on the * literal"
        );
        assert!(
            !can("alice", Read, Topic, "no-acls"),
            "no ACL found: denied by default"
        );
        assert!(can("admin", Alter, Cluster, "kafka-cluster"), "super user");
        assert!(can("alice", Read, Group, "g"));
        let open = Authorizer::with_acls(
            AuthorizerConfig {
                allow_everyone_if_no_acl_found: true,
                ..config
            },
            vec![b(Topic, "orders", Literal, "User:alice", Write, Allow)],
        );
        assert!(open.authorize(&KafkaPrincipal::user("x"), ip, Read, Topic, "no-acls"));
        assert!(
            !open.authorize(&KafkaPrincipal::user("x"), ip, Read, Topic, "orders"),
            "ACLs exist for it"
        );
        let mut host_acl = b(Topic, "h", Literal, "User:alice", Read, Allow);
        host_acl.host = "10.0.0.2".into();
        let h = Authorizer::with_acls(a.config.clone(), vec![host_acl]);
        assert!(!h.authorize(&KafkaPrincipal::user("alice"), ip, Read, Topic, "h"));
        assert!(h.authorize(
            &KafkaPrincipal::user("alice"),
            "10.0.0.2".parse().unwrap(),
            Read,
            Topic,
            "h"
        ));
        assert!(
            Authorizer::default().authorize(
                &KafkaPrincipal::anonymous(),
                ip,
                Alter,
                Cluster,
                "kafka-cluster"
            ),
            "no authorizer: everything"
        );
    }

    #[test]
    fn filters_and_validation() {
        use PatternType::*;
        let lit = b(
            ResourceType::Topic,
            "logs-app",
            Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let pre = b(
            ResourceType::Topic,
            "logs-",
            Prefixed,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let m = AclFilter {
            pattern_type: Some(Match),
            resource_name: Some("logs-app".into()),
            ..Default::default()
        };
        assert!(m.matches(&lit) && m.matches(&pre));
        let exact = AclFilter {
            pattern_type: Some(Literal),
            resource_name: Some("logs-".into()),
            ..Default::default()
        };
        assert!(!exact.matches(&pre) && !exact.matches(&lit));
        let any_name = AclFilter {
            resource_name: Some("logs-".into()),
            ..Default::default()
        };
        assert!(any_name.matches(&pre) && !any_name.matches(&lit));
        assert!(AclFilter::default().matches(&lit));
        assert!(lit.validate().is_ok());
        let mut bad = lit.clone();
        bad.principal = "alice".into();
        assert!(bad.validate().unwrap_err().contains("principal"));
        let mut bad = lit.clone();
        bad.resource_type = ResourceType::Cluster;
        assert!(bad.validate().unwrap_err().contains("kafka-cluster"));
        assert_eq!(
            Operation::from_name("describe_configs"),
            Some(Operation::DescribeConfigs)
        );
        assert_eq!(ResourceType::TransactionalId.name(), "TRANSACTIONAL_ID");
        assert_eq!(
            ResourceType::from_wire(5),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(Operation::from_wire(0), None);
    }
}
