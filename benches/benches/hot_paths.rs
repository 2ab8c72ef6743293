//! Hot paths of a call, per operation: SIP parse and serialize, a client
//! INVITE transaction's life, RTP packetisation, the media mux pacing
//! 2,000 streams for one 1 ms tick, G.711, and the in-band DTMF detector
//! per 20 ms frame. Run: `cargo bench -p genki-benches --bench hot_paths`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use genki_media::dtmf::{tone, InbandDetector};
use genki_media::mux::{Binding, MediaMux, PacketBatch, StreamConfig};
use genki_media::rtp::RtpSender;
use genki_media::{g711, listen, Law, Prompt};
use genki_sip::message::{Builder, Message, Method};
use genki_sip::transaction::ClientInvite;
use genki_sip::Timers;

const SDP: &str = "v=0\r\no=genki 1 1 IN IP4 127.0.0.1\r\ns=genki\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";

/// A typical INVITE as genki sends it.
fn invite() -> Vec<u8> {
    format!(
        "INVITE sip:1001@127.0.0.1:5080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:1001@127.0.0.1:5080>\r\n\
From: <sip:genki@127.0.0.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@genki\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:genki@127.0.0.1:5060>\r\n\
User-Agent: genki/0.1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

fn response(status: u16, to_tag: bool) -> Message {
    let inv = Message::parse(&invite()).unwrap();
    let b = Builder::response_to(
        &inv,
        status,
        genki_sip::message::reason_phrase(status),
        to_tag.then_some("as83kd"),
    );
    Message::parse(&b.build()).unwrap()
}

fn sip(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    let inv = invite();
    g.bench_function("parse INVITE", |b| {
        b.iter(|| Message::parse(black_box(&inv)).unwrap())
    });
    g.bench_function("serialize INVITE", |b| {
        b.iter(|| {
            Builder::request(&Method::Invite, "sip:1001@127.0.0.1:5080")
                .header(
                    "Via",
                    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds;rport",
                )
                .header("Max-Forwards", "70")
                .header("To", "<sip:1001@127.0.0.1:5080>")
                .header("From", "<sip:genki@127.0.0.1>;tag=1928301774")
                .header("Call-ID", "a84b4c76e66710@genki")
                .header("CSeq", "1 INVITE")
                .header("Contact", "<sip:genki@127.0.0.1:5060>")
                .body("application/sdp", SDP.as_bytes())
                .build()
        })
    });
    let (ringing, ok) = (response(180, true), response(200, true));
    g.bench_function("client INVITE transaction life (send, 180, 200)", |b| {
        b.iter(|| {
            let now = Instant::now();
            // The UAC checks that what it sends parses.
            black_box(Message::parse(&inv).unwrap());
            let mut t = ClientInvite::new(inv.clone(), Timers::default(), now);
            black_box(t.poll_transmit());
            t.handle_response(ringing.clone(), now);
            t.handle_response(ok.clone(), now);
            while let Some(e) = t.poll_event() {
                black_box(e);
            }
        })
    });
    g.finish();
}

fn media(c: &mut Criterion) {
    let mut g = c.benchmark_group("media");
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i * 397) % 20000 - 10000) as i16)
        .collect();
    g.throughput(Throughput::Elements(160));
    g.bench_function("G.711 µ-law encode 20 ms", |b| {
        b.iter(|| {
            pcm.iter()
                .map(|s| g711::ulaw_encode(*s) as u32)
                .sum::<u32>()
        })
    });
    let coded: Vec<u8> = pcm.iter().map(|s| g711::ulaw_encode(*s)).collect();
    g.bench_function("G.711 µ-law decode 20 ms", |b| {
        b.iter(|| {
            coded
                .iter()
                .map(|u| g711::ulaw_decode(*u) as i32)
                .sum::<i32>()
        })
    });
    g.throughput(Throughput::Elements(1));
    let frame: Vec<i16> = tone('5', 20, 6000.0, 0.0);
    let mut det = InbandDetector::default();
    g.bench_function("in-band DTMF detector, one 20 ms frame", |b| {
        b.iter(|| det.feed(black_box(&frame)))
    });
    // Listening (who answered): a frame of silence, of voice, of a tone.
    for (name, pcm) in [
        (
            "listen: one 20 ms frame of silence",
            listen::synth::quiet(20_000),
        ),
        (
            "listen: one 20 ms frame of voice",
            listen::synth::voice(-20.0, 80, 7),
        ),
        (
            "listen: one 20 ms frame of ringback",
            listen::synth::ringback_jp(-20.0, 7),
        ),
    ] {
        let mut l = listen::Listener::default();
        let frames: Vec<&[i16]> = pcm.chunks(160).filter(|f| f.len() == 160).collect();
        let t0 = Instant::now();
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                l.feed(
                    black_box(frames[i % frames.len()]),
                    t0 + Duration::from_millis(20 * i as u64),
                );
                while l.poll().is_some() {}
            })
        });
    }
    let prompt = Prompt::from_pcm("p", &vec![1000i16; 8000 * 60]);
    let mut s = RtpSender::new(1, 1, 1, Law::Ulaw, 0);
    let mut buf = [0u8; 256];
    let t0 = Instant::now();
    s.start(t0);
    s.play(prompt);
    let mut t = t0;
    g.bench_function("RTP packetise one 20 ms prompt frame", |b| {
        b.iter(|| {
            t += Duration::from_millis(20);
            s.poll_transmit(t, &mut buf)
        })
    });
    // 2,000 streams spread over 20 ms: one 1 ms tick sends ~100 packets.
    let mut mux = MediaMux::new();
    let t0 = Instant::now();
    for i in 0..2000u64 {
        let mut cfg = StreamConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 30000 + (i as u16) * 2)),
            Law::Ulaw,
            0,
            Some(101),
        );
        cfg.ssrc = i as u32;
        // Each stream on its own socket, as in the daemon.
        mux.add(
            i,
            Binding::Own(i as u32),
            cfg,
            t0 + Duration::from_micros(i * 10),
        )
        .unwrap();
    }
    let mut batch = PacketBatch::new(1024);
    let mut now = t0;
    g.throughput(Throughput::Elements(100));
    g.bench_function("mux: 2,000 streams, one 1 ms tick (~100 packets)", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            mux.poll_transmit(now, Duration::from_millis(1), &mut batch);
            batch.len()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = sip, media
}
criterion_main!(benches);
