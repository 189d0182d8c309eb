//! `shoal quota alter|describe`: client quotas as `kafka-configs.sh --entity-type
//! users|clients|ips --alter --add-config producer_byte_rate=1048576` manages them, over
//! AlterClientQuotas / DescribeClientQuotas (KIP-546, v1). An entity is `--user NAME` or
//! `--user-default`, `--client-id NAME` or `--client-id-default` (either or both), or `--ip`.

use anyhow::{bail, Context};
use kafka_protocol::messages::{
    alter_client_quotas_request, describe_client_quotas_request, AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::client::Client;
use super::kafka_error;

/// One entity component from the command line: type (`user`, `client-id`, `ip`) and name
/// (`None`: the default entity).
pub(crate) type Component = (&'static str, Option<String>);

/// Parses `KEY=VALUE[,KEY=VALUE]` (`--add`) into keys and values.
pub(crate) fn parse_add(values: &[String]) -> anyhow::Result<Vec<(String, f64)>> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--add expects KEY=VALUE, got `{kv}`"))?;
            let v: f64 = v
                .trim()
                .parse()
                .with_context(|| format!("quota {k}: `{v}` is not a number"))?;
            Ok((k.trim().to_string(), v))
        })
        .collect()
}

/// Sets (`add`) and removes (`delete`) quotas of one entity.
pub(crate) async fn alter(
    c: &mut Client,
    entity: &[Component],
    add: &[(String, f64)],
    delete: &[String],
) -> anyhow::Result<()> {
    if entity.is_empty() {
        bail!("name an entity: --user, --user-default, --client-id, --client-id-default or --ip");
    }
    let ops = add
        .iter()
        .map(|(k, v)| {
            alter_client_quotas_request::OpData::default()
                .with_key(StrBytes::from_string(k.clone()))
                .with_value(*v)
        })
        .chain(delete.iter().map(|k| {
            alter_client_quotas_request::OpData::default()
                .with_key(StrBytes::from_string(k.clone()))
                .with_remove(true)
        }))
        .collect();
    let entry = alter_client_quotas_request::EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    alter_client_quotas_request::EntityData::default()
                        .with_entity_type(StrBytes::from_static_str(t))
                        .with_entity_name(n.clone().map(StrBytes::from_string))
                })
                .collect(),
        )
        .with_ops(ops);
    let (resp, _) = c
        .call(
            AlterClientQuotasRequest::default().with_entries(vec![entry]),
            1,
        )
        .await?;
    for e in resp.entries {
        if let Some(err) = kafka_error(e.error_code) {
            bail!(
                "AlterClientQuotas: {err}{}",
                e.error_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// One entity and its quotas.
#[derive(Debug, Serialize)]
pub(crate) struct QuotaRow {
    /// `(type, name)`; name `None` is the default entity.
    pub(crate) entity: Vec<(String, Option<String>)>,
    pub(crate) quotas: std::collections::BTreeMap<String, f64>,
}

/// Entities matching `filter` (each component exact, or the default entity); empty: all.
pub(crate) async fn describe(
    c: &mut Client,
    filter: &[Component],
) -> anyhow::Result<Vec<QuotaRow>> {
    let components = filter
        .iter()
        .map(|(t, n)| {
            describe_client_quotas_request::ComponentData::default()
                .with_entity_type(StrBytes::from_static_str(t))
                .with_match_type(if n.is_some() { 0 } else { 1 })
                .with_match(n.clone().map(StrBytes::from_string))
        })
        .collect();
    let (resp, _) = c
        .call(
            DescribeClientQuotasRequest::default().with_components(components),
            1,
        )
        .await?;
    if let Some(err) = kafka_error(resp.error_code) {
        bail!(
            "DescribeClientQuotas: {err}{}",
            resp.error_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
    Ok(resp
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| QuotaRow {
            entity: e
                .entity
                .into_iter()
                .map(|x| {
                    (
                        x.entity_type.to_string(),
                        x.entity_name.map(|n| n.to_string()),
                    )
                })
                .collect(),
            quotas: e
                .values
                .into_iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect(),
        })
        .collect())
}

/// Text output, one line per entity, as `kafka-configs.sh --describe` prints quotas:
/// `Quota configs for user-principal 'alice' are producer_byte_rate=1048576.0`.
pub(crate) fn text(rows: &[QuotaRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let entity = r
            .entity
            .iter()
            .map(|(t, n)| {
                let t = if t == "user" {
                    "user-principal"
                } else {
                    t.as_str()
                };
                match n {
                    Some(n) => format!("{t} '{n}'"),
                    None => format!("the default {t}"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let values = r
            .quotas
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("Quota configs for {entity} are {values}\n"));
    }
    out
}
