//! One call's RTP session at run time: the negotiated stream, the paced
//! sender, and the receive path that turns packets into digits (RFC 4733
//! events and in-band tones, de-duplicated with SIP INFO by a shared
//! [`DtmfCollector`]). Used by `genki call` and by the daemon's calls.
//!
//! Depends on: genki-media, genki-sip (SDP), tokio (the socket).

use std::net::SocketAddr;
use std::time::Instant;

use genki_media::dtmf::{DtmfCollector, DtmfTransport, InbandDetector, Rfc4733Receiver};
use genki_media::rtp::{RtpReceiver, RtpSender};
use genki_media::Law;
use genki_sip::sdp::{Codec, MediaDescription, SdpError};
use tokio::net::UdpSocket;
use tracing::debug;

/// The media half of an answered call.
pub struct RtpSession {
    pub remote: SocketAddr,
    pub law: Law,
    pub payload_type: u8,
    pub telephone_event: Option<u8>,
    pub sender: RtpSender,
    pub receiver: RtpReceiver,
    rfc4733: Rfc4733Receiver,
    inband: InbandDetector,
    /// Send lateness of every packet, microseconds (for reports).
    pub lateness_us: Vec<u32>,
    out: [u8; 512],
}

impl RtpSession {
    /// Negotiate from the SDP answer and start sending at `now`.
    pub fn from_answer(sdp: &[u8], now: Instant) -> Result<RtpSession, SdpError> {
        let n = MediaDescription::parse(sdp)?.negotiate_answer()?;
        let law = match n.codec {
            Codec::Pcmu => Law::Ulaw,
            Codec::Pcma => Law::Alaw,
        };
        let mut sender = RtpSender::new(
            rand::random(),
            rand::random(),
            rand::random(),
            law,
            n.payload_type,
        );
        sender.set_telephone_event(n.telephone_event);
        sender.start(now);
        Ok(RtpSession {
            remote: n.remote,
            law,
            payload_type: n.payload_type,
            telephone_event: n.telephone_event,
            sender,
            receiver: RtpReceiver::new(),
            rfc4733: Rfc4733Receiver::new(),
            inband: InbandDetector::default(),
            lateness_us: Vec::with_capacity(2048),
            out: [0; 512],
        })
    }

    pub fn codec_name(&self) -> &'static str {
        match self.law {
            Law::Ulaw => "PCMU",
            Law::Alaw => "PCMA",
        }
    }

    /// Send every packet due at `now`.
    pub async fn send_due(&mut self, sock: &UdpSocket, now: Instant) {
        loop {
            let late = self.sender.lateness(now);
            let Some(n) = self.sender.poll_transmit(now, &mut self.out) else {
                break;
            };
            self.lateness_us
                .push(late.as_micros().min(u32::MAX as u128) as u32);
            if let Err(e) = sock.send_to(&self.out[..n], self.remote).await {
                debug!(error = %e, "RTP send failed");
            }
        }
    }

    /// One received datagram: returns a new digit, if it completed one.
    pub fn on_datagram(
        &mut self,
        data: &[u8],
        now: Instant,
        collector: &mut DtmfCollector,
    ) -> Option<(char, DtmfTransport)> {
        let p = self.receiver.handle(data, now).ok()?;
        if Some(p.payload_type) == self.telephone_event {
            let d = self.rfc4733.handle(p.payload, p.timestamp)?;
            return collector.push(d, DtmfTransport::Rfc4733, now);
        }
        if p.payload_type != self.payload_type {
            return None;
        }
        let mut pcm = [0i16; 160];
        let mut found = None;
        for chunk in p.payload.chunks(pcm.len()) {
            for (o, b) in pcm.iter_mut().zip(chunk) {
                *o = self.law.decode(*b);
            }
            if let Some(d) = self.inband.feed(&pcm[..chunk.len()]) {
                found = collector.push(d, DtmfTransport::Inband, now).or(found);
            }
        }
        found
    }
}
