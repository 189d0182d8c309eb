//! The client verbs of the `shoal` binary (`topic`, `group`, `produce`, `consume`):
//! Kafka-protocol clients (produce and consume through librdkafka), so they
//! work against Kafka and Redpanda as well as Shoal. Every verb takes `--bootstrap-server`
//! and `--output text|json`. Text output follows Kafka's own tools (`kafka-topics.sh`,
//! `kafka-consumer-groups.sh`); JSON output is one document per command. `queue` is the
//! exception: AMQP queues through a Shoal broker's admin HTTP API (`--admin-api`).
//!
//! Errors are printed as one line saying what failed and what to do (the binary's `main`
//! prints the `anyhow` chain without a backtrace).

pub(crate) mod acl;
pub(crate) mod client;
pub(crate) mod consume;
pub(crate) mod group;
pub(crate) mod offsets;
pub(crate) mod produce;
pub(crate) mod queue;
pub(crate) mod quota;
pub(crate) mod topic;
pub(crate) mod user;

use clap::ValueEnum;

/// The `Authorization` header line (CRLF-terminated) for a Shoal admin HTTP API, from
/// `SHOAL_HTTP_TOKEN` (the broker's `http.auth.token`, needed while its security is on);
/// empty without it.
pub(crate) fn admin_auth_header() -> String {
    match std::env::var("SHOAL_HTTP_TOKEN") {
        Ok(t) if !t.trim().is_empty() => format!("Authorization: Bearer {}\r\n", t.trim()),
        _ => String::new(),
    }
}
use kafka_protocol::error::ParseResponseErrorCode;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Tables and lines as Kafka's tools print them.
    Text,
    /// JSON.
    Json,
}

/// Kafka's name of an error code, e.g. `GroupIdNotFound`; `None` for 0.
pub(crate) fn kafka_error(code: i16) -> Option<String> {
    code.err().map(|e| format!("{e:?}"))
}

/// Left-aligned columns, each as wide as its widest cell, separated by one space (the way
/// Kafka's tools print tables); the last column is not padded.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.len());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<w$} "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let t = table(
            &["GROUP", "TOPIC", "LAG"],
            &[vec!["g".into(), "orders".into(), "12".into()]],
        );
        assert_eq!(t, "GROUP TOPIC  LAG\ng     orders 12\n");
    }

    #[test]
    fn error_codes_have_kafkas_names() {
        assert_eq!(kafka_error(0), None);
        assert!(kafka_error(69).is_some_and(|s| s.starts_with("GroupIdNotFound")));
    }
}
