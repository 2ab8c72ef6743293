//! RFC 3261 §17 transactions over an unreliable transport (UDP), sans-IO.
//!
//! Each transaction is a plain struct driven by `handle_*` calls with the
//! current time passed in; it never reads the clock. The owner sends what
//! [`poll_transmit`](ClientInvite::poll_transmit) returns to the transaction's
//! peer, delivers what [`poll_event`](ClientInvite::poll_event) returns to the
//! transaction user, and calls `handle_timeout` at
//! [`poll_timeout`](ClientInvite::poll_timeout). Timers are data
//! (`Option<Instant>`), T1/T2/T4 live in [`Timers`].
//!
//! The INVITE transactions include the "Accepted" state of RFC 6026 §7.1/§7.2
//! (Timers M and L), which fixes RFC 3261's handling of 2xx retransmissions.
//! The server INVITE transaction also retransmits its 2xx until the ACK
//! arrives (RFC 3261 §13.3.1.4, strictly the UAS core's job) so that a UAS
//! needs only this one struct per INVITE.
//!
//! Depends on: [`crate::message`]. No IO, no clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::message::{Builder, Message, Method, ParseError};

/// RFC 3261 timer base values (§17.1.1.1, Table 4). One place for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip estimate: first retransmission interval (500 ms).
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
    /// The transport is reliable (TCP, TLS): requests and non-2xx
    /// responses are not retransmitted (Timers A, E, G) and the
    /// transactions do not linger to absorb retransmissions (Timers D, I,
    /// J, K are zero; §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
    pub reliable: bool,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            reliable: false,
        }
    }
}

impl Timers {
    /// Timers B, F, H, J, L, M: 64·T1 (32 s by default).
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// What a transaction tells its user.
#[derive(Debug, Clone)]
pub enum TxEvent {
    /// A response for a client transaction (provisional or final; 2xx
    /// retransmissions too while an INVITE transaction is Accepted).
    Response(Box<Message>),
    /// Timer B or F fired (no final response), or Timer H/L fired (the ACK
    /// for our final response never came).
    Timeout,
    /// The ACK for a server INVITE transaction's final response arrived.
    Acked,
    /// A retransmission of the request arrived at a server transaction and
    /// was absorbed; the user need not act (counted for metrics).
    RequestRetransmitted,
}

/// Client INVITE transaction states (§17.1.1.2, RFC 6026 §7.2 Accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

/// RFC 3261 §17.1.1 client INVITE transaction (UDP).
#[derive(Debug)]
pub struct ClientInvite {
    state: ClientInviteState,
    timers: Timers,
    /// The INVITE as sent. Kept as bytes only: its parsed form (a dozen
    /// header strings) is needed for a CANCEL or a non-2xx ACK, at most
    /// once a call, and is parsed again then — a thousand calls ringing
    /// should not each hold a second copy of their INVITE.
    request: Vec<u8>,
    /// Timer A: INVITE retransmission, doubling from T1 (§17.1.1.2).
    timer_a: Option<Instant>,
    a_interval: Duration,
    /// Timer B: INVITE transaction timeout, 64·T1.
    timer_b: Option<Instant>,
    /// Timer D: wait time for response retransmits in Completed, ≥32 s over UDP.
    timer_d: Option<Instant>,
    /// Timer M (RFC 6026): how long Accepted absorbs 2xx retransmissions, 64·T1.
    timer_m: Option<Instant>,
    ack: Option<Vec<u8>>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<TxEvent>,
    /// How many times the INVITE was retransmitted (for metrics).
    pub retransmissions: u32,
}

impl ClientInvite {
    /// Start the transaction: the INVITE goes out at once and Timers A and B start.
    /// `request` must parse ([`Message::parse`]); [`Uac`](crate::uac) checks
    /// it before it sends.
    pub fn new(request: Vec<u8>, timers: Timers, now: Instant) -> Self {
        let mut tx = ClientInvite {
            state: ClientInviteState::Calling,
            timers,
            request: request.clone(),
            timer_a: (!timers.reliable).then(|| now + timers.t1),
            a_interval: timers.t1,
            timer_b: Some(now + timers.t1x64()),
            timer_d: None,
            timer_m: None,
            ack: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            retransmissions: 0,
        };
        tx.transmits.push_back(request);
        tx
    }

    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// The request this transaction sends, parsed again (for building a
    /// CANCEL, §9.1).
    pub fn request(&self) -> Result<Message, ParseError> {
        Message::parse(&self.request)
    }

    /// A response whose top Via branch matched this transaction (§17.1.3).
    pub fn handle_response(&mut self, resp: Message, now: Instant) {
        let Some(status) = resp.status() else { return };
        match self.state {
            ClientInviteState::Calling | ClientInviteState::Proceeding => {
                self.timer_a = None;
                if status < 200 {
                    // §17.1.1.2: Timer B runs only in Calling; a phone may ring
                    // for longer than 64·T1 and the TU ends that with CANCEL.
                    self.state = ClientInviteState::Proceeding;
                    self.timer_b = None;
                    self.events.push_back(TxEvent::Response(Box::new(resp)));
                } else if status < 300 {
                    self.state = ClientInviteState::Accepted;
                    self.timer_b = None;
                    self.timer_m = Some(now + self.timers.t1x64());
                    self.events.push_back(TxEvent::Response(Box::new(resp)));
                } else {
                    self.state = ClientInviteState::Completed;
                    self.timer_b = None;
                    // §17.1.1.2: Timer D at least 32 s for unreliable transports.
                    self.timer_d = Some(if self.timers.reliable {
                        now
                    } else {
                        now + self.timers.t1x64().max(Duration::from_secs(32))
                    });
                    // (Our own INVITE always parses again; were it not to,
                    // the peer's retransmissions end at its Timer H.)
                    if let Some(ack) = self.build_ack(&resp) {
                        self.transmits.push_back(ack.clone());
                        self.ack = Some(ack);
                    }
                    self.events.push_back(TxEvent::Response(Box::new(resp)));
                }
            }
            ClientInviteState::Completed => {
                // A retransmitted final response: resend the ACK, tell nobody.
                if status >= 300 {
                    if let Some(ack) = &self.ack {
                        self.transmits.push_back(ack.clone());
                    }
                }
            }
            ClientInviteState::Accepted => {
                // RFC 6026 §7.2: 2xx retransmissions go to the TU, which re-ACKs.
                if (200..300).contains(&status) {
                    self.events.push_back(TxEvent::Response(Box::new(resp)));
                }
            }
            ClientInviteState::Terminated => {}
        }
    }

    /// The ACK for a non-2xx final response (§17.1.1.3): same Request-URI,
    /// Call-ID, From, CSeq number, top Via and Route as the INVITE; To from the response.
    fn build_ack(&self, resp: &Message) -> Option<Vec<u8>> {
        let req = self.request().ok()?;
        Some(Builder::invite_sibling(&req, &Method::Ack, resp.header("To")).build())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_b.is_some_and(|t| now >= t) {
            self.timer_a = None;
            self.timer_b = None;
            self.state = ClientInviteState::Terminated;
            self.events.push_back(TxEvent::Timeout);
            return;
        }
        if let Some(t) = self.timer_a {
            if now >= t {
                self.transmits.push_back(self.request.clone());
                self.retransmissions += 1;
                self.a_interval *= 2;
                self.timer_a = Some(t + self.a_interval);
            }
        }
        if self.timer_d.is_some_and(|t| now >= t) || self.timer_m.is_some_and(|t| now >= t) {
            self.timer_d = None;
            self.timer_m = None;
            self.state = ClientInviteState::Terminated;
        }
    }

    /// A transport error sending to the peer (e.g. ICMP port unreachable):
    /// §17.1.1.2 says to inform the TU and terminate.
    pub fn handle_transport_error(&mut self) {
        if matches!(
            self.state,
            ClientInviteState::Calling | ClientInviteState::Proceeding
        ) {
            self.state = ClientInviteState::Terminated;
            self.timer_a = None;
            self.timer_b = None;
            self.events.push_back(TxEvent::Timeout);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timer_a, self.timer_b, self.timer_d, self.timer_m]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }
}

/// Client non-INVITE transaction states (§17.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// RFC 3261 §17.1.2 client non-INVITE transaction (BYE, CANCEL, INFO over UDP).
#[derive(Debug)]
pub struct ClientNonInvite {
    state: ClientNonInviteState,
    timers: Timers,
    request: Vec<u8>,
    /// Timer E: retransmission, min(2ⁿ·T1, T2); T2 once Proceeding.
    timer_e: Option<Instant>,
    e_interval: Duration,
    /// Timer F: transaction timeout, 64·T1.
    timer_f: Option<Instant>,
    /// Timer K: wait for response retransmits in Completed, T4 over UDP.
    timer_k: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<TxEvent>,
    pub retransmissions: u32,
}

impl ClientNonInvite {
    pub fn new(request: Vec<u8>, timers: Timers, now: Instant) -> Self {
        let mut tx = ClientNonInvite {
            state: ClientNonInviteState::Trying,
            timers,
            request: request.clone(),
            timer_e: (!timers.reliable).then(|| now + timers.t1),
            e_interval: timers.t1,
            timer_f: Some(now + timers.t1x64()),
            timer_k: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            retransmissions: 0,
        };
        tx.transmits.push_back(request);
        tx
    }

    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    pub fn handle_response(&mut self, resp: Message, now: Instant) {
        let Some(status) = resp.status() else { return };
        match self.state {
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding => {
                if status < 200 {
                    if self.state == ClientNonInviteState::Trying {
                        self.state = ClientNonInviteState::Proceeding;
                    }
                    self.events.push_back(TxEvent::Response(Box::new(resp)));
                } else {
                    self.state = ClientNonInviteState::Completed;
                    self.timer_e = None;
                    self.timer_f = None;
                    self.timer_k = Some(if self.timers.reliable {
                        now
                    } else {
                        now + self.timers.t4
                    });
                    self.events.push_back(TxEvent::Response(Box::new(resp)));
                }
            }
            ClientNonInviteState::Completed | ClientNonInviteState::Terminated => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_f.is_some_and(|t| now >= t) {
            self.timer_e = None;
            self.timer_f = None;
            self.state = ClientNonInviteState::Terminated;
            self.events.push_back(TxEvent::Timeout);
            return;
        }
        if let Some(t) = self.timer_e {
            if now >= t {
                self.transmits.push_back(self.request.clone());
                self.retransmissions += 1;
                self.e_interval = if self.state == ClientNonInviteState::Proceeding {
                    self.timers.t2
                } else {
                    (self.e_interval * 2).min(self.timers.t2)
                };
                self.timer_e = Some(t + self.e_interval);
            }
        }
        if self.timer_k.is_some_and(|t| now >= t) {
            self.timer_k = None;
            self.state = ClientNonInviteState::Terminated;
        }
    }

    /// §17.1.2.2: a transport error terminates the transaction and informs the TU.
    pub fn handle_transport_error(&mut self) {
        if matches!(
            self.state,
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding
        ) {
            self.state = ClientNonInviteState::Terminated;
            self.timer_e = None;
            self.timer_f = None;
            self.events.push_back(TxEvent::Timeout);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timer_e, self.timer_f, self.timer_k]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }
}

/// Server INVITE transaction states (§17.2.1, RFC 6026 §7.1 Accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// RFC 3261 §17.2.1 server INVITE transaction (UDP).
#[derive(Debug)]
pub struct ServerInvite {
    state: ServerInviteState,
    timers: Timers,
    last_response: Option<Vec<u8>>,
    /// Timer G: final response retransmission, T1 doubling to T2. Also paces
    /// 2xx retransmission in Accepted (§13.3.1.4 uses the same schedule).
    timer_g: Option<Instant>,
    g_interval: Duration,
    /// Timer H: wait for ACK, 64·T1 (Timer L in Accepted, RFC 6026).
    timer_h: Option<Instant>,
    /// Timer I: absorb ACK retransmits in Confirmed, T4.
    timer_i: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<TxEvent>,
    pub retransmissions: u32,
}

impl ServerInvite {
    /// Created by the INVITE that starts it; the TU must answer through [`respond`](Self::respond).
    pub fn new(timers: Timers) -> Self {
        ServerInvite {
            state: ServerInviteState::Proceeding,
            timers,
            last_response: None,
            timer_g: None,
            g_interval: timers.t1,
            timer_h: None,
            timer_i: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            retransmissions: 0,
        }
    }

    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// The TU sends a response (§17.2.1). Ignored once a final response was sent.
    pub fn respond(&mut self, status: u16, bytes: Vec<u8>, now: Instant) {
        if self.state != ServerInviteState::Proceeding {
            return;
        }
        self.transmits.push_back(bytes.clone());
        self.last_response = Some(bytes);
        if status >= 200 {
            self.state = if status < 300 {
                ServerInviteState::Accepted
            } else {
                ServerInviteState::Completed
            };
            self.g_interval = self.timers.t1;
            // A 2xx is retransmitted by the UAS core whatever the
            // transport (§13.3.1.4); a non-2xx only over UDP (Timer G).
            self.timer_g = (status < 300 || !self.timers.reliable).then(|| now + self.timers.t1);
            self.timer_h = Some(now + self.timers.t1x64());
        }
    }

    /// A request matched to this transaction: the INVITE retransmitted, or an ACK
    /// (same branch for a non-2xx ACK; matched by dialog for a 2xx ACK).
    pub fn handle_request(&mut self, req: &Message, now: Instant) {
        match req.method() {
            Some(Method::Invite) => {
                if matches!(
                    self.state,
                    ServerInviteState::Proceeding | ServerInviteState::Completed
                ) {
                    if let Some(r) = &self.last_response {
                        self.transmits.push_back(r.clone());
                    }
                }
                self.events.push_back(TxEvent::RequestRetransmitted);
            }
            Some(Method::Ack) => match self.state {
                ServerInviteState::Completed => {
                    self.state = ServerInviteState::Confirmed;
                    self.timer_g = None;
                    self.timer_h = None;
                    self.timer_i = Some(if self.timers.reliable {
                        now
                    } else {
                        now + self.timers.t4
                    });
                    self.events.push_back(TxEvent::Acked);
                }
                ServerInviteState::Accepted if self.timer_h.is_some() => {
                    // The 2xx was ACKed: stop retransmitting, linger to absorb
                    // INVITE retransmissions until Timer L.
                    self.timer_g = None;
                    self.timer_h = None;
                    self.timer_i = Some(now + self.timers.t1x64());
                    self.events.push_back(TxEvent::Acked);
                }
                _ => {}
            },
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_h.is_some_and(|t| now >= t) {
            self.timer_g = None;
            self.timer_h = None;
            self.state = ServerInviteState::Terminated;
            self.events.push_back(TxEvent::Timeout);
            return;
        }
        if let Some(t) = self.timer_g {
            if now >= t {
                if let Some(r) = &self.last_response {
                    self.transmits.push_back(r.clone());
                    self.retransmissions += 1;
                }
                self.g_interval = (self.g_interval * 2).min(self.timers.t2);
                self.timer_g = Some(t + self.g_interval);
            }
        }
        if self.timer_i.is_some_and(|t| now >= t) {
            self.timer_i = None;
            self.state = ServerInviteState::Terminated;
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timer_g, self.timer_h, self.timer_i]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }
}

/// RFC 3261 §17.2.2 server non-INVITE transaction (BYE, CANCEL, INFO over UDP).
#[derive(Debug)]
pub struct ServerNonInvite {
    timers: Timers,
    last_response: Option<Vec<u8>>,
    final_sent: bool,
    /// Timer J: absorb request retransmits after the final response, 64·T1.
    timer_j: Option<Instant>,
    terminated: bool,
    transmits: VecDeque<Vec<u8>>,
}

impl ServerNonInvite {
    pub fn new(timers: Timers) -> Self {
        ServerNonInvite {
            timers,
            last_response: None,
            final_sent: false,
            timer_j: None,
            terminated: false,
            transmits: VecDeque::new(),
        }
    }

    pub fn respond(&mut self, status: u16, bytes: Vec<u8>, now: Instant) {
        if self.final_sent {
            return;
        }
        self.transmits.push_back(bytes.clone());
        self.last_response = Some(bytes);
        if status >= 200 {
            self.final_sent = true;
            self.timer_j = Some(if self.timers.reliable {
                now
            } else {
                now + self.timers.t1x64()
            });
        }
    }

    /// A retransmission of the request: resend the last response (§17.2.2).
    pub fn handle_retransmission(&mut self) {
        if let Some(r) = &self.last_response {
            self.transmits.push_back(r.clone());
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_j.is_some_and(|t| now >= t) {
            self.timer_j = None;
            self.terminated = true;
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j
    }

    pub fn is_terminated(&self) -> bool {
        self.terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> (Vec<u8>, Message) {
        let b = Builder::request(&Method::Invite, "sip:bob@127.0.0.1:5080")
            .header("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtest;rport")
            .header("Max-Forwards", "70")
            .header("From", "<sip:genki@127.0.0.1>;tag=abc")
            .header("To", "<sip:bob@127.0.0.1:5080>")
            .header("Call-ID", "call-1")
            .header("CSeq", "1 INVITE")
            .build();
        let m = Message::parse(&b).unwrap();
        (b, m)
    }

    fn response(req: &Message, status: u16) -> Message {
        let b = Builder::response_to(req, status, "X", Some("totag")).build();
        Message::parse(&b).unwrap()
    }

    fn drain(tx: &mut ClientInvite) -> usize {
        std::iter::from_fn(|| tx.poll_transmit()).count()
    }

    #[test]
    fn timer_a_doubles_and_timer_b_times_out() {
        let t0 = Instant::now();
        let (b, _) = invite();
        let timers = Timers::default();
        let mut tx = ClientInvite::new(b, timers, t0);
        assert_eq!(drain(&mut tx), 1);
        // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; B at 32 s.
        let mut sent_at = vec![];
        while let Some(t) = tx.poll_timeout() {
            tx.handle_timeout(t);
            if drain(&mut tx) > 0 {
                sent_at.push((t - t0).as_millis());
            }
            if tx.is_terminated() {
                break;
            }
        }
        assert_eq!(sent_at, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert!(matches!(tx.poll_event(), Some(TxEvent::Timeout)));
        assert_eq!(tx.retransmissions, 6);
    }

    /// Over TCP/TLS nothing is retransmitted (§17.1.1.2): the INVITE goes
    /// once, Timer B still ends it, and a final error ends the
    /// transaction at once (Timer D is zero).
    #[test]
    fn reliable_transports_carry_no_retransmissions() {
        let t0 = Instant::now();
        let (b, m) = invite();
        let timers = Timers {
            reliable: true,
            ..Timers::default()
        };
        let mut tx = ClientInvite::new(b.clone(), timers, t0);
        assert_eq!(drain(&mut tx), 1);
        let mut sent = 0;
        while let Some(t) = tx.poll_timeout() {
            tx.handle_timeout(t);
            sent += drain(&mut tx);
        }
        assert_eq!(sent, 0);
        assert!(matches!(tx.poll_event(), Some(TxEvent::Timeout)));
        let mut tx = ClientInvite::new(b, timers, t0);
        drain(&mut tx);
        tx.handle_response(response(&m, 486), t0);
        tx.handle_timeout(t0);
        assert!(tx.is_terminated(), "no Timer D on a reliable transport");
    }

    #[test]
    fn provisional_stops_retransmission_and_error_is_acked_again_on_retransmit() {
        let t0 = Instant::now();
        let (b, m) = invite();
        let mut tx = ClientInvite::new(b, Timers::default(), t0);
        drain(&mut tx);
        tx.handle_response(response(&m, 180), t0 + Duration::from_millis(100));
        assert_eq!(tx.state(), ClientInviteState::Proceeding);
        assert!(matches!(tx.poll_event(), Some(TxEvent::Response(_))));
        tx.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(
            drain(&mut tx),
            0,
            "no INVITE retransmission once Proceeding"
        );
        tx.handle_response(response(&m, 486), t0 + Duration::from_secs(3));
        assert_eq!(tx.state(), ClientInviteState::Completed);
        let ack = tx.poll_transmit().unwrap();
        let ack = Message::parse(&ack).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.branch.as_deref(), Some("z9hG4bKtest"));
        assert_eq!(ack.to_tag.as_deref(), Some("totag"));
        assert_eq!(ack.cseq, 1);
        // Retransmitted 486 → ACK again, no second event.
        tx.poll_event();
        tx.handle_response(response(&m, 486), t0 + Duration::from_secs(4));
        assert_eq!(drain(&mut tx), 1);
        assert!(tx.poll_event().is_none());
        // Timer D (32 s) terminates.
        tx.handle_timeout(t0 + Duration::from_secs(36));
        assert!(tx.is_terminated());
    }

    #[test]
    fn accepted_passes_2xx_retransmissions_until_timer_m() {
        let t0 = Instant::now();
        let (b, m) = invite();
        let mut tx = ClientInvite::new(b, Timers::default(), t0);
        drain(&mut tx);
        tx.handle_response(response(&m, 200), t0);
        assert_eq!(tx.state(), ClientInviteState::Accepted);
        assert_eq!(drain(&mut tx), 0, "the TU ACKs a 2xx, not the transaction");
        tx.poll_event().unwrap();
        tx.handle_response(response(&m, 200), t0 + Duration::from_secs(1));
        assert!(matches!(tx.poll_event(), Some(TxEvent::Response(_))));
        tx.handle_timeout(t0 + Duration::from_secs(33));
        assert!(tx.is_terminated());
    }

    #[test]
    fn non_invite_timer_e_caps_at_t2_and_f_times_out() {
        let t0 = Instant::now();
        let mut tx = ClientNonInvite::new(b"BYE".to_vec(), Timers::default(), t0);
        tx.poll_transmit().unwrap();
        let mut sent_at = vec![];
        while let Some(t) = tx.poll_timeout() {
            tx.handle_timeout(t);
            while tx.poll_transmit().is_some() {
                sent_at.push((t - t0).as_millis());
            }
            if tx.is_terminated() {
                break;
            }
        }
        assert_eq!(
            &sent_at[..6],
            &[500, 1500, 3500, 7500, 11500, 15500],
            "E doubles to T2 = 4 s"
        );
        assert_eq!(*sent_at.last().unwrap(), 31500);
        assert!(matches!(tx.poll_event(), Some(TxEvent::Timeout)));
    }

    #[test]
    fn non_invite_final_then_timer_k() {
        let t0 = Instant::now();
        let (_, m) = invite();
        let mut tx = ClientNonInvite::new(b"BYE".to_vec(), Timers::default(), t0);
        tx.poll_transmit();
        tx.handle_response(response(&m, 200), t0 + Duration::from_millis(10));
        assert!(matches!(tx.poll_event(), Some(TxEvent::Response(_))));
        assert_eq!(tx.state(), ClientNonInviteState::Completed);
        tx.handle_timeout(t0 + Duration::from_secs(6));
        assert!(tx.is_terminated());
    }

    #[test]
    fn server_invite_retransmits_error_until_ack_then_timer_i() {
        let t0 = Instant::now();
        let (_, m) = invite();
        let mut tx = ServerInvite::new(Timers::default());
        tx.respond(486, b"486".to_vec(), t0);
        assert_eq!(tx.poll_transmit().unwrap(), b"486");
        tx.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(tx.poll_transmit().unwrap(), b"486", "Timer G");
        tx.handle_request(&m, t0 + Duration::from_millis(600));
        assert_eq!(tx.poll_transmit().unwrap(), b"486", "INVITE retransmission");
        let ack = Message::parse(
            &Builder::request(&Method::Ack, "sip:x")
                .header("Via", "SIP/2.0/UDP h;branch=z9hG4bKtest")
                .header("From", "<sip:a@b>;tag=1")
                .header("To", "<sip:a@b>;tag=2")
                .header("Call-ID", "call-1")
                .header("CSeq", "1 ACK")
                .build(),
        )
        .unwrap();
        tx.handle_request(&ack, t0 + Duration::from_millis(700));
        assert_eq!(tx.state(), ServerInviteState::Confirmed);
        tx.handle_timeout(t0 + Duration::from_secs(10));
        assert!(tx.is_terminated());
    }

    #[test]
    fn server_invite_2xx_without_ack_times_out_by_timer_l() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(Timers::default());
        tx.respond(200, b"200".to_vec(), t0);
        tx.poll_transmit();
        let mut n = 0;
        while let Some(t) = tx.poll_timeout() {
            tx.handle_timeout(t);
            n += std::iter::from_fn(|| tx.poll_transmit()).count();
            if tx.is_terminated() {
                break;
            }
        }
        assert!(n >= 9, "2xx retransmitted {n} times");
        assert!(matches!(tx.poll_event(), Some(TxEvent::Timeout)));
    }

    #[test]
    fn server_non_invite_absorbs_retransmissions() {
        let t0 = Instant::now();
        let mut tx = ServerNonInvite::new(Timers::default());
        tx.respond(200, b"200".to_vec(), t0);
        tx.poll_transmit().unwrap();
        tx.handle_retransmission();
        assert_eq!(tx.poll_transmit().unwrap(), b"200");
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }
}
