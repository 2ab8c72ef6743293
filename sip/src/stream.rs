//! SIP over a byte stream (TCP, TLS; RFC 3261 §18.3), sans-IO: where a
//! message ends is said by its Content-Length, which a stream must carry
//! (§18.3, §20.14); CRLFs between messages are skipped (§7.5), and a
//! double CRLF is the keep-alive ping of RFC 5626 §3.5.1, answered with
//! one CRLF (the pong). The owner pushes the bytes a connection reads and
//! takes whole messages out; a framing error means the connection can no
//! longer be trusted and must be closed.
//!
//! Also the transport vocabulary ([`Transport`]) the request builders put
//! in Via and Contact.
//!
//! Depends on: std only.

/// The largest message genki takes from a stream (headers and body): a
/// peer that sends more without a valid frame is cut off, not buffered.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// A SIP transport (§18; RFC 3261 §26.2 for TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// The Via token (§20.42: `SIP/2.0/UDP`).
    pub fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The Via value of a request sent from `sent_by` with `branch`
    /// (§8.1.1.7, §18.1.1; `rport`, RFC 3581, so answers come back to the
    /// port it left from).
    pub fn via_value(self, sent_by: std::net::SocketAddr, branch: &str) -> String {
        format!("SIP/2.0/{} {sent_by};branch={branch};rport", self.via())
    }

    /// The URI parameter naming it (§19.1.1), empty for UDP (the default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }

    /// Reliable transports carry no retransmissions (§17.1.1.2, §17.1.2.2).
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }

    /// The transport a URI asks for: `sips:` is TLS (§26.2.1), else its
    /// `transport` parameter, else UDP.
    pub fn of_uri(uri: &str) -> Transport {
        let u = uri.trim().trim_start_matches('<');
        if u.len() >= 5 && u[..5].eq_ignore_ascii_case("sips:") {
            return Transport::Tls;
        }
        let lower = u.to_ascii_lowercase();
        match lower
            .split(';')
            .skip(1)
            .find_map(|p| p.strip_prefix("transport="))
            .map(|v| v.trim_end_matches('>'))
        {
            Some("tcp") => Transport::Tcp,
            Some("tls") => Transport::Tls,
            _ => Transport::Udp,
        }
    }
}

/// The transport a request's top Via names (§18.1.1: the Via says how
/// it is sent); None for a response (it goes back the way its request
/// came) or a message without one.
pub fn request_transport(data: &[u8]) -> Option<Transport> {
    if data.starts_with(b"SIP/2.0 ") {
        return None;
    }
    let head = &data[..data.len().min(1024)];
    let text = String::from_utf8_lossy(head);
    let via = text.split("\r\n").skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")).then_some(value)
    })?;
    let proto = via.split_whitespace().next()?.to_ascii_uppercase();
    Some(match proto.rsplit('/').next()? {
        "TCP" => Transport::Tcp,
        "TLS" => Transport::Tls,
        _ => Transport::Udp,
    })
}

/// What a stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message (headers and body), to parse.
    Message(Vec<u8>),
    /// A keep-alive ping (CRLFCRLF): answer `\r\n`.
    Ping,
}

/// Why a stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a message on a stream without Content-Length (RFC 3261 §18.3)")]
    NoContentLength,
    #[error("a Content-Length that is not a number")]
    BadContentLength,
    #[error("a message of more than {MAX_MESSAGE} bytes")]
    TooLarge,
}

/// Splits a stream's bytes into messages.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, None until more bytes come.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // CRLFs between messages (§7.5); a double one is a ping.
        let lead = self
            .buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        if lead > 0 {
            let ping = self.buf[..lead].windows(4).any(|w| w == b"\r\n\r\n");
            if lead == self.buf.len() && !ping {
                return Ok(None); // maybe the start of a ping
            }
            self.buf.drain(..lead);
            if ping {
                return Ok(Some(Frame::Ping));
            }
        }
        let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.buf.len() > MAX_MESSAGE {
                return Err(FrameError::TooLarge);
            }
            return Ok(None);
        };
        let head = &self.buf[..end];
        let len = content_length(head)?;
        let total = end + 4 + len;
        if total > MAX_MESSAGE {
            return Err(FrameError::TooLarge);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        Ok(Some(Frame::Message(msg)))
    }
}

/// The Content-Length of a message head (long or compact form `l`, §7.3.3).
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let text = String::from_utf8_lossy(head);
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            return value
                .trim()
                .parse()
                .map_err(|_| FrameError::BadContentLength);
        }
    }
    Err(FrameError::NoContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn messages_are_framed_by_content_length_across_reads() {
        let mut f = Framer::default();
        let mut stream = b"\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n\r\n");
        let mut got = Vec::new();
        // One byte at a time: nothing depends on how reads split.
        for b in &stream {
            f.push(std::slice::from_ref(b));
            while let Some(fr) = f.next_frame().unwrap() {
                got.push(fr);
            }
        }
        assert_eq!(
            got,
            vec![
                Frame::Message(MSG.to_vec()),
                Frame::Message(MSG.to_vec()),
                Frame::Ping
            ]
        );
    }

    #[test]
    fn unframeable_streams_are_errors() {
        let mut f = Framer::default();
        f.push(b"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FrameError::NoContentLength));
        let mut f = Framer::default();
        f.push(b"BYE sip:a@b SIP/2.0\r\nl: many\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FrameError::BadContentLength));
        let mut f = Framer::default();
        f.push(b"BYE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FrameError::TooLarge));
        let mut f = Framer::default();
        f.push(&vec![b'a'; MAX_MESSAGE + 1]);
        assert_eq!(f.next_frame(), Err(FrameError::TooLarge));
    }

    #[test]
    fn the_top_via_says_how_a_request_travels() {
        assert_eq!(request_transport(MSG), Some(Transport::Tcp));
        assert_eq!(
            request_transport(b"BYE sip:a SIP/2.0\r\nv: SIP/2.0/UDP x\r\n\r\n"),
            Some(Transport::Udp)
        );
        assert_eq!(
            request_transport(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP x\r\n\r\n"),
            None
        );
    }

    #[test]
    fn transports_of_uris() {
        assert_eq!(Transport::of_uri("sip:t.example:5060"), Transport::Udp);
        assert_eq!(
            Transport::of_uri("sip:t.example:5060;transport=TCP"),
            Transport::Tcp
        );
        assert_eq!(Transport::of_uri("sips:t.example"), Transport::Tls);
        assert_eq!(
            Transport::of_uri("<sip:1.2.3.4;lr;transport=tls>"),
            Transport::Tls
        );
    }
}
