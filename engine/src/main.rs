//! The `genki` command: `genki serve` (the daemon), `genki call` (one
//! watch call, printed), `genki demo`, `genki backup`, `genki migrate`. See README.md for
//! every flag.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use genki_engine::cli::call::{place_call, simple_script, CallOptions};
use genki_engine::telephony::{net, prompts};
use genki_sip::Timers;

#[derive(Parser)]
#[command(
    name = "genki",
    version,
    about = "Automated welfare-check phone calls over SIP/RTP"
)]
struct Cli {
    /// Log as JSON lines instead of human text (logs go to stderr).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Place one call: play a prompt, gather digits, hang up, print the result.
    Call(Box<CallArgs>),
    /// Run the watch-call daemon: scheduler, dialer, calls, admin API.
    Serve(ServeArgs),
    /// Run the main job on embedded defaults: the daemon on a temporary data
    /// directory, simulated phones (genki-loadtest, separate processes) as the
    /// carrier, subscribers enrolled through the API, one round, its summary.
    Demo {
        /// How many subscribers to enrol and call.
        #[arg(long, default_value_t = 200)]
        subscribers: usize,
    },
    /// Back up a running daemon's database into a new directory, without
    /// stopping it (through its admin API; README "Backup and restore").
    Backup(BackupArgs),
    /// Apply PostgreSQL's schema migrations that are missing (`[storage]
    /// engine = "postgres"`; `genki serve` applies them at start too) and
    /// print the schema version.
    Migrate(MigrateArgs),
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// The daemon's configuration file (GENKI_* variables apply as for `serve`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only print the database's schema version and this genki's.
    #[arg(long)]
    status: bool,
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The new directory to write (it must not exist; its parent must).
    /// On the daemon's machine: the daemon writes it.
    dir: PathBuf,
    /// The daemon's admin API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// File holding the operator token (written by `genki serve`).
    #[arg(long, default_value = "./genki-data/operator-token")]
    token_file: PathBuf,
    /// The operator token itself (instead of --token-file).
    #[arg(long, env = "GENKI_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (every key has a default; GENKI_<SECTION>_<KEY> overrides).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
    /// Run the clock from this instant (RFC 3339) instead of now. For tests of
    /// calendars and windows; never in production.
    #[arg(long, hide = true)]
    clock_start: Option<String>,
    /// With --clock-start: the calendar runs this many times faster than
    /// real time (calls keep real time). For tests of days; never in production.
    #[arg(long, hide = true, requires = "clock_start", default_value_t = 1)]
    clock_rate: u64,
    /// Storage writes fail while this file exists (a failpoint for tests
    /// of a full or failing disk through the real binary); never in production.
    #[arg(long, hide = true)]
    fail_writes_while: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CallArgs {
    /// Who to call: a SIP URI, e.g. sip:1001@127.0.0.1:5080.
    #[arg(long)]
    to: String,
    /// Prompt to play (WAV). Default: the built-in Japanese greeting.
    #[arg(long)]
    prompt: Option<PathBuf>,
    /// Name of a built-in prompt to play instead of --prompt
    /// (greeting, thanks, will_contact, invalid, goodbye_no_input, watcher_alert, all_clear).
    #[arg(long, conflicts_with = "prompt")]
    builtin_prompt: Option<String>,
    /// How many digits to gather (0: play the prompt once and hang up).
    #[arg(long, default_value_t = 1)]
    gather: usize,
    /// Outbound proxy / trunk every request is sent to, e.g. sip:trunk.example:5060.
    #[arg(long)]
    proxy: Option<String>,
    /// Digest username for 401/407 challenges.
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Digest password (or set GENKI_SIP_PASSWORD).
    #[arg(long, env = "GENKI_SIP_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Our From URI. Default: sip:genki@<local address>.
    #[arg(long)]
    from: Option<String>,
    /// Local SIP address to bind (UDP).
    #[arg(long, default_value = "127.0.0.1:5060")]
    bind: SocketAddr,
    /// RTP port range (even ports are used).
    #[arg(long, default_value = "20000-20999")]
    rtp_ports: String,
    /// Seconds to let the phone ring before CANCEL.
    #[arg(long, default_value_t = 30)]
    ring_timeout: u64,
    /// Seconds to wait for a key after each play of the prompt (1–120).
    #[arg(long, default_value_t = 8)]
    gather_timeout: u64,
    /// Times the prompt is played while waiting for a key (1–10).
    #[arg(long, default_value_t = 2)]
    plays: u32,
    /// Run this watch script (JSON, as `PUT /v1/tenants/{id}/script` takes;
    /// the built-in prompts, and --prompt as "prompt") instead of the
    /// script the flags make.
    #[arg(long, conflicts_with_all = ["gather", "plays"])]
    script: Option<PathBuf>,
    /// Seconds without RTP (before the first packet or between two) that end the call.
    #[arg(long, default_value_t = 5)]
    media_timeout: u64,
    /// Hard limit on the call, seconds.
    #[arg(long, default_value_t = 300)]
    max_call: u64,
    /// Play the prompt at the answer instead of listening first (for the
    /// far end to be quiet, through a call recorder's ringback; README
    /// "Who answered").
    #[arg(long)]
    prompt_at_answer: bool,
    /// Session interval asked for (RFC 4028 Session-Expires, seconds; 0
    /// asks for none). What the callee grants is honoured either way.
    #[arg(long, default_value_t = 1800)]
    session_expires: u32,
    /// Which RTP sources the call accepts (README "Media").
    #[arg(long, value_enum, default_value = "host")]
    rtp_latching: genki_engine::config::RtpLatching,
    /// SIP timer T1 in milliseconds (RFC 3261 §17.1.1.1; Timer B is 64·T1). Lower it only for tests.
    #[arg(long, default_value_t = 500)]
    sip_t1_ms: u64,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GENKI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

async fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let prompt = match (&args.prompt, &args.builtin_prompt) {
        (Some(p), _) => Some(prompts::load_prompt(p)?),
        (None, Some(name)) => Some(prompts::default_prompt(name)?),
        (None, None) => None,
    };
    if args.sip_t1_ms == 0 || args.sip_t1_ms > 10_000 {
        anyhow::bail!("--sip-t1-ms must be between 1 and 10000");
    }
    if args.session_expires != 0 && !(30..=86_400).contains(&args.session_expires) {
        anyhow::bail!("--session-expires must be 0 or 30–86400");
    }
    if args.media_timeout == 0 || args.max_call == 0 {
        anyhow::bail!("--media-timeout and --max-call must be at least 1 second");
    }
    let mut call_prompts = HashMap::new();
    let script = match &args.script {
        Some(path) => {
            for (name, _) in prompts::DEFAULTS {
                call_prompts.insert(name.to_string(), prompts::default_prompt(name)?);
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --script {}", path.display()))?;
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                anyhow::anyhow!("--script {}: {} at {}", path.display(), e.inner(), e.path())
            })?
        }
        None => simple_script(args.gather, args.gather_timeout, args.plays),
    };
    let prompt = match prompt {
        Some(p) => p,
        None => prompts::default_prompt("greeting")?,
    };
    call_prompts.insert("prompt".to_string(), prompt);
    let t1 = Duration::from_millis(args.sip_t1_ms);
    let opts = CallOptions {
        to: args.to,
        proxy: args.proxy,
        from: args.from,
        credentials: args.user.zip(args.password),
        bind: args.bind,
        rtp_ports: net::parse_port_range(&args.rtp_ports)?,
        ring_timeout: Duration::from_secs(args.ring_timeout),
        script,
        prompts: call_prompts,
        timers: Timers {
            t1,
            t2: Duration::from_secs(4).max(t1),
            t4: Duration::from_secs(5),
            reliable: false,
        },
        media_timeout: Duration::from_secs(args.media_timeout),
        max_call: Duration::from_secs(args.max_call),
        session_expires: args.session_expires,
        latching: args.rtp_latching.into(),
        answer_wait: !args.prompt_at_answer,
    };
    let report = place_call(opts)
        .await
        .context("the call could not be placed")?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.summary());
    }
    if report.not_placed() {
        eprintln!(
            "genki: the call could not be placed: {} (no response from the first hop)",
            report.end_reason
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(n: usize) -> anyhow::Result<ExitCode> {
    if n == 0 || n > 5000 {
        anyhow::bail!("--subscribers must be 1–5000");
    }
    let s = genki_engine::cli::demo::run(n).await?;
    let o = &s["outcomes"];
    println!(
        "\nround of {} ({} checks):",
        s["date"].as_str().unwrap_or(""),
        s["total"]
    );
    println!("  {:<14} {:>6}", "outcome", "checks");
    for k in ["fine", "needs_contact", "no_response", "missed"] {
        println!("  {:<14} {:>6}", k, o[k]);
    }
    let not_fine = s["not_yet_fine"].as_array().map(|a| a.len()).unwrap_or(0);
    let a = &s["alerts"];
    println!(
        "  {not_fine} people were not fine or not reached: {} alert cases ({} urgent), all taken by {}",
        a["cases"],
        a["urgent"],
        a["taken_by"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("cannot make {} absolute", args.dir.display()))?;
    let token = match args.token {
        Some(t) => t,
        None => std::fs::read_to_string(&args.token_file)
            .with_context(|| {
                format!(
                    "cannot read the operator token from {} (give --token-file or GENKI_TOKEN)",
                    args.token_file.display()
                )
            })?
            .trim()
            .to_string(),
    };
    let url = format!("{}/v1/backup", args.api.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"dir": dir}).to_string())
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .with_context(|| format!("cannot reach the daemon at {url}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "the daemon refused the backup ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    println!(
        "backup written to {} in {} ms (restore: start genki with storage.path = that directory)",
        body["dir"].as_str().unwrap_or(""),
        body["took_ms"]
    );
    Ok(ExitCode::SUCCESS)
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("GENKI_"))
        .collect();
    let cfg = genki_engine::config::Config::load(args.config.as_deref(), &env)?;
    if args.print_config {
        print!("{}", cfg.printable());
        return Ok(ExitCode::SUCCESS);
    }
    let clock_start = args
        .clock_start
        .as_deref()
        .map(|s| {
            s.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond() as u64)
                .map_err(|e| anyhow::anyhow!("--clock-start {s:?}: {e}"))
        })
        .transpose()?;
    let hooks = genki_engine::cli::serve::Hooks {
        clock_start_ms: clock_start,
        clock_rate: args.clock_rate,
        fail_writes_while: args.fail_writes_while,
    };
    multi_thread()?.block_on(genki_engine::cli::serve::serve(cfg, hooks))?;
    Ok(ExitCode::SUCCESS)
}

fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    use genki_engine::config::{Config, StorageEngine};
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("GENKI_"))
        .collect();
    let cfg = Config::load(args.config.as_deref(), &env)?;
    if cfg.storage.engine != StorageEngine::Postgres {
        anyhow::bail!(
            "[storage] engine is \"rocksdb\": its column families are made by `genki serve` itself; `genki migrate` is for engine = \"postgres\""
        );
    }
    let opts = genki_pg::PgOptions {
        url: cfg.storage.postgres_url.clone(),
        pool_size: 1,
        node: format!("{} (migrate)", cfg.node_name()),
        clock: genki_pg::wall_clock(),
    };
    let db = genki_pg::PgStore::connect(&opts)?;
    let latest = genki_pg::schema::latest();
    if args.status {
        println!(
            "database schema version {} (this genki: {latest})",
            db.schema_version()?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let applied = db.migrate()?;
    if applied.is_empty() {
        println!("schema up to date (version {latest})");
    } else {
        for v in &applied {
            let name = genki_pg::schema::MIGRATIONS
                .iter()
                .find(|m| m.version == *v)
                .map(|m| m.name)
                .unwrap_or("");
            println!("applied migration {v}: {name}");
        }
        println!("schema version {latest}");
    }
    Ok(ExitCode::SUCCESS)
}

fn multi_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("genki: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_json);
    match cli.command {
        Command::Serve(args) => report(serve(args)),
        Command::Migrate(args) => report(migrate(args)),
        Command::Demo { subscribers } => {
            report(multi_thread().and_then(|rt| rt.block_on(demo(subscribers))))
        }
        Command::Backup(args) => report(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(backup(args))),
        ),
        Command::Call(args) => report(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(call(*args))),
        ),
    }
}
