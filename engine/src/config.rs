//! `genki serve` configuration: a TOML file whose every key has a default
//! that works on one machine, each overridable from the environment as
//! `GENKI_<SECTION>_<KEY>` (e.g. `GENKI_API_LISTEN=127.0.0.1:9000`).
//! Unknown keys and bad values are errors that name the key; so is an
//! unknown `GENKI_*` variable (a typo such as `GENKI_TRUNK_PASWORD` would
//! otherwise be ignored and the trunk's authentication fail with no hint),
//! with the nearest known name.
//!
//! Depends on: serde, serde_json (masking secrets), toml, strsim, ipnet.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub api: Api,
    pub sip: Sip,
    pub storage: Storage,
    pub trunk: Trunk,
    pub scheduler: Scheduler,
    pub alerts: Alerts,
    pub operator: Operator,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Address of the admin HTTP API.
    pub listen: SocketAddr,
    /// Operator bearer token; empty: one is generated and written to
    /// `<storage.path>/operator-token` on first start.
    pub operator_token: String,
    /// Open API connections at most; more are closed at once.
    pub max_connections: u64,
    /// Seconds a client has to send a request's header (slowloris).
    pub header_read_timeout_s: u64,
    /// Seconds a connection may stay silent before it is closed.
    pub idle_timeout_s: u64,
    /// Requests a second per tenant token (and per address without a
    /// token); the operator's token is not limited. 0: no limit.
    pub rate_per_s: u64,
    /// Requests a caller may send at once before `rate_per_s` applies.
    pub rate_burst: u64,
    /// Threads of the API's own runtime (SIP and calls never wait for it).
    pub threads: u64,
    /// A token that may read `/metrics` and nothing else (for Prometheus);
    /// empty: only the operator's token reads them.
    pub metrics_token: String,
    /// Serve the coordinators' console at `/console/` (README "The console").
    pub console: bool,
    /// Hours a console sign-in lasts before the staff member signs in again.
    pub console_session_hours: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Sip {
    /// Local SIP address (UDP).
    pub bind: SocketAddr,
    /// RTP port range, e.g. "20000-20999".
    pub rtp_ports: String,
    /// Our From URI; empty: `sip:genki@<bind address>`.
    pub from: String,
    /// RFC 3261 T1 in milliseconds.
    pub t1_ms: u64,
    /// Seconds a phone may ring before CANCEL.
    pub ring_timeout_s: u64,
    /// Media worker threads; each drives the RTP sockets of its calls
    /// (one local port per call). One carries 2,000 calls here.
    pub media_workers: usize,
    /// How media workers drive their sockets: `auto` (io_uring where the
    /// kernel and any seccomp policy allow it, else epoll), `uring`, `epoll`.
    pub media_io: MediaIoKind,
    /// How the kernel schedules media workers: `realtime` (`SCHED_RR`,
    /// so a busy core still sends every packet on time; needs
    /// `CAP_SYS_NICE` or an `RLIMIT_RTPRIO`, else a warning and the default
    /// scheduler) or `normal`.
    pub media_priority: MediaPriority,
    /// Which RTP sources a call dialled straight to a SIP URI accepts
    /// (`off`, `host`, `any`; see README "Media").
    pub rtp_latching: RtpLatching,
    /// Seconds from the answer to the peer's first accepted RTP packet, and
    /// the longest silence of RTP after it, before genki ends the call as a
    /// media fault (retried, never the person's silence).
    pub media_timeout_s: u64,
    /// After the answer, listen before the first prompt: wait for the far
    /// end to be quiet, wait through a call recorder's ringback until the
    /// person lifts the handset, and tell answering machines (message left,
    /// retried), network announcements and fax apart (README "Who
    /// answered"). false: the prompt starts at the answer.
    pub answer_wait: bool,
    /// Calls to genki's own number taken at once (people calling back:
    /// README "Call-ins"); more are answered 486 Busy. 0: none taken (an
    /// INVITE to genki gets 481).
    pub inbound_max: u64,
    /// Hard limit on a call's length in seconds, from INVITE to end.
    pub max_call_s: u64,
    /// Session interval asked for in every INVITE (RFC 4028
    /// `Session-Expires`, seconds; 0 asks for none). Whatever the carrier
    /// grants is honoured: refreshed by genki when it is the refresher,
    /// the call ended when the carrier's refresh never comes.
    pub session_expires_s: u64,
    /// Addresses or CIDRs SIP is taken from (the trunk's), comma-separated;
    /// anything else is dropped before it is parsed, except from a live
    /// call's first hop. Empty: every source is parsed (a call's messages
    /// are still taken only from its peer).
    pub allow: String,
    /// Stateless answers a second (OPTIONS 200, 481) to sources that are
    /// neither a live call's peer nor allowed; more are dropped unanswered.
    pub stranger_rate: u64,
    /// Media addresses (CIDRs) accepted in an SDP answer whatever the
    /// signalling peer's: e.g. a carrier whose SBC signals from a public
    /// address and sends media from a private range it routes to genki.
    /// Otherwise an answer's `c=` must be global or of the peer's own
    /// reach (loopback, link-local, private); 0.0.0.0 and multicast never.
    pub media_allow: String,
}

/// `[sip] media_io`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MediaIoKind {
    Auto,
    Uring,
    Epoll,
}

impl From<MediaIoKind> for genki_udp::sockets::IoKind {
    fn from(k: MediaIoKind) -> Self {
        match k {
            MediaIoKind::Auto => genki_udp::sockets::IoKind::Auto,
            MediaIoKind::Uring => genki_udp::sockets::IoKind::Uring,
            MediaIoKind::Epoll => genki_udp::sockets::IoKind::Epoll,
        }
    }
}

/// `[sip] media_priority`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MediaPriority {
    /// Real-time (`SCHED_RR`) where the process may have it.
    Realtime,
    /// The default scheduler, shared fairly with every other thread.
    Normal,
}

/// `[sip] rtp_latching`, `[trunk] rtp_latching`: from which sources a
/// call's own RTP port accepts its peer's media (the first proving packet
/// latches the call to its source for good).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RtpLatching {
    /// Only the address and port the SDP answer names.
    Off,
    /// The SDP's address, or any port of the SDP's IP or of the SIP peer's IP.
    Host,
    /// Any source (with a declared a=ssrc, only a packet carrying it).
    Any,
}

impl From<RtpLatching> for crate::telephony::media::Latching {
    fn from(l: RtpLatching) -> Self {
        match l {
            RtpLatching::Off => crate::telephony::media::Latching::Off,
            RtpLatching::Host => crate::telephony::media::Latching::Host,
            RtpLatching::Any => crate::telephony::media::Latching::Any,
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// `rocksdb`: one machine, the database in `path` (the default).
    /// `postgres`: many nodes sharing one PostgreSQL (docs/deploy.md).
    pub engine: StorageEngine,
    /// The data directory: RocksDB's database, and each node's own files
    /// (recordings, a generated key or token) in either engine.
    pub path: PathBuf,
    /// Key (64 hex digits) sealing secrets stored in the database (the
    /// watchers' webhook secrets); empty: one is generated into
    /// `<path>/secret-key` on first start (rocksdb only: nodes sharing a
    /// database must share the key, so `postgres` requires it).
    pub secret_key: String,
    /// PostgreSQL's connection URL (`engine = "postgres"`), e.g.
    /// `postgresql://genki:…@db1:5432,db2:5432/genki?target_session_attrs=read-write`:
    /// with every Patroni member listed, a switchover is followed.
    pub postgres_url: String,
    /// Connections this node keeps to PostgreSQL (1–500).
    pub pool_size: u64,
    /// This node's name among the nodes of one database: the owner of its
    /// claims. Unique per node and stable across restarts (a restarted
    /// node takes its own calls back at once); empty: the host name.
    pub node: String,
    /// Seconds a node's claim on a check lasts unless renewed (every
    /// third of it): a dead node's calls are taken over this long after
    /// it died (2–3600; `postgres` only).
    pub lease_s: u64,
}

/// `[storage] engine`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageEngine {
    Rocksdb,
    Postgres,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Trunk {
    /// Outbound proxy every call goes through (sip:host:port); empty: dial
    /// each subscriber's SIP URI directly.
    pub proxy: String,
    /// Host part for subscribers given as plain numbers: `sip:<number>@<domain>`.
    pub domain: String,
    pub user: String,
    pub password: String,
    /// The trunk's digest realm: when set, `user`/`password` answer only
    /// its challenges (RFC 3261 §22.1); empty: any challenge of the trunk.
    pub realm: String,
    /// Calls per second the trunk accepts.
    pub cps: f64,
    /// Concurrent calls the trunk accepts.
    pub max_calls: u32,
    /// Which RTP sources calls through the proxy accept (`off`, `host`, `any`).
    pub rtp_latching: RtpLatching,
    /// Carrier faults (5xx, no response, unreachable, credentials refused)
    /// among the last 20 calls (within 2 minutes, and at least half of
    /// them) that open the trunk's circuit: dialling stops, checks are
    /// held, the operator is told. 0 never opens it.
    pub circuit_faults: u32,
    /// Seconds the circuit first stays open before probing (doubles while
    /// probes fail, at most 600; a longer `Retry-After` is honoured).
    pub circuit_open_s: u64,
    /// Whether phones may be SIP URIs (`auto`, `allow`, `deny`): a URI is
    /// dialled wherever a tenant points it, a number only through the trunk.
    pub uri_phones: UriPhones,
    /// Register with the trunk (RFC 3261 §10) as `sip:<user>@<domain>`
    /// before any call, and keep the binding up; while it does not hold,
    /// nobody is dialled through the trunk (checks are held, never
    /// missed). Needs `domain` and `user`.
    pub register: bool,
    /// Seconds of binding asked for (the registrar may grant fewer, or
    /// ask for more with 423); refreshed at half of what it grants.
    pub register_expires: u64,
    /// The number genki presents as the caller (発信者番号), e.g.
    /// `0312345678` or `+81312345678`: the From user and the identity
    /// header's. Empty: From is `[sip] from` (or the registered name).
    /// A tenant may have its own (set by the operator).
    pub caller_id: String,
    /// Which identity header carries the number (RFC 3325 §9): `pai`
    /// (P-Asserted-Identity, for a trunk that trusts genki), `ppi`
    /// (P-Preferred-Identity, for one that asserts it itself), `none`.
    pub identity_header: IdentityHeader,
    /// Seconds between OPTIONS keep-alives to each of the trunk's targets
    /// (RFC 3261 §11); 0: none. A target that does not answer is tried
    /// last by calls until it answers again.
    pub keepalive_s: u64,
    /// DNS servers (`ip:port`, comma-separated) the trunk's domain is
    /// looked up with (NAPTR, SRV, A/AAAA; RFC 3263); empty: the system's.
    pub dns_servers: String,
    /// SIP over TLS (the proxy `sips:…` or `;transport=tls`): a PEM
    /// bundle of the CAs the trunk's certificate is checked against;
    /// empty: the Mozilla roots. The name checked is `domain` (else the
    /// proxy's host).
    pub tls_ca: String,
    /// A client certificate (PEM chain) and its key (PEM) for trunks that
    /// ask for one; both or neither.
    pub tls_cert: String,
    pub tls_key: String,
    /// `none`: the number is shown to the person (the default: lines
    /// with anonymous-call rejection, 非通知拒否, refuse anything else
    /// with 433 and never ring); `id`: withheld (RFC 3323 §4.1.1.3 From
    /// `anonymous`, `Privacy: id`), the identity header kept for the
    /// carrier.
    pub privacy: CallerPrivacy,
}

/// The header that carries the presented number to the trunk (RFC 3325).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdentityHeader {
    /// P-Asserted-Identity (§9.1): the trunk trusts genki's assertion.
    #[default]
    Pai,
    /// P-Preferred-Identity (§9.2): the trunk asserts it after checking.
    Ppi,
    None,
}

/// Whether the person sees who is calling.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CallerPrivacy {
    #[default]
    None,
    /// Withhold the number from the person (RFC 3323 `Privacy: id`).
    Id,
}

impl From<IdentityHeader> for crate::telephony::call::IdentityHeader {
    fn from(h: IdentityHeader) -> Self {
        match h {
            IdentityHeader::Pai => crate::telephony::call::IdentityHeader::Asserted,
            IdentityHeader::Ppi => crate::telephony::call::IdentityHeader::Preferred,
            IdentityHeader::None => crate::telephony::call::IdentityHeader::None,
        }
    }
}

/// Whether `s` is a presentable number: 1–16 digits, a leading `+` allowed.
pub fn is_phone_number(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    (1..=16).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
}

/// Whether people's and watchers' phones may be SIP URIs, dialled where
/// they point, rather than numbers dialled through the trunk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UriPhones {
    /// Allowed while no trunk is configured (a lab, the simulated phones),
    /// refused once `[trunk] proxy` or `domain` is set.
    Auto,
    Allow,
    Deny,
}

/// Where genki tells the operator about its own faults (the carrier
/// failing, storage refusing writes) — never the watchers.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Operator {
    /// URL notices are POSTed to (signed like watcher webhooks); empty:
    /// notices are only logged and counted (`genki_operator_notices_total`).
    pub webhook: String,
    /// Secret of the notices' `Genki-Signature`.
    pub webhook_secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Scheduler {
    /// How often the due index is scanned when nothing is due sooner.
    pub tick_ms: u64,
    /// Local days (today included) planned ahead from schedules.
    pub plan_days: u32,
    /// Seconds to let calls in progress finish on SIGTERM.
    pub drain_s: u64,
    /// One-off checks ("call now") a person may be given in 24 hours;
    /// more answer 429 (a tenant's token cannot make genki ring someone
    /// again and again).
    pub one_off_per_day: u64,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// SMTP relay host for watcher e-mail; empty: e-mail notifications fail
    /// visibly ("no SMTP relay is configured").
    pub smtp_relay: String,
    pub smtp_port: u16,
    /// none (a local relay), starttls, or tls.
    pub smtp_tls: String,
    pub smtp_user: String,
    pub smtp_password: String,
    /// From address of alert e-mail.
    pub smtp_from: String,
    /// Deliveries tried per notification before it is given up.
    pub max_tries: u32,
    /// Seconds before the first retry; doubles each time (at most an hour).
    pub backoff_s: u64,
    /// Seconds a webhook receiver has to answer.
    pub webhook_timeout_s: u64,
    /// Webhook POSTs and e-mails in progress at once.
    pub parallel: usize,
    /// Watcher calls in progress at once (0: the trunk's `max_calls`).
    /// Apart from `parallel` because a call holds its slot for its whole
    /// length (ringing, the prompt, the key): 1,000 cases opening at once
    /// must ring 1,000 watchers in seconds, not 16 at a time.
    pub parallel_calls: usize,
    /// Networks (comma-separated CIDRs, e.g. `10.0.0.0/8,127.0.0.1/32`)
    /// watchers' webhooks may reach although they are loopback, private,
    /// link-local or multicast; empty: only public addresses.
    pub webhook_allow: String,
}

/// Each section's secrets, masked wherever the configuration is shown
/// (`--print-config`, `{:?}` of the whole or of a section).
const SECRETS: &[(&str, &[&str])] = &[
    ("api", &["operator_token", "metrics_token"]),
    ("trunk", &["password"]),
    ("alerts", &["smtp_password"]),
    ("operator", &["webhook_secret"]),
    ("storage", &["secret_key", "postgres_url"]),
];

const MASK: &str = "********";

/// A section's `{:?}`: its fields as JSON, secrets masked.
fn masked_debug(
    section: &str,
    v: &impl Serialize,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    let mut j = serde_json::to_value(v).map_err(|_| std::fmt::Error)?;
    mask(section, &mut j);
    write!(f, "{section} {j}")
}

fn mask(section: &str, j: &mut serde_json::Value) {
    let fields = SECRETS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, f)| *f)
        .unwrap_or(&[]);
    for field in fields {
        if let Some(x) = j.get_mut(*field) {
            if x.as_str().is_some_and(|t| !t.is_empty()) {
                *x = MASK.into();
            }
        }
    }
}

macro_rules! masked_sections {
    ($($ty:ident => $name:literal),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                masked_debug($name, self, f)
            }
        }
    )*};
}
masked_sections!(Api => "api", Trunk => "trunk", Alerts => "alerts", Operator => "operator", Storage => "storage");

/// The configuration as `--print-config` shows it: secrets masked, so a
/// `{:?}` in a log or a panic message never carries a password or token.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.printable())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api: Api {
                listen: "127.0.0.1:8080".parse().expect("literal"),
                operator_token: String::new(),
                max_connections: 512,
                header_read_timeout_s: 10,
                idle_timeout_s: 30,
                rate_per_s: 50,
                rate_burst: 200,
                threads: 2,
                metrics_token: String::new(),
                console: true,
                console_session_hours: 10,
            },
            sip: Sip {
                bind: "127.0.0.1:5060".parse().expect("literal"),
                rtp_ports: "20000-29999".into(),
                from: String::new(),
                t1_ms: 500,
                ring_timeout_s: 30,
                media_workers: 1,
                media_io: MediaIoKind::Auto,
                media_priority: MediaPriority::Realtime,
                rtp_latching: RtpLatching::Host,
                media_timeout_s: 5,
                answer_wait: true,
                inbound_max: 50,
                max_call_s: 300,
                session_expires_s: 1800,
                allow: String::new(),
                stranger_rate: 100,
                media_allow: String::new(),
            },
            storage: Storage {
                engine: StorageEngine::Rocksdb,
                path: PathBuf::from("./genki-data"),
                secret_key: String::new(),
                postgres_url: String::new(),
                pool_size: 16,
                node: String::new(),
                lease_s: 60,
            },
            trunk: Trunk {
                proxy: String::new(),
                domain: String::new(),
                user: String::new(),
                password: String::new(),
                realm: String::new(),
                cps: 10.0,
                max_calls: 200,
                rtp_latching: RtpLatching::Host,
                circuit_faults: 5,
                circuit_open_s: 30,
                uri_phones: UriPhones::Auto,
                register: false,
                register_expires: 600,
                caller_id: String::new(),
                dns_servers: String::new(),
                keepalive_s: 30,
                tls_ca: String::new(),
                tls_cert: String::new(),
                tls_key: String::new(),
                identity_header: IdentityHeader::Pai,
                privacy: CallerPrivacy::None,
            },
            scheduler: Scheduler {
                tick_ms: 500,
                plan_days: 2,
                drain_s: 60,
                one_off_per_day: 10,
            },
            alerts: Alerts {
                smtp_relay: String::new(),
                smtp_port: 25,
                smtp_tls: "none".into(),
                smtp_user: String::new(),
                smtp_password: String::new(),
                smtp_from: "genki@localhost".into(),
                max_tries: 5,
                backoff_s: 60,
                webhook_timeout_s: 10,
                parallel: 16,
                parallel_calls: 0,
                webhook_allow: String::new(),
            },
            operator: Operator {
                webhook: String::new(),
                webhook_secret: String::new(),
            },
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Config::default().api
    }
}
impl Default for Sip {
    fn default() -> Self {
        Config::default().sip
    }
}
impl Default for Storage {
    fn default() -> Self {
        Config::default().storage
    }
}
impl Default for Trunk {
    fn default() -> Self {
        Config::default().trunk
    }
}
impl Default for Scheduler {
    fn default() -> Self {
        Config::default().scheduler
    }
}
impl Default for Alerts {
    fn default() -> Self {
        Config::default().alerts
    }
}
impl Default for Operator {
    fn default() -> Self {
        Config::default().operator
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
}

/// `GENKI_*` variables that are not settings of `genki serve` but belong
/// to other commands and scripts (and may be set in the same shell).
pub const OTHER_VARIABLES: &[&str] = &[
    "GENKI_LOG",          // log filter of every command
    "GENKI_SIP_PASSWORD", // `genki call --password`
    "GENKI_TOKEN",        // `genki-loadtest run --token`, `genki backup --token`
    "GENKI_BIN_DIR",      // scripts/loadtest: prebuilt binaries
    "GENKI_BIN",          // scripts/measure-*.py: prebuilt binaries
];

/// The environment variable that overrides `section.key`.
fn variable(section: &str, key: &str) -> String {
    format!(
        "GENKI_{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// Every key, for environment overrides: (section, key).
fn keys() -> Vec<(String, String)> {
    let v = toml::Value::try_from(Config::default()).expect("defaults serialise");
    let mut out = Vec::new();
    if let toml::Value::Table(t) = v {
        for (section, inner) in t {
            if let toml::Value::Table(inner) = inner {
                for key in inner.keys() {
                    out.push((section.clone(), key.clone()));
                }
            }
        }
    }
    out
}

impl Config {
    /// Load from an optional file, then apply `GENKI_<SECTION>_<KEY>` variables from `env`.
    pub fn load(
        path: Option<&std::path::Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let (name, text) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.display().to_string(),
                    error,
                })?,
            ),
            None => ("defaults".to_string(), String::new()),
        };
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    source_name: name.clone(),
                    message: e.to_string(),
                })?;
        let defaults = toml::Value::try_from(Config::default()).expect("defaults serialise");
        let known: Vec<String> = keys().iter().map(|(s, k)| variable(s, k)).collect();
        for (var, _) in env {
            if !var.starts_with("GENKI_")
                || known.contains(var)
                || OTHER_VARIABLES.contains(&var.as_str())
            {
                continue;
            }
            let nearest = known
                .iter()
                .map(String::as_str)
                .chain(OTHER_VARIABLES.iter().copied())
                .min_by_key(|k| strsim::levenshtein(var, k))
                .unwrap_or("GENKI_API_LISTEN");
            return Err(ConfigError::Invalid {
                source_name: var.clone(),
                message: format!(
                    "unknown variable (did you mean {nearest}? `genki serve --print-config` lists every setting)"
                ),
            });
        }
        for (section, key) in keys() {
            let var = variable(&section, &key);
            let Some((_, raw)) = env.iter().find(|(k, _)| *k == var) else {
                continue;
            };
            let typed = match defaults.get(&section).and_then(|s| s.get(&key)) {
                Some(toml::Value::Integer(_)) => raw
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| var.clone()),
                Some(toml::Value::Float(_)) => raw
                    .parse::<f64>()
                    .map(toml::Value::Float)
                    .map_err(|_| var.clone()),
                Some(toml::Value::Boolean(_)) => raw
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|_| var.clone()),
                _ => Ok(toml::Value::String(raw.clone())),
            }
            .map_err(|var| ConfigError::Invalid {
                source_name: var,
                message: format!("{raw:?} is not a valid value for {section}.{key}"),
            })?;
            let sec = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            match sec {
                toml::Value::Table(t) => {
                    t.insert(key, typed);
                }
                _ => {
                    return Err(ConfigError::Invalid {
                        source_name: name,
                        message: format!("[{section}] must be a table"),
                    });
                }
            }
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                source_name: name.clone(),
                message: e.to_string(),
            })?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            source_name: name,
            message,
        })?;
        Ok(cfg)
    }

    /// This node's name (`[storage] node`, else the host name).
    pub fn node_name(&self) -> String {
        if !self.storage.node.is_empty() {
            return self.storage.node.clone();
        }
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "genki".into())
    }

    /// The networks of `[alerts] webhook_allow`.
    pub fn webhook_allow(&self) -> Result<Vec<ipnet::IpNet>, String> {
        cidrs(&self.alerts.webhook_allow)
    }

    /// `[sip] allow` as networks (an address alone is a /32 or /128).
    pub fn sip_allow(&self) -> Result<Vec<ipnet::IpNet>, String> {
        cidrs(&self.sip.allow)
    }

    /// Whether phones may be SIP URIs, `auto` resolved: allowed while no
    /// trunk is configured.
    /// `[trunk] dns_servers` as addresses.
    pub fn dns_servers(&self) -> Result<Vec<SocketAddr>, String> {
        self.trunk
            .dns_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| format!("trunk.dns_servers: {s:?} is not ip:port"))
            })
            .collect()
    }

    pub fn uri_phones_allowed(&self) -> bool {
        match self.trunk.uri_phones {
            UriPhones::Allow => true,
            UriPhones::Deny => false,
            UriPhones::Auto => self.trunk.proxy.is_empty() && self.trunk.domain.is_empty(),
        }
    }

    /// `[sip] media_allow` as networks.
    pub fn media_allow(&self) -> Result<Vec<ipnet::IpNet>, String> {
        cidrs(&self.sip.media_allow)
    }

    fn validate(&self) -> Result<(), String> {
        if !(1..=720).contains(&self.api.console_session_hours) {
            return Err(format!(
                "api.console_session_hours: {} is not 1–720 hours",
                self.api.console_session_hours
            ));
        }
        self.sip_allow().map_err(|e| format!("sip.allow: {e}"))?;
        if self.storage.engine == StorageEngine::Postgres {
            if self.storage.postgres_url.is_empty() {
                return Err("storage.postgres_url: required with engine = \"postgres\"".into());
            }
            if self.storage.secret_key.is_empty() {
                return Err("storage.secret_key: required with engine = \"postgres\" (every node must seal the watchers' secrets with the same key)".into());
            }
            if self.api.operator_token.is_empty() {
                return Err("api.operator_token: required with engine = \"postgres\" (every node must accept the same operator token)".into());
            }
        }
        if !(1..=500).contains(&self.storage.pool_size) {
            return Err("storage.pool_size: must be 1–500".into());
        }
        if !(2..=3600).contains(&self.storage.lease_s) {
            return Err("storage.lease_s: must be 2–3600".into());
        }
        if self.storage.node.len() > 100 || self.storage.node.chars().any(|c| c.is_control()) {
            return Err("storage.node: at most 100 printable characters".into());
        }
        if !self.storage.secret_key.is_empty() {
            crate::secrets::SecretBox::from_hex(&self.storage.secret_key)
                .map_err(|e| e.to_string())?;
        }
        self.media_allow()
            .map_err(|e| format!("sip.media_allow: {e}"))?;
        crate::telephony::net::parse_port_range(&self.sip.rtp_ports)
            .map_err(|e| format!("sip.rtp_ports: {e}"))?;
        if self.sip.media_workers == 0 || self.sip.media_workers > 64 {
            return Err("sip.media_workers: must be 1–64".into());
        }
        if self.sip.media_timeout_s == 0 || self.sip.media_timeout_s > 300 {
            return Err("sip.media_timeout_s: must be 1–300".into());
        }
        if self.sip.max_call_s < 30 || self.sip.max_call_s > 86_400 {
            return Err("sip.max_call_s: must be 30–86400".into());
        }
        if self.sip.session_expires_s != 0 && !(30..=86_400).contains(&self.sip.session_expires_s) {
            return Err("sip.session_expires_s: 0 (ask for none) or 30–86400".into());
        }
        if self.sip.t1_ms == 0 || self.sip.t1_ms > 10_000 {
            return Err("sip.t1_ms: must be 1–10000".into());
        }
        if !(self.trunk.cps > 0.0 && self.trunk.cps <= 10_000.0) {
            return Err("trunk.cps: must be above 0 and at most 10000".into());
        }
        self.webhook_allow()
            .map_err(|e| format!("alerts.webhook_allow: {e}"))?;
        if self.trunk.circuit_open_s == 0 || self.trunk.circuit_open_s > 600 {
            return Err("trunk.circuit_open_s: must be 1–600".into());
        }
        let hook = &self.operator.webhook;
        if !(hook.is_empty() || hook.starts_with("http://") || hook.starts_with("https://")) {
            return Err(format!(
                "operator.webhook: {:?} is not an http(s) URL",
                self.operator.webhook
            ));
        }
        if !self.operator.webhook.is_empty() && self.operator.webhook_secret.len() < 16 {
            return Err(
                "operator.webhook_secret: at least 16 characters (receivers check the signature)"
                    .into(),
            );
        }
        if self.trunk.max_calls == 0 {
            return Err("trunk.max_calls: must be at least 1".into());
        }
        if !self.trunk.caller_id.is_empty() && !is_phone_number(&self.trunk.caller_id) {
            return Err(format!(
                "trunk.caller_id: {:?} is not a number (1–16 digits, a leading + allowed)",
                self.trunk.caller_id
            ));
        }
        self.dns_servers()?;
        if self.trunk.tls_cert.is_empty() != self.trunk.tls_key.is_empty() {
            return Err("trunk.tls_cert and trunk.tls_key: both or neither".into());
        }
        if self.trunk.register && (self.trunk.domain.is_empty() || self.trunk.user.is_empty()) {
            return Err(
                "trunk.register: needs trunk.domain and trunk.user (the registered name is sip:<user>@<domain>)"
                    .into(),
            );
        }
        if !self.trunk.proxy.is_empty() && !genki_sip::message::is_valid_sip_uri(&self.trunk.proxy)
        {
            return Err(format!(
                "trunk.proxy: {:?} is not a SIP URI like sip:trunk.example:5060",
                self.trunk.proxy
            ));
        }
        // Bounded so that no duration can overflow `Instant` arithmetic
        // (a huge value would panic where a deadline is computed).
        for (name, v, lo, hi) in [
            ("sip.ring_timeout_s", self.sip.ring_timeout_s, 1, 600),
            ("trunk.keepalive_s", self.trunk.keepalive_s, 0, 3600),
            (
                "trunk.register_expires",
                self.trunk.register_expires,
                10,
                86_400,
            ),
            ("scheduler.drain_s", self.scheduler.drain_s, 0, 3600),
            ("scheduler.tick_ms", self.scheduler.tick_ms, 1, 60_000),
            (
                "alerts.webhook_timeout_s",
                self.alerts.webhook_timeout_s,
                1,
                300,
            ),
            ("alerts.backoff_s", self.alerts.backoff_s, 1, 86_400),
            ("api.max_connections", self.api.max_connections, 1, 100_000),
            (
                "api.header_read_timeout_s",
                self.api.header_read_timeout_s,
                1,
                300,
            ),
            ("api.idle_timeout_s", self.api.idle_timeout_s, 1, 3600),
            ("api.rate_per_s", self.api.rate_per_s, 0, 1_000_000),
            ("api.rate_burst", self.api.rate_burst, 1, 1_000_000),
            ("api.threads", self.api.threads, 1, 64),
            ("sip.stranger_rate", self.sip.stranger_rate, 1, 100_000),
            (
                "scheduler.one_off_per_day",
                self.scheduler.one_off_per_day,
                1,
                1000,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{name}: must be {lo}–{hi}"));
            }
        }
        if self.scheduler.tick_ms == 0
            || self.scheduler.plan_days == 0
            || self.scheduler.plan_days > 14
        {
            return Err("scheduler: tick_ms ≥ 1 and plan_days 1–14".into());
        }
        if !["none", "starttls", "tls"].contains(&self.alerts.smtp_tls.as_str()) {
            return Err(format!(
                "alerts.smtp_tls: {:?} is not none, starttls or tls",
                self.alerts.smtp_tls
            ));
        }
        if self.alerts.max_tries == 0 || self.alerts.max_tries > 50 {
            return Err("alerts.max_tries: must be 1–50".into());
        }
        if self.alerts.parallel == 0 || self.alerts.webhook_timeout_s == 0 {
            return Err("alerts: parallel and webhook_timeout_s must be at least 1".into());
        }
        if self
            .alerts
            .smtp_from
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            return Err(format!(
                "alerts.smtp_from: {:?} is not an e-mail address",
                self.alerts.smtp_from
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn printable(&self) -> String {
        let mut j = serde_json::to_value(self).expect("config serialises");
        for (section, _) in SECRETS {
            if let Some(v) = j.get_mut(*section) {
                mask(section, v);
            }
        }
        let c: Config = serde_json::from_value(j).expect("config round-trips");
        toml::to_string_pretty(&c).expect("config serialises")
    }
}

/// A comma-separated list of CIDRs or addresses.
fn cidrs(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{s:?} is not a CIDR like 10.0.0.0/8 or an address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Issue 12: no secret in `{:?}`, and no duration so large that a
    /// deadline computed from it would overflow (and panic).
    #[test]
    fn secrets_are_masked_in_debug_and_durations_are_bounded() {
        let c = Config::load(
            None,
            &env(&[
                ("GENKI_TRUNK_PASSWORD", "trunk-pass-xyz"),
                ("GENKI_API_OPERATOR_TOKEN", "gk_op_secret_xyz"),
                ("GENKI_API_METRICS_TOKEN", "scrape-secret-xyz"),
                (
                    "GENKI_STORAGE_SECRET_KEY",
                    "abababababababababababababababababababababababababababababababab",
                ),
                ("GENKI_ALERTS_SMTP_PASSWORD", "smtp-pass-xyz"),
                ("GENKI_OPERATOR_WEBHOOK", "https://ops.example/hook"),
                ("GENKI_OPERATOR_WEBHOOK_SECRET", "op-hook-secret-xyz-123"),
            ]),
        )
        .unwrap();
        let shown = format!(
            "{c:?} {:?} {:?} {:?} {:?}",
            c.api, c.trunk, c.alerts, c.operator
        );
        assert!(shown.contains("ring_timeout_s") && shown.contains("operator_token"));
        for secret in [
            "trunk-pass-xyz",
            "gk_op_secret_xyz",
            "scrape-secret-xyz",
            "abababababababab",
            "smtp-pass-xyz",
            "op-hook-secret-xyz-123",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for (var, value) in [
            ("GENKI_SIP_RING_TIMEOUT_S", "99999999999"),
            ("GENKI_SCHEDULER_DRAIN_S", "99999999999"),
            ("GENKI_ALERTS_WEBHOOK_TIMEOUT_S", "0"),
            ("GENKI_ALERTS_BACKOFF_S", "99999999999"),
        ] {
            let e = Config::load(None, &env(&[(var, value)])).unwrap_err();
            assert!(e.to_string().contains("must be"), "{var}: {e}");
        }
    }

    #[test]
    fn defaults_env_and_file() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c, Config::default());
        let c = Config::load(
            None,
            &env(&[
                ("GENKI_API_LISTEN", "127.0.0.1:9000"),
                ("GENKI_TRUNK_CPS", "25"),
                ("GENKI_TRUNK_MAX_CALLS", "50"),
            ]),
        )
        .unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.trunk.cps, 25.0);
        assert_eq!(c.trunk.max_calls, 50);
        let dir = std::env::temp_dir().join(format!("genki-cfg-{}.toml", std::process::id()));
        std::fs::write(
            &dir,
            "[trunk]\npassword = \"s3cret\"\n[storage]\npath = \"/tmp/x\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&dir), &env(&[("GENKI_STORAGE_PATH", "/tmp/y")])).unwrap();
        assert_eq!(
            c.storage.path,
            PathBuf::from("/tmp/y"),
            "environment wins over the file"
        );
        assert!(!c.printable().contains("s3cret"));
        assert!(c.printable().contains("********"));
        std::fs::remove_file(&dir).ok();
    }

    #[test]
    fn errors_name_the_key() {
        let dir = std::env::temp_dir().join(format!("genki-cfg-bad-{}.toml", std::process::id()));
        std::fs::write(&dir, "[api]\nlisen = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load(Some(&dir), &[]).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
        std::fs::write(&dir, "[trunk]\ncps = \"fast\"\n").unwrap();
        let e = Config::load(Some(&dir), &[]).unwrap_err().to_string();
        assert!(e.contains("cps"), "{e}");
        std::fs::remove_file(&dir).ok();
        let e = Config::load(None, &env(&[("GENKI_TRUNK_MAX_CALLS", "many")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("GENKI_TRUNK_MAX_CALLS"), "{e}");
        let e = Config::load(None, &env(&[("GENKI_SIP_RTP_PORTS", "9-1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sip.rtp_ports"), "{e}");
        let e = Config::load(None, &env(&[("GENKI_API_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen") || e.contains("socket"), "{e}");
        assert!(Config::load(Some(std::path::Path::new("/nonexistent/genki.toml")), &[]).is_err());
    }

    #[test]
    fn an_unknown_variable_is_an_error_naming_the_nearest() {
        let e = Config::load(None, &env(&[("GENKI_TRUNK_PASWORD", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("GENKI_TRUNK_PASWORD: unknown variable")
                && e.contains("did you mean GENKI_TRUNK_PASSWORD?"),
            "{e}"
        );
        let e = Config::load(None, &env(&[("GENKI_SIP_RTP_LATCH", "off")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("GENKI_SIP_RTP_LATCHING"), "{e}");
        // Other commands' variables and non-genki ones pass.
        let ok = env(&[
            ("GENKI_LOG", "debug"),
            ("GENKI_SIP_PASSWORD", "p"),
            ("GENKI_TOKEN", "t"),
            ("HOME", "/root"),
            ("GENKI_SIP_RTP_LATCHING", "any"),
        ]);
        let c = Config::load(None, &ok).unwrap();
        assert_eq!(c.sip.rtp_latching, RtpLatching::Any);
    }
}
