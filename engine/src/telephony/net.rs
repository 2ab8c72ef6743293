//! UDP sockets for SIP and RTP: binding with clear errors, picking an RTP
//! port from a range, resolving a SIP URI's host, finding the local address
//! to advertise, and asking Linux to report ICMP errors (IP_RECVERR) so an
//! unreachable trunk is known at once instead of after Timer B.
//!
//! Depends on: tokio, libc, genki-sip (URI parsing).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use tokio::net::UdpSocket;

/// Network set-up failures, each naming what was asked for.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot bind {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("no free RTP port in {start}-{end} on {ip}")]
    NoRtpPort { ip: IpAddr, start: u16, end: u16 },
    #[error("{0:?} is not a SIP URI with a host (expected e.g. sip:1001@127.0.0.1:5080)")]
    BadUri(String),
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("invalid port range {0:?} (expected e.g. 20000-20999)")]
    BadRange(String),
}

/// Parse `20000-20999`.
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, NetError> {
    let bad = || NetError::BadRange(s.to_string());
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

/// Bind a UDP socket, with IP_RECVERR on (Linux) so that ICMP errors for
/// datagrams we sent come back as receive errors.
pub async fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, NetError> {
    let s = UdpSocket::bind(addr)
        .await
        .map_err(|error| NetError::Bind { addr, error })?;
    set_recverr(&s);
    Ok(s)
}

/// The original destinations of datagrams an ICMP error was reported for
/// (Linux's error queue, filled because of IP_RECVERR; ip(7)). Several
/// calls share one SIP socket, so an error is attributed by the address
/// it was sent to, not to whichever call happens to send or receive next.
#[cfg(target_os = "linux")]
pub fn take_icmp_errors(s: &UdpSocket) -> Vec<SocketAddr> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    for _ in 0..64 {
        // SAFETY: zeroed sockaddr_storage/msghdr are valid; every pointer in
        // the header points at a local that outlives the call.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut data = [0u8; 64];
        let mut control = [0u8; 512];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_name = &mut name as *mut _ as *mut libc::c_void;
        hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        hdr.msg_controllen = control.len() as _;
        // SAFETY: valid fd and header.
        let r = unsafe {
            libc::recvmsg(
                s.as_raw_fd(),
                &mut hdr,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            break;
        }
        let addr = match name.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the family says this is a sockaddr_in.
                let sin = unsafe { &*(&name as *const _ as *const libc::sockaddr_in) };
                SocketAddr::from((
                    sin.sin_addr.s_addr.to_ne_bytes(),
                    u16::from_be(sin.sin_port),
                ))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this is a sockaddr_in6.
                let sin6 = unsafe { &*(&name as *const _ as *const libc::sockaddr_in6) };
                SocketAddr::from((sin6.sin6_addr.s6_addr, u16::from_be(sin6.sin6_port)))
            }
            _ => continue,
        };
        out.push(addr);
    }
    out
}

#[cfg(not(target_os = "linux"))]
pub fn take_icmp_errors(_s: &UdpSocket) -> Vec<SocketAddr> {
    Vec::new()
}

#[cfg(target_os = "linux")]
fn set_recverr(s: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    let (level, opt) = match s.local_addr() {
        Ok(SocketAddr::V6(_)) => (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
        _ => (libc::IPPROTO_IP, libc::IP_RECVERR),
    };
    // SAFETY: setsockopt on a valid fd with a pointer to a c_int that outlives the call.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_recverr(_s: &UdpSocket) {}

/// Bind an RTP socket on an even port of `range` (RFC 3550 §11), trying
/// from a random start so concurrent calls spread out.
pub async fn bind_rtp(
    ip: IpAddr,
    range: &RangeInclusive<u16>,
    seed: u32,
) -> Result<UdpSocket, NetError> {
    let (start, end) = (*range.start(), *range.end());
    let first_even = start + (start % 2);
    let count = ((end.saturating_sub(first_even)) / 2 + 1) as u32;
    for i in 0..count {
        let port = first_even + (((seed.wrapping_add(i)) % count) * 2) as u16;
        if port > end {
            continue;
        }
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
            return Ok(s);
        }
    }
    Err(NetError::NoRtpPort { ip, start, end })
}

/// Resolve the host and port of a SIP URI (IP literal or DNS name; no
/// NAPTR/SRV, RFC 3263 is left for a later transport layer).
pub async fn resolve_uri(uri: &str) -> Result<SocketAddr, NetError> {
    let (host, port) =
        genki_sip::message::uri_host_port(uri).ok_or_else(|| NetError::BadUri(uri.to_string()))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let found = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| NetError::Resolve {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .next();
    found.ok_or(NetError::Resolve {
        host,
        reason: "no addresses".into(),
    })
}

/// The local address the kernel would use to reach `peer` (no packet is sent).
pub fn local_ip_for(peer: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("20000-20999").unwrap(), 20000..=20999);
        for bad in ["", "5", "9-1", "0-10", "a-b", "1-70000"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn rtp_ports_are_even_and_exhaustion_is_an_error() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let r = 31000..=31003;
        let a = bind_rtp(ip, &r, 7).await.unwrap();
        let b = bind_rtp(ip, &r, 7).await.unwrap();
        assert_eq!(a.local_addr().unwrap().port() % 2, 0);
        assert_ne!(a.local_addr().unwrap(), b.local_addr().unwrap());
        assert!(matches!(
            bind_rtp(ip, &r, 7).await,
            Err(NetError::NoRtpPort { .. })
        ));
    }

    #[tokio::test]
    async fn resolves_literals_and_rejects_garbage() {
        assert_eq!(
            resolve_uri("sip:1@127.0.0.1:5080").await.unwrap(),
            "127.0.0.1:5080".parse().unwrap()
        );
        assert!(matches!(
            resolve_uri("tel:123").await,
            Err(NetError::BadUri(_))
        ));
        assert_eq!(
            local_ip_for("127.0.0.1:9".parse().unwrap()),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}
