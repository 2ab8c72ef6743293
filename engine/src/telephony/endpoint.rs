//! The SIP endpoint task: one task owns the SIP socket and the sans-IO
//! [`genki_sip::endpoint::Endpoint`] holding every call; calls talk to it
//! over channels. All protocol logic (routing by Call-ID, the timer heap,
//! stateless replies, lingering, attributing ICMP errors, the trunk's
//! registration) is in the sans-IO core; this file only moves datagrams,
//! instants and events, and publishes where the registration stands
//! ([`TrunkRegistration`]) for the due loop, `/healthz` and `/metrics`.
//!
//! Depends on: genki-sip, tokio, ipnet, [`crate::telephony::net`], [`crate::metrics`],
//! [`crate::notices`], [`crate::clock`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use genki_sip::endpoint::InboundEvent;
use genki_sip::endpoint::{Endpoint as SipEndpoint, EndpointStats};
use genki_sip::register::{RegEvent, RegisterConfig, Registration};
use genki_sip::uac::{UacCall, UacConfig, UacEvent};
use genki_sip::uas::UasEvent;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::notices::{Notice, Notices};
use crate::telephony::streams::{StreamEvent, Streams};

enum Cmd {
    Start {
        cfg: Box<UacConfig>,
        events: mpsc::UnboundedSender<Box<UacEvent>>,
    },
    Hangup {
        call_id: String,
    },
    /// The trunk refused a call as if it had lost our binding.
    Reregister,
    /// Answer (or refuse) an incoming call.
    Respond {
        call_id: String,
        status: u16,
        sdp: Option<Vec<u8>>,
    },
    /// Hang up an answered incoming call.
    HangupInbound {
        call_id: String,
    },
}

/// A call to genki's own number (a person calling back), handed to
/// whoever takes them ([`SipPolicy::inbound`]); its progress arrives on
/// `events`, the last one an ending (`Cancelled`, `AckTimeout`,
/// `RemoteBye`, `ByeDone`).
pub struct InboundCall {
    pub call_id: String,
    pub invite: genki_sip::Message,
    pub source: SocketAddr,
    pub events: mpsc::UnboundedReceiver<UasEvent>,
}

/// Where the trunk's registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegStatus {
    /// The trunk needs none (`[trunk] register = false`).
    Off,
    /// The first REGISTER is in flight.
    Registering,
    /// The binding holds: calls go out.
    Registered,
    /// The registrar refused or did not answer, and no binding holds:
    /// nothing is dialled through the trunk (checks are held).
    Failing,
}

impl RegStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegStatus::Off => "off",
            RegStatus::Registering => "registering",
            RegStatus::Registered => "registered",
            RegStatus::Failing => "failing",
        }
    }

    /// Whether calls through the trunk may go out.
    pub fn allows_calls(self) -> bool {
        matches!(self, RegStatus::Off | RegStatus::Registered)
    }
}

/// The registration's state as the endpoint task last published it.
#[derive(Debug)]
pub struct TrunkRegistration(std::sync::atomic::AtomicU8);

impl Default for TrunkRegistration {
    fn default() -> Self {
        TrunkRegistration(std::sync::atomic::AtomicU8::new(RegStatus::Off as u8))
    }
}

impl TrunkRegistration {
    pub fn get(&self) -> RegStatus {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            1 => RegStatus::Registering,
            2 => RegStatus::Registered,
            3 => RegStatus::Failing,
            _ => RegStatus::Off,
        }
    }

    fn set(&self, s: RegStatus) {
        self.0.store(s as u8, std::sync::atomic::Ordering::Release);
    }
}

/// What the endpoint keeps registered, and whom it tells when the
/// binding is lost or comes back.
pub struct RegisterWith {
    pub cfg: RegisterConfig,
    pub notices: Arc<Notices>,
    /// Wall time of the notices.
    pub clock: Arc<dyn crate::clock::Clock>,
}

/// Who may reach the endpoint: applied to every datagram before it is
/// parsed.
#[derive(Debug, Clone, Default)]
pub struct SipPolicy {
    /// `[sip] allow`: when not empty, datagrams from other addresses are
    /// dropped unparsed unless they come from a live call's first hop (a
    /// phone given as a SIP URI).
    pub allow: Vec<ipnet::IpNet>,
    /// Sources always answered (the trunk's proxy): never rate-limited.
    pub trusted: Vec<std::net::IpAddr>,
    /// Stateless answers a second to strangers (0: the default
    /// [`genki_sip::endpoint::STRANGER_RATE`]).
    pub stranger_rate: u32,
    /// Accept SIP over TCP on the SIP port too (a trunk on TCP sends its
    /// in-dialog requests there). Outgoing TCP connections are opened
    /// whenever a request's Via says TCP, listening or not.
    pub listen_tcp: bool,
    /// How TLS connections to the trunk are opened (its proxy is `sips:`
    /// or `;transport=tls`).
    pub tls: Option<Arc<crate::telephony::streams::TlsClient>>,
    /// OPTIONS keep-alive to the trunk's targets (RFC 3261 §11): their
    /// up/down state orders every call's targets.
    pub keepalive: Option<genki_sip::keepalive::ProbeConfig>,
    /// Take calls to genki's number (call-backs) and hand them here, at
    /// most `.1` at once (more are answered 486). None: refused (481).
    pub inbound: Option<(mpsc::UnboundedSender<InboundCall>, usize)>,
}

impl SipPolicy {
    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.trusted.contains(&ip) || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// How calls reach the endpoint task.
#[derive(Clone)]
pub struct Endpoint {
    tx: mpsc::UnboundedSender<Cmd>,
    pub local_addr: SocketAddr,
    alive: Arc<std::sync::atomic::AtomicBool>,
    registration: Arc<TrunkRegistration>,
    targets: Arc<TargetStates>,
}

/// The trunk's targets as the keep-alive last found them (address → up).
#[derive(Debug, Default)]
pub struct TargetStates(std::sync::Mutex<Vec<(SocketAddr, bool)>>);

impl TargetStates {
    fn set(&self, addr: SocketAddr, up: bool) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match v.iter_mut().find(|(a, _)| *a == addr) {
            Some(e) => e.1 = up,
            None => v.push((addr, up)),
        }
    }

    /// Every probed target and whether it answered its last OPTIONS.
    pub fn all(&self) -> Vec<(SocketAddr, bool)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `addr` was found down (never probed: not down).
    pub fn is_down(&self, addr: SocketAddr) -> bool {
        self.all().iter().any(|(a, up)| *a == addr && !up)
    }
}

/// Marks the endpoint task gone when it ends, even by a panic.
struct AliveGuard(Arc<std::sync::atomic::AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Why a call could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the call's SIP request is invalid: {0}")]
    Invalid(String),
    #[error("the SIP endpoint has stopped")]
    Stopped,
}

impl Endpoint {
    /// Spawn the endpoint task on `sock`; it runs until `shutdown` turns true
    /// and every call has finished.
    pub fn spawn(
        sock: UdpSocket,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Endpoint> {
        Endpoint::spawn_with(sock, metrics, shutdown, SipPolicy::default(), None)
    }

    /// [`Endpoint::spawn`] with a policy for strangers, and a trunk
    /// registration to keep (`register`).
    pub fn spawn_with(
        sock: UdpSocket,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
        policy: SipPolicy,
        register: Option<RegisterWith>,
    ) -> std::io::Result<Endpoint> {
        let local_addr = sock.local_addr()?;
        let streams = crate::telephony::streams::Streams::start(
            local_addr,
            policy.listen_tcp,
            policy.tls.clone(),
        )?;
        let (tx, rx) = mpsc::unbounded_channel();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        let registration = Arc::new(TrunkRegistration::default());
        let published = registration.clone();
        let targets = Arc::new(TargetStates::default());
        let published_targets = targets.clone();
        tokio::spawn(async move {
            let _guard = guard;
            run(
                sock,
                streams,
                rx,
                metrics,
                shutdown,
                policy,
                register,
                (published, published_targets),
            )
            .await
        });
        Ok(Endpoint {
            tx,
            local_addr,
            alive,
            registration,
            targets,
        })
    }

    /// The trunk's targets as the keep-alive last found them.
    pub fn targets(&self) -> Arc<TargetStates> {
        self.targets.clone()
    }

    /// Where the trunk's registration stands.
    pub fn registration(&self) -> RegStatus {
        self.registration.get()
    }

    /// The trunk refused a call as if our binding were gone: register
    /// again now (at most once every few seconds).
    pub fn reregister(&self) {
        let _ = self.tx.send(Cmd::Reregister);
    }

    /// The endpoint task is running (false once it has stopped, or died):
    /// `/healthz` reports SIP down then.
    pub fn alive(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.alive.clone()
    }

    /// Start a call; its events arrive on the returned channel, the last
    /// one `Ended`. Boxed: a channel allocates room for 32 events at once,
    /// and an event is 72 bytes inline (2.3 KiB a call, measured).
    pub fn start(
        &self,
        cfg: UacConfig,
    ) -> Result<mpsc::UnboundedReceiver<Box<UacEvent>>, StartError> {
        // Validate here so the caller gets the error, not the endpoint task.
        UacCall::new(cfg.clone(), Instant::now())
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        let (etx, erx) = mpsc::unbounded_channel();
        self.tx
            .send(Cmd::Start {
                cfg: Box::new(cfg),
                events: etx,
            })
            .map_err(|_| StartError::Stopped)?;
        Ok(erx)
    }

    /// Hang up (BYE, or CANCEL while ringing).
    pub fn hangup(&self, call_id: &str) {
        let _ = self.tx.send(Cmd::Hangup {
            call_id: call_id.to_string(),
        });
    }

    /// Answer an incoming call (`sdp`: the answer to its offer) or refuse it.
    pub fn respond_inbound(&self, call_id: &str, status: u16, sdp: Option<Vec<u8>>) {
        let _ = self.tx.send(Cmd::Respond {
            call_id: call_id.to_string(),
            status,
            sdp,
        });
    }

    /// Hang up an answered incoming call.
    pub fn hangup_inbound(&self, call_id: &str) {
        let _ = self.tx.send(Cmd::HangupInbound {
            call_id: call_id.to_string(),
        });
    }
}

/// The IO loop: the socket and the clock on one side, the sans-IO
/// [`genki_sip::endpoint::Endpoint`] on the other.
#[allow(clippy::too_many_arguments)]
async fn run(
    sock: UdpSocket,
    (mut streams, mut stream_rx): (Streams, mpsc::UnboundedReceiver<StreamEvent>),
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    policy: SipPolicy,
    register: Option<RegisterWith>,
    (published, published_targets): (Arc<TrunkRegistration>, Arc<TargetStates>),
) {
    let mut ep = SipEndpoint::default();
    if policy.stranger_rate > 0 {
        ep.set_stranger_rate(policy.stranger_rate, policy.stranger_rate.saturating_mul(2));
    }
    let notices = register
        .as_ref()
        .map(|r| (r.notices.clone(), r.clock.clone()));
    let mut reg = RegWatch::default();
    if let Some(k) = policy.keepalive.clone() {
        ep.set_prober(genki_sip::keepalive::Prober::new(k, Instant::now()));
    }
    if let Some(r) = register {
        info!(registrar = %r.cfg.next_hop, aor = %r.cfg.aor, "registering with the trunk");
        ep.set_registration(Registration::new(r.cfg, Instant::now()));
        published.set(RegStatus::Registering);
        metrics.trunk_registered.set(0);
    }
    if let Some((_, max)) = &policy.inbound {
        ep.set_inbound(
            local_addr_of(&sock),
            genki_sip::Timers::default(),
            *max,
            rand::random(),
        );
    }
    let mut owners = Owners::default();
    // The first REGISTER goes now, not with the loop's first event.
    flush(&sock, &mut streams, &mut ep, &mut owners).await;
    let mut buf = vec![0u8; 65536];
    let mut stopping = false;
    let mut rx_closed = false;
    let mut seen = EndpointStats::default();
    loop {
        if stopping && ep.is_empty() {
            break;
        }
        let next = ep.poll_timeout();
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, src)) => {
                    let trusted = policy.trusts(src.ip());
                    if !trusted && !policy.allow.is_empty() && !ep.is_peer(src.ip()) {
                        metrics.sip_strangers_dropped.inc();
                        continue;
                    }
                    if let Err(e) = ep.handle_datagram_from(&buf[..n], src, trusted, Instant::now()) {
                        debug!(%src, error = %e, "malformed SIP datagram dropped");
                    }
                }
                Err(e) => {
                    debug!(error = %e, "SIP receive error (ICMP from a peer)");
                    icmp(&sock, &mut ep, None);
                }
            },
            Some(ev) = stream_rx.recv() => {
                streams.on_event(&ev);
                match ev {
                    StreamEvent::Message(src, data) => {
                        let trusted = policy.trusts(src.ip());
                        if !trusted && !policy.allow.is_empty() && !ep.is_peer(src.ip()) {
                            metrics.sip_strangers_dropped.inc();
                        } else if let Err(e) = ep.handle_datagram_from(&data, src, trusted, Instant::now()) {
                            debug!(%src, error = %e, "malformed SIP message on a stream dropped");
                        }
                    }
                    // Never connected: the calls sent there fail now (as an ICMP error would).
                    StreamEvent::Closed { peer, opened: false } => {
                        let n = ep.handle_unreachable(&[peer], Instant::now());
                        if n > 0 {
                            warn!(%peer, calls = n, "first hop unreachable (TCP)");
                        }
                    }
                    _ => {}
                }
            }
            // Commands keep flowing while stopping: calls in progress must still hang up.
            cmd = rx.recv(), if !rx_closed => match cmd {
                Some(Cmd::Start { cfg, events }) => {
                    match ep.start(*cfg, Instant::now()) {
                        Ok(id) => {
                            owners.out.insert(id, events);
                        }
                        Err(e) => warn!(error = %e, "call not started"),
                    }
                }
                Some(Cmd::Hangup { call_id }) => ep.hangup(&call_id, Instant::now()),
                Some(Cmd::Reregister) => ep.refresh_registration(Instant::now()),
                Some(Cmd::Respond { call_id, status, sdp }) => ep.respond_inbound(
                    &call_id,
                    status,
                    sdp.as_deref().map(|b| ("application/sdp", b)),
                    Instant::now(),
                ),
                Some(Cmd::HangupInbound { call_id }) => ep.hangup_inbound(&call_id, Instant::now()),
                None => {
                    rx_closed = true;
                    stopping = true;
                }
            },
            _ = shutdown.changed(), if !stopping => {
                stopping = *shutdown.borrow();
            }
            _ = sleep => ep.handle_timeout(Instant::now()),
        }
        flush(&sock, &mut streams, &mut ep, &mut owners).await;
        hand_out_inbound(&mut ep, &mut owners, &policy);
        flush(&sock, &mut streams, &mut ep, &mut owners).await;
        while let Some(c) = ep.poll_target_change() {
            if c.up {
                info!(target = %c.addr, "trunk target up (OPTIONS answered)");
            } else {
                warn!(target = %c.addr, "trunk target down (OPTIONS unanswered); calls go to the others first");
            }
            published_targets.set(c.addr, c.up);
            metrics
                .trunk_targets_down
                .set(published_targets.all().iter().filter(|(_, up)| !up).count() as i64);
        }
        if let Some((n, clock)) = &notices {
            reg.update(&mut ep, &published, &metrics, n, clock.now_ms());
        }
        let stats = ep.stats();
        metrics.malformed_sip.add(stats.malformed - seen.malformed);
        metrics.spoofed_sip.add(stats.spoofed - seen.spoofed);
        metrics
            .sip_strangers_dropped
            .add(stats.strangers_dropped - seen.strangers_dropped);
        metrics
            .sip_retransmissions
            .add(stats.retransmissions - seen.retransmissions);
        seen = stats;
    }
}

/// Follows the registration's events and publishes its state; tells the
/// operator once when the binding is lost and once when it is back.
#[derive(Default)]
struct RegWatch {
    /// The last attempt failed (status, when the next one goes).
    failed: Option<(Option<u16>, std::time::Duration)>,
    /// When the binding was lost (for the recovery notice).
    lost_at: Option<Instant>,
}

impl RegWatch {
    fn update(
        &mut self,
        ep: &mut SipEndpoint,
        published: &TrunkRegistration,
        metrics: &Metrics,
        notices: &Notices,
        at_ms: u64,
    ) {
        while let Some(e) = ep.poll_reg_event() {
            match e {
                RegEvent::Registered { expires } => {
                    debug!(expires_s = expires.as_secs(), "trunk registration accepted");
                    self.failed = None;
                }
                RegEvent::Failed { status, retry_in } => {
                    metrics.trunk_registration_failures.inc();
                    warn!(
                        ?status,
                        retry_in_s = retry_in.as_secs(),
                        "trunk registration failed"
                    );
                    self.failed = Some((status, retry_in));
                }
            }
        }
        let now = Instant::now();
        let status = if ep.is_registered(now) {
            RegStatus::Registered
        } else if self.failed.is_some() {
            RegStatus::Failing
        } else {
            RegStatus::Registering
        };
        let before = published.get();
        if status == before {
            return;
        }
        published.set(status);
        metrics
            .trunk_registered
            .set(i64::from(status == RegStatus::Registered));
        match status {
            RegStatus::Registered => {
                info!("registered with the trunk: calls go out");
                if let Some(lost) = self.lost_at.take() {
                    notices.raise(
                        at_ms,
                        Notice::TrunkRegistered {
                            down_s: now.saturating_duration_since(lost).as_secs(),
                        },
                    );
                }
            }
            RegStatus::Failing if self.lost_at.is_none() => {
                self.lost_at = Some(now);
                let (status, retry_in) = self.failed.unwrap_or_default();
                notices.raise(
                    at_ms,
                    Notice::TrunkUnregistered {
                        status,
                        retry_in_s: retry_in.as_secs(),
                    },
                );
            }
            _ => {}
        }
    }
}

/// Who hears each call's events: outgoing calls' owners, and incoming
/// calls' handlers.
#[derive(Default)]
struct Owners {
    out: HashMap<String, mpsc::UnboundedSender<Box<UacEvent>>>,
    inbound: HashMap<String, mpsc::UnboundedSender<UasEvent>>,
}

fn local_addr_of(sock: &UdpSocket) -> SocketAddr {
    sock.local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5060)))
}

/// New incoming calls go to their handler; the others' progress to theirs.
fn hand_out_inbound(ep: &mut SipEndpoint, owners: &mut Owners, policy: &SipPolicy) {
    while let Some((id, ev)) = ep.poll_inbound_event() {
        match ev {
            InboundEvent::Invite { invite, source } => {
                let (etx, erx) = mpsc::unbounded_channel();
                let taken = policy.inbound.as_ref().is_some_and(|(tx, _)| {
                    tx.send(InboundCall {
                        call_id: id.clone(),
                        invite: *invite,
                        source,
                        events: erx,
                    })
                    .is_ok()
                });
                if taken {
                    owners.inbound.insert(id, etx);
                } else {
                    // Nobody takes calls now (stopping): temporarily unavailable.
                    ep.respond_inbound(&id, 480, None, Instant::now());
                }
            }
            InboundEvent::Call(ev) => {
                let last = matches!(
                    ev,
                    UasEvent::Cancelled
                        | UasEvent::AckTimeout
                        | UasEvent::RemoteBye
                        | UasEvent::ByeDone { .. }
                );
                if let Some(tx) = owners.inbound.get(&id) {
                    let _ = tx.send(ev);
                }
                if last {
                    owners.inbound.remove(&id);
                }
            }
        }
    }
}

/// Send every datagram the endpoint has ready and hand out its events.
async fn flush(sock: &UdpSocket, streams: &mut Streams, ep: &mut SipEndpoint, owners: &mut Owners) {
    let owners = &mut owners.out;
    loop {
        while let Some(t) = ep.poll_transmit() {
            // A request goes the way its Via says (§18.1.1); anything to a
            // peer we hold a connection with goes on it (responses return
            // the way their request came, §18.2.2).
            let via = genki_sip::stream::request_transport(&t.data);
            if streams.has(t.dest) || via.is_some_and(|x| x.is_reliable()) {
                streams.send(t.dest, t.data, via.unwrap_or_default());
                continue;
            }
            if let Err(e) = sock.send_to(&t.data, t.dest).await {
                debug!(dest = %t.dest, error = %e, "SIP send failed");
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::HostUnreachable
                        | std::io::ErrorKind::NetworkUnreachable
                ) {
                    // The error reported on this send may be for another
                    // call's datagram: attribute it by destination.
                    icmp(sock, ep, Some(t.dest));
                }
            }
        }
        let mut any = false;
        while let Some((id, ev)) = ep.poll_event() {
            any = true;
            let last = matches!(ev, UacEvent::Ended { .. });
            if let Some(tx) = owners.get(&id) {
                let _ = tx.send(Box::new(ev));
            }
            if last {
                owners.remove(&id);
            }
        }
        // An ICMP error handled above may have queued more output.
        if !any && !ep.has_transmit() {
            return;
        }
    }
}

/// An ICMP error was reported on the SIP socket: read which destinations
/// it was for from the error queue and give them to the endpoint (RFC 3261
/// §8.1.3.1). Without error details (not Linux), the destination of the
/// send that failed (`sent_to`) takes it.
fn icmp(sock: &UdpSocket, ep: &mut SipEndpoint, sent_to: Option<SocketAddr>) {
    let mut dests = crate::telephony::net::take_icmp_errors(sock);
    if dests.is_empty() {
        dests.extend(sent_to);
    }
    if !dests.is_empty() {
        let n = ep.handle_unreachable(&dests, Instant::now());
        if n > 0 {
            warn!(?dests, calls = n, "first hop unreachable (ICMP)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/healthz` reads this: the flag falls when the task ends.
    #[tokio::test]
    async fn alive_until_the_task_ends() {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (stop, rx) = watch::channel(false);
        let ep = Endpoint::spawn(sock, Arc::new(Metrics::default()), rx).unwrap();
        let alive = ep.alive();
        assert!(alive.load(std::sync::atomic::Ordering::SeqCst));
        stop.send(true).unwrap();
        drop(ep);
        for _ in 0..100 {
            if !alive.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the endpoint task did not report its end");
    }
}
