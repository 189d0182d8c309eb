//! The `shoal` binary. `shoal serve` runs the broker (embedded local log under `./data`,
//! Kafka protocol on 127.0.0.1:9092). Every flag has a `SHOAL_*` environment variable, and any
//! broker setting can be given by its Kafka name with `--set key=value` or in a TOML file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use shoal_broker::BrokerConfig;

#[global_allocator]
static GLOBAL: shoal_broker::alloc_guard::Guard = shoal_broker::alloc_guard::Guard;

#[derive(Parser, Debug)]
#[command(
    name = "shoal",
    version,
    about = "A Kafka-compatible streaming broker built around consumer groups"
)]
struct Cli {
    /// Log output format.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "SHOAL_LOG_FORMAT",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Kafka listener address.
    #[arg(long, env = "SHOAL_KAFKA_ADDR")]
    kafka_addr: Option<SocketAddr>,
    /// HTTP address (admin API, metrics).
    #[arg(long, env = "SHOAL_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Data directory.
    #[arg(long, env = "SHOAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML file of broker settings under their Kafka names.
    #[arg(long, env = "SHOAL_CONFIG")]
    config: Option<PathBuf>,
    /// A broker setting by its Kafka name, e.g. `--set num.partitions=6` (repeatable).
    #[arg(
        long = "set",
        value_name = "KEY=VALUE",
        env = "SHOAL_SET",
        value_delimiter = ','
    )]
    set: Vec<String>,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn build_config(args: &ServeArgs) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        config.apply_toml(&text, &path.display().to_string())?;
    }
    for pair in &args.set {
        config.set_pair(pair)?;
    }
    if let Some(a) = args.kafka_addr {
        config.kafka_addr = a;
    }
    if let Some(a) = args.http_addr {
        config.http_addr = a;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    Ok(config)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = build_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received");
            let _ = tx.send(true);
        });
        shoal_broker::run(config, rx, |addr, http| {
            // Machine-readable readiness lines (tests and scripts wait for them); the http
            // line comes first so a reader of the kafka line already knows both.
            println!("shoal: http listening on {http}");
            println!("shoal: kafka listening on {addr}");
        })
        .await
    })
}
