//! The endpoint: many outgoing calls sharing one SIP transport address,
//! sans-IO (in the manner of quinn-proto's `Endpoint`).
//!
//! It owns every [`UacCall`], routes each received datagram to its call
//! by Call-ID (RFC 3261 §8.1.3.3: responses and in-dialog requests carry
//! the Call-ID of the call they belong to), answers requests for no call
//! statelessly (§8.2), keeps one timer heap of (deadline, Call-ID) so a
//! wake-up costs O(log n) whatever the number of calls, attributes ICMP
//! errors to the calls sent to the failing address (§8.1.3.1), and keeps
//! a call that ended for a while to absorb retransmissions of its final
//! messages. Requests for no call from strangers (no live call's peer,
//! not marked trusted by the owner) are answered at a bounded rate
//! ([`STRANGER_RATE`]): beyond it they are dropped unanswered, so a flood
//! of forged sources cannot turn genki into a reflector, and the owner's
//! trusted peers (the trunk) are never starved of their answers. It may
//! also keep one outbound [`Registration`] (the trunk's, RFC 3261 §10) on
//! the same address, its responses routed by its Call-ID. The
//! owner does the IO: it feeds datagrams, send errors and
//! instants in, and polls datagrams, events and the next deadline out.
//!
//! With [`Endpoint::set_inbound`] it also takes incoming calls (a person
//! calling genki's number back): a new INVITE becomes a [`UasCall`] kept
//! beside the outgoing ones, announced as [`InboundEvent::Invite`]; the
//! owner answers it ([`Endpoint::respond_inbound`]) and hangs it up.
//!
//! Depends on: [`crate::uac`], [`crate::uas`], [`crate::register`], [`crate::message`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::dialog::Transmit;
use crate::keepalive::{Prober, TargetChange};
use crate::message::{reason_phrase, Builder, Message, Method, ParseError};
use crate::register::{RegEvent, Registration};
use crate::transaction::Timers;
use crate::uac::{UacCall, UacConfig, UacEvent};
use crate::uas::{UasCall, UasEvent};

/// After a call ended, keep it this long at most to absorb retransmissions
/// of its final messages (a 200 to our BYE, a repeated BYE): 64·T1 with
/// the default T1, the longest a peer's transaction keeps retransmitting.
pub const LINGER: Duration = Duration::from_secs(32);

/// Stateless answers a second to strangers, all of them together, and the
/// burst allowed before the rate applies.
pub const STRANGER_RATE: (u32, u32) = (100, 200);

/// Why a call could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the call's SIP request is invalid: {0}")]
    Invalid(#[from] ParseError),
    #[error("a call with Call-ID {0:?} is already in progress")]
    DuplicateCallId(String),
}

/// Counters over the endpoint's life, for the owner's metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams that were not SIP (dropped).
    pub malformed: u64,
    /// Requests for no known call answered statelessly.
    pub stateless_replies: u64,
    /// SIP retransmissions of every call that has ended.
    pub retransmissions: u64,
    /// Messages carrying a live call's Call-ID that the call refused: from
    /// a source it never sent to, or a response on another branch (spoofs,
    /// or a peer that answers from another port than it was sent to).
    pub spoofed: u64,
    /// Requests for no call from strangers dropped unanswered (over
    /// [`STRANGER_RATE`]).
    pub strangers_dropped: u64,
}

/// A token bucket on virtual time (the owner's instants).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn new((rate, burst): (u32, u32)) -> Bucket {
        Bucket {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            at: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the owner hears of an incoming call, keyed by its Call-ID.
#[derive(Debug, Clone)]
pub enum InboundEvent {
    /// A new call: answer it with [`Endpoint::respond_inbound`].
    Invite {
        invite: Box<Message>,
        source: SocketAddr,
    },
    /// Its progress (ACK, CANCEL, BYE…); the call's last event is
    /// `Cancelled`, `AckTimeout`, `RemoteBye` or `ByeDone`.
    Call(UasEvent),
}

/// Incoming calls taken, and what they need.
struct Inbound {
    local_addr: SocketAddr,
    timers: Timers,
    /// At most this many at once; more are refused 486.
    max: usize,
    calls: HashMap<String, Box<UasSlot>>,
    events: VecDeque<(String, InboundEvent)>,
    /// For the To tags (xorshift from the owner's random seed).
    seed: u64,
}

struct UasSlot {
    uas: UasCall,
    armed: Option<Instant>,
    ended_at: Option<Instant>,
}

struct Slot {
    uac: UacCall,
    /// The first hop it was started with (the `peers` count it holds).
    peer_ip: IpAddr,
    ended_at: Option<Instant>,
    /// The deadline this call has in the heap; other entries are stale.
    armed: Option<Instant>,
}

/// Every outgoing call on one SIP transport address.
pub struct Endpoint {
    /// Boxed: a call's state is a few hundred bytes and the table keeps
    /// up to twice its length in empty buckets (measured: 4.9 KiB a call
    /// inline at 1,000 calls).
    calls: HashMap<String, Box<Slot>>,
    timers: BinaryHeap<Reverse<(Instant, String)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(String, UacEvent)>,
    linger: Duration,
    stats: EndpointStats,
    /// Live calls by their first hop's address: the peers that are no strangers.
    peers: HashMap<IpAddr, u32>,
    strangers: Bucket,
    registration: Option<Registration>,
    reg_events: VecDeque<RegEvent>,
    prober: Option<Prober>,
    inbound: Option<Inbound>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::new(LINGER)
    }
}

impl Endpoint {
    /// An endpoint that keeps ended calls `linger` long.
    pub fn new(linger: Duration) -> Endpoint {
        Endpoint {
            calls: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            linger,
            stats: EndpointStats::default(),
            peers: HashMap::new(),
            strangers: Bucket::new(STRANGER_RATE),
            registration: None,
            reg_events: VecDeque::new(),
            prober: None,
            inbound: None,
        }
    }

    /// Take incoming calls from now on (at most `max` at once), answering
    /// from `local_addr` (the Contact) with `timers`; `seed` (random, from
    /// the owner: this core draws no randomness) makes the To tags.
    pub fn set_inbound(&mut self, local_addr: SocketAddr, timers: Timers, max: usize, seed: u64) {
        self.inbound = Some(Inbound {
            local_addr,
            timers,
            max,
            calls: HashMap::new(),
            events: VecDeque::new(),
            seed: seed | 1,
        });
    }

    /// Answer (or refuse) an incoming call's INVITE.
    pub fn respond_inbound(
        &mut self,
        call_id: &str,
        status: u16,
        body: Option<(&str, &[u8])>,
        now: Instant,
    ) {
        if let Some(slot) = self.inbound.as_mut().and_then(|i| i.calls.get_mut(call_id)) {
            slot.uas.respond(
                status,
                &[("Allow", "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS")],
                body,
                now,
            );
        }
        self.service_uas(call_id, now);
    }

    /// Hang up an answered incoming call (BYE).
    pub fn hangup_inbound(&mut self, call_id: &str, now: Instant) {
        if let Some(slot) = self.inbound.as_mut().and_then(|i| i.calls.get_mut(call_id)) {
            slot.uas.hangup(now);
        }
        self.service_uas(call_id, now);
    }

    /// The next event of an incoming call.
    pub fn poll_inbound_event(&mut self) -> Option<(String, InboundEvent)> {
        self.inbound.as_mut()?.events.pop_front()
    }

    /// Move an incoming call's output to the queues, re-arm its timer, and
    /// drop it once finished (or lingered).
    fn service_uas(&mut self, id: &str, now: Instant) {
        let linger = self.linger;
        let Some(inb) = self.inbound.as_mut() else {
            return;
        };
        let Some(slot) = inb.calls.get_mut(id) else {
            return;
        };
        while let Some(t) = slot.uas.poll_transmit() {
            self.transmits.push_back(t);
        }
        while let Some(ev) = slot.uas.poll_event() {
            if matches!(
                ev,
                UasEvent::Cancelled
                    | UasEvent::AckTimeout
                    | UasEvent::RemoteBye
                    | UasEvent::ByeDone { .. }
            ) {
                slot.ended_at.get_or_insert(now);
            }
            inb.events
                .push_back((id.to_string(), InboundEvent::Call(ev)));
        }
        let linger_end = slot.ended_at.map(|e| e + linger);
        if slot.uas.is_finished() || linger_end.is_some_and(|e| now >= e) {
            inb.calls.remove(id);
            return;
        }
        arm(
            &mut self.timers,
            &mut slot.armed,
            slot.uas.poll_timeout(),
            linger_end,
            id,
        );
    }

    /// Probe the trunk's targets with OPTIONS from now on.
    pub fn set_prober(&mut self, p: Prober) {
        self.prober = Some(p);
        self.service_prober();
    }

    /// A trunk target's state changed (from the prober).
    pub fn poll_target_change(&mut self) -> Option<TargetChange> {
        self.prober.as_mut().and_then(|p| p.poll_event())
    }

    fn service_prober(&mut self) {
        if let Some(p) = self.prober.as_mut() {
            while let Some(t) = p.poll_transmit() {
                self.transmits.push_back(t);
            }
        }
    }

    /// Keep `reg` up from now on (its first REGISTER goes out with the
    /// next [`Endpoint::poll_transmit`]).
    pub fn set_registration(&mut self, reg: Registration) {
        self.registration = Some(reg);
        self.service_registration();
    }

    /// Whether the registration's binding holds at `now` (true when there
    /// is no registration to keep).
    pub fn is_registered(&self, now: Instant) -> bool {
        self.registration
            .as_ref()
            .is_none_or(|r| r.is_registered(now))
    }

    /// Register again at once (see [`Registration::refresh_now`]).
    pub fn refresh_registration(&mut self, now: Instant) {
        if let Some(r) = self.registration.as_mut() {
            r.refresh_now(now);
        }
        self.service_registration();
    }

    /// The next change of the registration.
    pub fn poll_reg_event(&mut self) -> Option<RegEvent> {
        self.reg_events.pop_front()
    }

    fn service_registration(&mut self) {
        let Some(r) = self.registration.as_mut() else {
            return;
        };
        let dest = r.next_hop();
        while let Some(data) = r.poll_transmit() {
            self.transmits.push_back(Transmit { dest, data });
        }
        while let Some(e) = r.poll_event() {
            self.reg_events.push_back(e);
        }
    }

    /// Answer strangers at most `rate` a second (bursts of `burst`).
    pub fn set_stranger_rate(&mut self, rate: u32, burst: u32) {
        self.strangers = Bucket::new((rate, burst));
    }

    /// A live call's first hop is at `ip` (its messages are no stranger's).
    pub fn is_peer(&self, ip: IpAddr) -> bool {
        self.peers.contains_key(&ip)
    }

    /// Start a call: its INVITE is ready in [`Endpoint::poll_transmit`].
    /// Returns its Call-ID, the key of its events.
    pub fn start(&mut self, cfg: UacConfig, now: Instant) -> Result<String, StartError> {
        if self.calls.contains_key(&cfg.call_id) {
            return Err(StartError::DuplicateCallId(cfg.call_id));
        }
        let uac = UacCall::new(cfg, now)?;
        let id = uac.call_id().to_string();
        let peer_ip = uac.next_hop().ip();
        *self.peers.entry(peer_ip).or_default() += 1;
        self.calls.insert(
            id.clone(),
            Box::new(Slot {
                uac,
                peer_ip,
                ended_at: None,
                armed: None,
            }),
        );
        self.service(&id, now);
        Ok(id)
    }

    /// Hang up a call (BYE once answered, CANCEL while ringing). Unknown
    /// or already ended calls are ignored.
    pub fn hangup(&mut self, call_id: &str, now: Instant) {
        if let Some(slot) = self.calls.get_mut(call_id) {
            slot.uac.hangup(now);
            self.service(call_id, now);
        }
    }

    /// A datagram arrived from `src`. A malformed one is counted, dropped
    /// and returned as the error (for the owner's log).
    pub fn handle_datagram(
        &mut self,
        data: &[u8],
        src: SocketAddr,
        now: Instant,
    ) -> Result<(), ParseError> {
        self.handle_datagram_from(data, src, false, now)
    }

    /// [`Endpoint::handle_datagram`] from a source the owner trusts (its
    /// trunk, its allow list): answered whatever the strangers' rate.
    pub fn handle_datagram_from(
        &mut self,
        data: &[u8],
        src: SocketAddr,
        trusted: bool,
        now: Instant,
    ) -> Result<(), ParseError> {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        if let Some(p) = self.prober.as_mut().filter(|p| p.owns(&msg.call_id)) {
            if msg.status().is_some() {
                p.handle_response(msg, src, now);
                self.service_prober();
            }
        } else if let Some(r) = self
            .registration
            .as_mut()
            .filter(|r| r.call_id() == msg.call_id)
        {
            // Only the registrar's answers (§8.1.3.3: responses come back
            // from where the request went); requests with its Call-ID are
            // nobody's.
            if msg.status().is_some() && src == r.next_hop() {
                r.handle_response(msg, now);
                self.service_registration();
            } else {
                self.stats.spoofed += 1;
            }
        } else if let Some(slot) = self.calls.get_mut(&msg.call_id) {
            let id = msg.call_id.clone();
            if !slot.uac.handle_message(msg, src, now) {
                self.stats.spoofed += 1;
            }
            self.service(&id, now);
        } else if let Some(slot) = self
            .inbound
            .as_mut()
            .and_then(|i| i.calls.get_mut(&msg.call_id))
        {
            let id = msg.call_id.clone();
            slot.uas.handle_message(msg, src, now);
            self.service_uas(&id, now);
        } else if self.inbound.is_some()
            && msg.method() == Some(&Method::Invite)
            && msg.to_tag.is_none()
        {
            if !trusted && !self.is_peer(src.ip()) && !self.strangers.take(now) {
                self.stats.strangers_dropped += 1;
                return Ok(());
            }
            let id = msg.call_id.clone();
            let inb = self.inbound.as_mut().expect("inbound");
            // §19.3: a To tag of at least 32 random bits (the owner seeded it).
            inb.seed ^= inb.seed << 13;
            inb.seed ^= inb.seed >> 7;
            inb.seed ^= inb.seed << 17;
            let tag = format!("{:016x}", inb.seed);
            let mut uas = UasCall::new(msg.clone(), src, inb.local_addr, tag, inb.timers);
            if inb.calls.len() >= inb.max {
                // §21.4.24: busy here, and nothing kept but the answer.
                uas.respond(486, &[], None, now);
                while let Some(t) = uas.poll_transmit() {
                    self.transmits.push_back(t);
                }
                return Ok(());
            }
            uas.respond(100, &[], None, now);
            inb.calls.insert(
                id.clone(),
                Box::new(UasSlot {
                    uas,
                    armed: None,
                    ended_at: None,
                }),
            );
            inb.events.push_back((
                id.clone(),
                InboundEvent::Invite {
                    invite: Box::new(msg),
                    source: src,
                },
            ));
            self.service_uas(&id, now);
        } else if let Some(reply) = stateless_reply(&msg) {
            if !trusted && !self.is_peer(src.ip()) && !self.strangers.take(now) {
                self.stats.strangers_dropped += 1;
                return Ok(());
            }
            self.stats.stateless_replies += 1;
            self.transmits.push_back(Transmit {
                dest: src,
                data: reply,
            });
        }
        Ok(())
    }

    /// ICMP reported these destinations unreachable: every call whose first
    /// hop is one of them gets a transport error (§8.1.3.1); the others
    /// are untouched. Returns how many calls it reached.
    pub fn handle_unreachable(&mut self, dests: &[SocketAddr], now: Instant) -> usize {
        if let Some(p) = self.prober.as_mut() {
            p.handle_transport_error(dests, now);
            self.service_prober();
        }
        if let Some(r) = self
            .registration
            .as_mut()
            .filter(|r| dests.contains(&r.next_hop()))
        {
            r.handle_transport_error(now);
            self.service_registration();
        }
        let hit: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, s)| dests.contains(&s.uac.next_hop()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &hit {
            if let Some(slot) = self.calls.get_mut(id) {
                slot.uac.handle_transport_error(now);
            }
            self.service(id, now);
        }
        hit.len()
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(p) = self.prober.as_mut() {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
                self.service_prober();
            }
        }
        if let Some(r) = self.registration.as_mut() {
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now);
                self.service_registration();
            }
        }
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, id))) = self.timers.pop() else {
                break;
            };
            let Some(slot) = self.calls.get_mut(&id) else {
                if let Some(u) = self.inbound.as_mut().and_then(|i| i.calls.get_mut(&id)) {
                    if u.armed == Some(t) {
                        u.armed = None;
                        if u.uas.poll_timeout().is_some_and(|d| d <= now) {
                            u.uas.handle_timeout(now);
                        }
                        self.service_uas(&id, now);
                    }
                }
                continue;
            };
            if slot.armed != Some(t) {
                continue; // stale: the call was re-armed since
            }
            slot.armed = None;
            if slot.uac.poll_timeout().is_some_and(|d| d <= now) {
                slot.uac.handle_timeout(now);
            }
            self.service(&id, now);
        }
    }

    /// The next instant [`Endpoint::handle_timeout`] must run at.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let reg = [
            self.registration.as_ref().and_then(|r| r.poll_timeout()),
            self.prober.as_ref().and_then(|p| p.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        // Drop stale entries on top so the owner never wakes for nothing.
        while let Some(Reverse((t, id))) = self.timers.peek() {
            let live = match self.calls.get(id) {
                Some(s) => s.armed == Some(*t),
                None => self
                    .inbound
                    .as_ref()
                    .and_then(|i| i.calls.get(id))
                    .is_some_and(|u| u.armed == Some(*t)),
            };
            if live {
                return Some(reg.map_or(*t, |r| r.min(*t)));
            }
            self.timers.pop();
        }
        reg
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// A datagram is waiting in [`Endpoint::poll_transmit`].
    pub fn has_transmit(&self) -> bool {
        !self.transmits.is_empty()
    }

    /// The next event of some call, keyed by its Call-ID; a call's last
    /// event is `Ended`.
    pub fn poll_event(&mut self) -> Option<(String, UacEvent)> {
        self.events.pop_front()
    }

    /// Calls in progress or lingering.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// No call in progress or lingering.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Move a call's output to the endpoint's queues, re-arm its timer and
    /// drop it once it is finished or has lingered long enough.
    fn service(&mut self, id: &str, now: Instant) {
        let Some(slot) = self.calls.get_mut(id) else {
            return;
        };
        while let Some(t) = slot.uac.poll_transmit() {
            self.transmits.push_back(t);
        }
        while let Some(ev) = slot.uac.poll_event() {
            if matches!(ev, UacEvent::Ended { .. }) {
                slot.ended_at = Some(now);
                self.stats.retransmissions += slot.uac.total_retransmissions() as u64;
            }
            self.events.push_back((id.to_string(), ev));
        }
        let linger_end = slot.ended_at.map(|e| e + self.linger);
        if slot.uac.is_finished() || linger_end.is_some_and(|e| now >= e) {
            let ip = slot.peer_ip;
            self.calls.remove(id);
            if let std::collections::hash_map::Entry::Occupied(mut e) = self.peers.entry(ip) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
            return;
        }
        arm(
            &mut self.timers,
            &mut slot.armed,
            slot.uac.poll_timeout(),
            linger_end,
            id,
        );
    }
}

/// Put a call's next deadline (its own, or the end of its lingering) in
/// the timer heap, unless it is there already (`armed`).
fn arm(
    timers: &mut BinaryHeap<Reverse<(Instant, String)>>,
    armed: &mut Option<Instant>,
    own: Option<Instant>,
    linger_end: Option<Instant>,
    id: &str,
) {
    let next = match (own, linger_end) {
        (Some(t), Some(e)) => Some(t.min(e)),
        (t, e) => t.or(e),
    };
    if let Some(t) = next {
        if *armed != Some(t) {
            *armed = Some(t);
            timers.push(Reverse((t, id.to_string())));
        }
    }
}

/// A stateless answer to a request that matches no call (RFC 3261 §8.2):
/// 200 to OPTIONS (trunk keep-alives, §11.2), nothing to ACK (§17.2.3: an
/// ACK is never answered), 481 Call/Transaction Does Not Exist otherwise
/// (§12.2.2). Responses for no call are dropped (§8.1.3.3).
pub fn stateless_reply(msg: &Message) -> Option<Vec<u8>> {
    let status = match msg.method()? {
        Method::Ack => return None,
        Method::Options => 200,
        _ => 481,
    };
    Some(Builder::response_to(msg, status, reason_phrase(status), Some("genki-stateless")).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::Timers;
    use crate::uac::CallEnd;

    const LOCAL: &str = "127.0.0.1:5060";

    fn cfg(id: &str, hop: &str) -> UacConfig {
        UacConfig {
            target: format!("sip:1001@{hop}"),
            from: "sip:genki@127.0.0.1".into(),
            local_addr: LOCAL.parse().unwrap(),
            next_hop: hop.parse().unwrap(),
            outbound_proxy: false,
            credentials: None,
            realm: None,
            sdp_offer: b"v=0\r\n".to_vec(),
            call_id: id.into(),
            local_tag: "tag".into(),
            ring_timeout: Duration::from_secs(30),
            timers: Timers::default(),
            user_agent: "genki-test".into(),
            headers: Vec::new(),
            alternates: Vec::new(),
            session_expires: 0,
            transport: Default::default(),
        }
    }

    /// An incoming call: 100 at once, the owner hears the INVITE, answers
    /// 200 (retransmitted until the ACK), hears the ACK and the caller's
    /// BYE (answered 200). Beyond `max` at once: 486, nothing kept. Off by
    /// default: an INVITE for no call gets the stateless 481.
    #[test]
    fn incoming_calls_are_taken_answered_and_ended() {
        let now = Instant::now();
        let caller: SocketAddr = "127.0.0.1:5090".parse().unwrap();
        let invite = |id: &str| {
            format!(
                "INVITE sip:genki@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK{id}\r\nFrom: <sip:0471234567@127.0.0.1>;tag=c{id}\r\nTo: <sip:genki@127.0.0.1>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContact: <sip:0471234567@127.0.0.1:5090>\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
            )
        };
        let mut off = Endpoint::default();
        off.handle_datagram_from(invite("x").as_bytes(), caller, true, now)
            .unwrap();
        let sent = drain(&mut off);
        assert!(String::from_utf8_lossy(&sent[0].data).starts_with("SIP/2.0 481"));

        let mut ep = Endpoint::default();
        ep.set_inbound(LOCAL.parse().unwrap(), Timers::default(), 1, 42);
        ep.handle_datagram_from(invite("in1").as_bytes(), caller, true, now)
            .unwrap();
        let sent = drain(&mut ep);
        assert!(String::from_utf8_lossy(&sent[0].data).starts_with("SIP/2.0 100"));
        let Some((id, InboundEvent::Invite { invite: m, source })) = ep.poll_inbound_event() else {
            panic!("no INVITE event")
        };
        assert_eq!(
            (id.as_str(), source, m.body.as_slice()),
            ("in1", caller, &b"v=0\r\n"[..])
        );
        // A second call while the first is up: busy.
        ep.handle_datagram_from(invite("in2").as_bytes(), caller, true, now)
            .unwrap();
        let sent = drain(&mut ep);
        assert!(String::from_utf8_lossy(&sent[0].data).starts_with("SIP/2.0 486"));
        assert!(ep.poll_inbound_event().is_none());
        ep.respond_inbound("in1", 200, Some(("application/sdp", b"v=0\r\n")), now);
        let ok = drain(&mut ep);
        let ok = Message::parse(&ok[0].data).unwrap();
        assert_eq!(ok.status(), Some(200));
        let tag = ok.to_tag.clone().unwrap();
        assert!(tag.len() >= 8);
        // Unacknowledged: the 200 again at T1.
        ep.handle_timeout(now + Duration::from_millis(600));
        assert_eq!(drain(&mut ep).len(), 1);
        let in_dialog = |method: &str, cseq: u32| {
            format!(
                "{method} sip:genki@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK{method}{cseq}\r\nFrom: <sip:0471234567@127.0.0.1>;tag=cin1\r\nTo: <sip:genki@127.0.0.1>;tag={tag}\r\nCall-ID: in1\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        ep.handle_datagram_from(in_dialog("ACK", 1).as_bytes(), caller, true, now)
            .unwrap();
        assert!(matches!(
            ep.poll_inbound_event(),
            Some((_, InboundEvent::Call(UasEvent::Acked)))
        ));
        ep.handle_datagram_from(in_dialog("BYE", 2).as_bytes(), caller, true, now)
            .unwrap();
        let sent = drain(&mut ep);
        assert!(String::from_utf8_lossy(&sent[0].data).starts_with("SIP/2.0 200"));
        assert!(matches!(
            ep.poll_inbound_event(),
            Some((_, InboundEvent::Call(UasEvent::RemoteBye)))
        ));
    }

    fn drain(ep: &mut Endpoint) -> Vec<Transmit> {
        std::iter::from_fn(|| ep.poll_transmit()).collect()
    }

    fn events(ep: &mut Endpoint) -> Vec<(String, UacEvent)> {
        std::iter::from_fn(|| ep.poll_event()).collect()
    }

    /// Run the endpoint's timers on virtual time until `until`.
    fn run_until(ep: &mut Endpoint, now: &mut Instant, until: Instant) {
        while let Some(t) = ep.poll_timeout() {
            if t > until {
                break;
            }
            *now = t.max(*now);
            ep.handle_timeout(*now);
        }
        *now = until;
    }

    fn request(method: &str, call_id: &str) -> Vec<u8> {
        format!(
            "{method} sip:genki@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:genki@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    /// A response to the INVITE in `invite`, with a To tag.
    fn response_to(invite: &[u8], status: u16) -> Vec<u8> {
        let m = Message::parse(invite).unwrap();
        let mut b = Builder::response_to(&m, status, reason_phrase(status), Some("uas"));
        if status == 200 {
            b = b
                .header("Contact", "<sip:1001@127.0.0.1:5080>")
                .body("application/sdp", b"v=0\r\n");
        }
        b.build()
    }

    #[test]
    fn silent_callee_ends_by_timer_b_on_virtual_time() {
        let mut ep = Endpoint::default();
        let start = Instant::now();
        let mut now = start;
        ep.start(cfg("a", "127.0.0.1:5080"), now).unwrap();
        let mut invites = drain(&mut ep).len();
        // Timer A doubles from T1 (§17.1.1.2) until Timer B (64·T1) fires.
        while let Some(t) = ep.poll_timeout() {
            now = t;
            ep.handle_timeout(now);
            invites += drain(&mut ep).len();
            if !events(&mut ep).is_empty() {
                break;
            }
        }
        assert_eq!(now - start, Timers::default().t1 * 64);
        assert_eq!(invites, 7, "INVITE at 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5 s");
        assert!(ep.is_empty(), "a call with no transaction left is dropped");
    }

    #[test]
    fn timer_b_event_names_the_call() {
        let mut ep = Endpoint::default();
        let mut now = Instant::now();
        ep.start(cfg("a", "127.0.0.1:5080"), now).unwrap();
        let until = now + Duration::from_secs(40);
        run_until(&mut ep, &mut now, until);
        let evs = events(&mut ep);
        assert_eq!(
            evs,
            vec![(
                "a".to_string(),
                UacEvent::Ended {
                    end: CallEnd::Timeout
                }
            )]
        );
    }

    #[test]
    fn datagrams_are_routed_by_call_id() {
        let mut ep = Endpoint::default();
        let now = Instant::now();
        ep.start(cfg("a", "127.0.0.1:5080"), now).unwrap();
        ep.start(cfg("b", "127.0.0.1:5080"), now).unwrap();
        let out = drain(&mut ep);
        assert_eq!(out.len(), 2);
        let invite_b = out
            .iter()
            .find(|t| Message::parse(&t.data).unwrap().call_id == "b")
            .unwrap();
        let src = "127.0.0.1:5080".parse().unwrap();
        ep.handle_datagram(&response_to(&invite_b.data, 486), src, now)
            .unwrap();
        let evs = events(&mut ep);
        assert_eq!(
            evs,
            vec![(
                "b".to_string(),
                UacEvent::Ended {
                    end: CallEnd::Rejected { status: 486 }
                }
            )]
        );
        // The ACK for the 486 (§17.1.1.3) goes out; call a is untouched.
        let acks = drain(&mut ep);
        assert_eq!(acks.len(), 1);
        assert!(acks[0].data.starts_with(b"ACK "));
        assert_eq!(ep.len(), 2, "b lingers for retransmitted 486s");
    }

    #[test]
    fn unknown_calls_get_stateless_replies() {
        let mut ep = Endpoint::default();
        let now = Instant::now();
        let src: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        for (m, status) in [("OPTIONS", Some(200)), ("BYE", Some(481)), ("ACK", None)] {
            ep.handle_datagram(&request(m, "nobody"), src, now).unwrap();
            let out = drain(&mut ep);
            match status {
                Some(s) => {
                    assert_eq!(out.len(), 1, "{m}");
                    assert_eq!(out[0].dest, src);
                    assert_eq!(Message::parse(&out[0].data).unwrap().status(), Some(s));
                }
                None => assert!(out.is_empty(), "{m} is never answered"),
            }
        }
        assert_eq!(ep.stats().stateless_replies, 2);
    }

    /// A flood of requests for no call from strangers gets a bounded
    /// number of answers; a trusted source and a live call's peer are
    /// answered throughout, and the budget refills with time.
    #[test]
    fn strangers_are_answered_at_a_bounded_rate() {
        let mut ep = Endpoint::default();
        ep.set_stranger_rate(10, 20);
        let mut now = Instant::now();
        ep.start(cfg("live", "127.0.0.9:5060"), now).unwrap();
        drain(&mut ep);
        let stranger: SocketAddr = "127.0.0.2:5080".parse().unwrap();
        let trunk: SocketAddr = "127.0.0.3:5060".parse().unwrap();
        let peer: SocketAddr = "127.0.0.9:5090".parse().unwrap();
        for i in 0..1000 {
            ep.handle_datagram(&request("OPTIONS", &format!("x{i}")), stranger, now)
                .unwrap();
        }
        assert_eq!(drain(&mut ep).len(), 20, "the burst, then nothing");
        assert_eq!(ep.stats().strangers_dropped, 980);
        ep.handle_datagram_from(&request("OPTIONS", "t"), trunk, true, now)
            .unwrap();
        ep.handle_datagram(&request("OPTIONS", "p"), peer, now)
            .unwrap();
        assert_eq!(drain(&mut ep).len(), 2, "trusted and peers are answered");
        now += Duration::from_secs(1);
        for i in 0..50 {
            ep.handle_datagram(&request("BYE", &format!("y{i}")), stranger, now)
                .unwrap();
        }
        assert_eq!(drain(&mut ep).len(), 10, "ten more a second later");
        assert!(ep.is_peer("127.0.0.9".parse().unwrap()));
    }

    #[test]
    fn malformed_datagrams_are_counted_and_change_nothing() {
        let mut ep = Endpoint::default();
        let now = Instant::now();
        ep.start(cfg("a", "127.0.0.1:5080"), now).unwrap();
        drain(&mut ep);
        let src = "127.0.0.1:9".parse().unwrap();
        for junk in [&b"\x80\x00garbage"[..], b"", b"SIP/2.0 200\r\n\r\n"] {
            assert!(ep.handle_datagram(junk, src, now).is_err());
        }
        assert_eq!(ep.stats().malformed, 3);
        assert!(drain(&mut ep).is_empty());
        assert!(events(&mut ep).is_empty());
        assert_eq!(ep.len(), 1);
    }

    #[test]
    fn icmp_error_reaches_only_calls_to_that_address() {
        let mut ep = Endpoint::default();
        let now = Instant::now();
        ep.start(cfg("dead", "127.0.0.1:9"), now).unwrap();
        ep.start(cfg("alive", "127.0.0.1:5080"), now).unwrap();
        drain(&mut ep);
        let n = ep.handle_unreachable(&["127.0.0.1:9".parse().unwrap()], now);
        assert_eq!(n, 1);
        let evs = events(&mut ep);
        assert_eq!(
            evs,
            vec![(
                "dead".to_string(),
                UacEvent::Ended {
                    end: CallEnd::Unreachable
                }
            )]
        );
        assert!(
            ep.poll_timeout().is_some(),
            "the healthy call keeps its timers"
        );
    }

    #[test]
    fn hangup_while_ringing_cancels_and_an_ended_call_lingers_then_goes() {
        let mut ep = Endpoint::default();
        let mut now = Instant::now();
        let src = "127.0.0.1:5080".parse().unwrap();
        ep.start(cfg("a", "127.0.0.1:5080"), now).unwrap();
        let invite = drain(&mut ep).remove(0);
        ep.handle_datagram(&response_to(&invite.data, 180), src, now)
            .unwrap();
        ep.hangup("a", now);
        let out = drain(&mut ep);
        assert!(
            out.iter().any(|t| t.data.starts_with(b"CANCEL ")),
            "CANCEL sent"
        );
        ep.handle_datagram(&response_to(&invite.data, 487), src, now)
            .unwrap();
        let evs = events(&mut ep);
        assert!(evs.iter().any(|(id, e)| id == "a"
            && *e
                == UacEvent::Ended {
                    end: CallEnd::Cancelled
                }));
        // It lingers for retransmissions, then is gone by LINGER at most.
        let until = now + LINGER + Duration::from_secs(1);
        run_until(&mut ep, &mut now, until);
        assert!(ep.is_empty());
        assert!(ep.poll_timeout().is_none());
    }

    #[test]
    fn duplicate_call_id_is_refused() {
        let mut ep = Endpoint::default();
        let now = Instant::now();
        ep.start(cfg("a", "127.0.0.1:5080"), now).unwrap();
        assert!(matches!(
            ep.start(cfg("a", "127.0.0.1:5080"), now),
            Err(StartError::DuplicateCallId(_))
        ));
    }

    #[test]
    fn many_calls_share_one_heap_without_stale_wakeups() {
        let mut ep = Endpoint::default();
        let mut now = Instant::now();
        for i in 0..1000 {
            ep.start(cfg(&format!("c{i}"), "127.0.0.1:5080"), now)
                .unwrap();
        }
        drain(&mut ep);
        let mut wakeups = 0;
        while let Some(t) = ep.poll_timeout() {
            now = t;
            ep.handle_timeout(now);
            drain(&mut ep);
            wakeups += 1;
        }
        // All calls were started at one instant: their timers coincide, so
        // the endpoint wakes once per Timer A/B step, not once per call.
        assert!(wakeups <= 8, "{wakeups} wake-ups");
        assert_eq!(events(&mut ep).len(), 1000);
    }

    /// The registration rides beside the calls: its REGISTER goes to the
    /// registrar, the registrar's 200 binds it (a copy from elsewhere is
    /// refused), its refresh timer is the endpoint's, and a call on the
    /// same endpoint is untouched.
    #[test]
    fn a_registration_shares_the_endpoint_with_calls() {
        use crate::register::{RegisterConfig, Registration};
        let mut ep = Endpoint::default();
        let mut now = Instant::now();
        assert!(ep.is_registered(now), "nothing to keep: registered");
        let registrar: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        ep.set_registration(Registration::new(
            RegisterConfig {
                registrar: "sip:trunk.example.jp".into(),
                aor: "sip:genki@trunk.example.jp".into(),
                contact: "sip:genki@127.0.0.1:5060".into(),
                local_addr: LOCAL.parse().unwrap(),
                next_hop: registrar,
                credentials: None,
                realm: None,
                expires: 60,
                call_id: "reg".into(),
                from_tag: "r".into(),
                timers: Timers::default(),
                user_agent: "genki-test".into(),
                transport: Default::default(),
                alternates: Vec::new(),
            },
            now,
        ));
        ep.start(cfg("call-1", "127.0.0.1:5080"), now).unwrap();
        let out = drain(&mut ep);
        let register = out.iter().find(|t| t.dest == registrar).unwrap();
        assert!(register.data.starts_with(b"REGISTER "));
        assert!(!ep.is_registered(now));
        let m = Message::parse(&register.data).unwrap();
        let ok = Builder::response_to(&m, 200, "OK", Some("x"))
            .header("Contact", "<sip:genki@127.0.0.1:5060>;expires=60")
            .build();
        ep.handle_datagram(&ok, "127.0.0.9:5070".parse().unwrap(), now)
            .unwrap();
        assert!(!ep.is_registered(now), "a 200 from elsewhere binds nothing");
        assert_eq!(ep.stats().spoofed, 1);
        ep.handle_datagram(&ok, registrar, now).unwrap();
        assert!(ep.is_registered(now));
        assert!(matches!(
            ep.poll_reg_event(),
            Some(RegEvent::Registered { .. })
        ));
        // The refresh at 30 s comes out of the endpoint's own timers.
        let until = now + Duration::from_secs(31);
        run_until(&mut ep, &mut now, until);
        let out = drain(&mut ep);
        assert!(out
            .iter()
            .any(|t| t.dest == registrar && t.data.starts_with(b"REGISTER ")));
        assert!(ep.is_registered(now));
        // The trunk refused a call as unregistered: the binding is not
        // trusted until the REGISTER in flight is answered.
        ep.refresh_registration(now);
        assert!(
            drain(&mut ep).is_empty(),
            "one REGISTER in flight is enough"
        );
        assert!(!ep.is_registered(now));
    }
}
