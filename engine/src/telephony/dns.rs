//! Locating the trunk (RFC 3263): a trunk given as a domain name is looked
//! up NAPTR → SRV → A/AAAA, so that a carrier can publish several targets
//! with priorities and weights and genki fails over between them (the
//! UAC sends the INVITE to the next target when one does not answer, is
//! unreachable or answers 503: RFC 3263 §4.3). A trunk given as an IP
//! address, or with an explicit port, skips NAPTR/SRV (§4.2).
//!
//! The lookups are hickory-resolver's, whose cache keeps each answer for
//! its TTL: every call asks again, cheaply, and a changed record is seen
//! once its TTL has run out. The ordering rules (NAPTR order and
//! preference, the SIP services genki speaks, SRV priority and RFC 2782
//! weighted choice) are pure functions below, tested on their own.
//!
//! Depends on: hickory-resolver, genki-sip (transports), rand.

use std::net::{IpAddr, SocketAddr};

use genki_sip::stream::Transport;
use hickory_resolver::config::{NameServerConfig, NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

/// Why the trunk could not be located.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0:?} is not a SIP URI with a host")]
    BadUri(String),
    #[error("the resolver could not be set up: {0}")]
    Setup(String),
    #[error("no address for {host}: {why}")]
    NotFound { host: String, why: String },
}

/// One place to send the trunk's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub transport: Transport,
}

/// An SRV record, as ordering needs it (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The SRV names to query, from NAPTR records (order, preference,
/// services, replacement), in the order to try them (RFC 3263 §4.1, RFC
/// 3403 §4.1): lowest order, then lowest preference; only the SIP
/// services genki speaks, and only terminal `s` records.
pub fn naptr_choices(
    mut records: Vec<(u16, u16, String, String, String)>,
) -> Vec<(Transport, String)> {
    records.sort_by_key(|(order, pref, ..)| (*order, *pref));
    records
        .into_iter()
        .filter(|(_, _, flags, ..)| flags.eq_ignore_ascii_case("s"))
        .filter_map(|(_, _, _, service, replacement)| {
            let t = match service.to_ascii_uppercase().as_str() {
                "SIP+D2U" => Transport::Udp,
                "SIP+D2T" => Transport::Tcp,
                "SIPS+D2T" => Transport::Tls,
                _ => return None,
            };
            Some((t, replacement))
        })
        .collect()
}

/// SRV records in the order to try them (RFC 2782): by priority, and
/// within one priority by a weighted random draw (`draw(total)` returns
/// a number in 0..=total), weight 0 ones last.
pub fn order_srv(mut records: Vec<Srv>, mut draw: impl FnMut(u32) -> u32) -> Vec<Srv> {
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut i = 0;
    while i < records.len() {
        let p = records[i].priority;
        let mut group: Vec<Srv> = records[i..]
            .iter()
            .take_while(|r| r.priority == p)
            .cloned()
            .collect();
        i += group.len();
        // Weight 0 first in the list (RFC 2782), so they are drawn only
        // when the sum reaches them, i.e. rarely.
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = draw(total).min(total);
            let mut run = 0;
            let idx = group
                .iter()
                .position(|r| {
                    run += u32::from(r.weight);
                    run >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(idx));
        }
    }
    out
}

/// A random number in 0..=total (RFC 2782's draw).
fn draw(total: u32) -> u32 {
    use rand::Rng;
    rand::thread_rng().gen_range(0..=total)
}

/// Where the trunk is, looked up anew (from the cache) for every call.
pub struct TrunkRoute {
    host: String,
    port: Option<u16>,
    transport: Option<Transport>,
    resolver: TokioResolver,
}

impl TrunkRoute {
    /// The route of `proxy` (a SIP URI), resolved through `servers` (empty:
    /// the system's resolv.conf). None when the proxy is an IP address:
    /// there is nothing to look up.
    pub fn new(proxy: &str, servers: &[SocketAddr]) -> Result<Option<TrunkRoute>, DnsError> {
        let (host, port) = genki_sip::message::uri_host_port(proxy)
            .ok_or_else(|| DnsError::BadUri(proxy.to_string()))?;
        if host.parse::<IpAddr>().is_ok() {
            return Ok(None);
        }
        let explicit_port = uri_has_port(proxy).then_some(port);
        let transport = (proxy.starts_with("sips:")
            || proxy.to_ascii_lowercase().contains(";transport="))
        .then(|| Transport::of_uri(proxy));
        let resolver = if servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| DnsError::Setup(e.to_string()))?
                .build()
        } else {
            let group: NameServerConfigGroup = servers
                .iter()
                .flat_map(|s| {
                    [
                        NameServerConfig::new(*s, Protocol::Udp),
                        NameServerConfig::new(*s, Protocol::Tcp),
                    ]
                })
                .collect::<Vec<_>>()
                .into();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                TokioConnectionProvider::default(),
            )
            .build()
        };
        Ok(Some(TrunkRoute {
            host,
            port: explicit_port,
            transport,
            resolver,
        }))
    }

    /// The targets to try, in order (§4.1, §4.2): with an explicit port,
    /// the host's addresses; else NAPTR (the SIP services genki speaks),
    /// else SRV for each transport (the URI's, or UDP, TCP, TLS), else the
    /// host's addresses on the default port. Every target of the list has
    /// the transport of the first.
    pub async fn targets(&self) -> Result<Vec<Target>, DnsError> {
        if let Some(port) = self.port {
            let t = self.transport.unwrap_or_default();
            return self.addresses(&self.host, port, t).await;
        }
        let mut srv_names: Vec<(Transport, String)> = Vec::new();
        if let Ok(l) = self
            .resolver
            .lookup(self.host.as_str(), RecordType::NAPTR)
            .await
        {
            let recs = l
                .record_iter()
                .filter_map(|r| match r.data() {
                    RData::NAPTR(n) => Some((
                        n.order(),
                        n.preference(),
                        String::from_utf8_lossy(n.flags()).to_string(),
                        String::from_utf8_lossy(n.services()).to_string(),
                        n.replacement().to_ascii(),
                    )),
                    _ => None,
                })
                .collect();
            srv_names = naptr_choices(recs);
        }
        if let Some(t) = self.transport {
            srv_names.retain(|(x, _)| *x == t);
        }
        if srv_names.is_empty() {
            let all = [Transport::Udp, Transport::Tcp, Transport::Tls];
            for t in all {
                if self.transport.is_none_or(|x| x == t) {
                    let prefix = match t {
                        Transport::Udp => "_sip._udp",
                        Transport::Tcp => "_sip._tcp",
                        Transport::Tls => "_sips._tcp",
                    };
                    srv_names.push((t, format!("{prefix}.{}", self.host)));
                }
            }
        }
        for (t, name) in &srv_names {
            let Ok(l) = self.resolver.srv_lookup(name.as_str()).await else {
                continue;
            };
            let recs: Vec<Srv> = l
                .iter()
                .map(|s| Srv {
                    priority: s.priority(),
                    weight: s.weight(),
                    port: s.port(),
                    target: s.target().to_ascii(),
                })
                .collect();
            let mut out = Vec::new();
            for s in order_srv(recs, draw) {
                if let Ok(mut a) = self.addresses(&s.target, s.port, *t).await {
                    out.append(&mut a);
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
        let t = self.transport.unwrap_or_default();
        let port = if t == Transport::Tls { 5061 } else { 5060 };
        self.addresses(&self.host, port, t).await
    }

    async fn addresses(
        &self,
        host: &str,
        port: u16,
        transport: Transport,
    ) -> Result<Vec<Target>, DnsError> {
        let host = host.trim_end_matches('.');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![Target {
                addr: SocketAddr::new(ip, port),
                transport,
            }]);
        }
        let l = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|e| DnsError::NotFound {
                host: host.to_string(),
                why: e.to_string(),
            })?;
        Ok(l.iter()
            .map(|ip| Target {
                addr: SocketAddr::new(ip, port),
                transport,
            })
            .collect())
    }
}

/// Whether a SIP URI names a port (`host:port`), which skips SRV (§4.2).
fn uri_has_port(uri: &str) -> bool {
    let rest = uri.trim_start_matches("sips:").trim_start_matches("sip:");
    let hostport = rest.split([';', '?']).next().unwrap_or("");
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    match hostport.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(_, a)| a.starts_with(':')),
        None => hostport.contains(':'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn naptr_order_preference_and_services() {
        let recs = vec![
            (
                20,
                10,
                "s".into(),
                "SIP+D2T".into(),
                "_sip._tcp.t.jp".into(),
            ),
            (
                10,
                20,
                "s".into(),
                "SIP+D2U".into(),
                "_sip._udp.t.jp".into(),
            ),
            (
                10,
                10,
                "s".into(),
                "SIPS+D2T".into(),
                "_sips._tcp.t.jp".into(),
            ),
            (
                5,
                10,
                "s".into(),
                "SIP+D2S".into(),
                "_sip._sctp.t.jp".into(),
            ),
            (1, 10, "u".into(), "E2U+sip".into(), "!^.*$!sip:x!".into()),
        ];
        assert_eq!(
            naptr_choices(recs),
            vec![
                (Transport::Tls, "_sips._tcp.t.jp".to_string()),
                (Transport::Udp, "_sip._udp.t.jp".to_string()),
                (Transport::Tcp, "_sip._tcp.t.jp".to_string()),
            ]
        );
    }

    #[test]
    fn srv_by_priority_then_weight() {
        // Priority first whatever the draw.
        let out = order_srv(
            vec![srv(20, 100, "c"), srv(10, 0, "b"), srv(10, 50, "a")],
            |t| t,
        );
        assert_eq!(out[2].target, "c");
        // Within a priority the draw decides by weight: a draw of 0 takes
        // the weight-0 record, a draw past it the weighted one.
        let out = order_srv(vec![srv(10, 50, "a"), srv(10, 0, "b")], |_| 0);
        assert_eq!(out[0].target, "b");
        let out = order_srv(vec![srv(10, 50, "a"), srv(10, 0, "b")], |t| t);
        assert_eq!(out[0].target, "a");
        // Over many draws, weights 3:1 share the first place about 3:1.
        let mut first_a = 0;
        for _ in 0..4000 {
            let o = order_srv(vec![srv(1, 30, "a"), srv(1, 10, "b")], draw);
            first_a += usize::from(o[0].target == "a");
        }
        assert!((2700..3300).contains(&first_a), "{first_a}");
    }

    #[test]
    fn explicit_ports_and_literals_skip_srv() {
        assert!(uri_has_port("sip:t.example.jp:5070;transport=tcp"));
        assert!(!uri_has_port("sip:t.example.jp;transport=tcp"));
        assert!(!uri_has_port("sips:user@t.example.jp"));
        assert!(uri_has_port("sip:[::1]:5060"));
        assert!(TrunkRoute::new("sip:127.0.0.1:5060", &[])
            .unwrap()
            .is_none());
    }
}
