//! SDP (RFC 4566) offer/answer (RFC 3264) for one audio stream: G.711
//! PCMU (static payload type 0) and PCMA (8), plus RFC 4733
//! `telephone-event/8000` on a dynamic payload type.
//!
//! Written by hand: genki needs a few lines of SDP and a tolerant reader of
//! one `m=audio` section; the SDP crates on crates.io are either WebRTC-sized
//! (webrtc-sdp, sdp) or unmaintained. Unknown lines are ignored (§5: a
//! parser must ignore attributes it does not understand).
//!
//! Depends on: nothing. No IO, no clock.

use std::net::IpAddr;

use thiserror::Error;

/// Audio codecs genki speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, RTP payload type 0 (RFC 3551 §6).
    Pcmu,
    /// G.711 A-law, RTP payload type 8.
    Pcma,
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Why an SDP body cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("SDP has no m=audio line")]
    NoAudio,
    #[error("SDP has no usable connection address (c=)")]
    NoConnection,
    #[error("SDP m=audio line is malformed")]
    BadMedia,
    /// The peer offered or answered no codec we share (RFC 3264 §6: the
    /// answerer rejects; as offerer we end the call).
    #[error("no common codec (offered/answered: {0})")]
    NoCommonCodec(String),
    /// The answer rejected the audio stream (port 0, RFC 3264 §6).
    #[error("audio stream rejected (port 0)")]
    Rejected,
}

/// The parts of a session description genki uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Where to send RTP (c= of the media, or of the session).
    pub addr: IpAddr,
    pub port: u16,
    /// Audio payload types in the order listed on the m= line.
    pub formats: Vec<u8>,
    /// Payload type for telephone-event/8000, if any.
    pub telephone_event: Option<u8>,
    /// `a=rtpmap` entries: payload type and encoding name (upper-cased).
    pub rtpmap: Vec<(u8, String)>,
    /// Direction attribute (sendrecv when absent).
    pub direction: String,
    /// a=ptime, milliseconds.
    pub ptime: Option<u32>,
    /// The SSRC the peer sends with, from `a=ssrc:<id> …` (RFC 5576 §4.1;
    /// the first one listed). Lets a receiver that shares one port among
    /// many calls tell streams from one address apart.
    pub ssrc: Option<u32>,
}

impl MediaDescription {
    /// The first codec in the peer's list that we speak (RFC 3264 §6.1:
    /// the answerer's order is its preference).
    pub fn first_common_codec(&self) -> Option<(u8, Codec)> {
        self.formats
            .iter()
            .find_map(|pt| self.codec_for(*pt).map(|c| (*pt, c)))
    }

    /// The codec a payload type means here: static 0/8 unless remapped by rtpmap,
    /// or a dynamic type mapped to PCMU/PCMA at 8000 Hz.
    pub fn codec_for(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap.iter().find(|(p, _)| *p == pt) {
            Some((_, name)) if name == "PCMU/8000" || name.starts_with("PCMU/8000/") => {
                Some(Codec::Pcmu)
            }
            Some((_, name)) if name == "PCMA/8000" || name.starts_with("PCMA/8000/") => {
                Some(Codec::Pcma)
            }
            Some(_) => None,
            None => match pt {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => None,
            },
        }
    }

    /// Parse the first `m=audio` section of an SDP body.
    pub fn parse(body: &[u8]) -> Result<MediaDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut session_addr: Option<IpAddr> = None;
        let mut media_addr: Option<IpAddr> = None;
        let mut in_audio = false;
        let mut seen_audio = false;
        let mut port = 0u16;
        let mut formats = Vec::new();
        let mut rtpmap: Vec<(u8, String)> = Vec::new();
        let mut direction = "sendrecv".to_string();
        let mut ptime = None;
        let mut ssrc = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match kind {
                "m" => {
                    if seen_audio {
                        // Only the first audio stream is used.
                        in_audio = false;
                        continue;
                    }
                    let mut it = value.split_whitespace();
                    if it.next() == Some("audio") {
                        in_audio = true;
                        seen_audio = true;
                        port = it
                            .next()
                            .and_then(|p| p.split('/').next()?.parse().ok())
                            .ok_or(SdpError::BadMedia)?;
                        let _proto = it.next().ok_or(SdpError::BadMedia)?;
                        formats = it.filter_map(|f| f.parse::<u8>().ok()).collect();
                    } else {
                        in_audio = false;
                    }
                }
                "c" => {
                    // c=IN IP4 192.0.2.1  (RFC 4566 §5.7; a multicast TTL suffix is dropped)
                    let addr = value
                        .split_whitespace()
                        .nth(2)
                        .and_then(|a| a.split('/').next()?.parse::<IpAddr>().ok());
                    if seen_audio && in_audio {
                        media_addr = addr;
                    } else if !seen_audio {
                        session_addr = addr;
                    }
                }
                "a" if in_audio => {
                    if let Some(v) = value.strip_prefix("rtpmap:") {
                        let mut it = v.split_whitespace();
                        if let (Some(pt), Some(enc)) =
                            (it.next().and_then(|p| p.parse::<u8>().ok()), it.next())
                        {
                            rtpmap.push((pt, enc.to_ascii_uppercase()));
                        }
                    } else if let Some(v) = value.strip_prefix("ptime:") {
                        ptime = v.trim().parse().ok();
                    } else if let Some(v) = value.strip_prefix("ssrc:") {
                        if ssrc.is_none() {
                            ssrc = v
                                .split_whitespace()
                                .next()
                                .and_then(|x| x.parse::<u32>().ok());
                        }
                    } else if matches!(value, "sendrecv" | "sendonly" | "recvonly" | "inactive") {
                        direction = value.to_string();
                    }
                }
                _ => {}
            }
        }
        if !seen_audio {
            return Err(SdpError::NoAudio);
        }
        let addr = media_addr.or(session_addr).ok_or(SdpError::NoConnection)?;
        let telephone_event = rtpmap
            .iter()
            .find(|(pt, name)| name == "TELEPHONE-EVENT/8000" && formats.contains(pt))
            .map(|(pt, _)| *pt);
        Ok(MediaDescription {
            addr,
            port,
            formats,
            telephone_event,
            rtpmap,
            direction,
            ptime,
            ssrc,
        })
    }

    /// What we will use from a peer's answer to our offer: the codec, and
    /// telephone-event if present. Errors say why the call cannot go on.
    pub fn negotiate_answer(&self) -> Result<Negotiated, SdpError> {
        if self.port == 0 {
            return Err(SdpError::Rejected);
        }
        let (payload_type, codec) = self
            .first_common_codec()
            .ok_or_else(|| SdpError::NoCommonCodec(self.format_list()))?;
        Ok(Negotiated {
            codec,
            payload_type,
            remote: std::net::SocketAddr::new(self.addr, self.port),
            telephone_event: self.telephone_event,
            ssrc: self.ssrc,
        })
    }

    fn format_list(&self) -> String {
        self.formats
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The result of offer/answer for our one audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type the peer uses for that codec (normally 0 or 8).
    pub payload_type: u8,
    /// Where to send RTP.
    pub remote: std::net::SocketAddr,
    /// Payload type of telephone-event/8000 agreed, if any.
    pub telephone_event: Option<u8>,
    /// The peer's declared SSRC (a=ssrc), if any.
    pub ssrc: Option<u32>,
}

/// Build an SDP body for one audio stream. `codecs` in order of
/// preference; `telephone_event` is the dynamic payload type to use.
pub fn build(
    session_id: u64,
    addr: IpAddr,
    port: u16,
    codecs: &[Codec],
    telephone_event: Option<u8>,
) -> String {
    build_with_ssrc(session_id, addr, port, codecs, telephone_event, None)
}

/// [`build`], declaring the SSRC we will send with (`a=ssrc:<id> cname:genki`,
/// RFC 5576 §4.1) so that a peer sharing one port among calls can demultiplex.
pub fn build_with_ssrc(
    session_id: u64,
    addr: IpAddr,
    port: u16,
    codecs: &[Codec],
    telephone_event: Option<u8>,
    ssrc: Option<u32>,
) -> String {
    let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let mut fmts: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    if let Some(te) = telephone_event {
        fmts.push(te.to_string());
    }
    let mut s = format!(
        "v=0\r\no=genki {session_id} {session_id} IN {ip} {addr}\r\ns=genki\r\nc=IN {ip} {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n",
        fmts.join(" ")
    );
    for c in codecs {
        s.push_str(&format!(
            "a=rtpmap:{} {}/8000\r\n",
            c.payload_type(),
            c.name()
        ));
    }
    if let Some(te) = telephone_event {
        s.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        ));
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    if let Some(id) = ssrc {
        s.push_str(&format!("a=ssrc:{id} cname:genki\r\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrc_is_declared_and_read_back() {
        let s = build_with_ssrc(
            1,
            "127.0.0.1".parse().unwrap(),
            4000,
            &[Codec::Pcmu],
            Some(101),
            Some(3_000_000_000),
        );
        let m = MediaDescription::parse(s.as_bytes()).unwrap();
        assert_eq!(m.ssrc, Some(3_000_000_000));
        assert_eq!(m.negotiate_answer().unwrap().ssrc, Some(3_000_000_000));
        let plain = build(1, "127.0.0.1".parse().unwrap(), 4000, &[Codec::Pcmu], None);
        assert_eq!(
            MediaDescription::parse(plain.as_bytes()).unwrap().ssrc,
            None
        );
    }

    #[test]
    fn offer_round_trip() {
        let s = build(
            42,
            "127.0.0.1".parse().unwrap(),
            20000,
            &[Codec::Pcmu, Codec::Pcma],
            Some(101),
        );
        let m = MediaDescription::parse(s.as_bytes()).unwrap();
        assert_eq!(m.port, 20000);
        assert_eq!(m.formats, vec![0, 8, 101]);
        assert_eq!(m.telephone_event, Some(101));
        assert_eq!(m.first_common_codec(), Some((0, Codec::Pcmu)));
        assert_eq!(m.ptime, Some(20));
    }

    #[test]
    fn answer_takes_peer_order_and_its_event_type() {
        let s = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\n";
        let n = MediaDescription::parse(s.as_bytes())
            .unwrap()
            .negotiate_answer()
            .unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.telephone_event, Some(96));
        assert_eq!(n.remote, "192.0.2.9:4000".parse().unwrap());
    }

    #[test]
    fn media_level_connection_wins_and_errors_are_clear() {
        let s = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18\r\nc=IN IP4 192.0.2.2\r\na=rtpmap:18 G729/8000\r\n";
        let m = MediaDescription::parse(s.as_bytes()).unwrap();
        assert_eq!(m.addr, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert!(matches!(
            m.negotiate_answer(),
            Err(SdpError::NoCommonCodec(_))
        ));
        let s = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(
            MediaDescription::parse(s.as_bytes())
                .unwrap()
                .negotiate_answer(),
            Err(SdpError::Rejected)
        );
        assert_eq!(MediaDescription::parse(b"v=0\r\n"), Err(SdpError::NoAudio));
        assert_eq!(
            MediaDescription::parse(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n"),
            Err(SdpError::NoConnection)
        );
        assert_eq!(
            MediaDescription::parse(b"m=audio x"),
            Err(SdpError::BadMedia)
        );
        // A dynamic PT remapped to PCMU is understood; static 0 remapped elsewhere is not.
        let s = "c=IN IP4 192.0.2.1\r\nm=audio 5 RTP/AVP 0 97\r\na=rtpmap:0 G722/8000\r\na=rtpmap:97 PCMU/8000\r\n";
        let m = MediaDescription::parse(s.as_bytes()).unwrap();
        assert_eq!(m.first_common_codec(), Some((97, Codec::Pcmu)));
        assert_eq!(m.codec_for(0), None);
    }
}
