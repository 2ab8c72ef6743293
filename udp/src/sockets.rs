//! The socket half of a media worker: many UDP sockets (one per call, plus
//! perhaps one shared), each packet of a [`PacketBatch`] sent from its
//! stream's socket, every waiting datagram handed back with the socket it
//! arrived on.
//!
//! Two implementations, chosen by [`IoKind`] (docs/media-io.md has the
//! measurements that picked the default):
//! - [`EpollIo`]: readiness with `epoll(7)`; one `recvmmsg` per ready
//!   socket, one `sendmmsg` per run of packets leaving the same socket
//!   (with a socket per call, about one system call per packet each way);
//! - [`crate::uring::UringIo`]: `io_uring(7)`; every send of a tick and
//!   every receive re-arm go to the kernel in one submission, completions
//!   are read from shared memory (a few system calls per tick, whatever
//!   the number of sockets).
//!
//! Depends on: genki-media (the batch), libc, std.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use genki_media::mux::{PacketBatch, SockToken};

use crate::{RecvBatch, Sender};

/// Which IO implementation a worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoKind {
    /// io_uring where the kernel allows it, else epoll.
    #[default]
    Auto,
    Uring,
    Epoll,
}

impl std::str::FromStr for IoKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(IoKind::Auto),
            "uring" | "io_uring" => Ok(IoKind::Uring),
            "epoll" => Ok(IoKind::Epoll),
            _ => Err(format!("{s:?} is not a media IO kind (auto, uring, epoll)")),
        }
    }
}

/// Many sockets, batched sends, every waiting datagram received.
pub trait MediaIo: Send {
    /// Take ownership of a (bound) socket; datagrams arriving on it are
    /// reported with the returned token.
    fn register(&mut self, sock: UdpSocket) -> io::Result<SockToken>;
    /// Stop receiving on `token` and close its socket (once the kernel is
    /// done with it). Its token may be reused later.
    fn deregister(&mut self, token: SockToken);
    /// Connect socket `token` to `peer` (its call latched there): the
    /// kernel then delivers only the peer's datagrams to it and caches the
    /// route for sends to it.
    fn connect(&mut self, token: SockToken, peer: SocketAddr);
    /// Undo [`MediaIo::connect`]: the call's peer moved its media, so the
    /// socket must hear other sources again until it latches anew.
    fn disconnect(&mut self, token: SockToken);
    /// Send every packet of `batch` from its socket ([`PacketBatch::sock`]).
    /// Returns how many left; when it returns, the batch may be reused.
    fn send(&mut self, batch: &PacketBatch) -> usize;
    /// Hand every datagram waiting now to `f` (token, source, bytes).
    fn recv(&mut self, f: &mut dyn FnMut(SockToken, SocketAddr, &[u8]));
    /// "epoll" or "io_uring" (for logs and metrics).
    fn name(&self) -> &'static str;
}

/// Dissolve a UDP socket's association (connect(2) to an `AF_UNSPEC`
/// address; std has no call for it): it receives from anyone again.
pub(crate) fn dissolve(sock: &UdpSocket) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr with family AF_UNSPEC is what connect(2)
    // documents for this; the length is that of the struct passed.
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The IO `kind` asks for (io_uring falls back to epoll under `Auto`).
pub fn open(kind: IoKind) -> io::Result<Box<dyn MediaIo>> {
    match kind {
        IoKind::Epoll => Ok(Box::new(EpollIo::new()?)),
        IoKind::Uring => Ok(Box::new(crate::uring::UringIo::new()?)),
        IoKind::Auto => match crate::uring::UringIo::new() {
            Ok(u) => Ok(Box::new(u)),
            Err(_) => Ok(Box::new(EpollIo::new()?)),
        },
    }
}

/// A slab of sockets indexed by token.
pub(crate) struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<SockToken>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn insert(&mut self, v: T) -> SockToken {
        match self.free.pop() {
            Some(t) => {
                self.items[t as usize] = Some(v);
                t
            }
            None => {
                self.items.push(Some(v));
                (self.items.len() - 1) as SockToken
            }
        }
    }
    /// One past the highest token ever given out.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
    pub(crate) fn get(&self, t: SockToken) -> Option<&T> {
        self.items.get(t as usize)?.as_ref()
    }
    pub(crate) fn get_mut(&mut self, t: SockToken) -> Option<&mut T> {
        self.items.get_mut(t as usize)?.as_mut()
    }
    pub(crate) fn remove(&mut self, t: SockToken) -> Option<T> {
        let v = self.items.get_mut(t as usize)?.take();
        if v.is_some() {
            self.free.push(t);
        }
        v
    }
}

/// Readiness-based IO: epoll over every socket.
pub struct EpollIo {
    ep: OwnedFd,
    socks: Slab<UdpSocket>,
    events: Vec<libc::epoll_event>,
    sender: Sender,
    inbox: RecvBatch,
}

impl EpollIo {
    pub fn new() -> io::Result<EpollIo> {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EpollIo {
            // SAFETY: fd is a fresh descriptor we own.
            ep: unsafe { OwnedFd::from_raw_fd(fd) },
            socks: Slab::default(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
            sender: Sender::new(),
            inbox: RecvBatch::new(64),
        })
    }
}

impl MediaIo for EpollIo {
    fn register(&mut self, sock: UdpSocket) -> io::Result<SockToken> {
        sock.set_nonblocking(true)?;
        let fd = sock.as_raw_fd();
        let t = self.socks.insert(sock);
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: t as u64,
        };
        // SAFETY: valid epoll fd, a socket fd we own, a valid event.
        let r = unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            let e = io::Error::last_os_error();
            self.socks.remove(t);
            return Err(e);
        }
        Ok(t)
    }

    fn deregister(&mut self, token: SockToken) {
        if let Some(s) = self.socks.remove(token) {
            // SAFETY: valid fds; DEL ignores the event pointer.
            unsafe {
                libc::epoll_ctl(
                    self.ep.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    s.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
        }
    }

    fn connect(&mut self, token: SockToken, peer: SocketAddr) {
        if let Some(s) = self.socks.get(token) {
            let _ = s.connect(peer);
        }
    }

    fn disconnect(&mut self, token: SockToken) {
        if let Some(s) = self.socks.get(token) {
            let _ = dissolve(s);
        }
    }

    fn send(&mut self, batch: &PacketBatch) -> usize {
        let mut sent = 0;
        let mut i = 0;
        while i < batch.len() {
            let t = batch.sock(i);
            let mut j = i + 1;
            while j < batch.len() && batch.sock(j) == t {
                j += 1;
            }
            if let Some(s) = self.socks.get(t) {
                sent += self
                    .sender
                    .send(s, j - i, |k| batch.get(i + k))
                    .unwrap_or(0);
            }
            i = j;
        }
        sent
    }

    fn recv(&mut self, f: &mut dyn FnMut(SockToken, SocketAddr, &[u8])) {
        // SAFETY: the events buffer is valid for its length; timeout 0.
        let n = unsafe {
            libc::epoll_wait(
                self.ep.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                0,
            )
        };
        for k in 0..n.max(0) as usize {
            let t = self.events[k].u64 as SockToken;
            let Some(s) = self.socks.get(t) else { continue };
            // Level-triggered: what one recvmmsg leaves waiting is reported
            // again at the next tick.
            loop {
                let got = crate::recv(s, &mut self.inbox).unwrap_or(0);
                for i in 0..got {
                    let (data, src) = self.inbox.get(i);
                    f(t, src, data);
                }
                if got < 64 {
                    break;
                }
            }
        }
    }

    fn name(&self) -> &'static str {
        "epoll"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genki_media::mux::{Binding, MediaMux, StreamConfig};
    use genki_media::Law;
    use std::time::{Duration, Instant};

    /// Both implementations: a socket per stream, each packet leaves from
    /// its stream's socket, replies come back with the right token, and a
    /// closed socket's token is not reported again.
    fn sockets_per_stream(mut io: Box<dyn MediaIo>) {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let peer_addr = peer.local_addr().unwrap();
        let mut mux = MediaMux::new();
        let mut locals = vec![];
        let t0 = Instant::now();
        for id in 0..3u64 {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            locals.push(s.local_addr().unwrap());
            let t = io.register(s).unwrap();
            let mut c = StreamConfig::new(peer_addr, Law::Ulaw, 0, None);
            c.ssrc = id as u32;
            mux.add(id, Binding::Own(t), c, t0).unwrap();
        }
        let mut batch = PacketBatch::new(16);
        mux.poll_transmit(t0, Duration::ZERO, &mut batch);
        assert_eq!(batch.len(), 3);
        assert_eq!(io.send(&batch), 3, "{}", io.name());
        let mut froms = vec![];
        let mut buf = [0u8; 512];
        for _ in 0..3 {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(n, 172);
            froms.push(from);
            // Answer each from the peer: a reply per socket.
            peer.send_to(b"pong", from).unwrap();
        }
        froms.sort();
        let mut want = locals.clone();
        want.sort();
        assert_eq!(froms, want, "each stream sends from its own port");
        let mut got = vec![];
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.len() < 3 && Instant::now() < deadline {
            io.recv(&mut |t, src, data| {
                assert_eq!(src, peer_addr);
                assert_eq!(data, b"pong");
                got.push(t);
            });
            std::thread::sleep(Duration::from_millis(1));
        }
        got.sort();
        assert_eq!(got, vec![0, 1, 2], "{}", io.name());
        // Close token 1: what arrives at its old port is never reported.
        io.deregister(1);
        for _ in 0..20 {
            io.recv(&mut |t, _, _| panic!("nothing was sent, got {t}"));
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = peer.send_to(b"late", locals[1]);
        peer.send_to(b"again", locals[2]).unwrap();
        let mut after = vec![];
        let deadline = Instant::now() + Duration::from_secs(2);
        while after.is_empty() && Instant::now() < deadline {
            io.recv(&mut |t, _, data| after.push((t, data.to_vec())));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(after, vec![(2, b"again".to_vec())], "{}", io.name());
        // The freed token is given to the next socket.
        let t = io
            .register(UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        assert_eq!(t, 1);
    }

    /// More datagrams at once than io_uring's buffer ring holds (4,096),
    /// then steady traffic: every datagram is handed out exactly once.
    fn bursts_larger_than_the_buffers(mut io: Box<dyn MediaIo>) {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut addrs = vec![];
        for _ in 0..50 {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            addrs.push(s.local_addr().unwrap());
            io.register(s).unwrap();
        }
        let mut got = vec![0u32; 50];
        let drain = |io: &mut Box<dyn MediaIo>, want: u32, got: &mut Vec<u32>| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while got.iter().sum::<u32>() < want && Instant::now() < deadline {
                io.recv(&mut |t, _, data| {
                    assert_eq!(data.len(), 100);
                    got[t as usize] += 1;
                });
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        // 5,000 at once (100 a socket, within each socket's own buffer).
        for _ in 0..100 {
            for a in &addrs {
                peer.send_to(&[7u8; 100], a).unwrap();
            }
        }
        drain(&mut io, 5000, &mut got);
        assert!(got.iter().all(|n| *n == 100), "{} {got:?}", io.name());
        for _ in 0..20 {
            for a in &addrs {
                peer.send_to(&[7u8; 100], a).unwrap();
            }
            drain(&mut io, 0, &mut got);
        }
        drain(&mut io, 6000, &mut got);
        assert!(got.iter().all(|n| *n == 120), "{} {got:?}", io.name());
    }

    /// Datagrams that reached a socket before it was registered (a peer
    /// starts sending as soon as it answers) are handed out at once.
    fn queued_before_registration(mut io: Box<dyn MediaIo>) {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        for _ in 0..3 {
            peer.send_to(b"early", addr).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        io.register(s).unwrap();
        let mut got = 0;
        let start = Instant::now();
        while got < 3 && start.elapsed() < Duration::from_millis(500) {
            io.recv(&mut |_, _, _| got += 1);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(got, 3, "{}", io.name());
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "{} took {:?}",
            io.name(),
            start.elapsed()
        );
    }

    #[test]
    fn queued_before_registration_epoll() {
        queued_before_registration(open(IoKind::Epoll).unwrap());
    }

    #[test]
    fn queued_before_registration_io_uring() {
        if let Ok(u) = crate::uring::UringIo::new() {
            queued_before_registration(Box::new(u));
        }
    }

    #[test]
    fn bursts_epoll() {
        bursts_larger_than_the_buffers(open(IoKind::Epoll).unwrap());
    }

    #[test]
    fn bursts_io_uring() {
        if let Ok(u) = crate::uring::UringIo::new() {
            bursts_larger_than_the_buffers(Box::new(u));
        }
    }

    #[test]
    fn epoll_sockets_per_stream() {
        sockets_per_stream(open(IoKind::Epoll).unwrap());
    }

    #[test]
    fn io_uring_sockets_per_stream() {
        match crate::uring::UringIo::new() {
            Ok(u) => sockets_per_stream(Box::new(u)),
            // A kernel or seccomp policy without io_uring: Auto must still work.
            Err(e) => {
                eprintln!("io_uring unavailable here ({e}); checking the fallback");
                assert_eq!(open(IoKind::Auto).unwrap().name(), "epoll");
            }
        }
    }
}
