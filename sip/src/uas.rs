//! One incoming call (UAS side of an INVITE dialog), sans-IO: used by the
//! simulated phones in `loadtest/` and by tests that pair it with
//! [`crate::uac::UacCall`] on virtual time.
//!
//! The owner decides what to answer and when ([`UasCall::respond`]), may hang
//! up ([`UasCall::hangup`]) or send INFO ([`UasCall::send_info`]); the struct
//! keeps the server INVITE transaction (with 2xx retransmission until ACK),
//! handles CANCEL (§9.2: 200 to the CANCEL, 487 to the INVITE) and BYE.
//!
//! Depends on: [`crate::transaction`], [`crate::dialog`], [`crate::message`].
//! No IO, no clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::dialog::{without_tag, Dialog, Transmit};
use crate::message::{reason_phrase, Builder, Message, Method};
use crate::transaction::{ClientNonInvite, ServerInvite, ServerNonInvite, Timers, TxEvent};

/// What the owner of an incoming call is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UasEvent {
    /// The caller cancelled before we answered (we sent 487).
    Cancelled,
    /// Our 2xx (or error response) was acknowledged.
    Acked,
    /// No ACK came for our final response (Timer H / L).
    AckTimeout,
    /// The caller hung up (BYE, answered 200).
    RemoteBye,
    /// Our BYE got its final response, or timed out.
    ByeDone { status: Option<u16> },
    /// Our INFO got its final response, or timed out.
    InfoDone { status: Option<u16> },
}

/// One incoming call.
pub struct UasCall {
    invite: Message,
    source: SocketAddr,
    local_tag: String,
    local_addr: SocketAddr,
    contact: String,
    timers: Timers,
    invite_tx: ServerInvite,
    dialog: Option<Dialog>,
    final_status: Option<u16>,
    bye_tx: Option<ClientNonInvite>,
    info_txs: Vec<(ClientNonInvite, u32)>,
    server_txs: Vec<(String, ServerNonInvite, SocketAddr)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<UasEvent>,
    ended: bool,
}

impl UasCall {
    /// Start handling `invite`, received from `source`. Nothing is sent until
    /// the owner responds.
    pub fn new(
        invite: Message,
        source: SocketAddr,
        local_addr: SocketAddr,
        local_tag: String,
        timers: Timers,
    ) -> UasCall {
        let contact = format!("sip:phone@{local_addr}");
        UasCall {
            invite,
            source,
            local_tag,
            local_addr,
            contact,
            timers,
            invite_tx: ServerInvite::new(timers),
            dialog: None,
            final_status: None,
            bye_tx: None,
            info_txs: Vec::new(),
            server_txs: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            ended: false,
        }
    }

    pub fn invite(&self) -> &Message {
        &self.invite
    }

    pub fn final_status(&self) -> Option<u16> {
        self.final_status
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Send a response to the INVITE. `extra` headers are added as given
    /// (e.g. `WWW-Authenticate`); `body` is (content type, bytes).
    pub fn respond(
        &mut self,
        status: u16,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
        now: Instant,
    ) {
        if self.final_status.is_some() {
            return;
        }
        // §8.2.6.2: 100 Trying carries no To tag; everything else does.
        let tag = (status > 100).then_some(self.local_tag.as_str());
        let mut b = Builder::response_to(&self.invite, status, reason_phrase(status), tag);
        if status > 100 && status < 300 {
            // Record-Route is echoed so the caller builds the same route set (§12.1.1).
            for rr in self.invite.header_lines("Record-Route") {
                b = b.header("Record-Route", rr);
            }
            b = b.header("Contact", &format!("<{}>", self.contact));
        }
        for (n, v) in extra {
            b = b.header(n, v);
        }
        if let Some((ct, body)) = body {
            b = b.body(ct, body);
        }
        if status >= 200 {
            self.final_status = Some(status);
            if status < 300 {
                let remote_target = self
                    .invite
                    .contact_uri()
                    .map(str::to_string)
                    .unwrap_or_default();
                let routes: Vec<String> = self
                    .invite
                    .header_values("Record-Route")
                    .map(str::to_string)
                    .collect();
                self.dialog = Some(Dialog::new(
                    self.invite.call_id.clone(),
                    without_tag(self.invite.header("To").unwrap_or("")),
                    self.local_tag.clone(),
                    without_tag(self.invite.header("From").unwrap_or("")),
                    self.invite.from_tag.clone().unwrap_or_default(),
                    0,
                    remote_target,
                    routes,
                    self.contact.clone(),
                    self.local_addr,
                ));
            }
        }
        self.invite_tx.respond(status, b.build(), now);
        self.flush();
    }

    fn dest(&self) -> SocketAddr {
        // The caller's Contact when it is an IP literal; else where the INVITE came from.
        self.dialog
            .as_ref()
            .map(|d| d.next_hop(self.source))
            .unwrap_or(self.source)
    }

    /// Hang up an answered call with BYE (§15.1.1).
    pub fn hangup(&mut self, now: Instant) {
        if self.bye_tx.is_some() || self.ended {
            return;
        }
        if let Some(d) = self.dialog.as_mut() {
            let (b, _) = d.request(&Method::Bye, None);
            self.bye_tx = Some(ClientNonInvite::new(b.build(), self.timers, now));
            self.flush();
        }
    }

    /// Send an INFO in the dialog (RFC 6086), e.g. a DTMF relay body.
    pub fn send_info(&mut self, content_type: &str, body: &[u8], now: Instant) {
        if let Some(d) = self.dialog.as_mut() {
            let (b, _) = d.request(&Method::Info, None);
            let cseq = d.local_cseq;
            let tx = ClientNonInvite::new(b.body(content_type, body).build(), self.timers, now);
            self.info_txs.push((tx, cseq));
            self.flush();
        }
    }

    /// A datagram for this call (Call-ID matched), from `source`.
    pub fn handle_message(&mut self, msg: Message, source: SocketAddr, now: Instant) {
        if msg.status().is_some() {
            match msg.cseq_method {
                Method::Bye => {
                    if let Some(tx) = self.bye_tx.as_mut() {
                        tx.handle_response(msg, now);
                    }
                }
                Method::Info => {
                    if let Some((tx, _)) = self.info_txs.iter_mut().find(|(_, c)| *c == msg.cseq) {
                        tx.handle_response(msg, now);
                    }
                }
                _ => {}
            }
            self.flush();
            return;
        }
        let branch = msg.branch.clone().unwrap_or_default();
        match msg.method().cloned() {
            Some(Method::Invite) if msg.branch == self.invite.branch => {
                self.invite_tx.handle_request(&msg, now);
            }
            Some(Method::Ack) => self.invite_tx.handle_request(&msg, now),
            Some(method) => {
                if let Some((_, tx, _)) = self.server_txs.iter_mut().find(|(b, _, _)| *b == branch)
                {
                    tx.handle_retransmission();
                    self.flush();
                    return;
                }
                let mut cancelled = false;
                let status = match method {
                    Method::Cancel if msg.branch == self.invite.branch => {
                        cancelled = self.final_status.is_none();
                        200
                    }
                    Method::Cancel => 481,
                    Method::Bye => {
                        if self.dialog.is_some() && !self.ended {
                            self.ended = true;
                            self.events.push_back(UasEvent::RemoteBye);
                            200
                        } else if self.dialog.is_some() {
                            200
                        } else {
                            481
                        }
                    }
                    Method::Info | Method::Options => 200,
                    _ => 501,
                };
                let b = Builder::response_to(
                    &msg,
                    status,
                    reason_phrase(status),
                    Some(&self.local_tag),
                );
                let mut tx = ServerNonInvite::new(self.timers);
                tx.respond(status, b.build(), now);
                self.server_txs.push((branch, tx, source));
                if cancelled {
                    // §9.2: the CANCEL's 200 (above, sent first), then
                    // the INVITE's 487.
                    self.flush();
                    self.respond(487, &[], None, now);
                    self.events.push_back(UasEvent::Cancelled);
                    self.ended = true;
                }
            }
            None => {}
        }
        self.flush();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.invite_tx.handle_timeout(now);
        if let Some(tx) = self.bye_tx.as_mut() {
            tx.handle_timeout(now);
        }
        for (tx, _) in &mut self.info_txs {
            tx.handle_timeout(now);
        }
        for (_, tx, _) in &mut self.server_txs {
            tx.handle_timeout(now);
        }
        self.flush();
    }

    fn flush(&mut self) {
        let dest = self.dest();
        // Answers to the caller's requests first: a CANCEL's 200 goes
        // before the INVITE's 487 (§9.2).
        for (_, tx, src) in &mut self.server_txs {
            while let Some(data) = tx.poll_transmit() {
                self.transmits.push_back(Transmit { dest: *src, data });
            }
        }
        while let Some(data) = self.invite_tx.poll_transmit() {
            self.transmits.push_back(Transmit {
                dest: self.source,
                data,
            });
        }
        while let Some(ev) = self.invite_tx.poll_event() {
            match ev {
                TxEvent::Acked => self.events.push_back(UasEvent::Acked),
                TxEvent::Timeout => {
                    self.ended = true;
                    self.events.push_back(UasEvent::AckTimeout);
                }
                _ => {}
            }
        }
        if let Some(tx) = self.bye_tx.as_mut() {
            while let Some(data) = tx.poll_transmit() {
                self.transmits.push_back(Transmit { dest, data });
            }
            while let Some(ev) = tx.poll_event() {
                let status = match ev {
                    TxEvent::Response(m) if m.status().unwrap_or(0) >= 200 => m.status(),
                    TxEvent::Timeout => None,
                    _ => continue,
                };
                self.ended = true;
                self.events.push_back(UasEvent::ByeDone { status });
            }
        }
        for (tx, _) in &mut self.info_txs {
            while let Some(data) = tx.poll_transmit() {
                self.transmits.push_back(Transmit { dest, data });
            }
            while let Some(ev) = tx.poll_event() {
                match ev {
                    TxEvent::Response(m) if m.status().unwrap_or(0) >= 200 => self
                        .events
                        .push_back(UasEvent::InfoDone { status: m.status() }),
                    TxEvent::Timeout => self.events.push_back(UasEvent::InfoDone { status: None }),
                    _ => {}
                }
            }
        }
        for (_, tx, src) in &mut self.server_txs {
            while let Some(data) = tx.poll_transmit() {
                self.transmits.push_back(Transmit { dest: *src, data });
            }
        }
        self.info_txs.retain(|(t, _)| !t.is_terminated());
        self.server_txs.retain(|(_, t, _)| !t.is_terminated());
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<UasEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.invite_tx.poll_timeout(),
            self.bye_tx.as_ref().and_then(|t| t.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .chain(self.info_txs.iter().filter_map(|(t, _)| t.poll_timeout()))
        .chain(
            self.server_txs
                .iter()
                .filter_map(|(_, t, _)| t.poll_timeout()),
        )
        .min()
    }

    /// Ended and nothing left to retransmit or absorb.
    pub fn is_finished(&self) -> bool {
        (self.ended
            || self.invite_tx.is_terminated() && self.final_status.is_some_and(|s| s >= 300))
            && self.invite_tx.poll_timeout().is_none()
            && self.bye_tx.as_ref().is_none_or(|t| t.is_terminated())
            && self.info_txs.is_empty()
            && self.server_txs.is_empty()
    }

    pub fn retransmissions(&self) -> u32 {
        self.invite_tx.retransmissions + self.bye_tx.as_ref().map_or(0, |t| t.retransmissions)
    }
}
