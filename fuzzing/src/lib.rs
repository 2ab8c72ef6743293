//! genki's fuzz targets: one function per target, each taking arbitrary
//! bytes and exercising a part of genki that reads input from outside
//! (the network, the API, a file). A target must never panic, loop for
//! ever or grow without bound, whatever the bytes.
//!
//! The same functions are driven three ways: by libFuzzer through
//! cargo-fuzz on nightly (`fuzz/`, coverage-guided), by the stable
//! mutational runner `fuzz-loop` (`src/bin/fuzz-loop.rs`) where nightly is
//! not available, and by this crate's unit test, which replays every
//! committed corpus and regression input in the normal test suite.
//! `scripts/fuzz [minutes]` runs a campaign; results are in
//! docs/fuzzing.md.
//!
//! The watch script and CSV import live in the engine, whose build
//! carries RocksDB; their pure files are compiled in here by path (the
//! engine keeps them free of anything else for this reason), so that a
//! fuzz build never builds RocksDB.
//!
//! Depends on: genki-sip, genki-media, genki-store, serde_json, csv.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[path = "../../engine/src/telephony/dialogue.rs"]
#[allow(dead_code)]
mod dialogue;

/// The engine's `crate::telephony::call` as the script file names it.
mod telephony {
    pub mod call {
        pub use crate::dialogue::{Dialogue, FlowCmd};
    }
}

#[path = "../../engine/src/checks/script.rs"]
#[allow(dead_code)]
mod script;

#[path = "../../engine/src/api/csv_import.rs"]
#[allow(dead_code)]
mod csv_import;

/// Every target by name (the names of `fuzz/fuzz_targets/*.rs` and of
/// the corpus folders).
pub type Target = fn(&[u8]);

/// Every target by name.
pub const TARGETS: [(&str, Target); 9] = [
    ("sip_message", sip_message),
    ("uac_datagrams", uac_datagrams),
    ("sdp", sdp),
    ("digest", digest),
    ("media_mux", media_mux),
    ("info_body", info_body),
    ("wav", wav),
    ("csv_import", csv_import),
    ("script_flow", script_flow),
];

/// The SIP message parser (RFC 3261 §7), and what the endpoint reads of
/// a message once parsed.
pub fn sip_message(data: &[u8]) {
    if let Ok(m) = genki_sip::Message::parse(data) {
        let _ = m.method();
        let _ = m.status();
        let _ = genki_sip::endpoint::stateless_reply(&m);
    }
}

/// Split `data` into chunks: `[selector, len_hi, len_lo, bytes…]`.
fn chunks(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 3 {
            return None;
        }
        let sel = data[0];
        let len = (u16::from_be_bytes([data[1], data[2]]) as usize).min(data.len() - 3);
        let chunk = &data[3..3 + len];
        data = &data[3 + len..];
        Some((sel, chunk))
    })
}

const PEER: &str = "127.0.0.1:5080";

/// A UAC with a live call fed random datagrams from random sources: some
/// raw, some built on the live call's Call-ID, tags and INVITE branch so
/// that they reach the call's state machines; virtual time advances
/// between them. Checks: no panic, one `Ended` at most, the call ends by
/// its timers once the input runs out.
pub fn uac_datagrams(data: &[u8]) {
    use genki_sip::endpoint::Endpoint;
    use genki_sip::uac::{UacConfig, UacEvent};
    let mut now = Instant::now();
    let mut ep = Endpoint::default();
    let cfg = UacConfig {
        target: format!("sip:1001@{PEER}"),
        from: "sip:genki@127.0.0.1".into(),
        local_addr: "127.0.0.1:5060".parse().expect("literal"),
        next_hop: PEER.parse().expect("literal"),
        outbound_proxy: false,
        credentials: Some(("genki".into(), "secret".into())),
        realm: None,
        sdp_offer: b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\n".to_vec(),
        call_id: "live-call".into(),
        local_tag: "ourtag".into(),
        ring_timeout: Duration::from_secs(30),
        timers: Default::default(),
        user_agent: "genki-fuzz".into(),
        headers: Vec::new(),
        alternates: Vec::new(),
        session_expires: 0,
        transport: Default::default(),
    };
    if ep.start(cfg, now).is_err() {
        return;
    }
    let invite = ep.poll_transmit().map(|t| t.data).unwrap_or_default();
    let branch = genki_sip::Message::parse(&invite)
        .ok()
        .and_then(|m| m.branch)
        .unwrap_or_default();
    let mut ended = 0;
    let drain = |ep: &mut Endpoint, ended: &mut u32| {
        while ep.poll_transmit().is_some() {}
        while let Some((_, ev)) = ep.poll_event() {
            if matches!(ev, UacEvent::Ended { .. }) {
                *ended += 1;
            }
        }
    };
    for (sel, chunk) in chunks(data) {
        let src: SocketAddr = match sel & 3 {
            0 | 1 => PEER.parse().expect("literal"),
            2 => "127.0.0.1:5081".parse().expect("literal"),
            _ => "10.0.0.1:5060".parse().expect("literal"),
        };
        let msg = if sel & 4 != 0 {
            // A message on the live call: a response on our branch, or an
            // in-dialog request, with the fuzz bytes as its tail.
            let status = [100u16, 180, 183, 200, 401, 407, 486, 503][(sel >> 3) as usize & 7];
            let mut m = if sel & 0x40 == 0 {
                format!(
                    "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
                     From: <sip:genki@127.0.0.1>;tag=ourtag\r\nTo: <sip:1001@{PEER}>;tag=theirs\r\n\
                     Call-ID: live-call\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{PEER}>\r\n"
                )
                .into_bytes()
            } else {
                let method = ["BYE", "INFO", "INVITE", "ACK"][(sel >> 3) as usize & 3];
                format!(
                    "{method} sip:genki@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKx\r\n\
                     From: <sip:1001@{PEER}>;tag=theirs\r\nTo: <sip:genki@127.0.0.1>;tag=ourtag\r\n\
                     Call-ID: live-call\r\nCSeq: 2 {method}\r\n"
                )
                .into_bytes()
            };
            m.extend_from_slice(chunk);
            m
        } else {
            chunk.to_vec()
        };
        let _ = ep.handle_datagram(&msg, src, now);
        drain(&mut ep, &mut ended);
        if sel & 0x80 != 0 {
            now += Duration::from_millis(u64::from(sel & 0x3f) * 250);
            ep.handle_timeout(now);
            drain(&mut ep, &mut ended);
        }
    }
    ep.hangup("live-call", now);
    drain(&mut ep, &mut ended);
    // With no more input every call ends by its timers (64·T1 at most,
    // then the linger): bounded, and the endpoint empties.
    for _ in 0..1000 {
        let Some(t) = ep.poll_timeout() else { break };
        now = now.max(t);
        ep.handle_timeout(now);
        drain(&mut ep, &mut ended);
    }
    assert!(ended <= 1, "a call ended {ended} times");
    assert!(ep.is_empty(), "a call never ended");
}

/// SDP parse (RFC 4566) and negotiation of an answer (RFC 3264).
pub fn sdp(data: &[u8]) {
    if let Ok(d) = genki_sip::sdp::MediaDescription::parse(data) {
        let _ = d.first_common_codec();
        let _ = d.negotiate_answer();
    }
}

/// Digest challenges (RFC 2617, RFC 3261 §22.4) answered, and
/// Authorization headers verified (the test peers' side).
pub fn digest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = genki_sip::auth::Challenge::parse(&text) {
        let a = c.answer("genki", "secret", "INVITE", "sip:1@x", 1, "cn");
        let _ = genki_sip::auth::verify(&a, "INVITE", "secret", &c.nonce);
    }
    let _ = genki_sip::auth::verify(&text, "INVITE", "secret", "n");
}

/// The media mux's datagram handling: a stream on its own socket (with
/// latching) and two on a shared socket, fed datagrams from chosen
/// sources while time advances and packets are sent.
pub fn media_mux(data: &[u8]) {
    use genki_media::mux::{Binding, Latching, MediaMux, PacketBatch, StreamConfig};
    use genki_media::Law;
    let mut now = Instant::now();
    let mut mux = MediaMux::new();
    let peer: SocketAddr = "127.0.0.1:4000".parse().expect("literal");
    let mut add = |id, binding, latching, ssrc| {
        let mut c = StreamConfig::new(peer, Law::Ulaw, 0, Some(101));
        c.latching = latching;
        c.remote_ssrc = ssrc;
        c.signalling_ip = Some(peer.ip());
        let _ = mux.add(id, binding, c, now);
    };
    add(1, Binding::Own(1), Latching::Host, None);
    add(2, Binding::Shared(2), Latching::Off, Some(7));
    add(3, Binding::Shared(2), Latching::Off, Some(8));
    let mut batch = PacketBatch::new(16);
    for (sel, chunk) in chunks(data) {
        let src: SocketAddr = match sel & 3 {
            0 => peer,
            1 => "127.0.0.1:4002".parse().expect("literal"),
            2 => "127.0.0.2:4000".parse().expect("literal"),
            _ => "[::1]:4000".parse().expect("literal"),
        };
        if sel & 4 == 0 {
            mux.handle_own_datagram(1, src, chunk, now);
        } else {
            mux.handle_datagram(src, chunk, now);
        }
        if sel & 8 != 0 {
            now += Duration::from_millis(u64::from(sel >> 4) * 5);
            batch.clear();
            mux.poll_transmit(now, Duration::from_millis(1), &mut batch);
        }
        while mux.poll_event().is_some() {}
    }
    for id in 1..=3 {
        let _ = mux.remove(id);
    }
}

/// SIP INFO DTMF bodies (application/dtmf-relay, application/dtmf).
pub fn info_body(data: &[u8]) {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let ct = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or(&[]);
    let _ = genki_media::dtmf::parse_info(&ct, body);
}

/// WAV prompts as tenants upload them (any rate, channels, PCM or float).
pub fn wav(data: &[u8]) {
    if let Ok(pcm) = genki_media::wav::read_wav_8k(data) {
        assert!(pcm.len() <= 8000 * genki_media::wav::MAX_SECONDS as usize + 8000);
    }
}

/// CSV import with the API's bounds.
pub fn csv_import(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ok = |_: &genki_store::Subscriber| Ok(());
    if let Ok((subs, issues)) = csv_import::parse_rows(text, 1, 0, &ok) {
        assert!(subs.len() + issues.len() <= csv_import::MAX_IMPORT_ROWS + 1);
        for s in &subs {
            if let Some(sch) = &s.schedule {
                assert!(sch.days.len() <= 7 && sch.days.iter().all(|d| (1..=7).contains(d)));
            }
        }
    }
}

/// Steps a call may take, whatever the script and the keys: the flow must
/// hang up within them.
const FLOW_STEP_BOUND: usize = 100_000;

/// A watch script from JSON (a tenant's input), validated as the API
/// does, then run through [`script::Flow`] with keys, prompt ends and
/// timeouts from the rest of the bytes. It must end within a bounded
/// number of steps once the caller stops pressing keys.
pub fn script_flow(data: &[u8]) {
    use telephony::call::{Dialogue, FlowCmd};
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let Ok(s) = serde_json::from_slice::<script::Script>(&data[..split]) else {
        return;
    };
    if s.validate(|_| true).is_err() {
        return;
    }
    let events = data.get(split + 1..).unwrap_or(&[]);
    let mut now = Instant::now();
    // Driven through the trait, as a call drives it.
    let mut script_flow = script::Flow::new(s);
    let flow: &mut dyn Dialogue = &mut script_flow;
    flow.start(now);
    let mut steps = 0usize;
    let step = |flow: &mut dyn Dialogue, now: &mut Instant, ev: Option<u8>| {
        let _ = flow.has_cmd();
        while let Some(c) = flow.poll_cmd() {
            if let FlowCmd::Play(p) = c {
                assert!(p.len() <= 10_000);
            }
        }
        match ev {
            Some(b) if b < 128 => {
                let d = b"0123456789*#ABCD"[(b & 15) as usize] as char;
                flow.on_digit(d, *now);
            }
            Some(b) if b < 192 => flow.on_play_finished(*now),
            _ => {
                flow.on_play_finished(*now);
                if let Some(t) = flow.poll_timeout() {
                    *now = (*now).max(t);
                }
                flow.handle_timeout(*now);
            }
        }
    };
    for b in events {
        step(flow, &mut now, Some(*b));
        steps += 1;
    }
    while !flow.is_done() {
        step(flow, &mut now, None);
        steps += 1;
        assert!(
            steps < FLOW_STEP_BOUND,
            "the flow did not hang up within {FLOW_STEP_BOUND} steps"
        );
    }
    let _ = (flow.outcome(), flow.digits());
}

#[cfg(test)]
mod tests {
    use super::TARGETS;

    /// Every committed input — the seed corpora and every crash a
    /// campaign found (`fuzz/regressions/<target>/`) — runs through its
    /// target without a panic: each crash found became this test.
    #[test]
    fn every_corpus_and_regression_input_runs_clean() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut ran = 0;
        for (name, target) in TARGETS {
            let mut seeds = 0;
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                    continue;
                };
                for e in entries.flatten() {
                    let data = std::fs::read(e.path()).unwrap();
                    target(&data);
                    ran += 1;
                    seeds += 1;
                }
            }
            assert!(seeds > 0, "no seed corpus for {name}");
        }
        assert!(ran >= 9);
    }
}
