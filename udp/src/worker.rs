//! The media worker loop shared by genki's daemon and the simulated
//! phones: one thread, one socket, one [`MediaMux`]; every tick it applies
//! commands, sends every packet due within the tick in one `sendmmsg`,
//! drains the socket with `recvmmsg`, and hands events to their streams'
//! owners. Between ticks it sleeps; packets wait in the socket buffer, so
//! wake-ups do not grow with the packet rate.
//!
//! Depends on: genki-media (the mux), [`crate`] (batched IO), std.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use genki_media::mux::{MediaMux, MuxEvent, PacketBatch, StreamConfig, StreamId, StreamStats};
use genki_media::Prompt;

/// Where a stream's events go (a channel to its call task).
pub trait EventSink: Send + 'static {
    fn deliver(&self, event: MuxEvent);
}

/// Called with a removed stream's counters (e.g. to fill a oneshot).
pub type Reply = Box<dyn FnOnce(StreamStats) + Send>;

/// What a worker's owner asks of it.
pub enum Cmd<E> {
    Add {
        id: StreamId,
        cfg: StreamConfig,
        events: E,
    },
    Play(StreamId, Prompt),
    StopPlayout(StreamId),
    /// Press a key: RFC 4733 events when negotiated and not `inband_only`,
    /// else `tone` played as audio.
    Digit {
        id: StreamId,
        digit: char,
        duration: Duration,
        tone: Prompt,
        inband_only: bool,
    },
    /// Remove a stream; its counters go to `reply` (or to `on_removed`).
    Remove {
        id: StreamId,
        reply: Option<Reply>,
    },
}

/// Run until the command channel closes and every stream is removed.
/// `tick` is the wake-up period (packets may leave up to one tick early);
/// `on_second` runs about once a second with the mux (to drain lateness
/// counters); `on_removed` gets the counters of streams removed without a reply.
pub fn run<E: EventSink>(
    sock: UdpSocket,
    rx: Receiver<Cmd<E>>,
    tick: Duration,
    mut on_second: impl FnMut(&mut MediaMux),
    mut on_removed: impl FnMut(&StreamStats),
) {
    // Room for ~40 ms of 2,000 calls' packets between ticks.
    let _ = crate::set_buffers(&sock, 8 << 20);
    let mut mux = MediaMux::new();
    let mut sinks: HashMap<StreamId, E> = HashMap::new();
    let mut out = PacketBatch::new(1024);
    let mut inbox = crate::RecvBatch::new(256);
    let mut sender = crate::Sender::new();
    let mut last_second = Instant::now();
    let mut open = true;
    loop {
        let mut apply = |c: Cmd<E>, mux: &mut MediaMux| match c {
            Cmd::Add { id, cfg, events } => {
                if mux.add(id, cfg, Instant::now()).is_ok() {
                    sinks.insert(id, events);
                }
            }
            Cmd::Play(id, p) => {
                mux.play(id, p);
            }
            Cmd::StopPlayout(id) => mux.stop_playout(id),
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
                Ok(c) => apply(c, &mut mux),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(c) => apply(c, &mut mux),
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
            let _ = sender.send(&sock, out.len(), |i| out.get(i));
            if !out.is_full() {
                break;
            }
        }
        loop {
            match crate::recv(&sock, &mut inbox) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let at = Instant::now();
                    for i in 0..n {
                        let (data, src) = inbox.get(i);
                        mux.handle_datagram(src, data, at);
                    }
                    if n < 256 {
                        break;
                    }
                }
            }
        }
        while let Some(e) = mux.poll_event() {
            let id = match &e {
                MuxEvent::Digit { id, .. } | MuxEvent::PlayFinished { id } => *id,
            };
            if let Some(sink) = sinks.get(&id) {
                sink.deliver(e);
            }
        }
        if last_second.elapsed() >= Duration::from_secs(1) {
            last_second = Instant::now();
            on_second(&mut mux);
        }
        let spent = now.elapsed();
        if spent < tick {
            std::thread::sleep(tick - spent);
        }
    }
}
