//! `shoal user create|delete|list`: SCRAM users, as `kafka-configs.sh --entity-type users
//! --alter --add-config 'SCRAM-SHA-256=[password=...]'` manages them, over
//! AlterUserScramCredentials / DescribeUserScramCredentials (KIP-554). The salt is made and the
//! password salted here; only the salted password goes over the wire and only salt, StoredKey
//! and ServerKey are stored.

use anyhow::{bail, Context};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use shoal_broker::auth::scram::{ScramCredential, ScramMechanism};

use super::client::Client;
use super::kafka_error;

/// The mechanisms named by `--mechanism` (`all` = both).
pub(crate) fn mechanisms(name: &str) -> anyhow::Result<Vec<ScramMechanism>> {
    if name.eq_ignore_ascii_case("all") {
        return Ok(ScramMechanism::ALL.to_vec());
    }
    name.split(',')
        .map(|m| {
            ScramMechanism::from_name(&m.trim().to_ascii_uppercase()).with_context(|| {
                format!("unknown mechanism {m} (SCRAM-SHA-256, SCRAM-SHA-512 or all)")
            })
        })
        .collect()
}

fn check(results: Vec<(String, i16, Option<StrBytes>)>) -> anyhow::Result<()> {
    for (user, code, message) in results {
        if let Some(e) = kafka_error(code) {
            bail!(
                "user {user}: {e}{}",
                message.map(|m| format!(": {m}")).unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn check_alter(
    resp: kafka_protocol::messages::AlterUserScramCredentialsResponse,
) -> anyhow::Result<()> {
    check(
        resp.results
            .into_iter()
            .map(|r| (r.user.to_string(), r.error_code, r.error_message))
            .collect(),
    )
}

/// Creates or replaces `user`'s credentials for `mechanisms`.
pub(crate) async fn create(
    c: &mut Client,
    user: &str,
    password: &str,
    mechanisms: &[ScramMechanism],
    iterations: i32,
) -> anyhow::Result<()> {
    let mut upsertions = Vec::new();
    for m in mechanisms {
        let mut salt = [0u8; 32];
        getrandom::getrandom(&mut salt).context("no random salt")?;
        let salted = ScramCredential::salted_password(
            *m,
            password.as_bytes(),
            &salt,
            iterations.max(1) as u32,
        );
        upsertions.push(
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(user.to_string()))
                .with_mechanism(m.wire_type())
                .with_iterations(iterations)
                .with_salt(bytes::Bytes::copy_from_slice(&salt))
                .with_salted_password(bytes::Bytes::from(salted)),
        );
    }
    let (resp, _) = c
        .call(
            AlterUserScramCredentialsRequest::default().with_upsertions(upsertions),
            0,
        )
        .await?;
    check_alter(resp)
}

/// Deletes `user`'s credentials for `mechanisms`.
pub(crate) async fn delete(
    c: &mut Client,
    user: &str,
    mechanisms: &[ScramMechanism],
) -> anyhow::Result<()> {
    let deletions = mechanisms
        .iter()
        .map(|m| {
            ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(user.to_string()))
                .with_mechanism(m.wire_type())
        })
        .collect();
    let (resp, _) = c
        .call(
            AlterUserScramCredentialsRequest::default().with_deletions(deletions),
            0,
        )
        .await?;
    check_alter(resp)
}

/// A user and its mechanisms.
#[derive(Debug, Serialize)]
pub(crate) struct UserInfo {
    pub(crate) user: String,
    pub(crate) credentials: Vec<CredentialInfo>,
}

/// One mechanism of a user.
#[derive(Debug, Serialize)]
pub(crate) struct CredentialInfo {
    pub(crate) mechanism: String,
    pub(crate) iterations: i32,
}

/// Users with SCRAM credentials (`names` empty = all).
pub(crate) async fn list(c: &mut Client, names: &[String]) -> anyhow::Result<Vec<UserInfo>> {
    let users = (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|n| UserName::default().with_name(StrBytes::from_string(n.clone())))
            .collect()
    });
    let (resp, _) = c
        .call(
            DescribeUserScramCredentialsRequest::default().with_users(users),
            0,
        )
        .await?;
    if let Some(e) = kafka_error(resp.error_code) {
        bail!("DescribeUserScramCredentials: {e}");
    }
    check(
        resp.results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code, r.error_message.clone()))
            .collect(),
    )?;
    Ok(resp
        .results
        .into_iter()
        .map(|r| UserInfo {
            user: r.user.to_string(),
            credentials: r
                .credential_infos
                .into_iter()
                .map(|i| CredentialInfo {
                    mechanism: ScramMechanism::from_wire_type(i.mechanism)
                        .map_or_else(|| format!("type {}", i.mechanism), |m| m.name().to_string()),
                    iterations: i.iterations,
                })
                .collect(),
        })
        .collect())
}

/// `list` as text: one line per user and mechanism.
pub(crate) fn list_text(users: &[UserInfo]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .flat_map(|u| {
            u.credentials.iter().map(|c| {
                vec![
                    u.user.clone(),
                    c.mechanism.clone(),
                    c.iterations.to_string(),
                ]
            })
        })
        .collect();
    super::table(&["USER", "MECHANISM", "ITERATIONS"], &rows)
}
