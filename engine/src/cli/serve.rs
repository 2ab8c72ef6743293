//! `genki serve`: wire configuration, storage, the SIP endpoint, the
//! service loop and the admin API together; stop cleanly on SIGTERM/SIGINT.
//!
//! Depends on: every other engine module, tokio, axum.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use genki_sip::stream::Transport;
use genki_sip::Timers;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::alerts::cases::{Alerts, RetryRule};
use crate::alerts::notify::{Notifier, Smtp};
use crate::api::{self, Api};
use crate::checks::service::{self, Service};
use crate::checks::trunk::Circuit;
use crate::clock::{Clock, ShiftedClock, SystemClock};
use crate::config::Config;
use crate::config::{MediaPriority, StorageEngine};
use crate::metrics::Metrics;
use crate::notices::Notices;
use crate::telephony::call::CallSetup;
use crate::telephony::context::CallContext;
use crate::telephony::endpoint::Endpoint;
use crate::telephony::media::{MediaOptions, MediaRuntime, MediaScheduling, MediaTimeout};
use crate::telephony::{net, prompts};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the data directory {path}: {error}")]
    DataDir { path: String, error: std::io::Error },
    #[error(transparent)]
    Store(#[from] genki_store::StoreError),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error("cannot listen for the API on {addr}: {error}")]
    ApiBind {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("operator token file {path}: {error}")]
    Token { path: String, error: std::io::Error },
    #[error(transparent)]
    Prompt(#[from] prompts::PromptError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Media(#[from] crate::telephony::media::MediaError),
    #[error("cannot build the HTTP client for webhooks: {0}")]
    Http(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretError),
}

/// Read the operator token file, creating it (mode 0600) with a new token when missing.
fn operator_token(dir: &Path) -> Result<String, ServeError> {
    let path: PathBuf = dir.join("operator-token");
    let err = |error| ServeError::Token {
        path: path.display().to_string(),
        error,
    };
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let token = format!("gk_op_{:032x}", rand::random::<u128>());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(&path).map_err(err)?;
    f.write_all(token.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    info!(path = %path.display(), "operator token generated");
    Ok(token)
}

/// Seal watchers' webhook secrets stored in the clear by an older genki
/// (once; later starts find none).
fn seal_plain_secrets(
    store: &dyn genki_store::Storage,
    secrets: &crate::secrets::SecretBox,
) -> Result<(), ServeError> {
    let mut sealed = 0;
    for t in crate::rt::blocking(|| store.tenants())? {
        for mut w in crate::rt::blocking(|| store.watchers_of(t.id))? {
            if let Some(s) = &w.webhook_secret {
                if !crate::secrets::SecretBox::is_sealed(s) {
                    w.webhook_secret = Some(secrets.seal(s));
                    crate::rt::blocking(|| store.put_watcher(w))?;
                    sealed += 1;
                }
            }
        }
    }
    if sealed > 0 {
        info!(sealed, "watchers' webhook secrets sealed at rest");
    }
    Ok(())
}

/// What tests may change in a daemon started through the real binary
/// (hidden flags of `genki serve`; never used in production).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Run the clock from this unix ms instead of now.
    pub clock_start_ms: Option<u64>,
    /// With `clock_start_ms`: calendar milliseconds per real one (0 or 1: real speed).
    pub clock_rate: u64,
    /// Storage writes fail while this file exists (a full or failing disk).
    pub fail_writes_while: Option<PathBuf>,
}

/// Run the daemon until SIGTERM/SIGINT.
pub async fn serve(cfg: Config, hooks: Hooks) -> Result<(), ServeError> {
    serve_until(cfg, hooks, wait_for_signal()).await
}

/// The sockets the daemon serves on, bound by its caller: `genki serve`
/// binds the configured addresses; a test binds port 0.
pub struct Sockets {
    /// The SIP socket every call's signalling uses.
    pub sip: tokio::net::UdpSocket,
    /// The admin API's listener.
    pub api: tokio::net::TcpListener,
}

/// Run the daemon until `stop` completes (a signal, or the demo's end),
/// on the configured addresses.
pub async fn serve_until(
    cfg: Config,
    hooks: Hooks,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let sip = net::bind_udp(cfg.sip.bind).await?;
    let api = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .map_err(|error| ServeError::ApiBind {
            addr: cfg.api.listen,
            error,
        })?;
    let clock: Arc<dyn Clock> = match hooks.clock_start_ms {
        Some(ms) => Arc::new(ShiftedClock::fast(ms, hooks.clock_rate)),
        None => Arc::new(SystemClock),
    };
    run(
        cfg,
        Sockets { sip, api },
        stop,
        clock,
        hooks.fail_writes_while,
    )
    .await
}

/// The daemon on sockets it is given, with a given clock, until `stop`
/// completes (in the style of mini-redis's `server::run`): everything
/// `genki serve` does, startable in-process on port 0 by a test.
pub async fn run(
    cfg: Config,
    sockets: Sockets,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
    fail_writes_while: Option<PathBuf>,
) -> Result<(), ServeError> {
    let Sockets { sip, api: listener } = sockets;
    let api_addr = listener.local_addr()?;
    std::fs::create_dir_all(&cfg.storage.path).map_err(|error| ServeError::DataDir {
        path: cfg.storage.path.display().to_string(),
        error,
    })?;
    let node = cfg.node_name();
    let shared = cfg.storage.engine == StorageEngine::Postgres;
    let store: Arc<dyn genki_store::Storage> = if shared {
        let opts = genki_pg::PgOptions {
            url: cfg.storage.postgres_url.clone(),
            pool_size: cfg.storage.pool_size as usize,
            node: node.clone(),
            clock: {
                let clock = clock.clone();
                Arc::new(move || clock.now_ms())
            },
        };
        let s = crate::rt::blocking(|| genki_pg::PgStore::open(&opts))?;
        crate::rt::blocking(|| s.hold_node_name())?;
        info!(node = %node, database = %genki_pg::redact(&opts.url), "storage: PostgreSQL, shared with the other nodes");
        Arc::new(s)
    } else {
        let db = cfg.storage.path.join("db");
        Arc::new(match &fail_writes_while {
            Some(trigger) => {
                warn!(trigger = %trigger.display(), "test failpoint: storage writes fail while this file exists");
                genki_storage::open_failing_while(&db, trigger)?
            }
            None => genki_storage::open(&db)?,
        })
    };
    let token = if cfg.api.operator_token.is_empty() {
        operator_token(&cfg.storage.path)?
    } else {
        cfg.api.operator_token.clone()
    };
    let metrics = Arc::new(Metrics::default());

    // A trunk given as a domain is located by NAPTR/SRV (RFC 3263) for
    // every call; its first target now is where registration goes and
    // what the other uses of "the proxy" see.
    let route = if cfg.trunk.proxy.is_empty() {
        None
    } else {
        let servers = cfg.dns_servers().map_err(ServeError::Config)?;
        crate::telephony::dns::TrunkRoute::new(&cfg.trunk.proxy, &servers)
            .map_err(|e| ServeError::Config(format!("trunk.proxy: {e}")))?
            .map(Arc::new)
    };
    let mut trunk_ips: Vec<std::net::IpAddr> = Vec::new();
    let mut trunk_targets: Vec<std::net::SocketAddr> = Vec::new();
    let proxy = match (&route, cfg.trunk.proxy.is_empty()) {
        (_, true) => None,
        (Some(r), false) => {
            let targets = r
                .targets()
                .await
                .map_err(|e| ServeError::Config(format!("trunk.proxy: {e}")))?;
            trunk_ips.extend(targets.iter().map(|t| t.addr.ip()));
            trunk_targets.extend(targets.iter().map(|t| t.addr));
            info!(targets = ?targets.iter().map(|t| t.addr).collect::<Vec<_>>(), "the trunk's targets (RFC 3263)");
            targets.first().map(|t| t.addr)
        }
        (None, false) => Some(net::resolve_uri(&cfg.trunk.proxy).await?),
    };
    trunk_ips.extend(proxy.map(|p| p.ip()));
    if trunk_targets.is_empty() {
        trunk_targets.extend(proxy);
    }
    let bound = sip.local_addr()?;
    let ip = if bound.ip().is_unspecified() {
        net::local_ip_for(proxy.unwrap_or_else(|| "127.0.0.1:5060".parse().expect("literal")))
            .unwrap_or(bound.ip())
    } else {
        bound.ip()
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let t1 = Duration::from_millis(cfg.sip.t1_ms);
    let timers = Timers {
        t1,
        t2: Duration::from_secs(4).max(t1),
        t4: Duration::from_secs(5),
        reliable: false,
    };
    // The trunk's transport, from its proxy URI (`;transport=tcp`).
    let trunk_transport = Transport::of_uri(&cfg.trunk.proxy);
    let (inbound_tx, inbound_rx) = tokio::sync::mpsc::unbounded_channel();
    let policy = crate::telephony::endpoint::SipPolicy {
        inbound: (cfg.sip.inbound_max > 0).then_some((inbound_tx, cfg.sip.inbound_max as usize)),
        allow: cfg.sip_allow().map_err(ServeError::Config)?,
        trusted: trunk_ips.clone(),
        stranger_rate: cfg.sip.stranger_rate as u32,
        listen_tcp: trunk_transport == Transport::Tcp,
        keepalive: (cfg.trunk.keepalive_s > 0 && !trunk_targets.is_empty()).then(|| {
            genki_sip::keepalive::ProbeConfig {
                targets: trunk_targets.clone(),
                interval: Duration::from_secs(cfg.trunk.keepalive_s),
                from: format!("sip:genki@{ip}"),
                local_addr: std::net::SocketAddr::new(ip, bound.port()),
                transport: trunk_transport,
                timers,
                user_agent: concat!("genki/", env!("CARGO_PKG_VERSION")).to_string(),
                tag: format!("{:08x}", rand::random::<u32>()),
            }
        }),
        tls: if trunk_transport == Transport::Tls {
            let name = if cfg.trunk.domain.is_empty() {
                genki_sip::message::uri_host_port(&cfg.trunk.proxy)
                    .map(|(h, _)| h)
                    .unwrap_or_default()
            } else {
                cfg.trunk.domain.clone()
            };
            let path = |s: &String| (!s.is_empty()).then(|| std::path::PathBuf::from(s));
            let (ca, cert, key) = (
                path(&cfg.trunk.tls_ca),
                path(&cfg.trunk.tls_cert),
                path(&cfg.trunk.tls_key),
            );
            let client = cert.as_deref().zip(key.as_deref());
            Some(Arc::new(
                crate::telephony::streams::TlsClient::new(&name, ca.as_deref(), client)
                    .map_err(|e| ServeError::Config(format!("trunk TLS: {e}")))?,
            ))
        } else {
            None
        },
    };
    let local = std::net::SocketAddr::new(ip, bound.port());
    let (notices, notices_rx) = Notices::channel();
    let notices = Arc::new(notices);
    // The trunk's address-of-record (RFC 3261 §10.2): what genki registers,
    // and its default From, so the carrier finds the caller registered.
    let aor = format!("sip:{}@{}", cfg.trunk.user, cfg.trunk.domain);
    let register = if cfg.trunk.register {
        let next_hop = match proxy {
            Some(p) => p,
            None => net::resolve_uri(&format!("sip:{}", cfg.trunk.domain)).await?,
        };
        Some(crate::telephony::endpoint::RegisterWith {
            cfg: genki_sip::register::RegisterConfig {
                registrar: format!("sip:{}", cfg.trunk.domain),
                aor: aor.clone(),
                contact: format!(
                    "sip:{}@{local}{}",
                    cfg.trunk.user,
                    trunk_transport.uri_param()
                ),
                transport: trunk_transport,
                // The trunk's other DNS targets take the REGISTER when the
                // first does not answer.
                alternates: trunk_targets
                    .iter()
                    .copied()
                    .filter(|t| *t != next_hop)
                    .collect(),
                local_addr: local,
                next_hop,
                credentials: (!cfg.trunk.user.is_empty())
                    .then(|| (cfg.trunk.user.clone(), cfg.trunk.password.clone())),
                realm: (!cfg.trunk.realm.is_empty()).then(|| cfg.trunk.realm.clone()),
                expires: cfg.trunk.register_expires as u32,
                call_id: format!("{:016x}@genki", rand::random::<u64>()),
                from_tag: format!("{:08x}", rand::random::<u32>()),
                timers,
                user_agent: concat!("genki/", env!("CARGO_PKG_VERSION")).to_string(),
            },
            notices: notices.clone(),
            clock: clock.clone(),
        })
    } else {
        None
    };
    let mut endpoint =
        Endpoint::spawn_with(sip, metrics.clone(), shutdown_rx.clone(), policy, register)?;
    endpoint.local_addr = local;
    let sip_up = endpoint.alive();

    let rtp_ports = net::parse_port_range(&cfg.sip.rtp_ports)?;
    let media_timeout = Duration::from_secs(cfg.sip.media_timeout_s);
    let media = MediaRuntime::start(
        &MediaOptions {
            ip,
            ports: rtp_ports,
            workers: cfg.sip.media_workers,
            io: cfg.sip.media_io.into(),
            timeout: MediaTimeout {
                start: media_timeout,
                gap: media_timeout,
            },
            allow: cfg.media_allow().map_err(ServeError::Config)?,
            realtime: match cfg.sip.media_priority {
                MediaPriority::Realtime => Some(crate::telephony::media::REALTIME_PRIORITY),
                MediaPriority::Normal => None,
            },
        },
        metrics.clone(),
    )?;
    match &media.scheduling {
        MediaScheduling::Refused(why) => warn!(
            error = %why,
            "media workers could not have real-time priority ([sip] media_priority); \
             their packets may leave late when the core is busy: give genki \
             CAP_SYS_NICE or an RLIMIT_RTPRIO (systemd LimitRTPRIO=10), or set \
             media_priority = \"normal\" to silence this"
        ),
        MediaScheduling::Realtime(p) => info!(
            priority = p,
            "media workers at real-time priority (SCHED_RR)"
        ),
        MediaScheduling::Normal => {}
    }
    info!(
        io = media.io_name,
        workers = cfg.sip.media_workers,
        "media workers started"
    );
    let audio = Arc::new(crate::telephony::audio::AudioStore::new(
        cfg.storage.path.join("audio"),
    ));
    let setup = CallSetup {
        endpoint,
        from: if cfg.sip.from.is_empty() {
            if cfg.trunk.register {
                aor.clone()
            } else {
                format!("sip:genki@{ip}")
            }
        } else {
            cfg.sip.from.clone()
        },
        presentation: crate::telephony::call::Presentation {
            number: (!cfg.trunk.caller_id.is_empty()).then(|| cfg.trunk.caller_id.clone()),
            domain: if cfg.trunk.domain.is_empty() {
                ip.to_string()
            } else {
                cfg.trunk.domain.clone()
            },
            identity: cfg.trunk.identity_header.into(),
            anonymous: cfg.trunk.privacy == crate::config::CallerPrivacy::Id,
        },
        proxy,
        credentials: (!cfg.trunk.user.is_empty())
            .then(|| (cfg.trunk.user.clone(), cfg.trunk.password.clone())),
        // Only the trunk may collect its credentials: calls through the
        // proxy, or to the trunk's domain.
        credentials_host: Some(cfg.trunk.domain.clone()),
        realm: (!cfg.trunk.realm.is_empty()).then(|| cfg.trunk.realm.clone()),
        rtp_ip: ip,
        media,
        ring_timeout: Duration::from_secs(cfg.sip.ring_timeout_s),
        timers,
        metrics: metrics.clone(),
        trunk_latching: cfg.trunk.rtp_latching.into(),
        direct_latching: cfg.sip.rtp_latching.into(),
        max_call: Duration::from_secs(cfg.sip.max_call_s),
        session_expires: cfg.sip.session_expires_s as u32,
        trunk_transport,
        audio: Some(audio.clone()),
        route,
        answer: cfg
            .sip
            .answer_wait
            .then(genki_media::answer::AnswerParams::default),
    };
    let mut defaults = HashMap::new();
    for (name, _) in prompts::DEFAULTS {
        defaults.insert(name.to_string(), prompts::default_prompt(name)?);
    }
    // Many nodes: the node's own stable name (its claims are found again
    // after its restart); one node: the process (its claims are all
    // recovered at start anyway).
    let owner = if shared {
        node.clone()
    } else {
        format!("{node}-{}", std::process::id())
    };
    let domain = if !cfg.trunk.domain.is_empty() {
        cfg.trunk.domain.clone()
    } else {
        cfg.trunk
            .proxy
            .trim_start_matches("sip:")
            .split([';', '?'])
            .next()
            .unwrap_or("")
            .to_string()
    };
    let setup = Arc::new(setup);
    let mut calls = CallContext::new(setup.clone(), domain, store.clone(), Arc::new(defaults));
    calls.uri_phones = cfg.uri_phones_allowed();
    calls.audio = Some(audio);
    let calls = Arc::new(calls);
    let mut svc = Service::new(
        store.clone(),
        metrics.clone(),
        clock,
        calls.clone(),
        owner.clone(),
        cfg.scheduler.plan_days,
        Duration::from_millis(cfg.scheduler.tick_ms),
    );
    svc.trunk = std::sync::Mutex::new(Circuit::new(
        cfg.trunk.circuit_faults as usize,
        Duration::from_secs(cfg.trunk.circuit_open_s),
        crate::clock::monotonic(),
    ));
    svc.notices = notices;
    svc.shared = shared;
    if shared {
        svc.lease = Duration::from_secs(cfg.storage.lease_s);
    }
    svc.trunk_hold =
        Duration::from_secs(cfg.sip.max_call_s) + Duration::from_millis(64 * cfg.sip.t1_ms);
    let svc = Arc::new(svc);
    // Call-ins (people calling genki back), each on its own task.
    tokio::spawn(crate::checks::inbound::serve(
        svc.clone(),
        setup.clone(),
        inbound_rx,
    ));
    let alerts = Arc::new(Alerts::new(
        store.clone(),
        metrics.clone(),
        svc.clock.clone(),
        RetryRule {
            max_tries: cfg.alerts.max_tries,
            backoff: Duration::from_secs(cfg.alerts.backoff_s),
        },
        svc.alert_wake.clone(),
    ));
    metrics
        .alerts_open
        .add(crate::rt::blocking(|| store.open_case_count())? as i64);
    let webhook_guard = Arc::new(crate::alerts::webhook::Guard {
        allow: cfg.webhook_allow().map_err(ServeError::Http)?,
    });
    let secrets = Arc::new(if cfg.storage.secret_key.is_empty() {
        crate::secrets::SecretBox::load_or_create(&cfg.storage.path)
    } else {
        crate::secrets::SecretBox::from_hex(&cfg.storage.secret_key)
    }?);
    seal_plain_secrets(store.as_ref(), &secrets)?;
    let notifier = Arc::new(Notifier {
        calls,
        clock: svc.clock.clone(),
        http: crate::alerts::webhook::client(webhook_guard.clone())
            .map_err(|e| ServeError::Http(e.to_string()))?,
        webhook_guard,
        webhook_timeout: Duration::from_secs(cfg.alerts.webhook_timeout_s),
        smtp: (!cfg.alerts.smtp_relay.is_empty()).then(|| Smtp {
            relay: cfg.alerts.smtp_relay.clone(),
            port: cfg.alerts.smtp_port,
            tls: cfg.alerts.smtp_tls.clone(),
            user: cfg.alerts.smtp_user.clone(),
            password: cfg.alerts.smtp_password.clone(),
            from: cfg.alerts.smtp_from.clone(),
        }),
        secrets: secrets.clone(),
    });
    let recovered = crate::rt::blocking(|| svc.recover())?;
    let started = std::time::Instant::now();
    let warmed = crate::rt::blocking(|| svc.warm_day_views())?;
    info!(
        tenants = warmed,
        ms = started.elapsed().as_millis() as u64,
        "day views built (the console's Today page)"
    );
    if recovered > 0 {
        warn!(
            recovered,
            "checks were in flight when genki last stopped; re-queued"
        );
    }

    let api = Arc::new(Api {
        svc: svc.clone(),
        alerts: alerts.clone(),
        operator_hash: api::hash_token(&token),
        sip_up,
        secrets,
        one_off_per_day: cfg.scheduler.one_off_per_day,
        metrics_hash: (!cfg.api.metrics_token.is_empty())
            .then(|| api::hash_token(&cfg.api.metrics_token)),
        limiter: api::limits::RateLimiter::new(
            cfg.api.rate_per_s as u32,
            cfg.api.rate_burst as u32,
        ),
    });
    // The console beside the API, on the same service layer.
    let mut router = api::router(api.clone());
    if cfg.api.console {
        router = router.merge(crate::console::router(crate::console::Console::new(
            api,
            cfg.api.console_session_hours,
        )));
    }
    // The API on a runtime of its own: a heavy request never delays SIP
    // timers or the due loop.
    let http = api::server::spawn(
        listener,
        router,
        api::server::Limits {
            max_connections: cfg.api.max_connections as usize,
            header_read: Duration::from_secs(cfg.api.header_read_timeout_s),
            idle: Duration::from_secs(cfg.api.idle_timeout_s),
            threads: cfg.api.threads as usize,
        },
        metrics.clone(),
        shutdown_rx.clone(),
    )?;
    info!(api = %api_addr, sip = %bound, data = %cfg.storage.path.display(), "genki serving");
    eprintln!(
        "genki: serving; API on http://{} , SIP on {} , data in {}",
        api_addr,
        bound,
        cfg.storage.path.display()
    );

    tokio::spawn(async move {
        stop.await;
        info!("stopping");
        let _ = shutdown_tx.send(true);
    });
    if cfg.operator.webhook.is_empty() {
        warn!("no [operator] webhook: operator notices (trunk down, storage failing) are only logged and counted");
    }
    // The operator's own URL is the operator's choice (it may well be on
    // the local network): a plain client, without the watchers' guard.
    let operator_http = reqwest::Client::builder()
        .user_agent(concat!("genki/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ServeError::Http(e.to_string()))?;
    tokio::spawn(crate::alerts::operator::run(
        notices_rx,
        operator_http,
        (!cfg.operator.webhook.is_empty()).then(|| crate::alerts::operator::Target {
            url: cfg.operator.webhook.clone(),
            secret: cfg.operator.webhook_secret.clone(),
            timeout: Duration::from_secs(cfg.alerts.webhook_timeout_s),
            node: owner.clone(),
        }),
    ));
    tokio::spawn(crate::checks::retention::run(
        svc.clone(),
        shutdown_rx.clone(),
    ));
    let lead = crate::alerts::cases::Lead {
        owner: owner.clone(),
        lease: svc.lease.min(Duration::from_secs(cfg.storage.lease_s)),
    };
    let alert_worker = tokio::spawn(crate::alerts::cases::run(
        alerts,
        notifier,
        crate::alerts::cases::Parallel {
            messages: cfg.alerts.parallel,
            calls: match cfg.alerts.parallel_calls {
                0 => cfg.trunk.max_calls as usize,
                n => n,
            },
        },
        lead,
        shutdown_rx.clone(),
    ));
    let left = service::run(
        svc,
        cfg.trunk.cps,
        cfg.trunk.max_calls,
        shutdown_rx,
        Duration::from_secs(cfg.scheduler.drain_s),
    )
    .await;
    if left > 0 {
        warn!(
            left,
            "calls still running at the end of the drain; they will be re-queued at the next start"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), alert_worker).await;
    crate::rt::blocking(|| store.flush())?;
    info!("stopped cleanly");
    Ok(())
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled: `/healthz` answers before the task
/// that awaits the signal may have run, and a SIGTERM then (a supervisor
/// stopping genki right after start) must still drain and flush rather
/// than kill the process (the default action).
fn wait_for_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async move {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The whole daemon in-process on port 0 (no fixed port, no child
    /// process): it serves its API, and stops cleanly when told.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_daemon_runs_in_process_on_port_0_and_stops_when_told() {
        let dir = std::env::temp_dir().join(format!("genki-run-{}", rand::random::<u64>()));
        let mut cfg = Config::load(None, &[]).unwrap();
        cfg.storage.path = dir.clone();
        cfg.api.operator_token = "gk_op_test".into();
        cfg.sip.rtp_ports = "41000-41099".into();
        let sip = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = api.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(run(
            cfg,
            Sockets { sip, api },
            async move {
                let _ = stop_rx.await;
            },
            Arc::new(SystemClock),
            None,
        ));
        let body = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: genki\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("\"storage\""), "{body}");
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), daemon)
            .await
            .expect("stops within 30 s")
            .unwrap()
            .expect("stops cleanly");
        std::fs::remove_dir_all(&dir).ok();
    }
}
