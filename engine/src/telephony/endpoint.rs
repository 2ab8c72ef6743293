//! The SIP endpoint task: one task owns the SIP socket and the sans-IO
//! [`genki_sip::endpoint::Endpoint`] holding every call; calls talk to it
//! over channels. All protocol logic (routing by Call-ID, the timer heap,
//! stateless replies, lingering, attributing ICMP errors) is in the
//! sans-IO core; this file only moves datagrams, instants and events.
//!
//! Depends on: genki-sip, tokio, ipnet, [`crate::telephony::net`], [`crate::metrics`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use genki_sip::endpoint::{Endpoint as SipEndpoint, EndpointStats};
use genki_sip::uac::{UacCall, UacConfig, UacEvent};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::metrics::Metrics;

enum Cmd {
    Start {
        cfg: Box<UacConfig>,
        events: mpsc::UnboundedSender<UacEvent>,
    },
    Hangup {
        call_id: String,
    },
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
        Endpoint::spawn_with(sock, metrics, shutdown, SipPolicy::default())
    }

    /// [`Endpoint::spawn`] with a policy for strangers.
    pub fn spawn_with(
        sock: UdpSocket,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
        policy: SipPolicy,
    ) -> std::io::Result<Endpoint> {
        let local_addr = sock.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        tokio::spawn(async move {
            let _guard = guard;
            run(sock, rx, metrics, shutdown, policy).await
        });
        Ok(Endpoint {
            tx,
            local_addr,
            alive,
        })
    }

    /// The endpoint task is running (false once it has stopped, or died):
    /// `/healthz` reports SIP down then.
    pub fn alive(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.alive.clone()
    }

    /// Start a call; its events arrive on the returned channel, the last one `Ended`.
    pub fn start(&self, cfg: UacConfig) -> Result<mpsc::UnboundedReceiver<UacEvent>, StartError> {
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
}

/// The IO loop: the socket and the clock on one side, the sans-IO
/// [`genki_sip::endpoint::Endpoint`] on the other.
async fn run(
    sock: UdpSocket,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    policy: SipPolicy,
) {
    let mut ep = SipEndpoint::default();
    if policy.stranger_rate > 0 {
        ep.set_stranger_rate(policy.stranger_rate, policy.stranger_rate.saturating_mul(2));
    }
    let mut owners: HashMap<String, mpsc::UnboundedSender<UacEvent>> = HashMap::new();
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
            // Commands keep flowing while stopping: calls in progress must still hang up.
            cmd = rx.recv(), if !rx_closed => match cmd {
                Some(Cmd::Start { cfg, events }) => {
                    match ep.start(*cfg, Instant::now()) {
                        Ok(id) => {
                            owners.insert(id, events);
                        }
                        Err(e) => warn!(error = %e, "call not started"),
                    }
                }
                Some(Cmd::Hangup { call_id }) => ep.hangup(&call_id, Instant::now()),
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
        flush(&sock, &mut ep, &mut owners).await;
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

/// Send every datagram the endpoint has ready and hand out its events.
async fn flush(
    sock: &UdpSocket,
    ep: &mut SipEndpoint,
    owners: &mut HashMap<String, mpsc::UnboundedSender<UacEvent>>,
) {
    loop {
        while let Some(t) = ep.poll_transmit() {
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
                let _ = tx.send(ev);
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
