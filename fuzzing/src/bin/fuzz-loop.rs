//! `fuzz-loop [seconds-per-target] [target…]`: genki's fuzz targets on
//! stable Rust, where cargo-fuzz's nightly toolchain is not available.
//!
//! A mutational loop without coverage feedback (libFuzzer's is better;
//! `scripts/fuzz` uses it when it can): each round takes a seed from the
//! target's corpus (`fuzz/corpus/<target>/`) or an input that was run
//! before, mutates it (bit flips, byte and chunk insertions, deletions,
//! splices with another input, interesting values, tokens of the
//! target's grammar), and runs it under `catch_unwind`. A panic is saved
//! to `fuzz/artifacts/<target>/` and reported; the tool prints executions,
//! executions a second and crashes per target, and exits 1 after a crash.
//!
//! Written here rather than taken from a crate: the proptest/arbitrary
//! runners generate typed values, while these targets take raw bytes and
//! their corpora are libFuzzer's; what is needed is the small loop below.
//!
//! Depends on: genki-fuzz (the targets), rand.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::Rng;

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"SIP/2.0 200 OK\r\n",
    b"INVITE sip:a@b SIP/2.0\r\n",
    b"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1\r\n",
    b"Call-ID: live-call\r\n",
    b"CSeq: 1 INVITE\r\n",
    b"Content-Length: ",
    b"To: <sip:x@y>;tag=",
    b"Contact: <sip:1@127.0.0.1:5080>\r\n",
    b"Record-Route: <sip:p;lr>\r\n",
    b"WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"\r\n",
    b"c=IN IP4 127.0.0.1\r\n",
    b"m=audio 4000 RTP/AVP 0 8 101\r\n",
    b"a=rtpmap:101 telephone-event/8000\r\n",
    b"a=ssrc:7 cname:x\r\n",
    b"Signal=1\r\nDuration=100\r\n",
    b"RIFF",
    b"WAVEfmt ",
    b"data",
    b"name,phone,days,times,paused_until,notes\n",
    b"1-5",
    b"\"",
    b"{\"start\":\"a\",\"nodes\":{\"a\":",
    b"\"next\":\"a\"",
    b"\"gather\":{\"max_digits\":1,\"timeout_s\":1,\"max_plays\":1}",
    b"\"hangup\":true",
    b"\x80\x00",
    b"\x80\x65",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
];

fn mutate(rng: &mut impl Rng, input: &mut Vec<u8>, other: &[u8]) {
    let n = rng.gen_range(1..=8);
    for _ in 0..n {
        let len = input.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=len);
                let b: u8 = rng.gen();
                input.insert(i, b);
            }
            3 if len > 0 => {
                let i = rng.gen_range(0..len);
                let k = rng.gen_range(1..=(len - i).min(64));
                input.drain(i..i + k);
            }
            4 => {
                let i = rng.gen_range(0..=len);
                let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                input.splice(i..i, t.iter().copied());
            }
            5 if !other.is_empty() => {
                let a = rng.gen_range(0..other.len());
                let b = rng
                    .gen_range(a..other.len().min(a + 256) + 1)
                    .min(other.len());
                let i = rng.gen_range(0..=len);
                input.splice(i..i, other[a..b].iter().copied());
            }
            6 if len > 1 => {
                let i = rng.gen_range(0..len);
                let k = rng.gen_range(1..=(len - i).min(32));
                let chunk: Vec<u8> = input[i..i + k].to_vec();
                let j = rng.gen_range(0..=len);
                input.splice(j..j, chunk);
            }
            7 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] =
                    [0u8, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'-', b',', b':'][rng.gen_range(0..10)];
            }
            _ => {
                let k = rng.gen_range(0..16);
                for _ in 0..k {
                    input.push(rng.gen());
                }
            }
        }
    }
    input.truncate(1 << 16);
}

fn seeds(root: &Path, name: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) {
            for e in entries.flatten() {
                if let Ok(d) = std::fs::read(e.path()) {
                    out.push(d);
                }
            }
        }
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = match args.first().map(|a| a.parse()) {
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("usage: fuzz-loop [seconds-per-target] [target…]");
            std::process::exit(2);
        }
        None => 60,
    };
    let only: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    std::panic::set_hook(Box::new(|_| {}));
    let mut crashed = false;
    println!("| target | executions | per second | crashes |\n|---|---|---|---|");
    for (name, target) in genki_fuzz::TARGETS {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let mut pool = seeds(&root, name);
        let mut rng = rand::thread_rng();
        let (mut execs, mut crashes) = (0u64, 0u64);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            let mut input = pool[rng.gen_range(0..pool.len())].clone();
            let other = pool[rng.gen_range(0..pool.len())].clone();
            mutate(&mut rng, &mut input, &other);
            let r = std::panic::catch_unwind(|| target(&input));
            execs += 1;
            if r.is_err() {
                crashes += 1;
                let dir = root.join("artifacts").join(name);
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("crash-{execs}"));
                let _ = std::fs::write(&file, &input);
                eprintln!("{name}: crash saved to {}", file.display());
            } else if pool.len() < 4096 && rng.gen_ratio(1, 64) {
                // Keep some inputs to mutate further (no coverage signal:
                // a sample keeps the pool varied).
                pool.push(input);
            }
        }
        let rate = execs as f64 / start.elapsed().as_secs_f64();
        println!("| {name} | {execs} | {rate:.0} | {crashes} |");
        crashed |= crashes > 0;
    }
    if crashed {
        std::process::exit(1);
    }
}
