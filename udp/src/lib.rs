//! genki-udp: batched UDP IO for media workers — many datagrams, to or
//! from many addresses, per system call.
//!
//! Linux `sendmmsg(2)`/`recvmmsg(2)` through libc, on a non-blocking
//! `std::net::UdpSocket`, plus `poll(2)` to wait for readability with a
//! sub-millisecond timeout. Written by hand because the crates that batch
//! UDP (quinn-udp: GSO to one destination; nix: generic multi-headers)
//! either send to a single destination per call or cost more ceremony than
//! these few unsafe lines, which are kept small and documented. Other
//! platforms fall back to one `send_to`/`recv_from` per datagram.
//!
//! [`sockets`] holds many sockets behind one interface (epoll, or io_uring in
//! [`uring`]) so that a worker with a socket per call still batches its
//! system calls; [`worker`] is the media worker loop built on it (a
//! [`genki_media::mux::MediaMux`] per thread), shared by genki-engine's
//! media runtime and genki-loadtest's phones.
//!
//! Dependency rule: the IO half of media: depends on genki-media (sans-IO),
//! libc and io-uring; knows nothing of SIP. Linux is the platform genki
//! runs on; the epoll and io_uring parts are Linux-only.

pub mod sockets;
pub mod uring;
pub mod worker;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// The header arrays of one `sendmmsg`/`recvmmsg` call, reused across calls.
#[derive(Default)]
struct Headers {
    #[cfg(target_os = "linux")]
    addrs: Vec<libc::sockaddr_storage>,
    #[cfg(target_os = "linux")]
    iovs: Vec<libc::iovec>,
    #[cfg(target_os = "linux")]
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside are rebuilt before every system call and
// point only at buffers alive for that call; otherwise the arrays are plain data.
unsafe impl Send for Headers {}

impl Headers {
    /// Arrays of length `n`, zeroed where new.
    #[cfg(target_os = "linux")]
    fn resize(&mut self, n: usize) {
        // SAFETY: zeroed sockaddr_storage / mmsghdr are valid values.
        self.addrs.resize(n, unsafe { std::mem::zeroed() });
        self.iovs.resize(
            n,
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
        );
        self.hdrs.resize(n, unsafe { std::mem::zeroed() });
    }
}

/// Receive buffers for up to `capacity` datagrams of up to 2 KiB each.
pub struct RecvBatch {
    bufs: Vec<[u8; 2048]>,
    lens: Vec<usize>,
    srcs: Vec<SocketAddr>,
    h: Headers,
}

impl RecvBatch {
    pub fn new(capacity: usize) -> RecvBatch {
        let capacity = capacity.max(1);
        #[allow(unused_mut)]
        let mut h = Headers::default();
        #[cfg(target_os = "linux")]
        h.resize(capacity);
        RecvBatch {
            bufs: vec![[0; 2048]; capacity],
            lens: Vec::with_capacity(capacity),
            srcs: Vec::with_capacity(capacity),
            h,
        }
    }
    pub fn len(&self) -> usize {
        self.lens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
    /// Datagram `i`: its bytes and source.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        (&self.bufs[i][..self.lens[i]], self.srcs[i])
    }
}

#[cfg(target_os = "linux")]
fn to_sockaddr(a: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(target_os = "linux")]
fn from_sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::from((
                sin.sin_addr.s_addr.to_ne_bytes(),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A socket address from its raw `sockaddr_in`/`sockaddr_in6` bytes (as
/// io_uring's multishot receive writes them in front of a datagram).
fn sockaddr_from_bytes(b: &[u8]) -> Option<SocketAddr> {
    // SAFETY: all-zero sockaddr_storage is a valid value; at most its size is copied.
    let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let n = b.len().min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: both regions are valid for n bytes and do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(b.as_ptr(), &mut s as *mut _ as *mut u8, n);
    }
    from_sockaddr(&s)
}

/// A batch sender with reusable header arrays (no allocation per send).
#[derive(Default)]
pub struct Sender {
    h: Headers,
}

impl Sender {
    pub fn new() -> Sender {
        Sender::default()
    }

    /// Send `n` datagrams, `item(i)` giving each one's bytes and
    /// destination, in as few system calls as the kernel allows. Returns
    /// how many were sent; a full socket buffer (`WouldBlock`) stops early.
    pub fn send<'a>(
        &mut self,
        sock: &UdpSocket,
        n: usize,
        item: impl Fn(usize) -> (&'a [u8], SocketAddr),
    ) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            if n == 0 {
                return Ok(0);
            }
            self.h.resize(n);
            let Headers { addrs, iovs, hdrs } = &mut self.h;
            for i in 0..n {
                let (bytes, dest) = item(i);
                let len = to_sockaddr(&dest, &mut addrs[i]);
                iovs[i] = libc::iovec {
                    iov_base: bytes.as_ptr() as *mut libc::c_void,
                    iov_len: bytes.len(),
                };
                let h = &mut hdrs[i].msg_hdr;
                h.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
                h.msg_namelen = len;
                h.msg_iov = &mut iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
            }
            let mut sent = 0;
            while sent < n {
                let chunk = (n - sent).min(1024) as libc::c_uint;
                // SAFETY: hdrs[sent..sent+chunk] point into self.h's arrays
                // and the callers' buffers, all alive for this call.
                let r = unsafe {
                    libc::sendmmsg(
                        sock.as_raw_fd(),
                        self.h.hdrs[sent..].as_mut_ptr(),
                        chunk,
                        libc::MSG_DONTWAIT,
                    )
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::WouldBlock && sent > 0 {
                        return Ok(sent);
                    }
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // One bad destination (e.g. ICMP-refused earlier) must not
                    // stop the rest: skip it and go on.
                    if sent + 1 < n && e.kind() != io::ErrorKind::WouldBlock {
                        sent += 1;
                        continue;
                    }
                    return if sent > 0 { Ok(sent) } else { Err(e) };
                }
                sent += r as usize;
            }
            Ok(sent)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut sent = 0;
            for i in 0..n {
                let (bytes, dest) = item(i);
                match sock.send_to(bytes, dest) {
                    Ok(_) => sent += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {}
                }
            }
            Ok(sent)
        }
    }
}

/// Receive as many datagrams as are waiting (up to the batch's capacity)
/// without blocking. Returns how many were received (0: none waiting).
pub fn recv(sock: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    batch.lens.clear();
    batch.srcs.clear();
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let n = batch.bufs.len();
        // Rebuild the headers over the batch's own buffers (no allocation).
        for i in 0..n {
            batch.h.iovs[i] = libc::iovec {
                iov_base: batch.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: batch.bufs[i].len(),
            };
            let h = &mut batch.h.hdrs[i].msg_hdr;
            h.msg_name = &mut batch.h.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut batch.h.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        // SAFETY: every header points at live buffers owned by `batch`.
        let r = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                batch.h.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // A port-unreachable from an earlier send surfaces here; not fatal.
                io::ErrorKind::ConnectionRefused => Ok(0),
                _ => Err(e),
            };
        }
        for i in 0..r as usize {
            let len = batch.h.hdrs[i].msg_len as usize;
            if let Some(src) = from_sockaddr(&batch.h.addrs[i]) {
                batch.lens.push(len);
                batch.srcs.push(src);
                if batch.lens.len() - 1 != i {
                    // Keep bufs aligned with lens/srcs (a datagram with an
                    // unknown family was skipped).
                    batch.bufs.swap(batch.lens.len() - 1, i);
                }
            }
        }
        Ok(batch.lens.len())
    }
    #[cfg(not(target_os = "linux"))]
    {
        while batch.lens.len() < batch.bufs.len() {
            let i = batch.lens.len();
            match sock.recv_from(&mut batch.bufs[i]) {
                Ok((len, src)) => {
                    batch.lens.push(len);
                    batch.srcs.push(src);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(batch.lens.len())
    }
}

/// Ask for `bytes` of socket receive and send buffer: a worker's one
/// socket carries every call's packets, and between two ticks a default
/// 208 KiB buffer overflows at about a thousand calls (measured: 10 % loss
/// at 2,000). The kernel caps the size at `net.core.rmem_max`/`wmem_max`
/// unless the process may force it (CAP_NET_ADMIN). Returns the receive
/// buffer size granted.
pub fn set_buffers(sock: &UdpSocket, bytes: usize) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = sock.as_raw_fd();
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        let set = |opt: libc::c_int| {
            // SAFETY: a valid fd and a pointer to a c_int of the right size.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    &v as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(libc::SO_RCVBUFFORCE) != 0 {
            set(libc::SO_RCVBUF);
        }
        if set(libc::SO_SNDBUFFORCE) != 0 {
            set(libc::SO_SNDBUF);
        }
        let mut got: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd, out-pointers to a c_int and its length.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &mut got as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(got.max(0) as usize)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (sock, bytes);
        Ok(0)
    }
}

/// Run the calling thread at real-time priority: `SCHED_RR` at `priority`
/// (1–99), as media servers do (Asterisk's `-p`, FreeSWITCH's `-rp`).
///
/// Why: a media worker must wake within a tick of its timer however busy
/// the rest of the process is. Under the default scheduler it shares its
/// core fairly with signalling, storage and RocksDB's compaction threads,
/// and a burst of theirs (a ramp of call set-ups, a memtable flush) holds
/// it off for tens of milliseconds: every stream's packets leave late
/// together. Signalling tolerates such delays (SIP timers count in
/// hundreds of milliseconds); 20 ms audio frames do not. The kernel's
/// real-time throttling (`kernel.sched_rt_runtime_us`, 95 % by default)
/// and the worker's own rest every tick ([`worker::run`]) keep the rest of
/// the process running even if media alone fills the core.
///
/// Fails with `EPERM` without `CAP_SYS_NICE` or an `RLIMIT_RTPRIO`
/// allowance (systemd: `LimitRTPRIO=`, `AmbientCapabilities=CAP_SYS_NICE`),
/// or inside a cgroup with no real-time budget; the thread then keeps the
/// default scheduler.
pub fn set_realtime(priority: i32) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: pthread_self is always valid for the calling thread and
        // `param` lives across the call.
        let r =
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_RR, &param) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = priority;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// The calling thread's scheduling policy and priority (`SCHED_OTHER` is
/// 0, `SCHED_RR` 2), for logs and tests.
pub fn scheduling() -> io::Result<(i32, i32)> {
    #[cfg(target_os = "linux")]
    {
        let mut policy = 0;
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: valid out-pointers for the calling thread.
        let r =
            unsafe { libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok((policy, param.sched_priority))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Raise this process's open-file limit to its hard limit: a media worker
/// holds a socket per call. Returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer; the new limit is within the hard limit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < l.rlim_max {
            let want = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                l.rlim_cur = l.rlim_max;
            }
        }
    }
    l.rlim_cur
}

/// Wait until `sock` is readable or `timeout` passes (sub-millisecond
/// precision on Linux via ppoll). Returns whether it is readable.
pub fn wait_readable(sock: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(r > 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut b = [0u8; 0];
        let r = sock.peek_from(&mut b);
        sock.set_nonblocking(true)?;
        Ok(r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_is_granted_or_refused_cleanly_and_only_for_this_thread() {
        std::thread::spawn(|| {
            let before = scheduling().unwrap();
            assert_eq!(before.0, libc::SCHED_OTHER);
            match set_realtime(7) {
                // Read back what the kernel now runs this thread with.
                Ok(()) => assert_eq!(scheduling().unwrap(), (libc::SCHED_RR, 7)),
                // Refused: nothing changed.
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
                    assert_eq!(scheduling().unwrap(), before);
                }
            }
            // Out of range is refused whatever the privileges.
            assert!(set_realtime(1000).is_err());
        })
        .join()
        .unwrap();
        // The test's own thread is untouched.
        assert_eq!(scheduling().unwrap().0, libc::SCHED_OTHER);
    }

    #[test]
    fn a_batch_goes_to_many_addresses_and_comes_back_with_sources() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let peers: Vec<UdpSocket> = (0..5)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        let dests: Vec<SocketAddr> = peers.iter().map(|p| p.local_addr().unwrap()).collect();
        let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
        let mut s = Sender::new();
        let n = s
            .send(&a, 5, |i| (payloads[i].as_slice(), dests[i]))
            .unwrap();
        assert_eq!(n, 5);
        for (i, p) in peers.iter().enumerate() {
            assert!(wait_readable(p, Duration::from_millis(500)).unwrap());
            let mut b = RecvBatch::new(8);
            assert_eq!(recv(p, &mut b).unwrap(), 1);
            let (bytes, src) = b.get(0);
            assert_eq!(bytes, payloads[i].as_slice());
            assert_eq!(src, a.local_addr().unwrap());
            // Many from one peer in one call.
            for _ in 0..3 {
                p.send_to(b"xyz", a.local_addr().unwrap()).unwrap();
            }
        }
        assert!(wait_readable(&a, Duration::from_millis(500)).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        let mut b = RecvBatch::new(64);
        assert_eq!(recv(&a, &mut b).unwrap(), 15);
        assert!((0..15).all(|i| b.get(i).0 == b"xyz"));
        assert_eq!(recv(&a, &mut b).unwrap(), 0, "nothing left: no blocking");
        assert!(!wait_readable(&a, Duration::from_micros(300)).unwrap());
    }
}
