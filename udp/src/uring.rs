//! [`MediaIo`] on `io_uring(7)`: the sends of a tick and the receive
//! re-arms of every socket reach the kernel in one submission, and
//! completions are read from memory shared with the kernel, so a worker
//! with a socket per call still makes a few system calls per tick instead
//! of one per packet.
//!
//! Each socket has one `IORING_OP_RECVMSG` in the kernel at a time, into
//! a buffer of its own (boxed: its address must not move while the kernel
//! holds it); a completed receive is handed out at the next [`MediaIo::recv`]
//! and re-armed. Sends use `IORING_OP_SEND` with a destination address
//! (Linux 6.0); [`MediaIo::send`] waits for their completions (UDP sends
//! normally complete during the submission itself) so the caller may
//! reuse the batch. Closing a socket cancels its receive first, and the
//! socket and buffer are freed only when the kernel has given them back.
//!
//! Written on the `io-uring` crate (the ring, opcodes); the socket address
//! conversions are genki-udp's own.
//!
//! Depends on: io-uring, libc, genki-media (the batch), [`crate::sockets`].

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use genki_media::mux::{PacketBatch, SockToken};
use io_uring::{opcode, squeue, types, IoUring};

use crate::sockets::{MediaIo, Slab};

const RECV: u64 = 1 << 62;
const SEND: u64 = 2 << 62;
const CANCEL: u64 = 3 << 62;
const KIND: u64 = 3 << 62;

/// Largest datagram a socket receives whole (larger ones are dropped as
/// truncated): G.711 at 120 ms packets is 972 bytes.
const RECV_BUF: usize = 2048;

/// The receive state the kernel writes into; boxed so it never moves.
struct RecvState {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
    buf: [u8; RECV_BUF],
}

struct Sock {
    sock: UdpSocket,
    st: Box<RecvState>,
    /// A receive is in the kernel.
    armed: bool,
    /// Deregistered: free when the kernel gives the receive back.
    closing: bool,
}

/// io_uring-based media IO.
pub struct UringIo {
    // Declared first: dropped (and the kernel's requests torn down) before
    // the buffers they point into.
    ring: IoUring,
    socks: Slab<Sock>,
    send_addrs: Vec<libc::sockaddr_storage>,
    /// Completed receives not yet handed out: (token, result, msg flags).
    ready: Vec<(SockToken, i32, u32)>,
    rearm: Vec<SockToken>,
    sends_in_flight: usize,
}

// SAFETY: the raw pointers inside RecvState point into the same boxed
// value; the ring and every buffer move together with the owner thread.
unsafe impl Send for UringIo {}

impl UringIo {
    pub fn new() -> io::Result<UringIo> {
        let ring = IoUring::builder()
            .setup_cqsize(16384)
            .setup_coop_taskrun()
            .setup_single_issuer()
            .build(4096)
            .or_else(|_| IoUring::builder().setup_cqsize(16384).build(4096))?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for code in [
            opcode::RecvMsg::CODE,
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
        Ok(UringIo {
            ring,
            socks: Slab::default(),
            send_addrs: Vec::new(),
            ready: Vec::new(),
            rearm: Vec::new(),
            sends_in_flight: 0,
        })
    }

    /// Push an entry, submitting first when the queue is full.
    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every entry points at memory that stays valid until
            // its completion (boxed receive state, the caller's batch, the
            // send address array, which is not resized while sends fly).
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
        let st = &mut *s.st;
        st.iov = libc::iovec {
            iov_base: st.buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: RECV_BUF,
        };
        st.hdr.msg_name = &mut st.addr as *mut _ as *mut libc::c_void;
        st.hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        st.hdr.msg_iov = &mut st.iov;
        st.hdr.msg_iovlen = 1;
        st.hdr.msg_control = std::ptr::null_mut();
        st.hdr.msg_controllen = 0;
        st.hdr.msg_flags = 0;
        let e = opcode::RecvMsg::new(types::Fd(s.sock.as_raw_fd()), &mut st.hdr)
            .build()
            .user_data(RECV | t as u64);
        s.armed = true;
        self.push(e);
    }

    /// Read every completion: sends are counted, receives queued in `ready`.
    fn reap(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        for c in &mut cq {
            let ud = c.user_data();
            match ud & KIND {
                SEND => self.sends_in_flight = self.sends_in_flight.saturating_sub(1),
                RECV => {
                    let t = (ud & !KIND) as SockToken;
                    let closing = match self.socks.get_mut(t) {
                        Some(s) => {
                            s.armed = false;
                            s.closing
                        }
                        None => continue,
                    };
                    if closing {
                        self.socks.remove(t);
                    } else {
                        let flags = self.socks.get(t).map_or(0, |s| s.st.hdr.msg_flags as u32);
                        self.ready.push((t, c.result(), flags));
                    }
                }
                _ => {}
            }
        }
    }
}

impl MediaIo for UringIo {
    fn register(&mut self, sock: UdpSocket) -> io::Result<SockToken> {
        sock.set_nonblocking(true)?;
        let st = Box::new(RecvState {
            // SAFETY: all-zero msghdr / sockaddr_storage are valid values.
            hdr: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: unsafe { std::mem::zeroed() },
            buf: [0; RECV_BUF],
        });
        let t = self.socks.insert(Sock {
            sock,
            st,
            armed: false,
            closing: false,
        });
        self.arm(t);
        let _ = self.ring.submit();
        Ok(t)
    }

    fn deregister(&mut self, t: SockToken) {
        let Some(s) = self.socks.get_mut(t) else {
            return;
        };
        if s.armed {
            s.closing = true;
            let e = opcode::AsyncCancel::new(RECV | t as u64)
                .build()
                .user_data(CANCEL);
            self.push(e);
            let _ = self.ring.submit();
        } else {
            self.ready.retain(|r| r.0 != t);
            self.socks.remove(t);
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
            let Some(s) = self.socks.get(batch.sock(i)) else {
                continue;
            };
            let fd = s.sock.as_raw_fd();
            let (bytes, dest) = batch.get(i);
            let len = crate::to_sockaddr(&dest, &mut self.send_addrs[i]);
            let e = opcode::Send::new(types::Fd(fd), bytes.as_ptr(), bytes.len() as u32)
                .dest_addr(&self.send_addrs[i] as *const _ as *const libc::sockaddr)
                .dest_addr_len(len)
                .build()
                .user_data(SEND);
            self.push(e);
            queued += 1;
        }
        self.sends_in_flight += queued;
        let _ = self.ring.submit();
        self.reap();
        // UDP sends complete during the submission unless a socket buffer
        // is full; then wait (bounded by the kernel draining it).
        while self.sends_in_flight > 0 {
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            self.reap();
        }
        queued
    }

    fn recv(&mut self, f: &mut dyn FnMut(SockToken, SocketAddr, &[u8])) {
        self.reap();
        let mut ready = std::mem::take(&mut self.ready);
        for &(t, res, flags) in &ready {
            let Some(s) = self.socks.get(t) else { continue };
            if res >= 0 && flags & libc::MSG_TRUNC as u32 == 0 {
                if let Some(src) = crate::from_sockaddr(&s.st.addr) {
                    f(t, src, &s.st.buf[..res as usize]);
                }
            }
            self.rearm.push(t);
        }
        ready.clear();
        self.ready = ready;
        let rearm = std::mem::take(&mut self.rearm);
        for &t in &rearm {
            self.arm(t);
        }
        self.rearm = rearm;
        self.rearm.clear();
        let _ = self.ring.submit();
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }
}

impl Drop for UringIo {
    fn drop(&mut self) {
        // Give the kernel's receives back before their buffers are freed.
        let armed: Vec<SockToken> = (0..self.socks_len())
            .filter(|&t| self.socks.get(t).is_some_and(|s| s.armed))
            .collect();
        for t in &armed {
            if let Some(s) = self.socks.get_mut(*t) {
                s.closing = true;
            }
            let e = opcode::AsyncCancel::new(RECV | *t as u64)
                .build()
                .user_data(CANCEL);
            self.push(e);
        }
        let _ = self.ring.submit();
        for _ in 0..100 {
            self.reap();
            if (0..self.socks_len()).all(|t| self.socks.get(t).is_none_or(|s| !s.armed)) {
                break;
            }
            let _ = self.ring.submitter().submit_with_args(
                1,
                &types::SubmitArgs::new().timespec(&types::Timespec::new().nsec(10_000_000)),
            );
        }
    }
}

impl UringIo {
    fn socks_len(&self) -> SockToken {
        self.socks.len() as SockToken
    }
}
