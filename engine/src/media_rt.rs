//! The daemon's media runtime: a few worker threads, each owning one RTP
//! socket and a [`MediaMux`] with every stream of its calls.
//!
//! Why: one socket and one task per call cost a system call and a task
//! wake-up per packet each way (measured: at 2,000 calls, 62 % of genki's
//! CPU was in the kernel's per-datagram paths and tokio's IO wake-ups,
//! and RTP left up to 112 ms late). A worker instead wakes once a
//! millisecond, sends every packet due within the next millisecond in one
//! `sendmmsg`, drains its socket with `recvmmsg`, and reports digits and
//! playout ends to the call tasks over channels. Calls share the worker's
//! local port (SDP offers it); incoming packets are matched to calls by
//! their source address, the address the peer's SDP answer named.
//!
//! Depends on: genki-media (mux), genki-udp (batched IO and the worker loop), genki-sip (SDP),
//! [`crate::metrics`], std threads and channels, tokio's mpsc for events
//! (call tasks are async).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use genki_media::mux::{Lateness, MuxEvent, StreamConfig, StreamId};
use genki_media::{DtmfTransport, Law, Prompt};
use genki_sip::sdp::{Codec, MediaDescription, SdpError};
use genki_udp::worker::{self, EventSink};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// How often a worker wakes, and how early it may send a packet.
pub const TICK: Duration = Duration::from_millis(1);

/// What a call hears from its media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit(char, DtmfTransport),
    PlayFinished,
}

/// Events go straight into the call task's channel.
struct Sink(mpsc::UnboundedSender<MediaEvent>);

impl EventSink for Sink {
    fn deliver(&self, e: MuxEvent) {
        let ev = match e {
            MuxEvent::Digit {
                digit, transport, ..
            } => MediaEvent::Digit(digit, transport),
            MuxEvent::PlayFinished { .. } => MediaEvent::PlayFinished,
        };
        let _ = self.0.send(ev);
    }
}

type Cmd = worker::Cmd<Sink>;

struct Worker {
    tx: std_mpsc::Sender<Cmd>,
    local: SocketAddr,
}

/// The media workers of one daemon.
pub struct MediaRuntime {
    workers: Vec<Worker>,
    next: AtomicUsize,
    ids: AtomicU64,
}

/// Why the media runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port in {range} on {ip} for media worker {worker}")]
    NoPort {
        ip: IpAddr,
        range: String,
        worker: usize,
    },
    #[error("cannot start a media worker: {0}")]
    Thread(std::io::Error),
}

/// A call's place on a worker: the local address to offer in SDP.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    worker: usize,
    pub local: SocketAddr,
    /// The SSRC this call's stream sends with (declared in the offer).
    pub ssrc: u32,
}

/// A call's stream; removed from its worker when dropped.
pub struct CallMedia {
    rt: Arc<MediaRuntime>,
    worker: usize,
    id: StreamId,
    pub codec: Codec,
    pub remote: SocketAddr,
}

impl CallMedia {
    pub fn play(&self, p: Prompt) {
        let _ = self.rt.workers[self.worker].tx.send(Cmd::Play(self.id, p));
    }
    pub fn stop_playout(&self) {
        let _ = self.rt.workers[self.worker]
            .tx
            .send(Cmd::StopPlayout(self.id));
    }
    pub fn codec_name(&self) -> &'static str {
        match self.codec {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        let _ = self.rt.workers[self.worker].tx.send(Cmd::Remove {
            id: self.id,
            reply: None,
        });
    }
}

impl MediaRuntime {
    /// Start `workers` threads, each on the first free even port of `ports`.
    pub fn start(
        ip: IpAddr,
        ports: &RangeInclusive<u16>,
        workers: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<MediaRuntime>, MediaError> {
        let mut out = Vec::new();
        let mut port = *ports.start() + *ports.start() % 2;
        for w in 0..workers.max(1) {
            let sock = loop {
                if port > *ports.end() {
                    return Err(MediaError::NoPort {
                        ip,
                        range: format!("{}-{}", ports.start(), ports.end()),
                        worker: w,
                    });
                }
                let p = port;
                port += 2;
                if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, p)) {
                    break s;
                }
            };
            sock.set_nonblocking(true).map_err(MediaError::Thread)?;
            let local = sock.local_addr().map_err(MediaError::Thread)?;
            let (tx, rx) = std_mpsc::channel();
            let m = metrics.clone();
            std::thread::Builder::new()
                .name(format!("genki-media-{w}"))
                .spawn(move || {
                    let m2 = m.clone();
                    worker::run(
                        sock,
                        rx,
                        TICK,
                        |mux| {
                            let l = mux.lateness.take();
                            m.rtp_send_lateness
                                .record_buckets(&l.buckets, Lateness::BUCKET_US);
                            m.rtp_unknown_source
                                .add(std::mem::take(&mut mux.unknown_source));
                        },
                        |s| {
                            m2.rtp_sent.add(s.sent);
                            m2.rtp_received.add(s.received);
                            m2.rtp_malformed.add(s.malformed);
                        },
                    )
                })
                .map_err(MediaError::Thread)?;
            out.push(Worker { tx, local });
        }
        Ok(Arc::new(MediaRuntime {
            workers: out,
            next: AtomicUsize::new(0),
            ids: AtomicU64::new(1),
        }))
    }

    /// Where the next call's media goes (round-robin over workers).
    pub fn reserve(&self) -> Slot {
        let w = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        Slot {
            worker: w,
            local: self.workers[w].local,
            ssrc: rand::random(),
        }
    }

    /// Negotiate from the SDP answer and start the call's stream on its
    /// worker. Events (digits, playout ends) arrive on the returned receiver.
    pub fn attach(
        self: &Arc<Self>,
        slot: Slot,
        sdp_answer: &[u8],
    ) -> Result<(CallMedia, mpsc::UnboundedReceiver<MediaEvent>), SdpError> {
        let n = MediaDescription::parse(sdp_answer)?.negotiate_answer()?;
        let law = match n.codec {
            Codec::Pcmu => Law::Ulaw,
            Codec::Pcma => Law::Alaw,
        };
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let cfg = StreamConfig {
            remote: n.remote,
            law,
            payload_type: n.payload_type,
            telephone_event: n.telephone_event,
            remote_ssrc: n.ssrc,
            ssrc: slot.ssrc,
            seq: rand::random(),
            ts: rand::random(),
            detect_inband: true,
        };
        let _ = self.workers[slot.worker].tx.send(Cmd::Add {
            id,
            cfg,
            events: Sink(tx),
        });
        Ok((
            CallMedia {
                rt: self.clone(),
                worker: slot.worker,
                id,
                codec: n.codec,
                remote: n.remote,
            },
            rx,
        ))
    }
}
