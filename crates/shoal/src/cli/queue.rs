//! `shoal queue list|declare|purge|delete`: AMQP queues through a Shoal broker's admin HTTP
//! API (`--admin-api`, default `http://127.0.0.1:8080`, the broker's `--http-addr`), as
//! `rabbitmqadmin` does through RabbitMQ's management API. The routes and JSON shapes are
//! `shoal_amqp::admin`'s.
//!
//! `list` prints one row per queue: NAME, READY, UNACKED, CONSUMERS, PUBLISH/S, DELIVER/S,
//! ACK/S (messages per second over the last 5 s) and TOPIC (the Kafka topic that stores
//! it); `--output json` prints the API's array as it is.
//!
//! Errors: the admin API cannot be reached (the message names `--admin-api`), or it answers
//! with an error (its `error` and `message`, e.g. `NOT_FOUND - no queue 'q' in vhost '/'`).

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{table, OutputFormat};

/// The largest admin API response read (bytes).
const MAX_RESPONSE: u64 = 64 << 20;

#[derive(clap::Args, Debug)]
pub(crate) struct QueueArgs {
    /// A Shoal broker's admin HTTP API (its `--http-addr`): `http://HOST:PORT` or
    /// `HOST:PORT`. A broker with security on needs its `http.auth.token` in
    /// `SHOAL_HTTP_TOKEN`.
    #[arg(
        long,
        env = "SHOAL_ADMIN_API",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    admin_api: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    output: OutputFormat,
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(clap::Subcommand, Debug)]
enum QueueCommand {
    /// Queues with their message counts, consumers, rates and topic.
    List,
    /// Declare a queue (as `queue.declare`; nothing changes if an equivalent one exists).
    Declare {
        name: String,
        /// Whether the queue survives a restart.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        durable: bool,
        /// Delete the queue when its last consumer goes.
        #[arg(long)]
        auto_delete: bool,
        /// A queue argument, e.g. `--argument x-message-ttl=60000` (the value is read as
        /// JSON when it parses, else as a string; repeatable).
        #[arg(long = "argument", value_name = "KEY=VALUE")]
        arguments: Vec<String>,
    },
    /// Drop every ready message of a queue (unacknowledged deliveries stay).
    Purge { name: String },
    /// Delete a queue, its bindings and its messages (its consumers are cancelled).
    Delete {
        name: String,
        /// Only if it has no consumers.
        #[arg(long)]
        if_unused: bool,
        /// Only if it holds no messages.
        #[arg(long)]
        if_empty: bool,
    },
}

/// Runs a `shoal queue` command.
pub(crate) async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let api = AdminApi::parse(&args.admin_api)?;
    match args.command {
        QueueCommand::List => {
            let (_, v) = api.call("GET", "/api/v1/queues", None).await?;
            match args.output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                OutputFormat::Text => print!("{}", list_table(&v)),
            }
        }
        QueueCommand::Declare {
            name,
            durable,
            auto_delete,
            arguments,
        } => {
            let mut args_json = serde_json::Map::new();
            for kv in &arguments {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--argument expects KEY=VALUE, got `{kv}`"))?;
                let value =
                    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
                args_json.insert(k.to_string(), value);
            }
            let body = json!({
                "durable": durable,
                "auto_delete": auto_delete,
                "arguments": args_json,
            });
            let path = format!("/api/v1/queues/{}", segment(&name));
            let (status, _) = api
                .call("PUT", &path, Some(&body))
                .await
                .with_context(|| format!("cannot declare queue '{name}'"))?;
            let created = status == 201;
            match args.output {
                OutputFormat::Json => println!("{}", json!({"queue": name, "created": created})),
                OutputFormat::Text if created => println!("Queue '{name}' declared."),
                OutputFormat::Text => println!("Queue '{name}' already exists."),
            }
        }
        QueueCommand::Purge { name } => {
            let path = format!("/api/v1/queues/{}/contents", segment(&name));
            let (_, v) = api
                .call("DELETE", &path, None)
                .await
                .with_context(|| format!("cannot purge queue '{name}'"))?;
            match args.output {
                OutputFormat::Json => println!("{v}"),
                OutputFormat::Text => println!(
                    "Purged {} messages from queue '{name}'.",
                    v["message_count"].as_u64().unwrap_or(0)
                ),
            }
        }
        QueueCommand::Delete {
            name,
            if_unused,
            if_empty,
        } => {
            let mut path = format!("/api/v1/queues/{}", segment(&name));
            let mut sep = '?';
            for (flag, on) in [("if-unused", if_unused), ("if-empty", if_empty)] {
                if on {
                    path.push_str(&format!("{sep}{flag}=true"));
                    sep = '&';
                }
            }
            let (_, v) = api
                .call("DELETE", &path, None)
                .await
                .with_context(|| format!("cannot delete queue '{name}'"))?;
            match args.output {
                OutputFormat::Json => println!("{v}"),
                OutputFormat::Text => println!(
                    "Deleted queue '{name}' ({} ready messages).",
                    v["message_count"].as_u64().unwrap_or(0)
                ),
            }
        }
    }
    Ok(())
}

/// The `list` table (see the module docs).
fn list_table(v: &Value) -> String {
    let rate = |q: &Value, what: &str| {
        format!(
            "{:.1}",
            q["message_stats"][format!("{what}_details")]["rate"]
                .as_f64()
                .unwrap_or(0.0)
        )
    };
    let count = |q: &Value, what: &str| q[what].as_u64().unwrap_or(0).to_string();
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            vec![
                q["name"].as_str().unwrap_or("").to_string(),
                count(q, "messages_ready"),
                count(q, "messages_unacknowledged"),
                count(q, "consumers"),
                rate(q, "publish"),
                rate(q, "deliver_get"),
                rate(q, "ack"),
                q["topic"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "READY",
            "UNACKED",
            "CONSUMERS",
            "PUBLISH/S",
            "DELIVER/S",
            "ACK/S",
            "TOPIC",
        ],
        &rows,
    )
}

/// `s` percent-encoded as one URL path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where the admin API is (`host:port`).
struct AdminApi {
    addr: String,
}

impl AdminApi {
    /// Reads `--admin-api`: `http://HOST[:PORT][/]` (port 80 by default) or `HOST:PORT`.
    /// Errors: `https://` (not served) or an empty address.
    fn parse(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("https://") {
            bail!("--admin-api: the admin API is plain HTTP; use http://{rest}");
        }
        let rest = s.strip_prefix("http://").unwrap_or(s);
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() {
            bail!("--admin-api: no address in `{s}`");
        }
        let addr = if host.contains(':') || !s.starts_with("http://") {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Self { addr })
    }

    /// Sends one request (`body` as JSON) and returns the status and the JSON body (null when
    /// empty). Errors: connection failures and timeouts (10 s), a malformed response, a
    /// status other than 2xx (with the API's `error - message`).
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let addr = &self.addr;
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        req.push_str(&super::admin_auth_header());
        if body.is_some() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!(
            "Content-Length: {}\r\n\r\n{payload}",
            payload.len()
        ));
        let io = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.write_all(req.as_bytes()).await?;
            let mut raw = Vec::new();
            stream.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
            Ok::<_, std::io::Error>(raw)
        };
        let raw = tokio::time::timeout(Duration::from_secs(10), io)
            .await
            .map_err(|_| anyhow!("the admin API at {addr} did not answer within 10 s"))?
            .with_context(|| {
                format!("cannot reach the admin API at {addr} (is the broker running? check --admin-api)")
            })?;
        let (status, body) = parse_response(&raw)
            .with_context(|| format!("{method} {path} at {addr}: malformed HTTP response"))?;
        let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .with_context(|| format!("{method} {path} at {addr} did not answer JSON"))?
        };
        if !(200..300).contains(&status) {
            match (v["error"].as_str(), v["message"].as_str()) {
                (_, Some(m)) => bail!("{m} (HTTP {status})"),
                (Some(e), None) => bail!("{e} (HTTP {status})"),
                _ => bail!("HTTP {status} for {method} {path} (is {addr} a Shoal admin API?)"),
            }
        }
        Ok((status, v))
    }
}

/// The status and body of an HTTP/1.1 response read to its end (a `chunked` body is
/// decoded). Errors: no status line or header end, a bad chunk size.
fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers"))?;
    let head = String::from_utf8_lossy(raw.get(..end).unwrap_or_default());
    let body = raw.get(end + 4..).unwrap_or_default();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status"))?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked"
        })
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk"))?;
        let size_text = String::from_utf8_lossy(rest.get(..line_end).unwrap_or_default());
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| anyhow!("bad chunk size `{size_text}`"))?;
        let data = rest
            .get(line_end + 2..line_end + 2 + size)
            .ok_or_else(|| anyhow!("truncated chunk"))?;
        if size == 0 {
            break;
        }
        out.extend_from_slice(data);
        rest = rest.get(line_end + 4 + size..).unwrap_or_default();
    }
    Ok((status, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_api_accepts_urls_and_host_port() {
        let a = |s: &str| AdminApi::parse(s).map(|a| a.addr).ok();
        assert_eq!(
            a("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(a("http://h:9/").as_deref(), Some("h:9"));
        assert_eq!(a("h:9").as_deref(), Some("h:9"));
        assert_eq!(a("http://h").as_deref(), Some("h:80"));
        assert!(a("https://h:1").is_none());
    }

    #[test]
    fn responses_are_read_plain_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]";
        assert_eq!(parse_response(plain).ok(), Some((200, b"[]".to_vec())));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).ok(),
            Some((404, b"{\"a\":1}".to_vec()))
        );
    }

    #[test]
    fn list_shows_counts_rates_and_topic() {
        let v = json!([{
            "name": "q", "messages_ready": 3, "messages_unacknowledged": 2, "consumers": 1,
            "topic": "q",
            "message_stats": {"publish_details": {"rate": 1.5},
                              "deliver_get_details": {"rate": 0.5}, "ack_details": {"rate": 0}},
        }]);
        let t = list_table(&v);
        let row = t.lines().nth(1).unwrap_or("");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["q", "3", "2", "1", "1.5", "0.5", "0.0", "q"]
        );
    }
}
