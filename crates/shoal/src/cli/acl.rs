//! `shoal acl add|remove|list`: what `kafka-acls.sh --add|--remove|--list` does, over
//! CreateAcls / DeleteAcls / DescribeAcls (v3). Resource: `--topic`, `--group`,
//! `--transactional-id` or `--cluster`, `--pattern-type literal|prefixed`; entry:
//! `--principal User:alice`, `--host` (default `*`), `--operation` (repeatable or
//! comma-separated), `--deny` for DENY.

use anyhow::{bail, Context};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use shoal_broker::auth::acl::{Operation, PatternType, Permission, ResourceType};

use super::client::Client;
use super::kafka_error;

/// A resource named on the command line (`None` fields: any).
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    pub(crate) resource: Option<(ResourceType, String)>,
    pub(crate) pattern: Option<PatternType>,
    pub(crate) principal: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) operations: Vec<Operation>,
    pub(crate) permission: Option<Permission>,
}

/// Parses `--operation` values (Kafka's names, any case, `-` or `_`).
pub(crate) fn operations(values: &[String]) -> anyhow::Result<Vec<Operation>> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.trim().is_empty())
        .map(|v| Operation::from_name(v.trim()).with_context(|| format!("unknown operation {v}")))
        .collect()
}

/// Parses `--pattern-type`.
pub(crate) fn pattern(v: &str) -> anyhow::Result<PatternType> {
    PatternType::from_name(v)
        .with_context(|| format!("unknown pattern type {v} (literal, prefixed, match, any)"))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Adds one ACL per operation.
pub(crate) async fn add(c: &mut Client, sel: &Selector) -> anyhow::Result<usize> {
    let Some((rt, name)) = &sel.resource else {
        bail!("name a resource: --topic, --group, --transactional-id or --cluster");
    };
    let Some(principal) = &sel.principal else {
        bail!("--principal is required (e.g. User:alice)");
    };
    if sel.operations.is_empty() {
        bail!("--operation is required (e.g. read, write, describe, all)");
    }
    let creations: Vec<AclCreation> = sel
        .operations
        .iter()
        .map(|op| {
            AclCreation::default()
                .with_resource_type(rt.wire())
                .with_resource_name(s(name))
                .with_resource_pattern_type(sel.pattern.unwrap_or(PatternType::Literal).wire())
                .with_principal(s(principal))
                .with_host(s(sel.host.as_deref().unwrap_or("*")))
                .with_operation(op.wire())
                .with_permission_type(sel.permission.unwrap_or(Permission::Allow).wire())
        })
        .collect();
    let n = creations.len();
    let (resp, _) = c
        .call(CreateAclsRequest::default().with_creations(creations), 3)
        .await?;
    for r in resp.results {
        if let Some(e) = kafka_error(r.error_code) {
            bail!(
                "CreateAcls: {e}{}",
                r.error_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(n)
}

/// One ACL as `list` and `remove` print it.
#[derive(Debug, Serialize)]
pub(crate) struct AclRow {
    pub(crate) resource_type: String,
    pub(crate) resource_name: String,
    pub(crate) pattern_type: String,
    pub(crate) principal: String,
    pub(crate) host: String,
    pub(crate) operation: String,
    pub(crate) permission: String,
}

fn name_of<T>(v: i8, f: impl Fn(i8) -> Option<T>, n: impl Fn(T) -> String) -> String {
    f(v).map_or_else(|| format!("UNKNOWN({v})"), n)
}

/// A row from wire values: (resource type, name, pattern type), then (principal, host,
/// operation, permission type).
fn row(resource: (i8, String, i8), entry: (&StrBytes, &StrBytes, i8, i8)) -> AclRow {
    AclRow {
        resource_type: name_of(resource.0, ResourceType::from_wire, ResourceType::name),
        resource_name: resource.1,
        pattern_type: name_of(resource.2, PatternType::from_wire, PatternType::name),
        principal: entry.0.to_string(),
        host: entry.1.to_string(),
        operation: name_of(entry.2, Operation::from_wire, Operation::name),
        permission: name_of(entry.3, Permission::from_wire, Permission::name),
    }
}

fn filter_parts(
    sel: &Selector,
    op: Option<Operation>,
) -> (
    i8,
    Option<StrBytes>,
    i8,
    Option<StrBytes>,
    Option<StrBytes>,
    i8,
    i8,
) {
    (
        sel.resource
            .as_ref()
            .map_or(ResourceType::Any, |r| r.0)
            .wire(),
        sel.resource.as_ref().map(|r| s(&r.1)),
        sel.pattern
            .unwrap_or(if sel.resource.is_some() {
                PatternType::Literal
            } else {
                PatternType::Any
            })
            .wire(),
        sel.principal.as_deref().map(s),
        sel.host.as_deref().map(s),
        op.unwrap_or(Operation::Any).wire(),
        sel.permission.unwrap_or(Permission::Any).wire(),
    )
}

/// ACLs matching the selector.
pub(crate) async fn list(c: &mut Client, sel: &Selector) -> anyhow::Result<Vec<AclRow>> {
    let (rt, name, pt, principal, host, op, perm) =
        filter_parts(sel, sel.operations.first().copied());
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(name)
        .with_pattern_type_filter(pt)
        .with_principal_filter(principal)
        .with_host_filter(host)
        .with_operation(op)
        .with_permission_type(perm);
    let (resp, _) = c.call(req, 3).await?;
    if let Some(e) = kafka_error(resp.error_code) {
        bail!(
            "DescribeAcls: {e}{}",
            resp.error_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
    Ok(resp
        .resources
        .into_iter()
        .flat_map(|r| {
            let (rt, name, pt) = (r.resource_type, r.resource_name.to_string(), r.pattern_type);
            r.acls.into_iter().map(move |a| {
                row(
                    (rt, name.clone(), pt),
                    (&a.principal, &a.host, a.operation, a.permission_type),
                )
            })
        })
        .collect())
}

/// Removes the ACLs matching the selector (one filter per operation, or one for any).
pub(crate) async fn remove(c: &mut Client, sel: &Selector) -> anyhow::Result<Vec<AclRow>> {
    let ops: Vec<Option<Operation>> = if sel.operations.is_empty() {
        vec![None]
    } else {
        sel.operations.iter().copied().map(Some).collect()
    };
    let filters = ops
        .into_iter()
        .map(|op| {
            let (rt, name, pt, principal, host, op, perm) = filter_parts(sel, op);
            DeleteAclsFilter::default()
                .with_resource_type_filter(rt)
                .with_resource_name_filter(name)
                .with_pattern_type_filter(pt)
                .with_principal_filter(principal)
                .with_host_filter(host)
                .with_operation(op)
                .with_permission_type(perm)
        })
        .collect();
    let (resp, _) = c
        .call(DeleteAclsRequest::default().with_filters(filters), 3)
        .await?;
    let mut out = Vec::new();
    for r in resp.filter_results {
        if let Some(e) = kafka_error(r.error_code) {
            bail!(
                "DeleteAcls: {e}{}",
                r.error_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
        for a in r.matching_acls {
            out.push(row(
                (a.resource_type, a.resource_name.to_string(), a.pattern_type),
                (&a.principal, &a.host, a.operation, a.permission_type),
            ));
        }
    }
    Ok(out)
}

/// Rows as a table.
pub(crate) fn text(rows: &[AclRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.resource_type.clone(),
                r.resource_name.clone(),
                r.pattern_type.clone(),
                r.principal.clone(),
                r.host.clone(),
                r.operation.clone(),
                r.permission.clone(),
            ]
        })
        .collect();
    super::table(
        &[
            "RESOURCE_TYPE",
            "NAME",
            "PATTERN",
            "PRINCIPAL",
            "HOST",
            "OPERATION",
            "PERMISSION",
        ],
        &cells,
    )
}
