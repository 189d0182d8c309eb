//! ACLs (KIP-140, KIP-290): CreateAcls, DescribeAcls, DeleteAcls v1-3, which need ALTER
//! (create, delete) or DESCRIBE (describe) on the cluster and answer SECURITY_DISABLED without
//! `authorizer.class.name`; invalid bindings get INVALID_REQUEST with Kafka's message.
//!
//! SCRAM credential management (KIP-554): AlterUserScramCredentials and
//! DescribeUserScramCredentials v0, with Kafka's checks and errors (its
//! `ScramControlManager`):
//! - the same user and mechanism twice in one request (deletion or upsertion):
//!   DUPLICATE_RESOURCE for that user, and none of its alterations is applied;
//! - an unknown mechanism type: UNSUPPORTED_SASL_MECHANISM;
//! - an empty user name, iterations outside 4096..=16384, an empty salt or salted password:
//!   UNACCEPTABLE_CREDENTIAL;
//! - deleting or describing a credential that does not exist: RESOURCE_NOT_FOUND;
//! - a credential that cannot be written: KAFKA_STORAGE_ERROR (nothing changes).
//!
//! The client sends the salt and SaltedPassword; Shoal keeps salt, StoredKey, ServerKey and
//! iterations ([`crate::auth::scram`]), never a password.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{cluster_allowed, code, RequestContext};
use crate::auth::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::state::Broker;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};

fn s(v: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(v.into()))
}

enum Change {
    Delete(ScramMechanism),
    Upsert(ScramMechanism, ScramCredential),
}

/// AlterUserScramCredentials: one result per user named.
pub fn alter_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if !cluster_allowed(broker, ctx, Operation::Alter) {
        let users: BTreeSet<String> = req
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(req.upsertions.iter().map(|u| u.name.to_string()))
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(
            users
                .into_iter()
                .map(|u| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(StrBytes::from_string(u))
                        .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
                })
                .collect(),
        );
    }
    let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for key in req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            req.upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        )
    {
        *seen.entry(key).or_default() += 1;
    }
    let mut outcome: BTreeMap<String, (i16, Option<String>)> = BTreeMap::new();
    let mut changes: Vec<(String, Change)> = Vec::new();
    for ((name, _), count) in &seen {
        if *count > 1 {
            outcome.insert(
                name.clone(),
                (
                    code::DUPLICATE_RESOURCE,
                    Some("A user credential cannot be altered twice in the same request".into()),
                ),
            );
        }
    }
    for d in &req.deletions {
        let name = d.name.to_string();
        if outcome.contains_key(&name) {
            continue;
        }
        let checked = if name.is_empty() {
            Err((code::UNACCEPTABLE_CREDENTIAL, "Username must not be empty"))
        } else {
            match ScramMechanism::from_wire_type(d.mechanism) {
                None => Err((code::UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")),
                Some(m) if broker.credentials.get(&name, m).is_none() => Err((
                    code::RESOURCE_NOT_FOUND,
                    "Attempt to delete a user credential that does not exist",
                )),
                Some(m) => Ok(m),
            }
        };
        match checked {
            Ok(m) => changes.push((name, Change::Delete(m))),
            Err((c, msg)) => {
                outcome.insert(name, (c, Some(msg.into())));
            }
        }
    }
    for u in &req.upsertions {
        let name = u.name.to_string();
        if outcome.contains_key(&name) {
            continue;
        }
        let checked = if name.is_empty() {
            Err((
                code::UNACCEPTABLE_CREDENTIAL,
                "Username must not be empty".to_string(),
            ))
        } else {
            match ScramMechanism::from_wire_type(u.mechanism) {
                None => Err((
                    code::UNSUPPORTED_SASL_MECHANISM,
                    "Unknown SCRAM mechanism".to_string(),
                )),
                Some(_) if u.iterations < ScramMechanism::MIN_ITERATIONS => Err((
                    code::UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "Too few iterations: at least {}",
                        ScramMechanism::MIN_ITERATIONS
                    ),
                )),
                Some(_) if u.iterations > ScramMechanism::MAX_ITERATIONS => Err((
                    code::UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "Too many iterations: at most {}",
                        ScramMechanism::MAX_ITERATIONS
                    ),
                )),
                Some(_) if u.salt.is_empty() || u.salted_password.is_empty() => Err((
                    code::UNACCEPTABLE_CREDENTIAL,
                    "Salt and salted password must not be empty".to_string(),
                )),
                Some(m) => Ok(m),
            }
        };
        match checked {
            Ok(m) => {
                let c = ScramCredential::from_salted_password(
                    m,
                    &u.salt,
                    &u.salted_password,
                    u.iterations as u32,
                );
                changes.push((name, Change::Upsert(m, c)));
            }
            Err((c, msg)) => {
                outcome.insert(name, (c, Some(msg)));
            }
        }
    }
    // A user with any refused alteration gets none applied (one result per user).
    let changes: Vec<_> = changes
        .into_iter()
        .filter(|(name, _)| !outcome.contains_key(name))
        .collect();
    for (name, change) in changes {
        let (m, cred) = match change {
            Change::Delete(m) => (m, None),
            Change::Upsert(m, c) => (m, Some(c)),
        };
        let r = broker.credentials.put(&broker.topics, &name, m, cred);
        let result = match r {
            Ok(()) => {
                tracing::info!(user = %name, mechanism = m.name(), "SCRAM credential altered");
                (code::NONE, None)
            }
            Err(e) => (code::KAFKA_STORAGE_ERROR, Some(e)),
        };
        // A storage error on one mechanism is the user's result.
        if result.0 != code::NONE || !outcome.contains_key(&name) {
            outcome.insert(name, result);
        }
    }
    AlterUserScramCredentialsResponse::default().with_results(
        outcome
            .into_iter()
            .map(|(user, (error_code, message))| {
                AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user))
                    .with_error_code(error_code)
                    .with_error_message(message.and_then(s))
            })
            .collect(),
    )
}

/// DescribeUserScramCredentials: the mechanisms and iterations of the users named (every user
/// with a credential when `users` is null or empty).
pub fn describe_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !cluster_allowed(broker, ctx, Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    let all = broker.credentials.list();
    let info = |creds: &Vec<(ScramMechanism, u32)>| {
        creds
            .iter()
            .map(|(m, i)| {
                CredentialInfo::default()
                    .with_mechanism(m.wire_type())
                    .with_iterations(*i as i32)
            })
            .collect::<Vec<_>>()
    };
    let results = match req.users.filter(|u| !u.is_empty()) {
        None => all
            .iter()
            .map(|(user, creds)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()))
                    .with_credential_infos(info(creds))
            })
            .collect(),
        Some(users) => {
            let mut count: BTreeMap<String, usize> = BTreeMap::new();
            for u in &users {
                *count.entry(u.name.to_string()).or_default() += 1;
            }
            let mut done = BTreeSet::new();
            users
                .iter()
                .filter(|u| done.insert(u.name.to_string()))
                .map(|u| {
                    let name = u.name.to_string();
                    let r = DescribeUserScramCredentialsResult::default()
                        .with_user(u.name.clone());
                    if count.get(&name).copied().unwrap_or(0) > 1 {
                        r.with_error_code(code::DUPLICATE_RESOURCE).with_error_message(s(
                            "Cannot describe SCRAM credentials for the same user twice in a single request",
                        ))
                    } else {
                        match all.get(&name) {
                            Some(creds) => r.with_credential_infos(info(creds)),
                            None => r.with_error_code(code::RESOURCE_NOT_FOUND).with_error_message(s(
                                "Attempt to describe a user credential that does not exist",
                            )),
                        }
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn disabled() -> (i16, Option<StrBytes>) {
    (
        code::SECURITY_DISABLED,
        s("No Authorizer is configured (authorizer.class.name)"),
    )
}

fn filter_of(
    rt: i8,
    name: Option<&StrBytes>,
    pt: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    op: i8,
    perm: i8,
) -> Result<AclFilter, String> {
    fn need<T>(v: Option<T>, what: &str) -> Result<T, String> {
        v.ok_or_else(|| format!("Invalid {what} in filter"))
    }
    Ok(AclFilter {
        resource_type: Some(need(ResourceType::from_wire(rt), "resource type")?),
        resource_name: name.map(|n| n.to_string()),
        pattern_type: Some(need(PatternType::from_wire(pt), "pattern type")?),
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: Some(need(Operation::from_wire(op), "operation")?),
        permission: Some(need(Permission::from_wire(perm), "permission type")?),
    })
}

/// CreateAcls: one result per creation, in order.
pub fn create_acls(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    use kafka_protocol::messages::create_acls_response::AclCreationResult;
    let result = |(c, m): (i16, Option<StrBytes>)| {
        AclCreationResult::default()
            .with_error_code(c)
            .with_error_message(m)
    };
    let results = req
        .creations
        .into_iter()
        .map(|c| {
            if !broker.authorizer.config.enabled {
                return result(disabled());
            }
            if !cluster_allowed(broker, ctx, Operation::Alter) {
                return result((code::CLUSTER_AUTHORIZATION_FAILED, None));
            }
            let binding = (|| {
                Some(AclBinding {
                    resource_type: ResourceType::from_wire(c.resource_type)?,
                    resource_name: c.resource_name.to_string(),
                    pattern_type: PatternType::from_wire(c.resource_pattern_type)?,
                    principal: c.principal.to_string(),
                    host: c.host.to_string(),
                    operation: Operation::from_wire(c.operation)?,
                    permission: Permission::from_wire(c.permission_type)?,
                })
            })()
            .ok_or_else(|| "Invalid ACL creation: unknown resource type, pattern type, operation or permission type".to_string())
            .and_then(|b| b.validate().map(|()| b));
            match binding {
                Err(e) => result((code::INVALID_REQUEST, s(e))),
                Ok(b) => match broker.authorizer.create(&broker.topics, b.clone()) {
                    Ok(()) => {
                        tracing::info!(principal = %ctx.principal, acl = ?b, "ACL created");
                        result((code::NONE, None))
                    }
                    Err(e) => result((code::KAFKA_STORAGE_ERROR, s(e))),
                },
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn description(b: &AclBinding) -> kafka_protocol::messages::describe_acls_response::AclDescription {
    kafka_protocol::messages::describe_acls_response::AclDescription::default()
        .with_principal(StrBytes::from_string(b.principal.clone()))
        .with_host(StrBytes::from_string(b.host.clone()))
        .with_operation(b.operation.wire())
        .with_permission_type(b.permission.wire())
}

/// DescribeAcls: the bindings matching the filter, grouped by resource pattern.
pub fn describe_acls(
    broker: &Broker,
    ctx: &RequestContext,
    r: DescribeAclsRequest,
) -> DescribeAclsResponse {
    use kafka_protocol::messages::describe_acls_response::DescribeAclsResource;
    if !broker.authorizer.config.enabled {
        let (c, m) = disabled();
        return DescribeAclsResponse::default()
            .with_error_code(c)
            .with_error_message(m);
    }
    if !cluster_allowed(broker, ctx, Operation::Describe) {
        return DescribeAclsResponse::default().with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    let filter = match filter_of(
        r.resource_type_filter,
        r.resource_name_filter.as_ref(),
        r.pattern_type_filter,
        r.principal_filter.as_ref(),
        r.host_filter.as_ref(),
        r.operation,
        r.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(code::INVALID_REQUEST)
                .with_error_message(s(e))
        }
    };
    let mut by_resource: BTreeMap<(ResourceType, String, PatternType), Vec<AclBinding>> =
        BTreeMap::new();
    for b in broker.authorizer.describe(&filter) {
        by_resource
            .entry((b.resource_type, b.resource_name.clone(), b.pattern_type))
            .or_default()
            .push(b);
    }
    DescribeAclsResponse::default().with_resources(
        by_resource
            .into_iter()
            .map(|((rt, name, pt), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(rt.wire())
                    .with_resource_name(StrBytes::from_string(name))
                    .with_pattern_type(pt.wire())
                    .with_acls(acls.iter().map(description).collect())
            })
            .collect(),
    )
}

/// DeleteAcls: per filter, the bindings it removed.
pub fn delete_acls(
    broker: &Broker,
    ctx: &RequestContext,
    r: DeleteAclsRequest,
) -> DeleteAclsResponse {
    use kafka_protocol::messages::delete_acls_response::{
        DeleteAclsFilterResult, DeleteAclsMatchingAcl,
    };
    let results = r
        .filters
        .into_iter()
        .map(|f| {
            if !broker.authorizer.config.enabled {
                let (c, m) = disabled();
                return DeleteAclsFilterResult::default()
                    .with_error_code(c)
                    .with_error_message(m);
            }
            if !cluster_allowed(broker, ctx, Operation::Alter) {
                return DeleteAclsFilterResult::default()
                    .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
            }
            let filter = match filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            ) {
                Ok(f) => f,
                Err(e) => {
                    return DeleteAclsFilterResult::default()
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(s(e))
                }
            };
            match broker.authorizer.delete(&broker.topics, &filter) {
                Ok(removed) => {
                    for b in &removed {
                        tracing::info!(principal = %ctx.principal, acl = ?b, "ACL deleted");
                    }
                    DeleteAclsFilterResult::default().with_matching_acls(
                        removed
                            .iter()
                            .map(|b| {
                                DeleteAclsMatchingAcl::default()
                                    .with_resource_type(b.resource_type.wire())
                                    .with_resource_name(StrBytes::from_string(
                                        b.resource_name.clone(),
                                    ))
                                    .with_pattern_type(b.pattern_type.wire())
                                    .with_principal(StrBytes::from_string(b.principal.clone()))
                                    .with_host(StrBytes::from_string(b.host.clone()))
                                    .with_operation(b.operation.wire())
                                    .with_permission_type(b.permission.wire())
                            })
                            .collect(),
                    )
                }
                Err(e) => DeleteAclsFilterResult::default()
                    .with_error_code(code::KAFKA_STORAGE_ERROR)
                    .with_error_message(s(e)),
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
