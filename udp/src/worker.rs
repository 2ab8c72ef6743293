//! The media worker loop shared by genki's daemon and the simulated
//! phones: one thread, one [`MediaMux`], many sockets behind one
//! [`MediaIo`]. Every tick it applies commands, sends every packet due
//! within the tick (each from its stream's socket) in one batch, takes
//! every waiting datagram, and hands events to their streams' owners.
//! Between ticks it sleeps; packets wait in the socket buffers (or in the
//! kernel's io_uring completions), so wake-ups do not grow with the
//! packet rate.
//!
//! A stream either brings its own socket ([`Cmd::Add`] with `sock`: the
//! daemon, one local port per call) or shares the worker's one shared
//! socket (the simulated phones, one media address for all their calls).
//!
//! Depends on: genki-media (the mux), [`crate::sockets`] (sockets), std.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use genki_media::mux::{
    Binding, MediaMux, MuxEvent, PacketBatch, SockToken, StreamConfig, StreamId, StreamStats,
};
use genki_media::Prompt;

use crate::sockets::MediaIo;

/// Where a stream's events go (a channel to its call task).
pub trait EventSink: Send + 'static {
    fn deliver(&self, event: MuxEvent);
    /// The stream could not be set up (the worker drops the sink next).
    fn setup_failed(&self, _why: &str) {}
    /// The stream could not follow its peer to a new address (another
    /// stream on the shared socket receives from it); it keeps the old one.
    fn retarget_failed(&self, _why: &str) {}
}

/// Called with a removed stream's counters (e.g. to fill a oneshot).
pub type Reply = Box<dyn FnOnce(StreamStats) + Send>;

/// What a worker's owner asks of it.
pub enum Cmd<E> {
    /// Start a stream: on `sock` (its own socket, which the worker then
    /// owns and closes) or, with `None`, on the worker's shared socket.
    Add {
        id: StreamId,
        cfg: StreamConfig,
        sock: Option<UdpSocket>,
        events: E,
    },
    Play(StreamId, Prompt),
    StopPlayout(StreamId),
    /// The call was answered after early media: stop capturing, arm the
    /// media timeout ([`MediaMux::answered`]).
    Answered(StreamId, Option<genki_media::mux::MediaTimeout>),
    /// Keep the next bytes of the peer's audio ([`MediaMux::record`]).
    Record(StreamId, usize),
    /// The peer moved its media ([`MediaMux::retarget`]).
    Retarget {
        id: StreamId,
        remote: std::net::SocketAddr,
        remote_ssrc: Option<u32>,
    },
    /// Press a key: RFC 4733 events when negotiated and not `inband_only`,
    /// else `tone` played as audio.
    Digit {
        id: StreamId,
        digit: char,
        duration: Duration,
        tone: Prompt,
        inband_only: bool,
    },
    /// Remove a stream (closing its own socket); its counters go to
    /// `reply` (or to `on_removed`).
    Remove {
        id: StreamId,
        reply: Option<Reply>,
    },
}

/// Run until the command channel closes and every stream is removed.
/// `shared` is the socket streams without their own share (if any);
/// `tick` is the wake-up period (packets may leave up to one tick early);
/// `rest` is the least the worker sleeps every tick even when it is behind
/// (a worker at real-time priority, [`crate::set_realtime`], would
/// otherwise hold its core for as long as it has work; zero for a worker
/// under the default scheduler, which the kernel shares out anyway);
/// `on_second` runs about once a second with the mux (to drain counters);
/// `on_removed` gets the counters of streams removed without a reply.
pub fn run<E: EventSink>(
    mut io: Box<dyn MediaIo>,
    shared: Option<UdpSocket>,
    rx: Receiver<Cmd<E>>,
    tick: Duration,
    rest: Duration,
    mut on_second: impl FnMut(&mut MediaMux),
    mut on_removed: impl FnMut(&StreamStats),
) {
    let shared_token: Option<SockToken> = shared.and_then(|s| {
        // Room for ~40 ms of 2,000 calls' packets between ticks.
        let _ = crate::set_buffers(&s, 8 << 20);
        io.register(s).ok()
    });
    let mut mux = MediaMux::new();
    let mut sinks: HashMap<StreamId, E> = HashMap::new();
    // Own sockets: which stream each belongs to, and back.
    let mut owner: HashMap<SockToken, StreamId> = HashMap::new();
    let mut own: HashMap<StreamId, SockToken> = HashMap::new();
    let mut out = PacketBatch::new(1024);
    let mut last_second = Instant::now();
    let mut open = true;
    loop {
        let mut apply = |c: Cmd<E>, mux: &mut MediaMux, io: &mut Box<dyn MediaIo>| match c {
            Cmd::Add {
                id,
                cfg,
                sock,
                events,
            } => {
                let binding = match sock {
                    Some(s) => match io.register(s) {
                        Ok(t) => Ok(Binding::Own(t)),
                        Err(e) => Err(format!("cannot watch the call's RTP socket: {e}")),
                    },
                    None => shared_token
                        .map(Binding::Shared)
                        .ok_or_else(|| "this worker has no shared socket".to_string()),
                };
                let added = binding.and_then(|b| {
                    mux.add(id, b, cfg, Instant::now()).map(|_| b).map_err(|e| {
                        if let Binding::Own(t) = b {
                            io.deregister(t);
                        }
                        e.to_string()
                    })
                });
                match added {
                    Ok(b) => {
                        if let Binding::Own(t) = b {
                            owner.insert(t, id);
                            own.insert(id, t);
                        }
                        sinks.insert(id, events);
                    }
                    Err(why) => events.setup_failed(&why),
                }
            }
            Cmd::Play(id, p) => {
                mux.play(id, p);
            }
            Cmd::StopPlayout(id) => mux.stop_playout(id),
            Cmd::Answered(id, timeout) => {
                mux.answered(id, timeout, Instant::now());
            }
            Cmd::Record(id, bytes) => {
                mux.record(id, bytes);
            }
            Cmd::Retarget {
                id,
                remote,
                remote_ssrc,
            } => {
                match mux.retarget(id, remote, remote_ssrc) {
                    Ok(true) => {
                        // It latches afresh: hear every source again.
                        if let Some(&t) = own.get(&id) {
                            io.disconnect(t);
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        if let Some(sink) = sinks.get(&id) {
                            sink.retarget_failed(&e.to_string());
                        }
                    }
                }
            }
            Cmd::Digit {
                id,
                digit,
                duration,
                tone,
                inband_only,
            } => {
                if inband_only || !mux.send_digit(id, digit, duration) {
                    mux.play(id, tone);
                }
            }
            Cmd::Remove { id, reply } => {
                sinks.remove(&id);
                if let Some(t) = own.remove(&id) {
                    owner.remove(&t);
                    io.deregister(t);
                }
                if let Some(s) = mux.remove(id) {
                    match reply {
                        Some(r) => r(s),
                        None => on_removed(&s),
                    }
                }
            }
        };
        // Idle: block for a command (a new stream wakes the worker at once).
        if mux.is_empty() && open {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(c) => apply(c, &mut mux, &mut io),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(c) => apply(c, &mut mux, &mut io),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if mux.is_empty() {
            if !open {
                return;
            }
            continue;
        }
        let now = Instant::now();
        loop {
            mux.poll_transmit(now, tick, &mut out);
            if out.is_empty() {
                break;
            }
            io.send(&out);
            if !out.is_full() {
                break;
            }
        }
        let at = Instant::now();
        io.recv(&mut |t, src, data| {
            if Some(t) == shared_token {
                mux.handle_datagram(src, data, at);
            } else if let Some(&id) = owner.get(&t) {
                mux.handle_own_datagram(id, src, data, at);
            }
        });
        // What reached the sockets by `at` is read: only now may a stream's
        // media be judged missing up to then (after a stall of this
        // thread, the peer's packets were waiting, not absent).
        mux.read_until(at);
        while let Some(e) = mux.poll_event() {
            if let MuxEvent::Latched { id, source } = e {
                if let Some(&t) = own.get(&id) {
                    io.connect(t, source);
                }
                continue;
            }
            if let Some(sink) = sinks.get(&e.stream()) {
                sink.deliver(e);
            }
        }
        if last_second.elapsed() >= Duration::from_secs(1) {
            last_second = Instant::now();
            on_second(&mut mux);
        }
        let pause = tick.saturating_sub(now.elapsed()).max(rest);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}
