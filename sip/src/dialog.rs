//! Dialog state (RFC 3261 §12) and building requests inside a dialog
//! (§12.2.1.1), shared by the caller (UAC) and the simulated phones (UAS).
//!
//! Depends on: [`crate::message`]. No IO, no clock.

use std::net::{IpAddr, SocketAddr};

use crate::message::{addr_uri, header_param, uri_host_port, Builder, Method};

/// Where a request goes: one datagram to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub data: Vec<u8>,
}

/// The state of one dialog, from our side (§12.1).
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    /// Our URI (From for a UAC, To for a UAS), without tag.
    pub local_uri: String,
    pub local_tag: String,
    /// The peer's URI, without tag.
    pub remote_uri: String,
    pub remote_tag: String,
    /// Our next CSeq is `local_cseq + 1` (§12.2.1.1).
    pub local_cseq: u32,
    /// The peer's Contact (§12.1.1/§12.1.2).
    pub remote_target: String,
    /// Route set, in the order the Route header must carry it.
    pub route_set: Vec<String>,
    /// Our Contact URI.
    pub local_contact: String,
    /// Our transport address, for Via sent-by.
    pub local_addr: SocketAddr,
    /// The transport of the Via of requests in the dialog.
    pub transport: crate::stream::Transport,
    branch_counter: u32,
}

impl Dialog {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        call_id: String,
        local_uri: String,
        local_tag: String,
        remote_uri: String,
        remote_tag: String,
        local_cseq: u32,
        remote_target: String,
        route_set: Vec<String>,
        local_contact: String,
        local_addr: SocketAddr,
    ) -> Dialog {
        Dialog {
            call_id,
            local_uri,
            local_tag,
            remote_uri,
            remote_tag,
            local_cseq,
            remote_target,
            route_set,
            local_contact,
            local_addr,
            transport: crate::stream::Transport::Udp,
            branch_counter: 0,
        }
    }

    /// A fresh branch (§8.1.1.7: starts with the magic cookie `z9hG4bK`).
    pub fn new_branch(&mut self) -> String {
        self.branch_counter += 1;
        format!(
            "z9hG4bK{}.{}.{}",
            self.local_tag, self.local_cseq, self.branch_counter
        )
    }

    /// Build a request in this dialog (§12.2.1.1). ACK reuses the INVITE's
    /// CSeq number (§13.2.2.4); other methods take the next number.
    /// Returns the builder (add headers/body, then build) and its branch.
    pub fn request(&mut self, method: &Method, ack_cseq: Option<u32>) -> (Builder, String) {
        let cseq = match (method, ack_cseq) {
            (Method::Ack, Some(n)) => n,
            _ => {
                self.local_cseq += 1;
                self.local_cseq
            }
        };
        let branch = self.new_branch();
        let strict = self
            .route_set
            .first()
            .is_some_and(|r| !addr_uri(r).contains(";lr"));
        let (ruri, routes): (String, Vec<String>) = if strict {
            // §12.2.1.1 strict routing: first route becomes the Request-URI,
            // the remote target goes last in Route.
            let mut r: Vec<String> = self.route_set[1..].to_vec();
            r.push(format!("<{}>", self.remote_target));
            (addr_uri(&self.route_set[0]).to_string(), r)
        } else {
            (self.remote_target.clone(), self.route_set.clone())
        };
        let mut b = Builder::request(method, &ruri)
            .header("Via", &self.transport.via_value(self.local_addr, &branch));
        for r in &routes {
            b = b.header("Route", r);
        }
        b = b
            .header("Max-Forwards", "70")
            .header(
                "From",
                &format!("{};tag={}", self.local_uri, self.local_tag),
            )
            .header(
                "To",
                &format!("{};tag={}", self.remote_uri, self.remote_tag),
            )
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{cseq} {}", method.as_str()))
            .header("Contact", &format!("<{}>", self.local_contact));
        (b, branch)
    }

    /// Where an in-dialog request goes (§8.1.2): the first Route, or the
    /// remote target. Only IP literals are resolved here (no DNS in a
    /// sans-IO core); otherwise `fallback` (the next hop used for the INVITE).
    pub fn next_hop(&self, fallback: SocketAddr) -> SocketAddr {
        let uri = match self.route_set.first() {
            Some(r) => addr_uri(r).to_string(),
            None => self.remote_target.clone(),
        };
        literal_addr(&uri).unwrap_or(fallback)
    }
}

/// The socket address of a SIP URI whose host is an IP literal.
pub fn literal_addr(uri: &str) -> Option<SocketAddr> {
    let (host, port) = uri_host_port(uri)?;
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// The name-addr of a From/To value without its tag, e.g.
/// `"Bob" <sip:bob@x>;tag=1` → `"Bob" <sip:bob@x>`.
pub fn without_tag(value: &str) -> String {
    match header_param(value, "tag") {
        Some(tag) => value.replace(&format!(";tag={tag}"), "").trim().to_string(),
        None => value.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn dialog(routes: Vec<String>) -> Dialog {
        Dialog::new(
            "c1".into(),
            "<sip:genki@127.0.0.1>".into(),
            "lt".into(),
            "<sip:bob@127.0.0.1:5080>".into(),
            "rt".into(),
            1,
            "sip:bob@127.0.0.2:5090".into(),
            routes,
            "sip:genki@127.0.0.1:5060".into(),
            "127.0.0.1:5060".parse().unwrap(),
        )
    }

    #[test]
    fn loose_route_keeps_remote_target_as_request_uri() {
        let mut d = dialog(vec!["<sip:10.9.9.9:5070;lr>".into()]);
        let (b, _) = d.request(&Method::Bye, None);
        let m = Message::parse(&b.build()).unwrap();
        assert!(
            matches!(&m.start, crate::message::StartLine::Request { uri, .. } if uri == "sip:bob@127.0.0.2:5090")
        );
        assert_eq!(m.header("Route"), Some("<sip:10.9.9.9:5070;lr>"));
        assert_eq!(m.cseq, 2);
        assert_eq!(m.from_tag.as_deref(), Some("lt"));
        assert_eq!(m.to_tag.as_deref(), Some("rt"));
        assert_eq!(
            d.next_hop("1.1.1.1:1".parse().unwrap()),
            "10.9.9.9:5070".parse().unwrap()
        );
    }

    #[test]
    fn strict_route_and_ack_cseq() {
        let mut d = dialog(vec!["<sip:10.9.9.9>".into()]);
        let (b, _) = d.request(&Method::Ack, Some(1));
        let m = Message::parse(&b.build()).unwrap();
        assert!(
            matches!(&m.start, crate::message::StartLine::Request { uri, .. } if uri == "sip:10.9.9.9")
        );
        assert_eq!(m.header("Route"), Some("<sip:bob@127.0.0.2:5090>"));
        assert_eq!(m.cseq, 1);
        let d = dialog(vec![]);
        assert_eq!(
            d.next_hop("1.1.1.1:1".parse().unwrap()),
            "127.0.0.2:5090".parse().unwrap()
        );
        assert_eq!(without_tag("\"B\" <sip:b@x>;tag=9"), "\"B\" <sip:b@x>");
    }
}
