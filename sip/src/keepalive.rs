//! OPTIONS keep-alive to each of a trunk's targets (RFC 3261 §11),
//! sans-IO: every interval an OPTIONS goes to each target through a
//! non-INVITE client transaction; any answer but 503 says the target is
//! up (§11.2: a server answers OPTIONS as it would an INVITE's
//! capabilities; a 503 says it takes no calls now), no answer or an
//! unreachable address says it is down. The owner orders a call's
//! targets by it, so a dead primary costs no call a Timer B.
//!
//! Depends on: [`crate::transaction`], [`crate::message`], [`crate::stream`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dialog::Transmit;
use crate::message::{Builder, Message, Method};
use crate::stream::Transport;
use crate::transaction::{ClientNonInvite, Timers, TxEvent};

/// What the prober needs to build its requests.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub targets: Vec<SocketAddr>,
    pub interval: Duration,
    /// Our From URI and transport address (Via sent-by).
    pub from: String,
    pub local_addr: SocketAddr,
    pub transport: Transport,
    pub timers: Timers,
    pub user_agent: String,
    /// Distinguishes this process's probes' Call-IDs.
    pub tag: String,
}

/// A target's state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetChange {
    pub addr: SocketAddr,
    pub up: bool,
}

struct Probe {
    addr: SocketAddr,
    /// None until the first probe ends.
    up: Option<bool>,
    call_id: String,
    cseq: u32,
    tx: Option<ClientNonInvite>,
    next_at: Instant,
}

/// Keeps probing a trunk's targets.
pub struct Prober {
    cfg: ProbeConfig,
    probes: Vec<Probe>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TargetChange>,
}

impl Prober {
    /// Probe every target now, then every interval.
    pub fn new(mut cfg: ProbeConfig, now: Instant) -> Prober {
        cfg.timers.reliable = cfg.transport.is_reliable();
        let probes = cfg
            .targets
            .iter()
            .enumerate()
            .map(|(i, a)| Probe {
                addr: *a,
                up: None,
                call_id: format!("ka{i}-{}@genki", cfg.tag),
                cseq: 0,
                tx: None,
                next_at: now,
            })
            .collect();
        let mut p = Prober {
            cfg,
            probes,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        p.handle_timeout(now);
        p
    }

    /// Whether a Call-ID is one of the probes'.
    pub fn owns(&self, call_id: &str) -> bool {
        self.probes.iter().any(|p| p.call_id == call_id)
    }

    /// Whether `addr` is known to be down (unknown counts as up).
    pub fn is_down(&self, addr: SocketAddr) -> bool {
        self.probes
            .iter()
            .any(|p| p.addr == addr && p.up == Some(false))
    }

    /// A response to a probe, from `src` (only the probed target's count).
    pub fn handle_response(&mut self, msg: Message, src: SocketAddr, now: Instant) {
        let Some(i) = self
            .probes
            .iter()
            .position(|p| p.call_id == msg.call_id && p.addr == src)
        else {
            return;
        };
        if msg.cseq != self.probes[i].cseq {
            return;
        }
        if let Some(tx) = self.probes[i].tx.as_mut() {
            tx.handle_response(msg, now);
        }
        self.drain(i, now);
    }

    /// ICMP or a connection refused for these addresses.
    pub fn handle_transport_error(&mut self, dests: &[SocketAddr], now: Instant) {
        for i in 0..self.probes.len() {
            if dests.contains(&self.probes[i].addr) {
                if let Some(tx) = self.probes[i].tx.as_mut() {
                    tx.handle_transport_error();
                }
                self.drain(i, now);
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.probes.len() {
            if let Some(tx) = self.probes[i].tx.as_mut() {
                tx.handle_timeout(now);
                self.drain(i, now);
            }
            if self.probes[i].tx.is_none() && now >= self.probes[i].next_at {
                self.send(i, now);
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.probes
            .iter()
            .map(|p| match &p.tx {
                Some(tx) => tx.poll_timeout().unwrap_or(p.next_at),
                None => p.next_at,
            })
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TargetChange> {
        self.events.pop_front()
    }

    fn send(&mut self, i: usize, now: Instant) {
        let c = &self.cfg;
        let p = &mut self.probes[i];
        p.cseq += 1;
        let target = format!("sip:{}{}", p.addr, c.transport.uri_param());
        let bytes = Builder::request(&Method::Options, &target)
            .header(
                "Via",
                &c.transport
                    .via_value(c.local_addr, &format!("z9hG4bK{}.{}.{}", c.tag, i, p.cseq)),
            )
            .header("Max-Forwards", "70")
            .header("From", &format!("<{}>;tag={}", c.from, c.tag))
            .header("To", &format!("<{target}>"))
            .header("Call-ID", &p.call_id)
            .header("CSeq", &format!("{} OPTIONS", p.cseq))
            .header("Accept", "application/sdp")
            .header("User-Agent", &c.user_agent)
            .build();
        let mut tx = ClientNonInvite::new(bytes, c.timers, now);
        while let Some(data) = tx.poll_transmit() {
            self.transmits.push_back(Transmit { dest: p.addr, data });
        }
        p.tx = Some(tx);
        p.next_at = now + c.interval;
    }

    fn drain(&mut self, i: usize, _now: Instant) {
        let p = &mut self.probes[i];
        let Some(tx) = p.tx.as_mut() else {
            return;
        };
        while let Some(data) = tx.poll_transmit() {
            self.transmits.push_back(Transmit { dest: p.addr, data });
        }
        let mut verdict = None;
        while let Some(ev) = tx.poll_event() {
            match ev {
                TxEvent::Response(m) => match m.status() {
                    Some(s) if s >= 200 => verdict = Some(s != 503),
                    _ => {}
                },
                TxEvent::Timeout => verdict = Some(false),
                _ => {}
            }
        }
        if let Some(up) = verdict {
            p.tx = None;
            if p.up != Some(up) {
                p.up = Some(up);
                self.events.push_back(TargetChange { addr: p.addr, up });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::reason_phrase;

    #[test]
    fn targets_go_up_and_down_with_their_answers() {
        let start = Instant::now();
        let a: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:5070".parse().unwrap();
        let mut p = Prober::new(
            ProbeConfig {
                targets: vec![a, b],
                interval: Duration::from_secs(30),
                from: "sip:genki@127.0.0.1".into(),
                local_addr: "127.0.0.1:5060".parse().unwrap(),
                transport: Transport::Udp,
                timers: Timers::default(),
                user_agent: "genki-test".into(),
                tag: "t".into(),
            },
            start,
        );
        let sent: Vec<Transmit> = std::iter::from_fn(|| p.poll_transmit()).collect();
        assert_eq!(sent.len(), 2);
        assert!(!p.is_down(b), "unknown counts as up");
        // a answers (even 404 says it is alive); b never does.
        let req = Message::parse(&sent.iter().find(|t| t.dest == a).unwrap().data).unwrap();
        assert!(p.owns(&req.call_id));
        let ok = Builder::response_to(&req, 404, reason_phrase(404), Some("x")).build();
        p.handle_response(Message::parse(&ok).unwrap(), a, start);
        assert_eq!(p.poll_event(), Some(TargetChange { addr: a, up: true }));
        let mut now = start;
        while let Some(t) = p.poll_timeout() {
            if t > start + Duration::from_secs(33) {
                break;
            }
            now = t;
            p.handle_timeout(now);
            while p.poll_transmit().is_some() {}
        }
        assert!(p.is_down(b), "Timer F: down");
        assert_eq!(p.poll_event(), Some(TargetChange { addr: b, up: false }));
        assert!(!p.is_down(a));
        // a's next probe (sent at 30 s) meets an ICMP error: down at once.
        p.handle_transport_error(&[a], now);
        assert!(p.is_down(a));
        assert_eq!(p.poll_event(), Some(TargetChange { addr: a, up: false }));
    }
}
