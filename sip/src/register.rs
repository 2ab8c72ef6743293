//! Outbound registration (RFC 3261 §10), sans-IO: keep one binding of
//! our contact at a registrar — the carrier's, when it will only take
//! calls from a registered trunk (issue 13).
//!
//! A [`Registration`] sends REGISTER through a non-INVITE client
//! transaction (§17.1.2), answers a 401/407 with digest once per nonce
//! (twice when the nonce was stale, §22.4), honours the expiry the
//! registrar grants (the Contact's `expires` or the Expires header,
//! §10.2.4; a 423 raises the request to the Min-Expires, §10.3 step 7),
//! refreshes at half the interval (time for a retransmitted REGISTER and
//! a challenge round before it runs out), and after a failure retries with a doubling back-off
//! (30 s to 30 min, in the manner of RFC 5626 §4.5) while reporting
//! [`RegEvent::Failed`], so the owner can hold calls on a trunk that
//! requires registration. [`crate::endpoint::Endpoint`] carries one
//! beside its calls, on the same transport address (the carrier sends
//! calls for us to that contact).
//!
//! Depends on: [`crate::transaction`], [`crate::message`], [`crate::auth`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::message::{header_param, Builder, Message, Method};
use crate::transaction::{ClientNonInvite, Timers, TxEvent};

/// First wait after a failure; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait between attempts while the registrar fails.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1800);
/// [`Registration::refresh_now`] sends at most one REGISTER this often.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(5);

/// What to register, and where.
#[derive(Debug, Clone)]
pub struct RegisterConfig {
    /// Request-URI: the registrar's domain, e.g. `sip:trunk.example.jp`
    /// (§10.2, the Request-URI names the domain of the registration).
    pub registrar: String,
    /// The address-of-record (To and From, §10.2).
    pub aor: String,
    /// Our contact URI, where the carrier sends calls for us.
    pub contact: String,
    pub local_addr: SocketAddr,
    /// Where the requests go (the registrar or the outbound proxy).
    pub next_hop: SocketAddr,
    pub credentials: Option<(String, String)>,
    /// Only challenges of this realm are answered (§22.1).
    pub realm: Option<String>,
    /// Seconds asked for (the registrar may grant fewer).
    pub expires: u32,
    /// Kept for every REGISTER of this binding (§10.2: the same Call-ID,
    /// CSeq increasing, so the registrar orders them).
    pub call_id: String,
    pub from_tag: String,
    pub timers: Timers,
    pub user_agent: String,
    /// How the REGISTERs travel (Via; no retransmissions when reliable).
    pub transport: crate::stream::Transport,
    /// The registrar's other addresses (the trunk's further DNS targets,
    /// RFC 3263 §4.3): when one does not answer or cannot be reached, the
    /// next is tried at once; the back-off starts when all have failed.
    pub alternates: Vec<SocketAddr>,
}

/// What happened to the binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegEvent {
    /// The registrar accepted the binding for this long.
    Registered { expires: Duration },
    /// It refused (the final status), or never answered (None); the next
    /// attempt is at `retry_in`.
    Failed {
        status: Option<u16>,
        retry_in: Duration,
    },
}

/// Where the binding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    /// A REGISTER is in flight and no binding is known to hold.
    Registering,
    /// Bound until the instant.
    Registered { until: Instant },
    /// The last attempt failed; the next is at the instant.
    Failing { retry_at: Instant },
}

/// One binding, kept up.
pub struct Registration {
    cfg: RegisterConfig,
    cseq: u32,
    expires: u32,
    tx: Option<ClientNonInvite>,
    state: RegState,
    /// Bound until (kept while a refresh is in flight).
    bound_until: Option<Instant>,
    /// When the next REGISTER goes (refresh or retry).
    next_at: Option<Instant>,
    auth_tries: u32,
    backoff: Duration,
    branch_seq: u64,
    last_sent: Option<Instant>,
    /// Registrar addresses tried without an answer since the last one.
    unanswered: usize,
    events: VecDeque<RegEvent>,
    transmits: VecDeque<Vec<u8>>,
}

impl Registration {
    /// Start registering now: the first REGISTER is ready in
    /// [`Registration::poll_transmit`].
    pub fn new(cfg: RegisterConfig, now: Instant) -> Registration {
        let mut cfg = cfg;
        cfg.timers.reliable = cfg.transport.is_reliable();
        let mut r = Registration {
            expires: cfg.expires.max(1),
            cfg,
            cseq: 0,
            tx: None,
            state: RegState::Registering,
            bound_until: None,
            next_at: None,
            auth_tries: 0,
            backoff: MIN_BACKOFF,
            branch_seq: 0,
            last_sent: None,
            unanswered: 0,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
        };
        r.send(None, now);
        r
    }

    pub fn state(&self) -> RegState {
        self.state
    }

    /// Whether a binding holds at `now` (a refresh in flight keeps it).
    pub fn is_registered(&self, now: Instant) -> bool {
        self.bound_until.is_some_and(|u| now < u)
    }

    fn send(&mut self, authorization: Option<(&'static str, String)>, now: Instant) {
        self.cseq += 1;
        self.branch_seq += 1;
        self.last_sent = Some(now);
        let branch = format!(
            "z9hG4bK{}r{}",
            crate::uac::fnv(&self.cfg.call_id),
            self.branch_seq
        );
        let mut b = Builder::request(&Method::Other("REGISTER".into()), &self.cfg.registrar)
            .header(
                "Via",
                &self.cfg.transport.via_value(self.cfg.local_addr, &branch),
            )
            .header("Max-Forwards", "70")
            .header(
                "From",
                &format!("<{}>;tag={}", self.cfg.aor, self.cfg.from_tag),
            )
            .header("To", &format!("<{}>", self.cfg.aor))
            .header("Call-ID", &self.cfg.call_id)
            .header("CSeq", &format!("{} REGISTER", self.cseq))
            .header("Contact", &format!("<{}>", self.cfg.contact))
            .header("Expires", &self.expires.to_string())
            .header("User-Agent", &self.cfg.user_agent);
        if let Some((name, value)) = authorization {
            b = b.header(name, &value);
        }
        let mut tx = ClientNonInvite::new(b.build(), self.cfg.timers, now);
        while let Some(t) = tx.poll_transmit() {
            self.transmits.push_back(t);
        }
        self.tx = Some(tx);
        self.next_at = None;
        if self.bound_until.is_none() {
            self.state = RegState::Registering;
        }
    }

    /// A response arrived (the owner routes REGISTER responses here by
    /// Call-ID, from the next hop only).
    pub fn handle_response(&mut self, msg: Message, now: Instant) {
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        if msg.cseq != self.cseq {
            return;
        }
        tx.handle_response(msg, now);
        self.drain(now);
    }

    /// The registrar could not be reached (an ICMP error, a connection
    /// refused or a TLS handshake failed): the REGISTER in flight fails
    /// now rather than at Timer F.
    pub fn handle_transport_error(&mut self, now: Instant) {
        if let Some(tx) = self.tx.as_mut() {
            tx.handle_transport_error();
            self.drain(now);
        }
    }

    /// The owner's timer fired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(tx) = self.tx.as_mut() {
            tx.handle_timeout(now);
            while let Some(t) = tx.poll_transmit() {
                self.transmits.push_back(t);
            }
            self.drain(now);
        }
        if self.tx.is_none() && self.next_at.is_some_and(|t| now >= t) {
            self.auth_tries = 0;
            self.send(None, now);
        }
        if self.bound_until.is_some_and(|u| now >= u) {
            self.bound_until = None;
        }
    }

    fn drain(&mut self, now: Instant) {
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        let mut done = None;
        while let Some(ev) = tx.poll_event() {
            match ev {
                TxEvent::Response(m) if m.status().is_some_and(|s| s >= 200) => {
                    done = Some(Some(*m));
                }
                TxEvent::Timeout => done = Some(None),
                _ => {}
            }
        }
        if let Some(final_response) = done {
            self.tx = None;
            match final_response {
                Some(m) => self.on_final(m, now),
                None => self.failed(None, now),
            }
        }
    }

    fn on_final(&mut self, m: Message, now: Instant) {
        let status = m.status().unwrap_or(500);
        match status {
            200..=299 => {
                let granted = granted_expires(&m, &self.cfg.contact).unwrap_or(self.expires);
                let granted = Duration::from_secs(u64::from(granted.max(1)));
                self.auth_tries = 0;
                self.unanswered = 0;
                self.backoff = MIN_BACKOFF;
                let until = now + granted;
                self.bound_until = Some(until);
                self.state = RegState::Registered { until };
                // Refresh at half the interval.
                self.next_at = Some(now + granted / 2);
                self.events
                    .push_back(RegEvent::Registered { expires: granted });
            }
            401 | 407 => {
                let stale = m
                    .header(if status == 401 {
                        "WWW-Authenticate"
                    } else {
                        "Proxy-Authenticate"
                    })
                    .is_some_and(|h| h.to_ascii_lowercase().contains("stale=true"));
                let allowed = if stale { 2 } else { 1 };
                match self.answer(&m, status) {
                    Some(auth) if self.auth_tries < allowed => {
                        self.auth_tries += 1;
                        self.send(Some(auth), now);
                    }
                    _ => self.failed(Some(status), now),
                }
            }
            423 => {
                // Interval too brief (§10.3 step 7): ask for the minimum.
                match m
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                {
                    Some(min) if min > self.expires && min <= 86_400 => {
                        self.expires = min;
                        self.send(None, now);
                    }
                    _ => self.failed(Some(status), now),
                }
            }
            s => self.failed(Some(s), now),
        }
    }

    fn answer(&self, m: &Message, status: u16) -> Option<(&'static str, String)> {
        let cnonce = format!(
            "{:08x}",
            crate::uac::fnv(&format!("{}{}", self.cfg.call_id, self.cseq))
        );
        crate::auth::answer_challenge(
            m,
            status,
            self.cfg.credentials.as_ref(),
            self.cfg.realm.as_deref(),
            "REGISTER",
            &self.cfg.registrar,
            &cnonce,
        )
    }

    fn failed(&mut self, status: Option<u16>, now: Instant) {
        // No answer at all: the next address of the registrar, at once,
        // until every one has been tried (RFC 3263 §4.3).
        if status.is_none() && !self.cfg.alternates.is_empty() {
            self.unanswered += 1;
            if self.unanswered <= self.cfg.alternates.len() {
                let next = self.cfg.alternates.remove(0);
                let old = std::mem::replace(&mut self.cfg.next_hop, next);
                self.cfg.alternates.push(old);
                self.auth_tries = 0;
                self.send(None, now);
                return;
            }
        }
        self.unanswered = 0;
        let retry_in = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.auth_tries = 0;
        let retry_at = now + retry_in;
        self.next_at = Some(retry_at);
        if self.bound_until.is_some_and(|u| now >= u) || self.bound_until.is_none() {
            self.bound_until = None;
            self.state = RegState::Failing { retry_at };
        }
        self.events.push_back(RegEvent::Failed { status, retry_in });
    }

    /// The trunk refused a call as if it had lost our binding (a
    /// registrar restarted without its bindings; §10.2.4 has no way to
    /// tell us): the binding is no longer trusted (so the owner holds its
    /// calls instead of losing each to the same refusal) and a REGISTER
    /// goes now — or, if one went in the last [`MIN_REFRESH_GAP`], at the
    /// end of it, so a trunk that refuses everything is not flooded. One
    /// in flight already will re-bind.
    pub fn refresh_now(&mut self, now: Instant) {
        self.bound_until = None;
        if self.tx.is_some() {
            return;
        }
        self.state = RegState::Registering;
        match self.last_sent.map(|t| t + MIN_REFRESH_GAP) {
            Some(at) if now < at => {
                self.next_at = Some(self.next_at.map_or(at, |n| n.min(at)));
            }
            _ => {
                self.auth_tries = 0;
                self.send(None, now);
            }
        }
    }

    /// The Call-ID of every REGISTER of this binding (responses are routed by it).
    pub fn call_id(&self) -> &str {
        &self.cfg.call_id
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RegEvent> {
        self.events.pop_front()
    }

    /// When [`Registration::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.tx.as_ref().and_then(|t| t.poll_timeout()),
            self.next_at,
            self.bound_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Where the requests go.
    pub fn next_hop(&self) -> SocketAddr {
        self.cfg.next_hop
    }
}

/// The interval a 2xx grants our contact: its Contact's `expires`
/// parameter, else the Expires header (§10.2.4).
fn granted_expires(m: &Message, contact: &str) -> Option<u32> {
    for c in m.header_values("Contact") {
        if c.contains(contact) {
            if let Some(e) = header_param(c, "expires").and_then(|v| v.trim().parse().ok()) {
                return Some(e);
            }
        }
    }
    m.header("Expires").and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth;

    fn cfg() -> RegisterConfig {
        RegisterConfig {
            registrar: "sip:trunk.example.jp".into(),
            aor: "sip:genki@trunk.example.jp".into(),
            contact: "sip:genki@127.0.0.1:5060".into(),
            local_addr: "127.0.0.1:5060".parse().unwrap(),
            next_hop: "127.0.0.1:5070".parse().unwrap(),
            credentials: Some(("alice".into(), "secret".into())),
            realm: None,
            expires: 600,
            call_id: "reg-1".into(),
            from_tag: "ft".into(),
            timers: Timers::default(),
            user_agent: "genki-test".into(),
            transport: Default::default(),
            alternates: Vec::new(),
        }
    }

    fn reply(req: &[u8], status: u16, extra: &[(&str, &str)]) -> Message {
        let req = Message::parse(req).unwrap();
        let mut b = Builder::response_to(
            &req,
            status,
            crate::message::reason_phrase(status),
            Some("rt"),
        );
        for (k, v) in extra {
            b = b.header(k, v);
        }
        Message::parse(&b.build()).unwrap()
    }

    /// Challenge, answer, bound for what the registrar grants, refreshed
    /// before it runs out with the same Call-ID and a higher CSeq.
    #[test]
    fn registers_with_digest_and_refreshes_before_expiry() {
        let mut now = Instant::now();
        let mut r = Registration::new(cfg(), now);
        let first = r.poll_transmit().unwrap();
        assert!(first.starts_with(b"REGISTER sip:trunk.example.jp SIP/2.0"));
        r.handle_response(
            reply(
                &first,
                401,
                &[("WWW-Authenticate", "Digest realm=\"trunk\", nonce=\"n1\"")],
            ),
            now,
        );
        let second = r.poll_transmit().unwrap();
        let m = Message::parse(&second).unwrap();
        let a = m.header("Authorization").unwrap().to_string();
        assert_eq!(
            auth::verify(&a, "REGISTER", "secret", "n1")
                .unwrap()
                .as_deref(),
            Some("alice")
        );
        assert_eq!(m.cseq, 2);
        r.handle_response(
            reply(
                &second,
                200,
                &[("Contact", "<sip:genki@127.0.0.1:5060>;expires=120")],
            ),
            now,
        );
        assert_eq!(
            r.poll_event(),
            Some(RegEvent::Registered {
                expires: Duration::from_secs(120)
            })
        );
        assert!(r.is_registered(now));
        // The refresh is due at half the interval.
        let t = r.poll_timeout().unwrap();
        assert_eq!(t - now, Duration::from_secs(60));
        now = t;
        r.handle_timeout(now);
        let refresh = Message::parse(&r.poll_transmit().unwrap()).unwrap();
        assert_eq!((refresh.call_id.as_str(), refresh.cseq), ("reg-1", 3));
        assert!(
            r.is_registered(now),
            "the binding holds while the refresh is in flight"
        );
    }

    /// A registrar that never answers: Failed, then a retry after the
    /// back-off, which doubles; the binding lapses when it runs out.
    #[test]
    fn a_silent_registrar_fails_and_is_retried_with_backoff() {
        let mut now = Instant::now();
        let mut r = Registration::new(cfg(), now);
        let mut fails = Vec::new();
        for _ in 0..200 {
            let Some(t) = r.poll_timeout() else { break };
            now = t;
            r.handle_timeout(now);
            while r.poll_transmit().is_some() {}
            while let Some(e) = r.poll_event() {
                if let RegEvent::Failed { status, retry_in } = e {
                    assert_eq!(status, None);
                    fails.push(retry_in);
                }
            }
            if fails.len() >= 3 {
                break;
            }
        }
        assert_eq!(
            fails,
            vec![MIN_BACKOFF, MIN_BACKOFF * 2, MIN_BACKOFF * 4],
            "doubling back-off"
        );
        assert!(!r.is_registered(now));
        assert!(matches!(r.state(), RegState::Failing { .. }));
    }

    /// 423 raises the request to Min-Expires; a challenge of another
    /// realm, or a second one for the same nonce, is not answered.
    #[test]
    fn interval_too_brief_and_refused_challenges() {
        let now = Instant::now();
        let mut r = Registration::new(cfg(), now);
        let first = r.poll_transmit().unwrap();
        r.handle_response(reply(&first, 423, &[("Min-Expires", "1800")]), now);
        let second = Message::parse(&r.poll_transmit().unwrap()).unwrap();
        assert_eq!(second.header("Expires"), Some("1800"));

        let mut c = cfg();
        c.realm = Some("trunk".into());
        let mut r = Registration::new(c, now);
        let first = r.poll_transmit().unwrap();
        r.handle_response(
            reply(
                &first,
                401,
                &[(
                    "WWW-Authenticate",
                    "Digest realm=\"elsewhere\", nonce=\"n\"",
                )],
            ),
            now,
        );
        assert!(
            r.poll_transmit().is_none(),
            "no credentials for another realm"
        );
        assert!(matches!(
            r.poll_event(),
            Some(RegEvent::Failed {
                status: Some(401),
                ..
            })
        ));

        let mut r = Registration::new(cfg(), now);
        let first = r.poll_transmit().unwrap();
        let ch = [("WWW-Authenticate", "Digest realm=\"trunk\", nonce=\"n\"")];
        r.handle_response(reply(&first, 401, &ch), now);
        let second = r.poll_transmit().unwrap();
        r.handle_response(reply(&second, 401, &ch), now);
        assert!(
            r.poll_transmit().is_none(),
            "wrong credentials are not retried at once"
        );
        assert!(matches!(
            r.poll_event(),
            Some(RegEvent::Failed {
                status: Some(401),
                ..
            })
        ));
    }

    /// A call refused as unregistered: the binding is dropped at once and
    /// a REGISTER goes — at once, or at the end of the gap after the last
    /// one, never a flood.
    #[test]
    fn a_refused_call_drops_the_binding_and_registers_again() {
        let mut now = Instant::now();
        let mut c = cfg();
        c.credentials = None;
        let mut r = Registration::new(c, now);
        let first = r.poll_transmit().unwrap();
        r.handle_response(reply(&first, 200, &[("Expires", "600")]), now);
        assert!(r.is_registered(now));
        // Two seconds later (inside the gap): dropped, REGISTER deferred.
        now += Duration::from_secs(2);
        r.refresh_now(now);
        assert!(!r.is_registered(now));
        assert_eq!(r.state(), RegState::Registering);
        assert!(r.poll_transmit().is_none());
        let at = r.poll_timeout().unwrap();
        assert_eq!(at - now, MIN_REFRESH_GAP - Duration::from_secs(2));
        now = at;
        r.handle_timeout(now);
        let again = r.poll_transmit().expect("REGISTER at the end of the gap");
        r.handle_response(reply(&again, 200, &[("Expires", "600")]), now);
        assert!(r.is_registered(now));
        // Long after: at once.
        now += Duration::from_secs(60);
        r.refresh_now(now);
        assert!(r.poll_transmit().is_some());
    }

    /// A registrar address that never answers hands the REGISTER to the
    /// next one at once; the one that answers keeps the binding.
    #[test]
    fn a_silent_registrar_address_gives_way_to_the_next() {
        let mut now = Instant::now();
        let mut c = cfg();
        c.credentials = None;
        let other: SocketAddr = "127.0.0.2:5070".parse().unwrap();
        c.alternates = vec![other];
        let mut r = Registration::new(c, now);
        assert_eq!(
            r.next_hop(),
            "127.0.0.1:5070".parse::<SocketAddr>().unwrap()
        );
        // Nothing answers until Timer F.
        while r.poll_transmit().is_some() {}
        let mut moved = None;
        while let Some(t) = r.poll_timeout() {
            now = t;
            r.handle_timeout(now);
            if r.next_hop() == other {
                moved = r.poll_transmit();
                break;
            }
            while r.poll_transmit().is_some() {}
        }
        let again = moved.expect("a REGISTER to the other address at once");
        assert!(
            r.poll_event().is_none(),
            "not failed yet: another address was left"
        );
        r.handle_response(reply(&again, 200, &[("Expires", "600")]), now);
        assert!(r.is_registered(now));
    }
}
