//! SIP messages: a thin layer around `rsip` that frames, normalises and parses
//! once, and a small text builder for the messages genki sends.
//!
//! Why a layer of our own around rsip 0.4 (it misses compact header names,
//! folded lines and Content-Length framing):
//! - rsip ignores `Content-Length`, so we frame the datagram ourselves
//!   (RFC 3261 §18.3: bytes after the body are discarded; a body shorter than
//!   the declared length makes the message invalid over UDP);
//! - rsip rejects folded header lines (§7.3.1 allows LWS continuation lines) and
//!   does not know compact header names (§7.3.3, e.g. `v:` for `Via`), so we
//!   unfold and expand them before rsip sees the bytes;
//! - rsip re-parses typed headers on every access, so the fields the
//!   transaction and dialog layers need are extracted once into [`Message`].
//!
//! We build outgoing messages as text ([`Builder`]) instead of with rsip's
//! typed structs: rsip re-prints parameters (e.g. `transport=udp` as
//! `transport=UDP`) and every header we send is already a string we control.
//! Every built message is parsed back in this module's tests.
//!
//! Depends on: rsip only. No IO, no clock.

use std::fmt::Write as _;

use thiserror::Error;

/// Why a datagram is not a SIP message we can use.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The header block or body is not complete yet (no blank line after the
    /// headers, or fewer body bytes than `Content-Length` declares). Over UDP
    /// this is final; a stream transport would wait for more bytes.
    #[error("incomplete message: {0}")]
    Incomplete(&'static str),
    /// The bytes are not valid SIP (bad start line, header syntax, encoding).
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// A header this layer needs is missing (RFC 3261 §8.1.1 mandatory headers).
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A mandatory header is present but its value cannot be used.
    #[error("malformed header {0}")]
    BadHeader(&'static str),
}

/// SIP request methods genki handles by name (RFC 3261 §7.1, RFC 6086 INFO).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    /// RFC 3311: changes a session's parameters inside a dialog; genki
    /// uses it for session refreshes (RFC 4028 §7.4).
    Update,
    /// RFC 3262: acknowledges a reliable provisional response.
    Prack,
    /// Any other method (REGISTER, …): carried by name.
    Other(String),
}

impl Method {
    /// The method token as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Other(s) => s,
        }
    }

    /// Parse a method token (case-sensitive, §7.1).
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            other => Method::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Request line or status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD Request-URI SIP/2.0` (§7.1).
    Request { method: Method, uri: String },
    /// `SIP/2.0 Status-Code Reason` (§7.2).
    Response { status: u16, reason: String },
}

/// A parsed SIP message with the fields genki needs extracted once.
#[derive(Debug, Clone)]
pub struct Message {
    pub start: StartLine,
    /// All headers after unfolding and compact-name expansion, in order,
    /// names in their canonical long form.
    pub headers: Vec<(String, String)>,
    /// Body, exactly `Content-Length` bytes (§18.3).
    pub body: Vec<u8>,
    /// Call-ID (§8.1.1.4).
    pub call_id: String,
    /// CSeq number and method (§8.1.1.5).
    pub cseq: u32,
    pub cseq_method: Method,
    /// `tag` parameters of From and To (§19.3); a request outside a dialog has no To tag.
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    /// The `branch` of the topmost Via (§8.1.1.7), used to match transactions (§17.1.3, §17.2.3).
    pub branch: Option<String>,
}

/// Compact forms (RFC 3261 §7.3.3 and the IANA registry) and their long names.
const COMPACT: &[(char, &str)] = &[
    ('i', "Call-ID"),
    ('m', "Contact"),
    ('e', "Content-Encoding"),
    ('l', "Content-Length"),
    ('c', "Content-Type"),
    ('f', "From"),
    ('s', "Subject"),
    ('k', "Supported"),
    ('t', "To"),
    ('v', "Via"),
    ('o', "Event"),
    ('r', "Refer-To"),
    ('u', "Allow-Events"),
    ('x', "Session-Expires"),
];

/// Canonical spelling for the headers we look up, so lookups are exact.
const CANONICAL: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Content-Length",
    "Content-Type",
    "Record-Route",
    "Route",
    "Max-Forwards",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Authorization",
    "Proxy-Authorization",
    "User-Agent",
    "Allow",
    "Supported",
    "Require",
    "Reason",
];

fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        let c = name.as_bytes()[0].to_ascii_lowercase() as char;
        if let Some((_, long)) = COMPACT.iter().find(|(k, _)| *k == c) {
            return (*long).to_string();
        }
    }
    for c in CANONICAL {
        if c.eq_ignore_ascii_case(name) {
            return (*c).to_string();
        }
    }
    name.to_string()
}

fn find_blank_line(data: &[u8]) -> Option<(usize, usize)> {
    // Accept CRLFCRLF (the norm) and bare LFLF (tolerated by most stacks).
    let crlf = data.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = data.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) if b + 1 < a => Some((b, b + 2)),
        (Some(a), _) => Some((a, a + 4)),
        (None, Some(b)) => Some((b, b + 2)),
        (None, None) => None,
    }
}

/// Split a header block into unfolded `(name, value)` pairs; the first line
/// (start line) is returned separately.
/// Unfolded header lines: (canonical name, value).
type HeaderList = Vec<(String, String)>;

fn split_head(head: &str) -> Result<(&str, HeaderList), ParseError> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().ok_or(ParseError::Invalid("empty message"))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // §7.3.1: a continuation line; replace the line break with one SP.
            let last = headers
                .last_mut()
                .ok_or(ParseError::Invalid("continuation line before any header"))?;
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let colon = line
            .find(':')
            .ok_or(ParseError::Invalid("header line without colon"))?;
        let name = line[..colon].trim();
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(ParseError::Invalid("bad header name"));
        }
        headers.push((canonical_name(name), line[colon + 1..].trim().to_string()));
    }
    Ok((start, headers))
}

/// The methods rsip 0.4 parses.
const RSIP_METHODS: &[&str] = &[
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// True when every `"` opens or closes a quoted string, honouring `\` escapes (§25.1).
fn balanced_quotes(v: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for b in v.bytes() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        }
    }
    !quoted
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Split a header value on commas that are not inside quotes or angle
/// brackets (§7.3.1: a header with a comma-separated list may be split).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = value[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// The URI of a name-addr or addr-spec (§20.10): what is inside `<>`, or the
/// value up to its first `;` header parameter.
pub fn addr_uri(value: &str) -> &str {
    if let (Some(a), Some(b)) = (value.find('<'), value.find('>')) {
        if a < b {
            return value[a + 1..b].trim();
        }
    }
    value.split(';').next().unwrap_or("").trim()
}

/// A header parameter (`;name=value`) of a name-addr, taken after the `>`
/// so that URI parameters are not mistaken for header parameters.
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.find('>') {
        Some(gt) => &value[gt + 1..],
        None => value.split_once(';').map(|(_, p)| p).unwrap_or(""),
    };
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if k.trim().eq_ignore_ascii_case(name) {
            Some(v.trim().trim_matches('"'))
        } else {
            None
        }
    })
}

/// True for a `sip:`/`sips:` URI with a host and nothing that would break
/// a header or request line: no whitespace, control characters, `<>` or `"`.
pub fn is_valid_sip_uri(uri: &str) -> bool {
    uri_host_port(uri).is_some()
        && !uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
}

/// Host and port of a SIP URI (`sip:user@host:port;params`), port defaulting
/// to 5060 (§19.1.1). IPv6 references are kept with their brackets removed.
pub fn uri_host_port(uri: &str) -> Option<(String, u16)> {
    // §19.1.2: 5061 is the default port of sips (SIP over TLS).
    let (rest, default_port) = match uri.strip_prefix("sip:") {
        Some(r) => (r, 5060),
        None => (uri.strip_prefix("sips:")?, 5061),
    };
    let rest = rest.split([';', '?']).next()?;
    let hostport = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((host.to_string(), port));
    }
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, default_port),
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port))
}

impl Message {
    /// Parse one datagram. Never panics, whatever the bytes.
    pub fn parse(data: &[u8]) -> Result<Message, ParseError> {
        // RFC 5626 keep-alives (CRLF) are not messages.
        let data = {
            let skip = data
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
                .ok_or(ParseError::Incomplete("empty datagram"))?;
            &data[skip..]
        };
        let (head_end, body_start) =
            find_blank_line(data).ok_or(ParseError::Incomplete("no end of headers"))?;
        let head = std::str::from_utf8(&data[..head_end])
            .map_err(|_| ParseError::Invalid("header block is not UTF-8"))?;
        let (start_line, headers) = split_head(head)?;

        let content_length = match headers.iter().find(|(n, _)| n == "Content-Length") {
            Some((_, v)) => v
                .parse::<usize>()
                .map_err(|_| ParseError::BadHeader("Content-Length"))?,
            // §18.3: over UDP a missing Content-Length means the body runs to the end.
            None => data.len() - body_start,
        };
        let available = data.len() - body_start;
        if available < content_length {
            return Err(ParseError::Incomplete("body shorter than Content-Length"));
        }
        let body = data[body_start..body_start + content_length].to_vec();

        // Hand rsip the normalised message: one line per header, long names.
        let mut norm = String::with_capacity(head.len() + 64);
        // rsip knows only a fixed list of methods; an extension method (a
        // valid token, §7.1) is validated as OPTIONS and kept by name here.
        match start_line.split_once(' ') {
            Some((m, rest))
                if !start_line.starts_with("SIP/")
                    && !RSIP_METHODS.contains(&m)
                    && !m.is_empty()
                    && m.bytes().all(is_token_char) =>
            {
                norm.push_str("OPTIONS ");
                norm.push_str(rest);
            }
            _ => norm.push_str(start_line),
        }
        norm.push_str("\r\n");
        for (n, v) in &headers {
            let _ = write!(norm, "{n}: {v}\r\n");
        }
        norm.push_str("\r\n");
        let mut bytes = norm.into_bytes();
        bytes.extend_from_slice(&body);
        let parsed = rsip::SipMessage::try_from(bytes.as_slice())
            .map_err(|_| ParseError::Invalid("rejected by the SIP grammar"))?;

        let start = match &parsed {
            rsip::SipMessage::Request(r) => {
                // Take the Request-URI text ourselves: rsip re-prints URIs.
                // §7.1: Method SP Request-URI SP SIP-Version, single spaces.
                let mut parts = start_line.split(' ');
                let method = parts.next().ok_or(ParseError::Invalid("no method"))?;
                let uri = parts.next().ok_or(ParseError::Invalid("no Request-URI"))?;
                if parts.next() != Some("SIP/2.0") || parts.next().is_some() {
                    return Err(ParseError::Invalid("bad request line or SIP version"));
                }
                if uri.is_empty() || uri.starts_with('<') || !uri.contains(':') {
                    return Err(ParseError::Invalid("bad Request-URI"));
                }
                let method = Method::from_token(method);
                if method.as_str() != r.method.to_string() && !matches!(method, Method::Other(_)) {
                    return Err(ParseError::Invalid("method mismatch"));
                }
                StartLine::Request {
                    method,
                    uri: uri.to_string(),
                }
            }
            rsip::SipMessage::Response(r) => {
                let status = r.status_code.code();
                // §7.2: SIP-Version SP 3DIGIT SP Reason-Phrase.
                let code_ok = start_line.starts_with("SIP/2.0 ")
                    && start_line
                        .get(8..11)
                        .is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit()))
                    && start_line.as_bytes().get(11).is_none_or(|b| *b == b' ');
                if !code_ok || !(100..=699).contains(&status) {
                    return Err(ParseError::Invalid("status code out of range"));
                }
                let reason = start_line
                    .splitn(3, ' ')
                    .nth(2)
                    .unwrap_or("")
                    .trim()
                    .to_string();
                StartLine::Response { status, reason }
            }
        };

        let get = |name: &'static str| -> Result<&str, ParseError> {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .ok_or(ParseError::MissingHeader(name))
        };
        let call_id = get("Call-ID")?.to_string();
        if call_id.is_empty() {
            return Err(ParseError::BadHeader("Call-ID"));
        }
        let cseq_v = get("CSeq")?;
        let mut cs = cseq_v.split_whitespace();
        let cseq = cs
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or(ParseError::BadHeader("CSeq"))?;
        let cseq_method = Method::from_token(cs.next().ok_or(ParseError::BadHeader("CSeq"))?);
        if cs.next().is_some() {
            return Err(ParseError::BadHeader("CSeq"));
        }
        if let StartLine::Request { method, .. } = &start {
            // §8.2: the CSeq method must match the request method.
            if *method != cseq_method {
                return Err(ParseError::BadHeader("CSeq"));
            }
        }
        let from = get("From")?;
        let to = get("To")?;
        if !balanced_quotes(from) {
            return Err(ParseError::BadHeader("From"));
        }
        if !balanced_quotes(to) {
            return Err(ParseError::BadHeader("To"));
        }
        let via = get("Via")?;
        let top_via = split_list(via).into_iter().next().unwrap_or("");
        if !top_via.starts_with("SIP/2.0/") {
            return Err(ParseError::BadHeader("Via"));
        }
        let branch = via_param(top_via, "branch").map(str::to_string);
        Ok(Message {
            start,
            call_id,
            cseq,
            cseq_method,
            from_tag: header_param(from, "tag")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            to_tag: header_param(to, "tag")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            branch,
            headers,
            body,
        })
    }

    /// First value of a header by canonical long name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, list values split (§7.3.1), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| split_list(v))
    }

    /// The raw values of a header, one per header line, in order.
    pub fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The URI of the first Contact (§8.1.1.8), if any.
    pub fn contact_uri(&self) -> Option<&str> {
        self.header_values("Contact").next().map(addr_uri)
    }

    /// Content-Type without parameters, lower-cased.
    pub fn content_type(&self) -> Option<String> {
        self.header("Content-Type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// A Via parameter (`;branch=`, `;received=`, `;rport`).
pub fn via_param<'a>(via: &'a str, name: &str) -> Option<&'a str> {
    via.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Builds an outgoing message as text. Headers are written in the order
/// they are added; `Content-Length` is always written last (§20.14: it is
/// mandatory over stream transports and we always send it).
#[derive(Debug, Clone)]
pub struct Builder {
    text: String,
    body: Vec<u8>,
}

impl Builder {
    /// `METHOD uri SIP/2.0`.
    pub fn request(method: &Method, uri: &str) -> Builder {
        let mut text = String::with_capacity(512);
        let _ = write!(text, "{} {} SIP/2.0\r\n", method.as_str(), uri);
        Builder {
            text,
            body: Vec::new(),
        }
    }

    /// `SIP/2.0 status reason`.
    pub fn response(status: u16, reason: &str) -> Builder {
        let mut text = String::with_capacity(512);
        let _ = write!(text, "SIP/2.0 {status} {reason}\r\n");
        Builder {
            text,
            body: Vec::new(),
        }
    }

    /// A response to `req` with Via, From, To, Call-ID and CSeq copied
    /// (§8.2.6.2); `to_tag` is added to To when To has none.
    pub fn response_to(req: &Message, status: u16, reason: &str, to_tag: Option<&str>) -> Builder {
        let mut b = Builder::response(status, reason);
        for v in req.header_lines("Via") {
            b = b.header("Via", v);
        }
        if let Some(f) = req.header("From") {
            b = b.header("From", f);
        }
        if let Some(t) = req.header("To") {
            match (to_tag, &req.to_tag) {
                (Some(tag), None) => b = b.header("To", &format!("{t};tag={tag}")),
                _ => b = b.header("To", t),
            }
        }
        b = b.header("Call-ID", &req.call_id);
        b.header(
            "CSeq",
            &format!("{} {}", req.cseq, req.cseq_method.as_str()),
        )
    }

    /// A request that reuses an INVITE's Request-URI, top Via, Route,
    /// From, Call-ID and CSeq number with another method: the CANCEL of
    /// §9.1 and the ACK for a non-2xx response of §17.1.1.3. `to` replaces
    /// the INVITE's To (the ACK takes the response's, with its tag).
    pub fn invite_sibling(invite: &Message, method: &Method, to: Option<&str>) -> Builder {
        let uri = match &invite.start {
            StartLine::Request { uri, .. } => uri.as_str(),
            StartLine::Response { .. } => "",
        };
        let mut b = Builder::request(method, uri);
        if let Some(v) = invite.header_lines("Via").next() {
            b = b.header("Via", v);
        }
        for r in invite.header_lines("Route") {
            b = b.header("Route", r);
        }
        b = b.header("Max-Forwards", "70");
        if let Some(f) = invite.header("From") {
            b = b.header("From", f);
        }
        if let Some(t) = to.or(invite.header("To")) {
            b = b.header("To", t);
        }
        b.header("Call-ID", &invite.call_id)
            .header("CSeq", &format!("{} {}", invite.cseq, method.as_str()))
    }

    /// Add a header. CR and LF in the value are replaced by spaces so that
    /// no value (from config or a peer) can inject header lines.
    pub fn header(mut self, name: &str, value: &str) -> Builder {
        if value.contains(['\r', '\n']) {
            let clean = value.replace(['\r', '\n'], " ");
            let _ = write!(self.text, "{name}: {clean}\r\n");
        } else {
            let _ = write!(self.text, "{name}: {value}\r\n");
        }
        self
    }

    pub fn body(mut self, content_type: &str, body: &[u8]) -> Builder {
        let _ = write!(self.text, "Content-Type: {content_type}\r\n");
        self.body = body.to_vec();
        self
    }

    pub fn build(mut self) -> Vec<u8> {
        let _ = write!(self.text, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = self.text.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The standard reason phrase for a status code (§21), for responses we build.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn parses_a_plain_invite() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.call_id, "a84b4c76e66710@pc33.atlanta.example.com");
        assert_eq!(m.cseq, 314159);
        assert_eq!(m.from_tag.as_deref(), Some("1928301774"));
        assert_eq!(m.to_tag, None);
        assert_eq!(m.branch.as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.body, b"v=0\n");
        assert_eq!(m.contact_uri(), Some("sip:alice@pc33.atlanta.example.com"));
    }

    #[test]
    fn frames_by_content_length_and_drops_trailing_bytes() {
        let mut d = INVITE.as_bytes().to_vec();
        d.extend_from_slice(b"GARBAGE");
        let m = Message::parse(&d).unwrap();
        assert_eq!(m.body, b"v=0\n");
    }

    #[test]
    fn short_body_is_incomplete() {
        let d = INVITE.replace("Content-Length: 4", "Content-Length: 40");
        assert!(matches!(
            Message::parse(d.as_bytes()),
            Err(ParseError::Incomplete(_))
        ));
    }

    #[test]
    fn compact_names_and_folding() {
        let d = "BYE sip:bob@192.0.2.4 SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
f: <sip:a@x>;tag=1\r\n\
t: <sip:b@y>\r\n ;tag=2\r\n\
i: abc\r\n\
CSeq: 2\r\n\tBYE\r\n\
l: 0\r\n\r\n";
        let m = Message::parse(d.as_bytes()).unwrap();
        assert_eq!(m.call_id, "abc");
        assert_eq!(m.to_tag.as_deref(), Some("2"));
        assert_eq!(m.cseq_method, Method::Bye);
        assert_eq!(m.branch.as_deref(), Some("z9hG4bKa"));
    }

    #[test]
    fn builder_round_trips() {
        let req = Message::parse(INVITE.as_bytes()).unwrap();
        let resp = Builder::response_to(&req, 180, "Ringing", Some("xyz")).build();
        let m = Message::parse(&resp).unwrap();
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.to_tag.as_deref(), Some("xyz"));
        assert_eq!(m.branch, req.branch);
        assert_eq!(m.cseq_method, Method::Invite);
    }

    #[test]
    fn uri_helpers() {
        assert_eq!(
            uri_host_port("sip:1001@127.0.0.1:5080;transport=udp"),
            Some(("127.0.0.1".into(), 5080))
        );
        assert_eq!(
            uri_host_port("sip:trunk.example"),
            Some(("trunk.example".into(), 5060))
        );
        assert_eq!(uri_host_port("sip:[::1]:5070"), Some(("::1".into(), 5070)));
        assert_eq!(uri_host_port("http://x"), None);
        assert!(is_valid_sip_uri("sip:1001@127.0.0.1:5080;transport=udp"));
        assert!(!is_valid_sip_uri("sip:a b@x"));
        assert!(!is_valid_sip_uri("sip:x\r\nVia: y"));
        assert!(!is_valid_sip_uri("tel:123"));
        let b = Builder::request(&Method::Bye, "sip:x@y")
            .header("Subject", "a\r\nVia: evil")
            .build();
        assert!(!String::from_utf8(b).unwrap().contains("\nVia"));
        assert_eq!(header_param("<sip:a@b;tag=no>;tag=yes", "tag"), Some("yes"));
        assert_eq!(
            split_list("<sip:a,b@x>, \"c,d\" <sip:e@f>"),
            vec!["<sip:a,b@x>", "\"c,d\" <sip:e@f>"]
        );
    }
}
