//! [`MediaIo`] on `io_uring(7)`: the sends of a tick reach the kernel in
//! one submission, and every socket's datagrams arrive through one
//! multishot receive per socket into a ring of buffers shared by all
//! sockets, so a worker with a socket per call still makes a couple of
//! system calls per tick instead of one per packet.
//!
//! Receiving: each socket has one multishot `IORING_OP_RECVMSG` (Linux
//! 6.0) that stays armed for the socket's life: each datagram lands in a
//! buffer the kernel takes from a provided-buffer ring
//! (`IORING_REGISTER_PBUF_RING`, 5.19), with its source address in front
//! of it, and a completion names the socket and the buffer. The ring is
//! set up with `DEFER_TASKRUN` (6.1): the kernel's receive work runs in
//! this thread, in a batch, when [`MediaIo::recv`] enters the kernel,
//! rather than interrupting the thread per packet. A buffer goes back to
//! the ring once its datagram has been handed out. If the ring runs dry
//! (`ENOBUFS`), or the kernel ends a multishot for another reason, the
//! socket is re-armed at the next tick.
//!
//! Sending: `IORING_OP_SEND` with a destination address (6.0);
//! [`MediaIo::send`] waits for the completions (UDP sends normally
//! complete during the submission itself), so the caller may reuse its
//! batch. Closing a socket cancels its receive first; the socket is
//! closed only when the kernel has given the receive back.
//!
//! Sockets are registered in the ring's file table (their token is their
//! slot), so no operation pays the kernel's descriptor lookup.
//!
//! Written on the `io-uring` crate (the ring, opcodes, the multishot
//! result layout); socket addresses are converted by genki-udp itself.
//!
//! Depends on: io-uring, libc, genki-media (the batch), [`crate::sockets`].

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};

use genki_media::mux::{PacketBatch, SockToken};
use io_uring::types::{BufRingEntry, RecvMsgOut};
use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::sockets::{MediaIo, Slab};

const RECV: u64 = 1 << 62;
const SEND: u64 = 2 << 62;
const CANCEL: u64 = 3 << 62;
const KIND: u64 = 3 << 62;

/// Buffers in the ring (a power of two): ~100 packets arrive per 1 ms
/// tick at 2,000 calls, so this holds 40 ticks' worth.
const BUFFERS: u16 = 4096;
/// Bytes per buffer: the multishot header (16), the source address (28)
/// and the datagram. G.711 at 120 ms packets is 972 bytes; anything larger
/// arrives truncated and is dropped.
const BUF_SIZE: usize = 1024;
/// The buffer group of the ring.
const GROUP: u16 = 0;

/// The provided-buffer ring: entries the kernel reads (page aligned) and
/// the buffers they point at.
struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    bufs: Vec<u8>,
    /// Our copy of the ring's tail (the kernel reads the shared one).
    tail: u16,
}

impl BufRing {
    fn new() -> io::Result<BufRing> {
        let layout = Layout::from_size_align(BUFFERS as usize * 16, 4096)
            .map_err(|_| io::Error::other("buffer ring layout"))?;
        // SAFETY: a non-zero, page-aligned layout.
        let entries = unsafe { alloc_zeroed(layout) } as *mut BufRingEntry;
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut r = BufRing {
            entries,
            layout,
            bufs: vec![0; BUFFERS as usize * BUF_SIZE],
            tail: 0,
        };
        for bid in 0..BUFFERS {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    /// Put buffer `bid` back (visible to the kernel after [`Self::publish`]).
    fn push(&mut self, bid: u16) {
        let i = (self.tail & (BUFFERS - 1)) as usize;
        // SAFETY: i < BUFFERS; the entry is ours until the tail passes it.
        let e = unsafe { &mut *self.entries.add(i) };
        e.set_addr(self.bufs[bid as usize * BUF_SIZE..].as_ptr() as u64);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry (the kernel's
        // layout); it is only ever stored to by this thread.
        unsafe {
            let tail = BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    fn buf(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * BUF_SIZE;
        &self.bufs[start..start + len.min(BUF_SIZE)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout.
        unsafe { dealloc(self.entries as *mut u8, self.layout) };
    }
}

struct Sock {
    sock: UdpSocket,
    /// Its slot in the ring's registered file table (the token), if it
    /// has one: operations then skip the per-operation descriptor lookup.
    fixed: bool,
    /// The peer the socket is connected to: sends to it carry no address.
    peer: Option<SocketAddr>,
    /// A multishot receive is in the kernel.
    armed: bool,
    /// Deregistered: close when the kernel gives the receive back.
    closing: bool,
}

/// How an operation names its socket.
enum Target {
    Fixed(u32),
    Fd(std::os::fd::RawFd),
}

/// io_uring-based media IO.
pub struct UringIo {
    // Declared first: dropped (and the kernel's requests torn down) before
    // the buffers they point into.
    ring: IoUring,
    bufs: BufRing,
    /// The receive header every multishot receive was armed with (only
    /// its name and control lengths matter; the kernel copies them).
    hdr: Box<libc::msghdr>,
    socks: Slab<Sock>,
    send_addrs: Vec<libc::sockaddr_storage>,
    /// Completed receives not yet handed out: (token, result, cqe flags).
    ready: Vec<(SockToken, i32, u32)>,
    /// Sockets whose multishot ended and must be armed again.
    rearm: Vec<SockToken>,
    sends_in_flight: usize,
    /// The kernel's deferred work ran in send() just now: recv() need not
    /// enter again in the same tick.
    fresh: bool,
    /// Size of the registered file table (0: none).
    files: u32,
}

// SAFETY: the raw pointers (buffer ring, msghdr) point into memory owned by
// this value, used only by the thread that owns it.
unsafe impl Send for UringIo {}

impl UringIo {
    pub fn new() -> io::Result<UringIo> {
        let ring = IoUring::builder()
            .setup_cqsize(16384)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(4096)?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for code in [
            opcode::RecvMsgMulti::CODE,
            opcode::Send::CODE,
            opcode::AsyncCancel::CODE,
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "io_uring lacks an operation genki needs",
                ));
            }
        }
        let bufs = BufRing::new()?;
        // SAFETY: the ring memory lives as long as `bufs`, which outlives
        // the registration (unregistered when the ring is dropped first).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries as u64,
                BUFFERS,
                GROUP,
                0,
            )?;
        }
        // Registered files: a table the size of the descriptor limit (the
        // most sockets the process could hold), at most 64 Ki.
        let files = (crate::raise_fd_limit().min(65536) as u32).max(1);
        let files = if ring.submitter().register_files_sparse(files).is_ok() {
            files
        } else {
            0
        };
        // SAFETY: all-zero msghdr is a valid value.
        let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        Ok(UringIo {
            ring,
            bufs,
            hdr,
            socks: Slab::default(),
            send_addrs: Vec::new(),
            ready: Vec::new(),
            rearm: Vec::new(),
            sends_in_flight: 0,
            fresh: false,
            files,
        })
    }

    /// The socket `t` as an io_uring target (its fixed slot, or its fd).
    fn target(&self, t: SockToken) -> Option<Target> {
        let s = self.socks.get(t)?;
        Some(if s.fixed {
            Target::Fixed(t)
        } else {
            Target::Fd(s.sock.as_raw_fd())
        })
    }

    /// Remove socket `t` for good: out of the file table, then closed.
    fn close(&mut self, t: SockToken) {
        if let Some(s) = self.socks.remove(t) {
            if s.fixed {
                let _ = self.ring.submitter().register_files_update(t, &[-1]);
            }
        }
    }

    /// Push an entry, submitting first when the queue is full.
    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every entry points at memory that stays valid until
            // its completion (the boxed msghdr, the buffer ring, the
            // caller's batch and the send address array, which is not
            // resized while sends are in flight).
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            let _ = self.ring.submit();
        }
    }

    fn arm(&mut self, t: SockToken) {
        let Some(s) = self.socks.get_mut(t) else {
            return;
        };
        if s.armed || s.closing {
            return;
        }
        s.armed = true;
        let e = match self.target(t) {
            Some(Target::Fixed(i)) => {
                opcode::RecvMsgMulti::new(types::Fixed(i), &*self.hdr, GROUP).build()
            }
            Some(Target::Fd(fd)) => {
                opcode::RecvMsgMulti::new(types::Fd(fd), &*self.hdr, GROUP).build()
            }
            None => return,
        };
        self.push(e.user_data(RECV | t as u64));
    }

    /// Run the kernel's deferred work and read every completion: sends
    /// are counted, receives queued in `ready`.
    fn reap(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        for c in &mut cq {
            let ud = c.user_data();
            match ud & KIND {
                SEND => self.sends_in_flight = self.sends_in_flight.saturating_sub(1),
                RECV => {
                    let t = (ud & !KIND) as SockToken;
                    let flags = c.flags();
                    let ended = !cqueue::more(flags);
                    if let Some(s) = self.socks.get_mut(t) {
                        if ended {
                            s.armed = false;
                        }
                    }
                    // Every completion carrying a buffer is handed out (or
                    // its buffer returned) in recv(); an ended multishot is
                    // re-armed or, when closing, its socket closed there.
                    self.ready.push((t, c.result(), flags));
                }
                _ => {}
            }
        }
    }

    /// Enter the kernel to submit what is queued and run its deferred
    /// work (DEFER_TASKRUN needs GETEVENTS), waiting for `want` completions.
    fn enter(&mut self, want: u32) {
        let n = self.ring.submission().len() as u32;
        // SAFETY: no argument is passed.
        let _ = unsafe {
            self.ring.submitter().enter::<libc::sigset_t>(
                n, want, 1, // IORING_ENTER_GETEVENTS
                None,
            )
        };
    }
}

impl MediaIo for UringIo {
    fn register(&mut self, sock: UdpSocket) -> io::Result<SockToken> {
        sock.set_nonblocking(true)?;
        let fd = sock.as_raw_fd();
        let t = self.socks.insert(Sock {
            sock,
            fixed: false,
            peer: None,
            armed: false,
            closing: false,
        });
        if t < self.files
            && self
                .ring
                .submitter()
                .register_files_update(t, &[fd])
                .is_ok()
        {
            if let Some(s) = self.socks.get_mut(t) {
                s.fixed = true;
            }
        }
        self.arm(t);
        Ok(t)
    }

    fn deregister(&mut self, t: SockToken) {
        let Some(s) = self.socks.get_mut(t) else {
            return;
        };
        if s.closing {
            return;
        }
        s.closing = true;
        if s.armed {
            let e = opcode::AsyncCancel::new(RECV | t as u64)
                .build()
                .user_data(CANCEL);
            self.push(e);
        } else if !self.ready.iter().any(|r| r.0 == t) {
            self.close(t);
        }
    }

    fn connect(&mut self, token: SockToken, peer: SocketAddr) {
        if let Some(s) = self.socks.get_mut(token) {
            if s.sock.connect(peer).is_ok() {
                s.peer = Some(peer);
            }
        }
    }

    fn disconnect(&mut self, token: SockToken) {
        if let Some(s) = self.socks.get_mut(token) {
            // Sends carry their address again even if this fails.
            s.peer = None;
            let _ = crate::sockets::dissolve(&s.sock);
        }
    }

    fn send(&mut self, batch: &PacketBatch) -> usize {
        let n = batch.len();
        if n == 0 {
            return 0;
        }
        // No send is in flight here, so the address array may be resized.
        // SAFETY: all-zero sockaddr_storage is a valid value.
        self.send_addrs.resize(n, unsafe { std::mem::zeroed() });
        let mut queued = 0;
        for i in 0..n {
            let (bytes, dest) = batch.get(i);
            let t = batch.sock(i);
            // To the connected peer: no address (the socket's cached route).
            let (addr, len) = if self.socks.get(t).is_some_and(|s| s.peer == Some(dest)) {
                (std::ptr::null(), 0)
            } else {
                let len = crate::to_sockaddr(&dest, &mut self.send_addrs[i]);
                (
                    &self.send_addrs[i] as *const _ as *const libc::sockaddr,
                    len,
                )
            };
            let (ptr, n) = (bytes.as_ptr(), bytes.len() as u32);
            let e = match self.target(t) {
                Some(Target::Fixed(k)) => opcode::Send::new(types::Fixed(k), ptr, n)
                    .dest_addr(addr)
                    .dest_addr_len(len)
                    .build(),
                Some(Target::Fd(fd)) => opcode::Send::new(types::Fd(fd), ptr, n)
                    .dest_addr(addr)
                    .dest_addr_len(len)
                    .build(),
                None => continue,
            };
            let e = e.user_data(SEND);
            self.push(e);
            queued += 1;
        }
        self.sends_in_flight += queued;
        self.enter(0);
        self.reap();
        // UDP sends complete during the submission unless a socket buffer
        // is full; then wait (bounded by the kernel draining it).
        while self.sends_in_flight > 0 {
            self.enter(1);
            self.reap();
        }
        self.fresh = true;
        queued
    }

    fn recv(&mut self, f: &mut dyn FnMut(SockToken, SocketAddr, &[u8])) {
        // One entry into the kernel a tick: the send's, when there was one
        // (it ran the deferred receive work too), else this one. Re-arms
        // queued below go in with the next tick's entry.
        if !std::mem::take(&mut self.fresh) || !self.ring.submission().is_empty() {
            self.enter(0);
        }
        self.reap();
        let mut ready = std::mem::take(&mut self.ready);
        let mut returned = false;
        for &(t, res, flags) in &ready {
            let closing = self.socks.get(t).is_none_or(|s| s.closing);
            if let Some(bid) = cqueue::buffer_select(flags) {
                if res > 0 && !closing {
                    let data = self.bufs.buf(bid, res as usize);
                    if let Ok(out) = RecvMsgOut::parse(data, &self.hdr) {
                        let src = out.name_data();
                        if !out.is_payload_truncated() && !out.is_name_data_truncated() {
                            if let Some(src) = crate::sockaddr_from_bytes(src) {
                                f(t, src, out.payload_data());
                            }
                        }
                    }
                }
                self.bufs.push(bid);
                returned = true;
            }
            if !cqueue::more(flags) {
                if closing {
                    self.close(t);
                } else {
                    self.rearm.push(t);
                }
            }
        }
        if returned {
            self.bufs.publish();
        }
        ready.clear();
        self.ready = ready;
        let rearm = std::mem::take(&mut self.rearm);
        for &t in &rearm {
            self.arm(t);
        }
        self.rearm = rearm;
        self.rearm.clear();
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }
}

impl Drop for UringIo {
    fn drop(&mut self) {
        // Cancel every receive; the kernel returns them before the ring
        // (and then the buffers) go away.
        let armed: Vec<SockToken> = (0..self.socks.len() as SockToken)
            .filter(|&t| self.socks.get(t).is_some_and(|s| s.armed))
            .collect();
        for t in armed {
            let e = opcode::AsyncCancel::new(RECV | t as u64)
                .build()
                .user_data(CANCEL);
            self.push(e);
        }
        self.enter(0);
    }
}
