//! The `kmirror` command: `run`, `validate` and `plan` a YAML mirror topology, `status` of
//! a running daemon, `offsets` translation and `failover` of consumer groups.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kmirror::config::{self, Connection};
use tokio_util::sync::CancellationToken;

/// `print!` for a command's output: a reader that went away (`kmirror status | head -1`)
/// ends the process quietly, with the shell's status for a SIGPIPE death (141), where
/// `print!` would panic.
macro_rules! out {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

/// `println!` through [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => { emit(format_args!("{}\n", format_args!($($arg)*))) };
}

mod plan;

/// Mirror Kafka topics between clusters, as a YAML topology describes.
#[derive(Debug, Parser)]
#[command(name = "kmirror", version, about)]
struct Cli {
    /// Log filter, e.g. info, debug, kmirror=debug: levels, or TARGET=LEVEL, comma-separated.
    #[arg(long, global = true, env = "KMIRROR_LOG", default_value = "info", value_parser = parse_log_filter)]
    log_level: String,
    /// Log lines as text for people, or as one JSON object per line for log shippers.
    #[arg(
        long,
        global = true,
        env = "KMIRROR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every flow of the topology until SIGTERM or SIGINT (a second signal exits at once).
    Run {
        /// The topology file.
        config: PathBuf,
        /// How long shutdown waits for in-flight produces and the final progress write (which
        /// gets 3 s more if the drain used it all) before exiting.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// Worker threads. Default: 1, the least CPU per GB (tokio's current-thread
        /// scheduler, no hand-offs between threads; about 1 GB/s of small batches per CPU
        /// second in benches/catchup); with embedded clusters, one per CPU, since their
        /// brokers run in this process too.
        #[arg(long, env = "KMIRROR_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Check the topology and print every error with file, line and field; exit 1 on any.
    Validate {
        /// The topology file.
        config: PathBuf,
    },
    /// Connect to the clusters and print, per flow, which source topics match, their target
    /// names, and what would be created or changed. Changes nothing.
    Plan {
        /// The topology file.
        config: PathBuf,
    },
    /// Translate a consumer group's committed source offsets (or one offset) through a
    /// flow's offset map: per partition the source offset, the target offset and the state
    /// (exact, gap, not yet mirrored, below the source log start). Reads the flow's progress
    /// from the target cluster; no daemon needed.
    Offsets {
        /// The topology file.
        config: PathBuf,
        #[arg(long)]
        flow: String,
        /// The consumer group whose committed source offsets to translate.
        #[arg(long, required_unless_present = "offset", conflicts_with = "offset")]
        group: Option<String>,
        /// With --partition and --offset: translate one source offset.
        #[arg(long, requires_all = ["partition", "offset"])]
        topic: Option<String>,
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// A record's source offset; a negative one is refused, as by `GET /offsets` (it
        /// is read as a value, not a flag, to say so).
        #[arg(long, requires = "topic", allow_negative_numbers = true)]
        offset: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a consumer group to a flow's target cluster at the positions it had on the
    /// source: waits until they are mirrored, refuses while the target group has active
    /// members, commits the translated offsets. Works while the source cluster is down,
    /// from the offsets the group sync kept.
    Failover {
        /// The topology file.
        config: PathBuf,
        #[arg(long)]
        flow: String,
        #[arg(long)]
        group: String,
        /// How long to wait for the group's positions to be mirrored.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
        /// Print what would be committed; commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// Commit even where the target group is ahead of the translated offsets (it has
        /// consumed on the target since, e.g. after an earlier failover): without it such
        /// a failover is refused, since its consumers would read those records again.
        #[arg(long)]
        allow_rewind: bool,
        /// With the source cluster down, where the group had read past what was mirrored
        /// (those records never reached the target), commit the end of what was mirrored
        /// there: without it such a failover is refused at once, saying how many records.
        #[arg(long)]
        to_mirrored_end: bool,
    },
    /// Delete what a flow stored for one source topic (positions, offset maps, topic id) from
    /// the progress topic on its target, so that its next start mirrors the topic as new:
    /// for a source topic deleted and re-created, which the daemon stops. Run it while no
    /// daemon runs the flow, then start one.
    Forget {
        /// The topology file.
        config: PathBuf,
        #[arg(long)]
        flow: String,
        /// The source topic.
        #[arg(long)]
        topic: String,
    },
    /// Print a running daemon's flows, lag, latency and errors (its `/status`) as a table.
    Status {
        /// A topology file whose `telemetry.listen` names the daemon's listener.
        config: Option<PathBuf>,
        /// The listener's address, e.g. http://127.0.0.1:9644 (the default without CONFIG).
        #[arg(long, conflicts_with = "config")]
        url: Option<String>,
        /// Print the JSON as it came.
        #[arg(long)]
        json: bool,
    },
}

/// A log filter whose every directive is a level or TARGET=LEVEL: `tracing` would take a
/// mistyped level ("warnn") as a target and log nothing at all, errors included.
fn parse_log_filter(s: &str) -> Result<String, String> {
    use tracing_subscriber::filter::LevelFilter;
    const LEVELS: &str = "trace, debug, info, warn, error, off";
    for directive in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if level.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "{directive:?}: {level:?} is not a level ({LEVELS}); use LEVEL or TARGET=LEVEL"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    config::units::parse_duration(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(kmirror_wire::log_writer::lossy_stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // The event's fields (message, flow, topic, ...) under `fields`: flattened, a field
        // named `target` (a flow's target cluster) would clash with the module's.
        LogFormat::Json => logs.json().init(),
    }
    let path = match &cli.command {
        Command::Run { config, .. }
        | Command::Validate { config }
        | Command::Plan { config }
        | Command::Offsets { config, .. }
        | Command::Forget { config, .. }
        | Command::Failover { config, .. } => config.clone(),
        Command::Status { config, url, json } => {
            return status(config.as_deref(), url.as_deref(), *json)
        }
    };
    let topology = match config::load(&path) {
        Ok(t) => t,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", path.display(), errors.errors.len());
            return ExitCode::FAILURE;
        }
    };
    let threads = match &cli.command {
        Command::Run { threads, .. } => {
            threads.map_or_else(|| default_threads(&topology), usize::from)
        }
        _ => 1,
    };
    // One thread runs tokio's current-thread scheduler: every task on the thread that
    // drives the runtime, with none of the multi-thread scheduler's cross-thread queues
    // and wake-ups (small/direct in benches/catchup: 10% less CPU than one worker of it).
    let built = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Validate { .. } => {
            outln!(
                "{}: valid ({} clusters, {} flows)",
                path.display(),
                topology.clusters.len(),
                topology.flows.len()
            );
            ExitCode::SUCCESS
        }
        Command::Plan { .. } => runtime.block_on(plan::plan(topology)),
        Command::Offsets {
            flow,
            group,
            topic,
            partition,
            offset,
            json,
            ..
        } => {
            use kmirror::offsets::cli::{self, Query};
            let query = match (group, topic, partition, offset) {
                (Some(group), ..) => Ok(Query::Group(group)),
                (None, Some(topic), Some(partition), Some(offset)) => {
                    Query::one(topic, partition, offset)
                }
                _ => unreachable!("clap requires --group or --topic, --partition and --offset"),
            };
            let translated = match query {
                Ok(query) => runtime.block_on(cli::offsets(&topology, &flow, query, json)),
                Err(refused) => Err(refused),
            };
            printed(translated, "offsets")
        }
        Command::Failover {
            flow,
            group,
            timeout,
            dry_run,
            allow_rewind,
            to_mirrored_end,
            ..
        } => {
            use kmirror::offsets::failover::{failover, Failover};
            let args = Failover {
                flow,
                group,
                timeout,
                dry_run,
                allow_rewind,
                to_mirrored_end,
            };
            printed(runtime.block_on(failover(&topology, &args)), "failover")
        }
        Command::Forget { flow, topic, .. } => printed(
            runtime.block_on(kmirror::mirror::progress::forget::command(
                &topology, &flow, &topic,
            )),
            "forget",
        ),
        Command::Status { .. } => unreachable!("answered before the topology is loaded"),
        Command::Run { drain_timeout, .. } => {
            let kept_bytes = kmirror::allocator::bytes_to_keep(
                threads,
                topology.flows.iter().map(|f| f.limits.max_in_flight_bytes),
            );
            let kept = kept_bytes.is_some_and(kmirror::allocator::keep_freed_memory);
            tracing::info!(threads, keeps_freed_memory = kept, "Starting.");
            runtime.block_on(run(topology, path, drain_timeout))
        }
    }
}

/// `kmirror status`: the listener from `--url`, the topology, or the quickstart's default.
fn status(config: Option<&std::path::Path>, url: Option<&str>, json: bool) -> ExitCode {
    use kmirror::telemetry::status_cli;
    let authority = match (config, url) {
        (_, Some(url)) => status_cli::authority(url),
        (Some(path), None) => match config::load(path) {
            Ok(t) => t
                .telemetry
                .and_then(|t| t.listen)
                .map(|l| l.to_string())
                .ok_or_else(|| {
                    format!(
                        "{}: no telemetry.listen, so no /status to read",
                        path.display()
                    )
                }),
            Err(errors) => Err(format!("{errors}")),
        },
        (None, None) => Ok("127.0.0.1:9644".to_string()),
    };
    let answer = authority.and_then(|a| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(status_cli::fetch(&a))
    });
    match answer {
        Ok(v) if json => {
            outln!("{v:#}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            out!("{}", status_cli::render(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kmirror status: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a command's output, or its error on stderr with a failure exit code.
fn printed(result: Result<String, String>, command: &str) -> ExitCode {
    match result {
        Ok(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kmirror {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Worker threads when `--threads` is not given: one, unless embedded brokers share the
/// process (then one per CPU).
fn default_threads(topology: &config::Topology) -> usize {
    let embedded = topology
        .clusters
        .values()
        .any(|c| matches!(c.connection, Connection::Embedded(_)));
    if embedded {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}

async fn run(topology: config::Topology, path: PathBuf, drain_timeout: Duration) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let stop = CancellationToken::new();
    let signals = stop.clone();
    // The handlers are installed here, before anything runs: the tasks below first run when
    // this one waits, which may be after READY=1, and a SIGTERM before that would kill the
    // process without draining or writing progress.
    let (hup, term, int) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(hup), Ok(term), Ok(int)) => (hup, term, int),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::error!(error = %e, "kmirror cannot run: signal handlers cannot be installed.");
            return ExitCode::FAILURE;
        }
    };
    // SIGHUP: re-read and validate the topology; the engine applies it, or keeps the
    // running one when it is invalid.
    let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut hup = hup;
        while hup.recv().await.is_some() {
            tracing::info!(config = %path.display(), "SIGHUP: reloading the topology.");
            kmirror::service::reloading();
            let reload = config::load(&path).map_err(|errors| errors.to_string());
            if reload_tx.send(reload).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let (mut term, mut int) = (term, int);
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("Stopping: draining in-flight batches and writing progress (a second signal exits at once).");
        signals.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::warn!(
            "Second signal: exiting now; unacknowledged batches will be mirrored again."
        );
        std::process::exit(130);
    });
    match kmirror::mirror::run(topology, stop, drain_timeout, reloads).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "kmirror cannot run.");
            ExitCode::FAILURE
        }
    }
}

/// Writes a command's output to stdout; see [`out!`].
fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("kmirror: cannot write the output: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--offset -5` is an offset, as `GET /offsets?offset=-5` takes it, not a flag.
    #[test]
    fn offsets_takes_a_negative_offset_as_its_value() {
        let cli = Cli::try_parse_from([
            "kmirror",
            "offsets",
            "c.yaml",
            "--flow",
            "f",
            "--topic",
            "t",
            "--partition",
            "0",
            "--offset",
            "-5",
        ])
        .expect("parsed");
        assert!(matches!(
            cli.command,
            Command::Offsets {
                offset: Some(-5),
                ..
            }
        ));
    }
}
