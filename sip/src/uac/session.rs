//! What carriers add to a call, on the UAC's side: session timers (RFC
//! 4028) and reliable provisional responses (RFC 3262). Split from
//! [`super`] to keep the call's core readable; same type, same rules
//! (sans-IO, time passed in).
//!
//! - We ask for the session interval the owner configures, answer a 422
//!   with the Min-SE it names (§7.4, twice at most), and take what the
//!   2xx grants ([`SessionTimer::from_response`]).
//! - When we are the refresher we refresh at half the interval: by UPDATE
//!   (no offer/answer, RFC 3311) when the peer allows it, else by
//!   re-INVITE with our unchanged SDP. A 491 is tried again shortly
//!   (§14.1); a 408 or 481 (or no answer) means the session is gone
//!   (RFC 4028 §10): BYE. Other refusals are tried again until expiry.
//! - When the peer refreshes and does not, we send BYE before expiry
//!   (§10), ending the call as [`CallEnd::SessionExpired`].
//! - A reliable 18x (`Require: 100rel` with an RSeq) gets one PRACK on
//!   its early dialog; retransmissions and older RSeqs get none (RFC 3262
//!   §4: the PRACK's own transaction retransmits).
//!
//! The tests here also cover the UAC's failover between a trunk's
//! targets (RFC 3263 §4.3), which shares their helpers.
//!
//! Depends on: [`crate::session_timer`], [`crate::transaction`],
//! [`crate::dialog`], [`crate::message`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{CallEnd, State, UacCall};
use crate::dialog::Transmit;
use crate::message::{Message, Method};
use crate::session_timer::{parse_min_se, SessionTimer};
use crate::transaction::{ClientInvite, ClientNonInvite, TxEvent};

/// The most 422s answered on one call.
const MAX_INTERVAL_TRIES: u32 = 2;
/// A refresh refused for another reason than glare is tried again after this.
const REFRESH_RETRY: Duration = Duration::from_secs(5);

/// Our session refresh in flight.
pub(super) struct Refresh {
    cseq: u32,
    dest: SocketAddr,
    tx: RefreshTx,
}

enum RefreshTx {
    Update(Box<ClientNonInvite>),
    Invite(Box<ClientInvite>),
}

impl UacCall {
    /// Whether a response is to our refresh (or a retransmitted 2xx of
    /// our last re-INVITE refresh, which is ACKed again).
    pub(super) fn is_refresh_response(&self, msg: &Message) -> bool {
        let refresh = self.refresh.as_ref().is_some_and(|r| {
            r.cseq == msg.cseq
                && matches!(
                    (&r.tx, &msg.cseq_method),
                    (RefreshTx::Update(_), Method::Update) | (RefreshTx::Invite(_), Method::Invite)
                )
        });
        refresh
            || (msg.cseq_method == Method::Invite
                && self
                    .refresh_ack
                    .as_ref()
                    .is_some_and(|(c, _)| *c == msg.cseq))
    }

    pub(super) fn refresh_is_invite(&self) -> bool {
        self.refresh
            .as_ref()
            .is_some_and(|r| matches!(r.tx, RefreshTx::Invite(_)))
    }

    pub(super) fn handle_refresh_response(&mut self, msg: Message, now: Instant) {
        if let Some(r) = self.refresh.as_mut().filter(|r| r.cseq == msg.cseq) {
            match &mut r.tx {
                RefreshTx::Update(t) => t.handle_response(msg, now),
                RefreshTx::Invite(t) => t.handle_response(msg, now),
            }
            return;
        }
        // The 2xx of a re-INVITE refresh again: its ACK was lost (§13.2.2.4).
        if msg.status().is_some_and(|s| (200..300).contains(&s)) {
            if let Some((_, ack)) = &self.refresh_ack {
                self.transmits.push_back(ack.clone());
            }
        }
    }

    /// Move the refresh's output out and act on how it ended. Returns
    /// whether anything happened.
    pub(super) fn flush_refresh(&mut self, now: Instant) -> bool {
        let Some(r) = self.refresh.as_mut() else {
            return false;
        };
        let dest = r.dest;
        let cseq = r.cseq;
        let mut out = Vec::new();
        let mut ev = None;
        let invite = match &mut r.tx {
            RefreshTx::Update(t) => {
                while let Some(d) = t.poll_transmit() {
                    out.push(d);
                }
                ev = ev.or(t.poll_event());
                false
            }
            RefreshTx::Invite(t) => {
                while let Some(d) = t.poll_transmit() {
                    out.push(d);
                }
                ev = ev.or(t.poll_event());
                true
            }
        };
        for data in out {
            self.transmits.push_back(Transmit { dest, data });
        }
        let Some(ev) = ev else {
            if self.refresh.as_ref().is_some_and(|r| match &r.tx {
                RefreshTx::Update(t) => t.is_terminated(),
                RefreshTx::Invite(t) => t.is_terminated(),
            }) {
                self.refresh = None;
            }
            return false;
        };
        let status = match &ev {
            TxEvent::Response(m) => m.status().unwrap_or(0),
            TxEvent::Timeout => 408,
            _ => return true,
        };
        if status < 200 {
            return true;
        }
        self.refresh = None;
        if self.state != State::Confirmed {
            return true;
        }
        match (status, ev) {
            (200..=299, TxEvent::Response(m)) => {
                if invite {
                    if let Some(d) = self.dialog.as_mut() {
                        let (ack, _) = d.request(&Method::Ack, Some(cseq));
                        let ack = Transmit {
                            dest,
                            data: ack.build(),
                        };
                        self.transmits.push_back(ack.clone());
                        self.refresh_ack = Some((cseq, ack));
                    }
                }
                // No Session-Expires in the 2xx: the peer dropped the timer (§7.2).
                self.session = SessionTimer::from_response(&m, now);
            }
            // Glare: try again shortly (§14.1 asks 2.1–4 s of the call's owner).
            (491, _) => self.refresh_retry_at = Some(now + Duration::from_millis(2100)),
            // The session is gone (RFC 4028 §10).
            (408 | 481, _) => self.send_bye(CallEnd::SessionExpired, now),
            // A peer that does not take UPDATE after all: re-INVITE.
            (405 | 501, _) if !invite => {
                self.peer_allows_update = false;
                self.refresh_retry_at = Some(now);
            }
            _ => self.refresh_retry_at = Some(now + REFRESH_RETRY),
        }
        true
    }

    /// The session timer's part of [`UacCall::handle_timeout`].
    pub(super) fn session_timeout(&mut self, now: Instant) {
        if self.state != State::Confirmed {
            return;
        }
        let Some(t) = self.session.clone() else {
            return;
        };
        if now >= t.expires_at() {
            self.session = None;
            self.send_bye(CallEnd::SessionExpired, now);
            return;
        }
        let due = match self.refresh_retry_at {
            Some(at) => now >= at,
            None => t.refresh_at().is_some_and(|at| now >= at),
        };
        if due && self.refresh.is_none() {
            self.refresh_retry_at = None;
            self.send_refresh(&t, now);
        }
    }

    /// When the session timer next needs [`UacCall::handle_timeout`].
    pub(super) fn session_deadline(&self) -> Vec<Instant> {
        let mut v = Vec::new();
        if let Some(r) = &self.refresh {
            v.extend(match &r.tx {
                RefreshTx::Update(t) => t.poll_timeout(),
                RefreshTx::Invite(t) => t.poll_timeout(),
            });
        }
        if self.state != State::Confirmed {
            return v;
        }
        if let Some(t) = &self.session {
            v.push(t.expires_at());
            if self.refresh.is_none() {
                v.extend(self.refresh_retry_at.or(t.refresh_at()));
            }
        }
        v
    }

    fn send_refresh(&mut self, t: &SessionTimer, now: Instant) {
        let update = self.peer_allows_update;
        let Some(mut d) = self.dialog.take() else {
            return;
        };
        let method = if update {
            Method::Update
        } else {
            Method::Invite
        };
        let (mut b, _) = d.request(&method, None);
        let cseq = d.local_cseq;
        let dest = self.dialog_dest(&d);
        self.dialog = Some(d);
        b = b
            .header(
                "Session-Expires",
                &format!("{};refresher=uac", t.interval.as_secs()),
            )
            .header("Supported", "100rel, timer")
            .header("Allow", super::ALLOW)
            .header("User-Agent", &self.cfg.user_agent);
        let tx = if update {
            RefreshTx::Update(Box::new(ClientNonInvite::new(
                b.build(),
                self.cfg.timers,
                now,
            )))
        } else {
            // The same session, the same SDP (RFC 3264 §8: unchanged
            // version, no change).
            let bytes = b.body("application/sdp", &self.cfg.sdp_offer).build();
            if Message::parse(&bytes).is_err() {
                return;
            }
            RefreshTx::Invite(Box::new(ClientInvite::new(bytes, self.cfg.timers, now)))
        };
        self.refresh = Some(Refresh { cseq, dest, tx });
    }

    /// A 422 (Session Interval Too Small): ask again with its Min-SE.
    /// False when it cannot be answered (then it ends the call as any
    /// other rejection).
    pub(super) fn on_interval_too_brief(&mut self, msg: &Message, now: Instant) -> bool {
        let Some(min) = parse_min_se(msg) else {
            return false;
        };
        if self.interval_tries >= MAX_INTERVAL_TRIES
            || min <= self.session_expires
            || min > 86_400
            || self.cancel_deadline.is_some()
            || self.cancel_pending
        {
            return false;
        }
        self.interval_tries += 1;
        self.session_expires = min;
        self.send_invite(None, now).is_ok()
    }

    /// PRACK a reliable provisional response (RFC 3262 §4), once per RSeq.
    pub(super) fn prack(&mut self, msg: &Message, now: Instant) {
        let reliable = msg
            .header_values("Require")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("100rel"));
        let Some(rseq) = msg
            .header("RSeq")
            .and_then(|v| v.trim().parse::<u32>().ok())
        else {
            return;
        };
        if !reliable || msg.to_tag.is_none() {
            return;
        }
        let tag = msg.to_tag.clone().unwrap_or_default();
        let (mut d, last) = match self.early.take() {
            Some((d, last)) if d.remote_tag == tag => (d, Some(last)),
            other => {
                // A new early dialog (the first, or another fork's):
                // CSeq numbers go on from any earlier one.
                let mut d = self.make_dialog(msg);
                if let Some((e, _)) = other {
                    d.local_cseq = d.local_cseq.max(e.local_cseq);
                }
                (d, None)
            }
        };
        if last.is_some_and(|l| rseq <= l) {
            self.early = Some((d, last.unwrap_or(rseq)));
            return;
        }
        let (b, _) = d.request(&Method::Prack, None);
        let bytes = b
            .header("RAck", &format!("{rseq} {} INVITE", msg.cseq))
            .build();
        let dest = self.dialog_dest(&d);
        self.early = Some((d, rseq));
        self.extra_txs
            .push((ClientNonInvite::new(bytes, self.cfg.timers, now), dest));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{UacConfig, UacEvent};
    use super::*;
    use crate::message::{reason_phrase, Builder};
    use crate::transaction::Timers;

    const PEER: &str = "127.0.0.1:5080";

    fn call(now: Instant) -> UacCall {
        call_via(now, Vec::new())
    }

    fn call_via(now: Instant, alternates: Vec<SocketAddr>) -> UacCall {
        UacCall::new(
            UacConfig {
                target: format!("sip:1001@{PEER}"),
                from: "sip:genki@127.0.0.1".into(),
                local_addr: "127.0.0.1:5060".parse().unwrap(),
                next_hop: PEER.parse().unwrap(),
                outbound_proxy: false,
                credentials: None,
                realm: None,
                sdp_offer: b"v=0\r\n".to_vec(),
                call_id: "st-call".into(),
                local_tag: "ours".into(),
                ring_timeout: Duration::from_secs(60),
                timers: Timers::default(),
                user_agent: "genki-test".into(),
                headers: Vec::new(),
                alternates,
                session_expires: 1800,
                transport: Default::default(),
            },
            now,
        )
        .unwrap()
    }

    fn out(c: &mut UacCall) -> Vec<Message> {
        std::iter::from_fn(|| c.poll_transmit())
            .map(|t| Message::parse(&t.data).unwrap())
            .collect()
    }

    fn feed(c: &mut UacCall, b: Builder, now: Instant) {
        let m = Message::parse(&b.build()).unwrap();
        assert!(c.handle_message(m, PEER.parse().unwrap(), now));
    }

    fn reply(req: &Message, status: u16, extra: &[(&str, &str)]) -> Builder {
        let mut b = Builder::response_to(req, status, reason_phrase(status), Some("theirs"));
        for (k, v) in extra {
            b = b.header(k, v);
        }
        b
    }

    /// Answered with `extra` headers; returns the call confirmed and the ACK.
    fn answered(now: Instant, extra: &[(&str, &str)]) -> UacCall {
        let mut c = call(now);
        let invite = out(&mut c).remove(0);
        let mut h = vec![("Contact", "<sip:1001@127.0.0.1:5080>")];
        h.extend_from_slice(extra);
        feed(
            &mut c,
            reply(&invite, 200, &h).body("application/sdp", b"v=0\r\n"),
            now,
        );
        let acks = out(&mut c);
        assert_eq!(acks[0].method(), Some(&Method::Ack));
        c
    }

    /// Run timers on virtual time until `until`, collecting what is sent.
    fn run(c: &mut UacCall, now: &mut Instant, until: Instant) -> Vec<Message> {
        let mut sent = Vec::new();
        while let Some(t) = c.poll_timeout() {
            if t > until {
                break;
            }
            *now = t.max(*now);
            c.handle_timeout(*now);
            sent.extend(out(c));
        }
        *now = until;
        sent
    }

    fn ended(c: &mut UacCall) -> Option<CallEnd> {
        std::iter::from_fn(|| c.poll_event()).find_map(|e| match e {
            UacEvent::Ended { end } => Some(end),
            _ => None,
        })
    }

    /// We are the refresher: an UPDATE at half the interval (the peer
    /// allows UPDATE), re-armed by its 2xx; a 481 to a refresh ends the
    /// session with BYE.
    #[test]
    fn we_refresh_at_half_the_interval_and_a_lost_session_ends() {
        let start = Instant::now();
        let mut now = start;
        let mut c = answered(
            now,
            &[
                ("Session-Expires", "30;refresher=uac"),
                ("Allow", "INVITE, ACK, BYE, UPDATE"),
            ],
        );
        let sent = run(&mut c, &mut now, start + Duration::from_secs(15));
        let update = sent
            .iter()
            .find(|m| m.method() == Some(&Method::Update))
            .expect("an UPDATE at 15 s");
        assert_eq!(update.header("Session-Expires"), Some("30;refresher=uac"));
        assert_eq!(now - start, Duration::from_secs(15));
        feed(
            &mut c,
            reply(update, 200, &[("Session-Expires", "30;refresher=uac")]),
            now,
        );
        let sent = run(&mut c, &mut now, start + Duration::from_secs(30));
        let again = sent
            .iter()
            .find(|m| m.method() == Some(&Method::Update))
            .expect("the next refresh 15 s after the last 2xx");
        assert!(again.cseq > update.cseq);
        feed(&mut c, reply(again, 481, &[]), now);
        let bye = out(&mut c);
        assert!(
            bye.iter().any(|m| m.method() == Some(&Method::Bye)),
            "{bye:?}"
        );
        let bye = bye
            .into_iter()
            .find(|m| m.method() == Some(&Method::Bye))
            .unwrap();
        feed(&mut c, reply(&bye, 200, &[]), now);
        assert_eq!(ended(&mut c), Some(CallEnd::SessionExpired));
    }

    /// Without UPDATE in the peer's Allow, the refresh is a re-INVITE with
    /// our SDP, ACKed on its 2xx (and again when that 2xx is repeated).
    #[test]
    fn a_peer_without_update_is_refreshed_by_re_invite() {
        let start = Instant::now();
        let mut now = start;
        let mut c = answered(now, &[("Session-Expires", "90;refresher=uac")]);
        let sent = run(&mut c, &mut now, start + Duration::from_secs(45));
        let reinvite = sent
            .iter()
            .find(|m| m.method() == Some(&Method::Invite))
            .expect("a re-INVITE at 45 s");
        assert_eq!(reinvite.body, b"v=0\r\n");
        let ok = reply(reinvite, 200, &[("Session-Expires", "90;refresher=uac")])
            .body("application/sdp", b"v=0\r\n");
        feed(&mut c, ok, now);
        let acks = out(&mut c);
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].method(), Some(&Method::Ack));
        assert_eq!(acks[0].cseq, reinvite.cseq);
        let ok = reply(reinvite, 200, &[("Session-Expires", "90;refresher=uac")])
            .body("application/sdp", b"v=0\r\n");
        feed(&mut c, ok, now);
        assert_eq!(
            out(&mut c)[0].method(),
            Some(&Method::Ack),
            "a repeated 2xx is ACKed again"
        );
        assert!(ended(&mut c).is_none());
    }

    /// The peer's re-INVITE (a carrier's refresh): an INVITE server
    /// transaction whose 2xx — with our SDP, the interval and `Require:
    /// timer` — is retransmitted until the ACK. Then, when the peer's next
    /// refresh never comes, we end the session before it expires.
    #[test]
    fn the_peers_re_invite_is_answered_until_acked_and_its_silence_ends_the_call() {
        let start = Instant::now();
        let mut now = start;
        let mut c = answered(now, &[]);
        let reinvite = Message::parse(
            b"INVITE sip:genki@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKre1\r\nFrom: <sip:1001@127.0.0.1>;tag=theirs\r\nTo: <sip:genki@127.0.0.1>;tag=ours\r\nCall-ID: st-call\r\nCSeq: 7 INVITE\r\nContact: <sip:1001@127.0.0.1:5080>\r\nSession-Expires: 60;refresher=uac\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert!(c.handle_message(reinvite.clone(), PEER.parse().unwrap(), now));
        let ok = out(&mut c);
        assert_eq!(ok[0].status(), Some(200));
        assert_eq!(ok[0].header("Session-Expires"), Some("60;refresher=uac"));
        assert_eq!(ok[0].header("Require"), Some("timer"));
        assert_eq!(ok[0].body, b"v=0\r\n", "our SDP is the offer");
        // Unacknowledged: the 2xx again at T1, 2·T1.
        let sent = run(&mut c, &mut now, start + Duration::from_millis(1600));
        assert_eq!(sent.iter().filter(|m| m.status() == Some(200)).count(), 2);
        let ack = Message::parse(
            b"ACK sip:genki@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKack7\r\nFrom: <sip:1001@127.0.0.1>;tag=theirs\r\nTo: <sip:genki@127.0.0.1>;tag=ours\r\nCall-ID: st-call\r\nCSeq: 7 ACK\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert!(c.handle_message(ack, PEER.parse().unwrap(), now));
        let sent = run(&mut c, &mut now, start + Duration::from_secs(10));
        assert!(
            sent.iter().all(|m| m.status() != Some(200)),
            "ACKed: no more 2xx"
        );
        // The peer refreshes; none comes: BYE at 60 − 20 = 40 s.
        let sent = run(&mut c, &mut now, start + Duration::from_secs(41));
        let bye = sent
            .iter()
            .find(|m| m.method() == Some(&Method::Bye))
            .expect("BYE before the session expires");
        feed(&mut c, reply(bye, 200, &[]), now);
        assert_eq!(ended(&mut c), Some(CallEnd::SessionExpired));
    }

    /// The peer moves its media: the SDP of its re-INVITE offer, of its
    /// UPDATE, and of the ACK that answers our offer (a re-INVITE without
    /// one) each reach the owner; a refresh without SDP does not.
    #[test]
    fn the_peers_new_media_description_reaches_the_owner() {
        let now = Instant::now();
        let mut c = answered(now, &[]);
        while c.poll_event().is_some() {}
        let req = |method: &str, cseq: u32, body: &str| {
            let m = format!(
                "{method} sip:genki@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKmv{cseq}{method}\r\nFrom: <sip:1001@127.0.0.1>;tag=theirs\r\nTo: <sip:genki@127.0.0.1>;tag=ours\r\nCall-ID: st-call\r\nCSeq: {cseq} {method}\r\nContact: <sip:1001@127.0.0.1:5080>\r\n{}Content-Length: {}\r\n\r\n{body}",
                if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" },
                body.len()
            );
            Message::parse(m.as_bytes()).unwrap()
        };
        let updates = |c: &mut UacCall| -> Vec<Vec<u8>> {
            std::iter::from_fn(|| c.poll_event())
                .filter_map(|e| match e {
                    UacEvent::MediaUpdate { sdp } => Some(sdp),
                    _ => None,
                })
                .collect()
        };
        let peer = PEER.parse().unwrap();
        assert!(c.handle_message(req("INVITE", 8, "v=0 moved\r\n"), peer, now));
        assert_eq!(out(&mut c)[0].status(), Some(200));
        assert_eq!(updates(&mut c), vec![b"v=0 moved\r\n".to_vec()]);
        assert!(c.handle_message(req("ACK", 8, ""), peer, now));
        assert!(updates(&mut c).is_empty(), "an empty ACK changes nothing");
        assert!(c.handle_message(req("UPDATE", 9, "v=0 again\r\n"), peer, now));
        assert_eq!(out(&mut c)[0].status(), Some(200));
        assert_eq!(updates(&mut c), vec![b"v=0 again\r\n".to_vec()]);
        assert!(c.handle_message(req("UPDATE", 10, ""), peer, now));
        assert_eq!(out(&mut c)[0].status(), Some(200));
        assert!(updates(&mut c).is_empty(), "a refresh without SDP");
        assert!(c.handle_message(req("INVITE", 11, ""), peer, now));
        let o = out(&mut c);
        assert_eq!(o[0].body, b"v=0\r\n", "our offer: {o:?}");
        assert!(updates(&mut c).is_empty());
        assert!(c.handle_message(req("ACK", 11, "v=0 answer\r\n"), peer, now));
        assert_eq!(updates(&mut c), vec![b"v=0 answer\r\n".to_vec()]);
    }

    /// 422 with a Min-SE: the INVITE again (new CSeq) asking for it.
    #[test]
    fn a_422_is_answered_with_its_min_se() {
        let now = Instant::now();
        let mut c = call(now);
        let invite = out(&mut c).remove(0);
        assert_eq!(invite.header("Supported"), Some("100rel, timer"));
        assert_eq!(invite.header("Session-Expires"), Some("1800"));
        feed(&mut c, reply(&invite, 422, &[("Min-SE", "3600")]), now);
        let sent = out(&mut c);
        let again = sent
            .iter()
            .find(|m| m.method() == Some(&Method::Invite))
            .expect("a new INVITE");
        assert_eq!(again.header("Session-Expires"), Some("3600"));
        assert_eq!(again.header("Min-SE"), Some("3600"));
        assert_eq!(again.cseq, invite.cseq + 1);
        // A 422 asking for no more than we asked is a rejection.
        feed(&mut c, reply(again, 422, &[("Min-SE", "3600")]), now);
        assert_eq!(ended(&mut c), Some(CallEnd::Rejected { status: 422 }));
    }

    /// Reliable 18x: one PRACK each (RAck = RSeq, CSeq, method), none for
    /// a retransmission; the early media's SDP reaches the owner; the
    /// confirmed dialog's CSeq goes on after the PRACKs.
    #[test]
    fn reliable_provisionals_are_pracked_once_each() {
        let now = Instant::now();
        let mut c = call(now);
        let invite = out(&mut c).remove(0);
        let p183 = |rseq: &str| {
            reply(
                &invite,
                183,
                &[
                    ("Require", "100rel"),
                    ("RSeq", rseq),
                    ("Contact", "<sip:1001@127.0.0.1:5080>"),
                ],
            )
            .body("application/sdp", b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n")
        };
        feed(&mut c, p183("1"), now);
        let pracks = out(&mut c);
        assert_eq!(pracks.len(), 1);
        assert_eq!(pracks[0].method(), Some(&Method::Prack));
        assert_eq!(
            pracks[0].header("RAck"),
            Some(&*format!("1 {} INVITE", invite.cseq))
        );
        assert_eq!(pracks[0].to_tag.as_deref(), Some("theirs"));
        let ev: Vec<UacEvent> = std::iter::from_fn(|| c.poll_event()).collect();
        assert!(
            ev.iter().any(|e| matches!(e, UacEvent::Progress { status: 183, sdp: Some(s) } if s.starts_with(b"v=0"))),
            "{ev:?}"
        );
        feed(&mut c, p183("1"), now);
        assert!(
            out(&mut c).is_empty(),
            "a retransmitted 183 is not PRACKed again"
        );
        feed(
            &mut c,
            reply(&invite, 180, &[("Require", "100rel"), ("RSeq", "2")]),
            now,
        );
        let second = out(&mut c);
        assert_eq!(
            second[0].header("RAck"),
            Some(&*format!("2 {} INVITE", invite.cseq))
        );
        assert!(second[0].cseq > pracks[0].cseq);
        // An unreliable 180 gets none.
        feed(&mut c, reply(&invite, 180, &[]), now);
        assert!(out(&mut c).is_empty());
        feed(
            &mut c,
            reply(&invite, 200, &[("Contact", "<sip:1001@127.0.0.1:5080>")])
                .body("application/sdp", b"v=0\r\n"),
            now,
        );
        out(&mut c);
        c.hangup(now);
        let bye = out(&mut c)
            .into_iter()
            .find(|m| m.method() == Some(&Method::Bye))
            .unwrap();
        assert!(bye.cseq > second[0].cseq, "CSeq goes on after the PRACKs");
    }

    /// RFC 3263 §4.3: a target that never answers (Timer B) or answers 503
    /// before anything rang gives the INVITE to the next one — a new
    /// transaction; the last one's failure ends the call.
    #[test]
    fn a_failed_target_hands_the_invite_to_the_next() {
        let start = Instant::now();
        let mut now = start;
        let b: SocketAddr = "127.0.0.1:5081".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:5082".parse().unwrap();
        let mut uac = call_via(now, vec![b, c]);
        let first: Vec<_> = std::iter::from_fn(|| uac.poll_transmit()).collect();
        assert_eq!(first[0].dest, PEER.parse::<SocketAddr>().unwrap());
        // Nothing answers: Timer B (32 s), then the INVITE goes to b.
        let mut to_b = None;
        while let Some(t) = uac.poll_timeout() {
            now = t;
            uac.handle_timeout(now);
            if let Some(x) = std::iter::from_fn(|| uac.poll_transmit()).find(|x| x.dest == b) {
                to_b = Some(x);
                break;
            }
        }
        let to_b = to_b.expect("the INVITE went on to b");
        assert!(now - start >= Duration::from_secs(32));
        assert!(std::iter::from_fn(|| uac.poll_event())
            .any(|e| matches!(e, UacEvent::FailedOver { to, .. } if to == b)));
        let invite = Message::parse(&to_b.data).unwrap();
        assert_eq!(invite.method(), Some(&Method::Invite));
        // b answers 503: on to c at once.
        let r = reply(&invite, 503, &[]);
        assert!(uac.handle_message(Message::parse(&r.build()).unwrap(), b, now));
        let to_c: Vec<_> = std::iter::from_fn(|| uac.poll_transmit()).collect();
        let invite_c = to_c
            .iter()
            .find(|x| x.dest == c)
            .map(|x| Message::parse(&x.data).unwrap())
            .expect("the INVITE went on to c");
        assert_ne!(invite_c.branch, invite.branch, "a new transaction");
        // c answers 503 too: nothing left, the call ends with it.
        let r = reply(&invite_c, 503, &[]);
        assert!(uac.handle_message(Message::parse(&r.build()).unwrap(), c, now));
        assert_eq!(ended(&mut uac), Some(CallEnd::Rejected { status: 503 }));
    }
}
