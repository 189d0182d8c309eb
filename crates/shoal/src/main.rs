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
    /// Benchmarks over the Kafka protocol (work against any Kafka-compatible broker).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Time from N members subscribing until every partition is owned once and consumed,
    /// per group protocol (see docs/benchmarks.md).
    Convergence(ConvergenceArgs),
}

#[derive(clap::Args, Debug)]
struct ConvergenceArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Group protocols to measure (`classic`, `consumer`).
    #[arg(long, value_delimiter = ',', default_value = "classic,consumer")]
    protocol: Vec<String>,
    /// Group sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "2,10,50")]
    members: Vec<usize>,
    /// Partitions of each run's topic (at least the largest group size).
    #[arg(long, default_value_t = 60)]
    partitions: i32,
    /// Runs per (protocol, members); the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A client setting for every member, e.g. `--client heartbeat.interval.ms=100`.
    #[arg(long = "client", value_name = "KEY=VALUE")]
    client: Vec<String>,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// `text` (a table) or `json` (one object per line).
    #[arg(long, default_value = "text")]
    output: String,
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
        Command::Bench(BenchCommand::Convergence(args)) => convergence(args),
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

fn convergence(args: ConvergenceArgs) -> anyhow::Result<()> {
    let client_config: Vec<(String, String)> = args
        .client
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--client expects key=value, got `{kv}`"))
        })
        .collect::<anyhow::Result<_>>()?;
    if args.output == "text" {
        println!("protocol  members  partitions  runs  median_ms  min_ms  max_ms");
    }
    for protocol in &args.protocol {
        for &members in &args.members {
            let opts = shoal_bench::convergence::Options {
                bootstrap: args.bootstrap_server.clone(),
                protocol: protocol.clone(),
                members,
                partitions: args.partitions,
                client_config: client_config.clone(),
                timeout: std::time::Duration::from_secs(args.timeout_s),
            };
            let mut times = Vec::with_capacity(args.runs);
            for _ in 0..args.runs.max(1) {
                let outcome = shoal_bench::convergence::run(&opts)?;
                if args.output == "json" {
                    println!("{}", serde_json::to_string(&outcome)?);
                }
                times.push(outcome.converged_ms);
            }
            times.sort_by(f64::total_cmp);
            if args.output == "text" {
                let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
                let min = times.first().copied().unwrap_or(0.0);
                let max = times.last().copied().unwrap_or(0.0);
                println!(
                    "{protocol:<9} {members:>7}  {:>10}  {:>4}  {median:>9.0}  {min:>6.0}  {max:>6.0}",
                    args.partitions,
                    times.len()
                );
            }
        }
    }
    Ok(())
}
