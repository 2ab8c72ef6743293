//! The daemon's SIP endpoint: one task owns the SIP socket and every
//! call's [`UacCall`]; calls talk to it over channels (ARCHITECTURE.md "One
//! SIP endpoint task"). Datagrams are routed by Call-ID; timers sit in a
//! heap of (deadline, Call-ID) with stale entries skipped, so a wake-up
//! costs O(log n) whatever the number of calls.
//!
//! Depends on: genki-sip, tokio, [`crate::call::stateless_reply`], [`crate::metrics`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use genki_sip::message::Message;
use genki_sip::uac::{UacCall, UacConfig, UacEvent};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::call::stateless_reply;
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

/// How calls reach the endpoint task.
#[derive(Clone)]
pub struct Endpoint {
    tx: mpsc::UnboundedSender<Cmd>,
    pub local_addr: SocketAddr,
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
        let local_addr = sock.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(sock, rx, metrics, shutdown));
        Ok(Endpoint { tx, local_addr })
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

struct Slot {
    uac: UacCall,
    events: mpsc::UnboundedSender<UacEvent>,
    ended_at: Option<Instant>,
}

/// After a call ended, keep it this long at most to absorb retransmissions.
const LINGER: Duration = Duration::from_secs(32);

async fn run(
    sock: UdpSocket,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut calls: HashMap<String, Slot> = HashMap::new();
    let mut timers: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::new();
    let mut buf = vec![0u8; 65536];
    let mut stopping = false;
    let mut rx_closed = false;
    loop {
        if stopping && calls.is_empty() {
            break;
        }
        let next = timers.peek().map(|Reverse((t, _))| *t);
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        let mut touched: Option<String> = None;
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, src)) => {
                    let now = Instant::now();
                    match Message::parse(&buf[..n]) {
                        Ok(msg) => {
                            if let Some(slot) = calls.get_mut(&msg.call_id) {
                                let id = msg.call_id.clone();
                                slot.uac.handle_message(msg, src, now);
                                touched = Some(id);
                            } else if let Some(reply) = stateless_reply(&msg) {
                                let _ = sock.send_to(&reply, src).await;
                            }
                        }
                        Err(e) => {
                            metrics.malformed_sip.inc();
                            debug!(%src, error = %e, "malformed SIP datagram dropped");
                        }
                    }
                }
                Err(e) => {
                    debug!(error = %e, "SIP receive error (ICMP from a peer)");
                    for id in unreachable(&sock, &mut calls, None) {
                        service(&sock, &id, &mut calls, &mut timers, &metrics).await;
                    }
                }
            },
            // Commands keep flowing while stopping: calls in progress must still hang up.
            cmd = rx.recv(), if !rx_closed => match cmd {
                Some(Cmd::Start { cfg, events }) => {
                    match UacCall::new(*cfg, Instant::now()) {
                        Ok(uac) => {
                            let id = uac.call_id().to_string();
                            calls.insert(id.clone(), Slot { uac, events, ended_at: None });
                            touched = Some(id);
                        }
                        Err(e) => warn!(error = %e, "call not started"),
                    }
                }
                Some(Cmd::Hangup { call_id }) => {
                    if let Some(slot) = calls.get_mut(&call_id) {
                        slot.uac.hangup(Instant::now());
                        touched = Some(call_id);
                    }
                }
                None => {
                    rx_closed = true;
                    stopping = true;
                }
            },
            _ = shutdown.changed(), if !stopping => {
                stopping = *shutdown.borrow();
            }
            _ = sleep => {
                let now = Instant::now();
                while let Some(Reverse((t, id))) = timers.peek().cloned() {
                    if t > now {
                        break;
                    }
                    timers.pop();
                    if let Some(slot) = calls.get_mut(&id) {
                        if slot.uac.poll_timeout().is_some_and(|d| d <= now) {
                            slot.uac.handle_timeout(now);
                        }
                        service(&sock, &id, &mut calls, &mut timers, &metrics).await;
                    }
                }
            }
        }
        if let Some(id) = touched {
            service(&sock, &id, &mut calls, &mut timers, &metrics).await;
        }
    }
}

/// An ICMP error was reported on the SIP socket: read which destinations
/// it was for and give every call whose first hop is one of them a
/// transport error (RFC 3261 §8.1.3.1). Without error details (not Linux),
/// `sender` — the call whose send failed — takes it. Returns the calls
/// touched, other than `sender`.
fn unreachable(
    sock: &UdpSocket,
    calls: &mut HashMap<String, Slot>,
    sender: Option<&str>,
) -> Vec<String> {
    let now = Instant::now();
    let dests = crate::net::take_icmp_errors(sock);
    if dests.is_empty() {
        if let Some(slot) = sender.and_then(|id| calls.get_mut(id)) {
            slot.uac.handle_transport_error(now);
        }
        return vec![];
    }
    let mut touched = vec![];
    for (id, slot) in calls.iter_mut() {
        if dests.contains(&slot.uac.next_hop()) {
            warn!(call_id = %id, hop = %slot.uac.next_hop(), "first hop unreachable (ICMP)");
            slot.uac.handle_transport_error(now);
            if Some(id.as_str()) != sender {
                touched.push(id.clone());
            }
        }
    }
    touched
}

/// Send a call's datagrams, deliver its events, re-arm its timer, drop it when finished.
async fn service(
    sock: &UdpSocket,
    id: &str,
    calls: &mut HashMap<String, Slot>,
    timers: &mut BinaryHeap<Reverse<(Instant, String)>>,
    metrics: &Metrics,
) {
    let Some(slot) = calls.get_mut(id) else {
        return;
    };
    let now = Instant::now();
    let mut refused = false;
    while let Some(t) = slot.uac.poll_transmit() {
        if let Err(e) = sock.send_to(&t.data, t.dest).await {
            debug!(dest = %t.dest, error = %e, "SIP send failed");
            refused |= matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            );
        }
    }
    if refused {
        // The error reported on this send may be for another call's
        // datagram: attribute it by destination.
        let others = unreachable(sock, calls, Some(id));
        for other in others {
            Box::pin(service(sock, &other, calls, timers, metrics)).await;
        }
    }
    let Some(slot) = calls.get_mut(id) else {
        return;
    };
    while let Some(ev) = slot.uac.poll_event() {
        if matches!(ev, UacEvent::Ended { .. }) {
            slot.ended_at = Some(now);
            metrics
                .sip_retransmissions
                .add(slot.uac.total_retransmissions() as u64);
        }
        let _ = slot.events.send(ev);
    }
    let done = slot.uac.is_finished() || slot.ended_at.is_some_and(|e| now >= e + LINGER);
    if done {
        calls.remove(id);
        return;
    }
    let next = match (slot.uac.poll_timeout(), slot.ended_at) {
        (Some(t), Some(e)) => Some(t.min(e + LINGER)),
        (t, e) => t.or(e.map(|e| e + LINGER)),
    };
    if let Some(t) = next {
        timers.push(Reverse((t, id.to_string())));
    }
}
