//! One outgoing call (UAC side of an INVITE dialog), sans-IO.
//!
//! [`UacCall`] owns the INVITE client transaction, the CANCEL and BYE
//! transactions, the server transactions for requests the callee sends
//! in the dialog (BYE, INFO, OPTIONS, and re-INVITE through a real INVITE
//! server transaction whose 2xx is retransmitted until the ACK), digest
//! authentication and the ring timeout; and, in [`session`], what carriers
//! add: session timers (RFC 4028: `Supported: timer`, 422 answered with
//! the Min-SE, refreshes by UPDATE or re-INVITE when we refresh, the call
//! ended when the peer's refresh never comes) and reliable provisional
//! responses (RFC 3262: PRACK for each reliable 18x). The owner feeds it
//! every datagram whose Call-ID is the call's and sends what it
//! transmits; time is always passed in.
//!
//! Depends on: [`crate::transaction`], [`crate::dialog`], [`crate::auth`],
//! [`crate::session_timer`], [`crate::message`]. No IO, no clock.

mod session;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dialog::{without_tag, Dialog, Transmit};
use crate::message::{is_valid_sip_uri, reason_phrase, Builder, Message, Method, ParseError};
use crate::session_timer::SessionTimer;
use crate::transaction::{
    ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite, Timers, TxEvent,
};

/// What the owner must know to place a call.
#[derive(Debug, Clone)]
pub struct UacConfig {
    /// Request-URI and To URI (§8.1.1.1, §8.1.1.2).
    pub target: String,
    /// Our From URI (§8.1.1.3).
    pub from: String,
    /// Our transport address (Via sent-by, Contact).
    pub local_addr: SocketAddr,
    /// The resolved address of the first hop: the outbound proxy, or the target's host.
    pub next_hop: SocketAddr,
    /// When true every request, in-dialog ones too, goes to `next_hop`
    /// (an outbound proxy, §8.1.2); otherwise in-dialog requests follow the
    /// remote target / route set.
    pub outbound_proxy: bool,
    /// Digest credentials (username, password) for 401/407 challenges.
    pub credentials: Option<(String, String)>,
    /// When set, the credentials answer only a challenge of this realm
    /// (RFC 3261 §22.1: the realm names the protection space; a digest
    /// response computed for another realm is material for guessing the
    /// password offline).
    pub realm: Option<String>,
    /// SDP offer body.
    pub sdp_offer: Vec<u8>,
    pub call_id: String,
    pub local_tag: String,
    /// How long to let the phone ring before CANCEL.
    pub ring_timeout: Duration,
    pub timers: Timers,
    pub user_agent: String,
    /// More headers for the INVITE, e.g. the caller's identity and privacy
    /// (RFC 3325 §9, RFC 3323 §4.2), as (name, value).
    pub headers: Vec<(String, String)>,
    /// Further addresses of the same next hop (the trunk's other DNS
    /// targets, RFC 3263 §4.3, in order): when the INVITE gets no answer,
    /// the hop is unreachable, or it answers 503 before anything rang,
    /// the INVITE goes to the next one (a new transaction).
    pub alternates: Vec<SocketAddr>,
    /// How requests travel to the first hop (Via, Contact; no
    /// retransmissions on a reliable one).
    pub transport: crate::stream::Transport,
    /// The session interval asked for in the INVITE (RFC 4028
    /// `Session-Expires`, seconds); 0 asks for none (a peer may still
    /// impose one, and genki honours it).
    pub session_expires: u32,
}

/// Why a call ended, as the SIP layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// A final 3xx–6xx response to the INVITE (busy, not found, declined…).
    Rejected { status: u16 },
    /// Authentication failed or the challenge could not be answered.
    AuthFailed { status: u16 },
    /// We cancelled (ring timeout or local hang-up before answer).
    Cancelled,
    /// No response at all to the INVITE (Timer B).
    Timeout,
    /// The first hop could not be reached: an ICMP error was reported for
    /// a request sent to it (RFC 3261 §8.1.3.1, a transport error).
    Unreachable,
    /// We sent BYE after the call was answered.
    LocalBye,
    /// The callee sent BYE.
    RemoteBye,
    /// The session timer ran out (RFC 4028 §10): the peer's refresh never
    /// came, or ours failed; genki sent BYE.
    SessionExpired,
}

/// The methods genki takes inside a call (§20.5), in every INVITE and 2xx.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS, UPDATE, PRACK";

/// The delta-seconds of a `Retry-After` value (RFC 3261 §20.33:
/// `delta-seconds [ comment ] *( SEMI retry-param )`); None when it does
/// not start with a number.
pub fn retry_after(value: &str) -> Option<u32> {
    let v = value.trim_start();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    v[..end].parse().ok()
}

/// What happened, in order, for the call's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UacEvent {
    /// A provisional response with a status above 100 (180, 183…), with
    /// its SDP when it has one (early media: an announcement or the
    /// ringback the network plays before the final response).
    Progress { status: u16, sdp: Option<Vec<u8>> },
    /// The callee answered (2xx). The body is the SDP answer.
    Answered { sdp: Vec<u8> },
    /// The callee sent an INFO in the dialog (already answered 200).
    Info { content_type: String, body: Vec<u8> },
    /// The final response that ended the call asked not to be retried for
    /// this long (`Retry-After`, RFC 3261 §20.33; a 503's way of saying
    /// how long the service is down). Comes just before `Ended`.
    RetryAfter { seconds: u32 },
    /// The INVITE went on to the next target after `from` failed (no
    /// answer, unreachable, or 503; RFC 3263 §4.3).
    FailedOver { from: SocketAddr, to: SocketAddr },
    /// The peer described its media again in the dialog: the offer of its
    /// re-INVITE or UPDATE (already answered 200 with our SDP), or the
    /// answer in the ACK of a re-INVITE that came without an offer (RFC
    /// 3264 §8: it may move its address). The owner follows it.
    MediaUpdate { sdp: Vec<u8> },
    /// The call is over; nothing more will be sent except retransmissions
    /// of final messages that the owner may still deliver.
    Ended { end: CallEnd },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Early,
    Confirmed,
    Terminating,
    Ended,
}

/// A request the peer sent in the dialog, being answered.
struct ServerTx {
    branch: String,
    cseq: u32,
    tx: ServerKind,
    dest: SocketAddr,
}

/// A re-INVITE gets an INVITE server transaction (its 2xx retransmitted
/// until the ACK, §13.3.1.4), anything else a non-INVITE one.
enum ServerKind {
    NonInvite(ServerNonInvite),
    Invite(ServerInvite),
}

impl ServerTx {
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        match &mut self.tx {
            ServerKind::NonInvite(t) => t.poll_transmit(),
            ServerKind::Invite(t) => t.poll_transmit(),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match &self.tx {
            ServerKind::NonInvite(t) => t.poll_timeout(),
            ServerKind::Invite(t) => t.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match &mut self.tx {
            ServerKind::NonInvite(t) => t.handle_timeout(now),
            ServerKind::Invite(t) => {
                t.handle_timeout(now);
                // A missing ACK is the peer's problem; the call goes on.
                while t.poll_event().is_some() {}
            }
        }
    }
    fn is_terminated(&self) -> bool {
        match &self.tx {
            ServerKind::NonInvite(t) => t.is_terminated(),
            ServerKind::Invite(t) => t.is_terminated(),
        }
    }
    /// The request again (same branch), or the ACK of a re-INVITE's 2xx.
    fn handle_request(&mut self, req: &Message, now: Instant) {
        match &mut self.tx {
            ServerKind::NonInvite(t) => t.handle_retransmission(),
            ServerKind::Invite(t) => {
                t.handle_request(req, now);
                while t.poll_event().is_some() {}
            }
        }
    }
}

/// One outgoing call.
pub struct UacCall {
    cfg: UacConfig,
    state: State,
    invite_tx: Option<ClientInvite>,
    invite_cseq: u32,
    invite_branch: String,
    branch_counter: u32,
    auth_tries: u32,
    dialog: Option<Dialog>,
    ack: Option<Transmit>,
    cancel_tx: Option<ClientNonInvite>,
    /// CANCEL wanted before any provisional arrived (§9.1: wait for one).
    cancel_pending: bool,
    /// A provisional response arrived, 100 Trying included: CANCEL may be
    /// sent (§9.1). (A 100 stops the INVITE's Timer B, §17.1.1.2, so a
    /// CANCEL held back for a 180 that was lost would wait for ever.)
    provisional: bool,
    /// The CANCEL (sent or pending) is the ring timeout's, not a hang-up:
    /// a 2xx that crosses it is the person picking up just then, and is
    /// taken (the call goes on) rather than hung up.
    cancel_for_ring_timeout: bool,
    /// §9.1: if no final response arrives 64·T1 after CANCEL, give up.
    cancel_deadline: Option<Instant>,
    ring_deadline: Option<Instant>,
    bye_tx: Option<(ClientNonInvite, SocketAddr, u32)>,
    server_txs: Vec<ServerTx>,
    extra_txs: Vec<(ClientNonInvite, SocketAddr)>,
    /// RFC 4028: what we ask for in the INVITE (raised by a 422).
    session_expires: u32,
    /// 422s answered (two at most).
    interval_tries: u32,
    /// The negotiated session timer, once confirmed.
    session: Option<SessionTimer>,
    /// The peer's 2xx listed UPDATE in Allow: refreshes go by UPDATE
    /// (no offer/answer), else by re-INVITE.
    peer_allows_update: bool,
    /// Our refresh in flight.
    refresh: Option<session::Refresh>,
    /// The ACK of our last re-INVITE refresh (sent again if its 2xx is).
    refresh_ack: Option<(u32, Transmit)>,
    /// When a refresh that failed is tried again.
    refresh_retry_at: Option<Instant>,
    /// The early dialog of reliable provisional responses (RFC 3262),
    /// for PRACK, and the highest RSeq acknowledged on it.
    early: Option<(Dialog, u32)>,
    end_after_bye: Option<CallEnd>,
    /// A transport error was reported: a transaction that then fails ends
    /// the call as [`CallEnd::Unreachable`], not [`CallEnd::Timeout`].
    transport_error: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<UacEvent>,
    /// Final status of the INVITE (the last one, after any auth retry).
    pub final_status: Option<u16>,
    /// SIP retransmissions sent by this call (all transactions).
    pub retransmissions: u32,
}

impl UacCall {
    /// Build the INVITE and start the call; the INVITE is ready in `poll_transmit`.
    /// Fails when the target or From URI would not make a valid request
    /// (e.g. whitespace in a URI): nothing is sent then.
    pub fn new(mut cfg: UacConfig, now: Instant) -> Result<UacCall, ParseError> {
        cfg.timers.reliable = cfg.transport.is_reliable();
        if !is_valid_sip_uri(&cfg.target) {
            return Err(ParseError::Invalid("target is not a valid SIP URI"));
        }
        if !is_valid_sip_uri(&cfg.from) {
            return Err(ParseError::Invalid("From is not a valid SIP URI"));
        }
        let mut c = UacCall {
            cfg,
            state: State::Calling,
            invite_tx: None,
            invite_cseq: 0,
            invite_branch: String::new(),
            branch_counter: 0,
            auth_tries: 0,
            dialog: None,
            ack: None,
            cancel_tx: None,
            cancel_pending: false,
            provisional: false,
            cancel_for_ring_timeout: false,
            cancel_deadline: None,
            ring_deadline: None,
            bye_tx: None,
            server_txs: Vec::new(),
            extra_txs: Vec::new(),
            session_expires: 0,
            interval_tries: 0,
            session: None,
            peer_allows_update: false,
            refresh: None,
            refresh_ack: None,
            refresh_retry_at: None,
            early: None,
            end_after_bye: None,
            transport_error: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            final_status: None,
            retransmissions: 0,
        };
        c.ring_deadline = Some(now + c.cfg.ring_timeout);
        c.session_expires = c.cfg.session_expires;
        c.send_invite(None, now)?;
        Ok(c)
    }

    pub fn call_id(&self) -> &str {
        &self.cfg.call_id
    }

    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    fn next_branch(&mut self) -> String {
        self.branch_counter += 1;
        format!("z9hG4bK{}.{}", self.cfg.local_tag, self.branch_counter)
    }

    fn contact(&self) -> String {
        let user = self
            .cfg
            .from
            .strip_prefix("sip:")
            .and_then(|s| s.split('@').next())
            .filter(|u| !u.is_empty() && !u.contains(':'))
            .unwrap_or("genki");
        format!(
            "sip:{user}@{}{}",
            self.cfg.local_addr,
            self.cfg.transport.uri_param()
        )
    }

    fn send_invite(
        &mut self,
        authorization: Option<(&'static str, String)>,
        now: Instant,
    ) -> Result<(), ParseError> {
        self.invite_cseq += 1;
        let branch = self.next_branch();
        self.invite_branch = branch.clone();
        let mut b = Builder::request(&Method::Invite, &self.cfg.target)
            .header(
                "Via",
                &self.cfg.transport.via_value(self.cfg.local_addr, &branch),
            )
            .header("Max-Forwards", "70")
            .header(
                "From",
                &format!("<{}>;tag={}", self.cfg.from, self.cfg.local_tag),
            )
            .header("To", &format!("<{}>", self.cfg.target))
            .header("Call-ID", &self.cfg.call_id)
            .header("CSeq", &format!("{} INVITE", self.invite_cseq))
            .header("Contact", &format!("<{}>", self.contact()))
            .header("Allow", ALLOW)
            // RFC 3262 §4 and RFC 4028 §7.1: reliable provisionals and
            // session timers are understood.
            .header("Supported", "100rel, timer")
            .header("User-Agent", &self.cfg.user_agent);
        if self.session_expires > 0 {
            b = b.header("Session-Expires", &self.session_expires.to_string());
            if self.interval_tries > 0 {
                // §7.4: a retry after 422 carries the Min-SE it learnt.
                b = b.header("Min-SE", &self.session_expires.to_string());
            }
        }
        for (name, value) in &self.cfg.headers {
            b = b.header(name, value);
        }
        if let Some((name, value)) = authorization {
            b = b.header(name, &value);
        }
        let bytes = b.body("application/sdp", &self.cfg.sdp_offer).build();
        // What goes out must parse (the CANCEL and ACK are built from it).
        Message::parse(&bytes)?;
        if let Some(old) = self.invite_tx.take() {
            self.retransmissions += old.retransmissions;
        }
        self.invite_tx = Some(ClientInvite::new(bytes, self.cfg.timers, now));
        self.flush(now);
        Ok(())
    }

    /// Hang up: BYE when answered, CANCEL while ringing (§9.1, §15.1.1).
    pub fn hangup(&mut self, now: Instant) {
        self.cancel_for_ring_timeout = false;
        match self.state {
            State::Calling | State::Early => self.cancel(now),
            State::Confirmed => self.send_bye(CallEnd::LocalBye, now),
            State::Terminating | State::Ended => {}
        }
    }

    fn cancel(&mut self, now: Instant) {
        self.ring_deadline = None;
        if self.cancel_tx.is_some() || self.cancel_deadline.is_some() {
            return;
        }
        if self.state == State::Calling && !self.provisional {
            self.cancel_pending = true;
            return;
        }
        self.send_cancel(now);
    }

    fn send_cancel(&mut self, now: Instant) {
        let invite = match self.invite_tx.as_ref().map(|inv| inv.request()) {
            None => return,
            Some(Ok(invite)) => invite,
            // (Cannot happen: what was sent parsed.) The call still ends,
            // as if the CANCEL had gone unanswered.
            Some(Err(_)) => {
                self.cancel_deadline = Some(now + self.cfg.timers.t1x64());
                return;
            }
        };
        // §9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via.
        let bytes = Builder::invite_sibling(&invite, &Method::Cancel, None).build();
        self.cancel_pending = false;
        self.cancel_tx = Some(ClientNonInvite::new(bytes, self.cfg.timers, now));
        self.cancel_deadline = Some(now + self.cfg.timers.t1x64());
        self.flush(now);
    }

    fn send_bye(&mut self, end: CallEnd, now: Instant) {
        self.bye_with_auth(None, now);
        self.state = State::Terminating;
        self.end_after_bye = Some(end);
    }

    fn bye_with_auth(&mut self, authorization: Option<(&'static str, String)>, now: Instant) {
        let Some(mut d) = self.dialog.take() else {
            return;
        };
        let (mut b, _) = d.request(&Method::Bye, None);
        let cseq = d.local_cseq;
        if let Some((name, value)) = authorization {
            b = b.header(name, &value);
        }
        let dest = self.dialog_dest(&d);
        self.dialog = Some(d);
        let tx = ClientNonInvite::new(b.build(), self.cfg.timers, now);
        if let Some((old, _, _)) = self.bye_tx.replace((tx, dest, cseq)) {
            self.retransmissions += old.retransmissions;
        }
        self.flush(now);
    }

    fn end(&mut self, end: CallEnd) {
        let end = match end {
            CallEnd::Timeout if self.transport_error => CallEnd::Unreachable,
            e => e,
        };
        if self.state != State::Ended {
            self.state = State::Ended;
            self.ring_deadline = None;
            self.cancel_deadline = None;
            self.events.push_back(UacEvent::Ended { end });
        }
    }

    /// A datagram for this call (its Call-ID matched), from `source`.
    /// Returns false when it was refused as not from the call's peer: a
    /// source the call never sent to, or a response to an INVITE that
    /// is not ours (another branch). A Call-ID is not a secret (it travels
    /// in clear through every hop); a stranger who learns it must not
    /// answer, key or end the call.
    pub fn handle_message(&mut self, msg: Message, source: SocketAddr, now: Instant) -> bool {
        if !self.is_from_peer(source) {
            return false;
        }
        if msg.is_request() {
            self.handle_request(msg, source, now);
        } else {
            // §17.1.3: a response belongs to the client transaction whose
            // branch its top Via carries. A 2xx on another branch is not
            // an answer to our INVITE (a retransmission of our own 2xx
            // keeps our branch).
            if msg.cseq_method == Method::Invite
                && msg.branch.as_deref() != Some(self.invite_branch.as_str())
                && !self.is_refresh_response(&msg)
            {
                // A final response of an earlier INVITE of ours (before a
                // digest retry) may still be retransmitted: dropped. A 2xx
                // there is nobody's answer: refused.
                return !msg.status().is_some_and(|s| (200..300).contains(&s));
            }
            self.handle_response(msg, now);
        }
        self.flush(now);
        true
    }

    /// Whether `source` is where this call's peer speaks from: the first hop
    /// its INVITE went to (responses come back from where the request was
    /// sent, RFC 3581 §4 / RFC 3261 §18.2.2), or the dialog's next hop
    /// (its route or remote target, where in-dialog requests go and come from).
    fn is_from_peer(&self, source: SocketAddr) -> bool {
        source == self.cfg.next_hop
            || self
                .dialog
                .as_ref()
                .or(self.early.as_ref().map(|(d, _)| d))
                .is_some_and(|d| d.next_hop(self.cfg.next_hop) == source)
    }

    fn handle_response(&mut self, msg: Message, now: Instant) {
        let branch = msg.branch.clone().unwrap_or_default();
        if self.is_refresh_response(&msg) {
            self.handle_refresh_response(msg, now);
            return;
        }
        match msg.cseq_method {
            Method::Invite => {
                if branch == self.invite_branch {
                    if let Some(tx) = self.invite_tx.as_mut() {
                        if !tx.is_terminated() {
                            tx.handle_response(msg, now);
                            return;
                        }
                    }
                }
                // A 2xx retransmitted after the transaction ended (or from an
                // older branch): ACK it again if it is our dialog.
                if msg.status().is_some_and(|s| (200..300).contains(&s)) {
                    self.on_2xx(msg, now);
                }
            }
            Method::Cancel => {
                if let Some(tx) = self.cancel_tx.as_mut() {
                    tx.handle_response(msg, now);
                }
            }
            Method::Bye => {
                if let Some((tx, _, cseq)) = self.bye_tx.as_mut() {
                    if msg.cseq == *cseq {
                        tx.handle_response(msg, now);
                    }
                }
            }
            _ => {
                for (tx, _) in &mut self.extra_txs {
                    tx.handle_response(msg.clone(), now);
                }
            }
        }
    }

    fn handle_request(&mut self, msg: Message, source: SocketAddr, now: Instant) {
        let branch = msg.branch.clone().unwrap_or_default();
        let method = msg.method().cloned().unwrap_or(Method::Options);
        if method == Method::Ack {
            // The ACK of a re-INVITE's 2xx: its own transaction (a new
            // branch), matched by CSeq (§13.2.2.4, §17.2.1).
            if let Some(s) = self
                .server_txs
                .iter_mut()
                .find(|s| matches!(s.tx, ServerKind::Invite(_)) && s.cseq == msg.cseq)
            {
                s.handle_request(&msg, now);
                // The answer to the offer our 2xx made (§14.2).
                if !msg.body.is_empty() {
                    self.events
                        .push_back(UacEvent::MediaUpdate { sdp: msg.body });
                }
            }
            return;
        }
        if let Some(s) = self.server_txs.iter_mut().find(|s| s.branch == branch) {
            s.handle_request(&msg, now);
            return;
        }
        let ours = self.dialog.as_ref().is_some_and(|d| {
            msg.to_tag.as_deref() == Some(d.local_tag.as_str())
                && msg.from_tag.as_deref() == Some(d.remote_tag.as_str())
        });
        // A session refresh from the peer (RFC 4028 §9): our 2xx says the
        // interval and who refreshes, and restarts our timer.
        let mut timer_echo = None;
        let (status, body): (u16, Option<(String, Vec<u8>)>) = if !ours {
            (481, None)
        } else {
            match method {
                Method::Bye => (200, None),
                Method::Info | Method::Options => (200, None),
                // Glare (§14.1): our re-INVITE is in flight.
                Method::Invite if self.refresh_is_invite() => (491, None),
                // A re-INVITE or UPDATE keeps our session as it is: our
                // SDP answers an offer, or is the offer when none came
                // (§14.2; RFC 3311 §5.2 for UPDATE, answered only when it
                // carries one).
                Method::Invite | Method::Update => {
                    timer_echo = SessionTimer::from_request(&msg, now);
                    let sdp = (method == Method::Invite || !msg.body.is_empty())
                        .then(|| ("application/sdp".to_string(), self.cfg.sdp_offer.clone()));
                    (200, sdp)
                }
                _ => (501, None),
            }
        };
        let local_tag = self.cfg.local_tag.clone();
        let mut b = Builder::response_to(&msg, status, reason_phrase(status), Some(&local_tag));
        if matches!(method, Method::Invite | Method::Update) && status == 200 {
            b = b
                .header("Contact", &format!("<{}>", self.contact()))
                .header("Allow", ALLOW)
                .header("Supported", "100rel, timer");
            if let Some((timer, echo)) = timer_echo {
                b = b
                    .header("Session-Expires", &echo)
                    .header("Require", "timer");
                self.session = Some(timer);
            }
        }
        if status == 491 {
            // §14.1: the peer waits 0–2 s and tries again.
            b = b.header("Retry-After", "1");
        }
        if let Some((ct, body)) = &body {
            b = b.body(ct, body);
        }
        let tx = if method == Method::Invite {
            let mut t = ServerInvite::new(self.cfg.timers);
            t.respond(status, b.build(), now);
            ServerKind::Invite(t)
        } else {
            let mut t = ServerNonInvite::new(self.cfg.timers);
            t.respond(status, b.build(), now);
            ServerKind::NonInvite(t)
        };
        self.server_txs.push(ServerTx {
            branch,
            cseq: msg.cseq,
            tx,
            dest: source,
        });
        if !ours {
            return;
        }
        match method {
            Method::Bye => self.end(CallEnd::RemoteBye),
            Method::Info => self.events.push_back(UacEvent::Info {
                content_type: msg.content_type().unwrap_or_default(),
                body: msg.body,
            }),
            Method::Invite | Method::Update if status == 200 && !msg.body.is_empty() => self
                .events
                .push_back(UacEvent::MediaUpdate { sdp: msg.body }),
            _ => {}
        }
    }

    fn on_2xx(&mut self, msg: Message, now: Instant) {
        let to_tag = msg.to_tag.clone().unwrap_or_default();
        if let Some(d) = &self.dialog {
            if d.remote_tag == to_tag {
                // Retransmitted 2xx: the ACK was lost, send it again (§13.2.2.4).
                if let Some(ack) = &self.ack {
                    self.transmits.push_back(ack.clone());
                }
                return;
            }
            // A 2xx from another fork: ACK and BYE it (§13.2.2.4).
            let mut other = self.make_dialog(&msg);
            let (ack, _) = other.request(&Method::Ack, Some(msg.cseq));
            let dest = self.dialog_dest(&other);
            self.transmits.push_back(Transmit {
                dest,
                data: ack.build(),
            });
            let (bye, _) = other.request(&Method::Bye, None);
            self.extra_txs.push((
                ClientNonInvite::new(bye.build(), self.cfg.timers, now),
                dest,
            ));
            return;
        }
        let mut d = self.make_dialog(&msg);
        let (ack, _) = d.request(&Method::Ack, Some(msg.cseq));
        // CSeq goes on from any PRACK sent in the early dialog (§12.2.1.1).
        if let Some((early, _)) = self.early.take() {
            d.local_cseq = d.local_cseq.max(early.local_cseq);
        }
        let dest = self.dialog_dest(&d);
        let ack = Transmit {
            dest,
            data: ack.build(),
        };
        self.transmits.push_back(ack.clone());
        self.ack = Some(ack);
        self.session = SessionTimer::from_response(&msg, now);
        self.peer_allows_update = msg
            .header_values("Allow")
            .flat_map(|v| v.split(','))
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"));
        self.dialog = Some(d);
        self.final_status = msg.status();
        if (self.cancel_deadline.is_some() || self.cancel_pending) && self.cancel_for_ring_timeout {
            // The person picked up just as the ring timeout's CANCEL left
            // (or the answer was lost and its retransmission came after
            // it): they are on the line, so the call goes on (§9.1 leaves
            // the UAC free to keep a call its CANCEL crossed).
            self.cancel_deadline = None;
            self.cancel_pending = false;
        } else if self.cancel_deadline.is_some() || self.cancel_pending {
            // The answer crossed our CANCEL: hang up at once, it was not answered in time.
            self.cancel_deadline = None;
            self.state = State::Confirmed;
            self.send_bye(CallEnd::Cancelled, now);
            return;
        }
        self.state = State::Confirmed;
        self.ring_deadline = None;
        self.events.push_back(UacEvent::Answered { sdp: msg.body });
    }

    fn dialog_dest(&self, d: &Dialog) -> SocketAddr {
        if self.cfg.outbound_proxy {
            self.cfg.next_hop
        } else {
            d.next_hop(self.cfg.next_hop)
        }
    }

    fn make_dialog(&self, msg: &Message) -> Dialog {
        // §12.1.2: route set = Record-Route in reverse, remote target = Contact.
        let mut routes: Vec<String> = msg
            .header_values("Record-Route")
            .map(str::to_string)
            .collect();
        routes.reverse();
        let mut d = Dialog::new(
            self.cfg.call_id.clone(),
            format!("<{}>", self.cfg.from),
            self.cfg.local_tag.clone(),
            without_tag(msg.header("To").unwrap_or("")),
            msg.to_tag.clone().unwrap_or_default(),
            self.invite_cseq,
            msg.contact_uri()
                .map(str::to_string)
                .unwrap_or_else(|| self.cfg.target.clone()),
            routes,
            self.contact(),
            self.cfg.local_addr,
        );
        d.transport = self.cfg.transport;
        d
    }

    fn on_invite_event(&mut self, ev: TxEvent, now: Instant) {
        match ev {
            TxEvent::Response(msg) => {
                let status = msg.status().unwrap_or(0);
                match status {
                    100 => {
                        self.provisional = true;
                        if self.cancel_pending {
                            self.send_cancel(now);
                        }
                    }
                    101..=199 => {
                        self.provisional = true;
                        if self.state == State::Calling {
                            self.state = State::Early;
                        }
                        if status > 100 {
                            self.prack(&msg, now);
                            let sdp = (!msg.body.is_empty()
                                && msg
                                    .content_type()
                                    .is_some_and(|c| c.eq_ignore_ascii_case("application/sdp")))
                            .then(|| msg.body.clone());
                            self.events.push_back(UacEvent::Progress { status, sdp });
                        }
                        if self.cancel_pending {
                            self.send_cancel(now);
                        }
                    }
                    200..=299 => self.on_2xx(*msg, now),
                    401 | 407 => self.on_challenge(*msg, status, now),
                    422 if self.on_interval_too_brief(&msg, now) => {}
                    _ => {
                        self.final_status = Some(status);
                        if let Some(seconds) = msg.header("Retry-After").and_then(retry_after) {
                            self.events.push_back(UacEvent::RetryAfter { seconds });
                        }
                        if self.cancel_deadline.is_some() {
                            self.end(CallEnd::Cancelled);
                        } else if status == 503
                            && self.state == State::Calling
                            && self.fail_over(now)
                        {
                            // The next target takes the call.
                        } else if status == 403 && self.auth_tries > 0 && !self.provisional {
                            // Our credentials were refused (§22.4 leaves
                            // it to 403): the trunk's fault, not the line's.
                            self.end(CallEnd::AuthFailed { status });
                        } else {
                            self.end(CallEnd::Rejected { status });
                        }
                    }
                }
            }
            TxEvent::Timeout => {
                // No response at all is a timeout even if we meant to cancel;
                // a CANCEL actually sent makes it a cancelled call.
                if self.cancel_deadline.is_some() {
                    self.end(CallEnd::Cancelled);
                } else if !self.fail_over(now) {
                    self.end(CallEnd::Timeout);
                }
            }
            _ => {}
        }
    }

    /// Send the INVITE to the next target (RFC 3263 §4.3: an identical
    /// request, a new branch, the next address). False when there is none
    /// left or the call is no longer placing.
    fn fail_over(&mut self, now: Instant) -> bool {
        if self.cfg.alternates.is_empty()
            || self.cancel_deadline.is_some()
            || self.cancel_pending
            || self.state != State::Calling
        {
            return false;
        }
        let to = self.cfg.alternates.remove(0);
        let from = std::mem::replace(&mut self.cfg.next_hop, to);
        self.transport_error = false;
        self.provisional = false;
        self.final_status = None;
        self.events.push_back(UacEvent::FailedOver { from, to });
        self.send_invite(None, now).is_ok()
    }

    fn challenge_answer(
        &mut self,
        msg: &Message,
        status: u16,
        method: &str,
        uri: &str,
    ) -> Option<(&'static str, String)> {
        let cnonce = format!(
            "{:08x}",
            fnv(&format!("{}{}", self.cfg.call_id, self.auth_tries + 1))
        );
        let auth = crate::auth::answer_challenge(
            msg,
            status,
            self.cfg.credentials.as_ref(),
            self.cfg.realm.as_deref(),
            method,
            uri,
            &cnonce,
        )?;
        self.auth_tries += 1;
        Some(auth)
    }

    fn on_challenge(&mut self, msg: Message, status: u16, now: Instant) {
        // One retry per challenge (two if the first was stale), then give up.
        let allowed = if msg
            .header("WWW-Authenticate")
            .or(msg.header("Proxy-Authenticate"))
            .is_some_and(|h| h.to_ascii_lowercase().contains("stale=true"))
        {
            2
        } else {
            1
        };
        if self.cancel_deadline.is_none() && !self.cancel_pending && self.auth_tries < allowed {
            let target = self.cfg.target.clone();
            if let Some(auth) = self.challenge_answer(&msg, status, "INVITE", &target) {
                // A challenge whose values make our request invalid ends the call.
                if self.send_invite(Some(auth), now).is_ok() {
                    return;
                }
            }
        }
        self.final_status = Some(status);
        self.end(CallEnd::AuthFailed { status });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ring_deadline.is_some_and(|t| now >= t) {
            self.ring_deadline = None;
            self.cancel(now);
            self.cancel_for_ring_timeout = true;
        }
        if self.cancel_deadline.is_some_and(|t| now >= t) && self.state != State::Confirmed {
            self.cancel_deadline = None;
            self.end(CallEnd::Cancelled);
        }
        if let Some(tx) = self.invite_tx.as_mut() {
            tx.handle_timeout(now);
        }
        if let Some(tx) = self.cancel_tx.as_mut() {
            tx.handle_timeout(now);
        }
        if let Some((tx, _, _)) = self.bye_tx.as_mut() {
            tx.handle_timeout(now);
        }
        for s in &mut self.server_txs {
            s.handle_timeout(now);
        }
        for (tx, _) in &mut self.extra_txs {
            tx.handle_timeout(now);
        }
        self.session_timeout(now);
        self.flush(now);
    }

    /// The first hop this call's requests go to.
    pub fn next_hop(&self) -> SocketAddr {
        self.cfg.next_hop
    }

    /// A transport error (ICMP unreachable) sending to the first hop.
    pub fn handle_transport_error(&mut self, now: Instant) {
        self.transport_error = true;
        if let Some(tx) = self.invite_tx.as_mut() {
            tx.handle_transport_error();
        }
        if let Some((tx, _, _)) = self.bye_tx.as_mut() {
            tx.handle_transport_error();
        }
        self.flush(now);
    }

    /// Move transaction output to our queues and react to transaction events.
    fn flush(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            if let Some(tx) = self.invite_tx.as_mut() {
                let dest = self.cfg.next_hop;
                while let Some(data) = tx.poll_transmit() {
                    self.transmits.push_back(Transmit { dest, data });
                }
                if let Some(ev) = tx.poll_event() {
                    progressed = true;
                    self.on_invite_event(ev, now);
                }
            }
            if let Some(tx) = self.cancel_tx.as_mut() {
                let dest = self.cfg.next_hop;
                while let Some(data) = tx.poll_transmit() {
                    self.transmits.push_back(Transmit { dest, data });
                }
                // CANCEL's own response needs no action; the 487 on the INVITE ends the call.
                while tx.poll_event().is_some() {}
            }
            if let Some((tx, dest, _)) = self.bye_tx.as_mut() {
                let dest = *dest;
                while let Some(data) = tx.poll_transmit() {
                    self.transmits.push_back(Transmit { dest, data });
                }
                if let Some(ev) = tx.poll_event() {
                    progressed = true;
                    match ev {
                        TxEvent::Response(m) => {
                            let s = m.status().unwrap_or(0);
                            if (s == 401 || s == 407) && self.auth_tries < 3 {
                                let uri = self
                                    .dialog
                                    .as_ref()
                                    .map(|d| d.remote_target.clone())
                                    .unwrap_or_default();
                                if let Some(auth) = self.challenge_answer(&m, s, "BYE", &uri) {
                                    self.bye_with_auth(Some(auth), now);
                                    continue;
                                }
                            }
                            if s >= 200 {
                                let end = self.end_after_bye.take().unwrap_or(CallEnd::LocalBye);
                                self.end(end);
                            }
                        }
                        TxEvent::Timeout => {
                            let end = self.end_after_bye.take().unwrap_or(CallEnd::LocalBye);
                            self.end(end);
                        }
                        _ => {}
                    }
                }
            }
            for s in &mut self.server_txs {
                while let Some(data) = s.poll_transmit() {
                    self.transmits.push_back(Transmit { dest: s.dest, data });
                }
            }
            progressed |= self.flush_refresh(now);
            for (tx, dest) in &mut self.extra_txs {
                while let Some(data) = tx.poll_transmit() {
                    self.transmits.push_back(Transmit { dest: *dest, data });
                }
                while tx.poll_event().is_some() {}
            }
            if !progressed {
                break;
            }
        }
        self.server_txs.retain(|s| !s.is_terminated());
        self.extra_txs.retain(|(t, _)| !t.is_terminated());
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// True when datagrams are waiting in [`poll_transmit`](Self::poll_transmit).
    pub fn has_transmit(&self) -> bool {
        !self.transmits.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<UacEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.ring_deadline,
            self.cancel_deadline,
            self.invite_tx.as_ref().and_then(|x| x.poll_timeout()),
            self.cancel_tx.as_ref().and_then(|x| x.poll_timeout()),
            self.bye_tx.as_ref().and_then(|x| x.0.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .chain(self.server_txs.iter().filter_map(|s| s.poll_timeout()))
        .chain(self.extra_txs.iter().filter_map(|s| s.0.poll_timeout()))
        .chain(self.session_deadline())
        .min()
    }

    /// True when nothing is left to do: ended and no transaction still
    /// absorbing retransmissions. The owner may then drop the call.
    pub fn is_finished(&self) -> bool {
        self.state == State::Ended
            && self.invite_tx.as_ref().is_none_or(|t| t.is_terminated())
            && self.bye_tx.as_ref().is_none_or(|t| t.0.is_terminated())
            && self.server_txs.is_empty()
            && self.extra_txs.is_empty()
            && self.refresh.is_none()
    }

    /// Total SIP retransmissions this call sent.
    pub fn total_retransmissions(&self) -> u32 {
        self.retransmissions
            + self.invite_tx.as_ref().map_or(0, |t| t.retransmissions)
            + self.cancel_tx.as_ref().map_or(0, |t| t.retransmissions)
            + self.bye_tx.as_ref().map_or(0, |t| t.0.retransmissions)
    }
}

/// FNV-1a, for a deterministic client nonce (§22.4 only asks that it be unique).
pub(crate) fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}
