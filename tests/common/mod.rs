//! Helpers for the end-to-end tests: run the real `genki` binary against
//! real peers (the simulated phones of `genki-loadtest`, sipp) on loopback,
//! every process bounded in time.

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn genki() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genki"))
}

/// The genki-loadtest binary, built beside genki by `cargo build --workspace --bins`.
pub fn loadtest() -> PathBuf {
    let p = genki().with_file_name("genki-loadtest");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (the README's test command does)",
        p.display()
    );
    p
}

/// A free UDP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free on 127.0.0.1 for both UDP and TCP (a server such as
/// Kamailio binds both).
pub fn free_tcp_and_udp_port() -> u16 {
    loop {
        let p = free_port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// Two free even ports P and P+1 range for RTP, as "P-P+1".
pub fn free_rtp_range() -> (u16, String) {
    loop {
        let p = free_port();
        let p = p - p % 2;
        if UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return (p, format!("{p}-{}", p + 1));
        }
    }
}

/// Wait for a child with a deadline; kill it when the deadline passes.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait().unwrap() {
            Some(_) => return child.wait_with_output().unwrap(),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "process still running after {limit:?}; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Start simulated phones on `port` with extra flags; they exit after one call.
pub fn phones(port: u16, args: &[&str]) -> Child {
    let child = Command::new(loadtest())
        .args([
            "phones",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--calls",
            "1",
            "--max-seconds",
            "60",
            "--json",
        ])
        .args(["--rtp-base", &(40000 + (port % 1000) * 20).to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start genki-loadtest");
    // Let it bind before genki dials.
    std::thread::sleep(Duration::from_millis(300));
    child
}

pub struct CallResult {
    pub code: i32,
    pub report: Value,
    pub stderr: String,
}

/// Run `genki call --json` with the given flags.
pub fn genki_call(args: &[&str]) -> CallResult {
    let child = Command::new(genki())
        .arg("call")
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start genki");
    let out = wait_bounded(child, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    let report = if lines.len() == 1 {
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
    } else {
        assert!(
            lines.is_empty(),
            "--json must print exactly one object, got {stdout:?}"
        );
        Value::Null
    };
    CallResult {
        code: out.status.code().unwrap_or(-1),
        report,
        stderr,
    }
}

/// The phones' per-call records (one JSON line each).
pub fn phone_records(child: Child) -> Vec<Value> {
    let out = wait_bounded(child, Duration::from_secs(90));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad phone JSON {l:?}: {e}")))
        .collect()
}

/// Dial simulated phones at `port` from genki bound at a free port.
pub fn call_phones(port: u16, genki_args: &[&str]) -> CallResult {
    let bind = format!("127.0.0.1:{}", free_port());
    let to = format!("sip:1001@127.0.0.1:{port}");
    let mut args = vec!["--to", &to, "--bind", &bind];
    args.extend_from_slice(genki_args);
    genki_call(&args)
}

/// A minimal HTTP/1.1 client for the API tests (one request per connection).
pub struct Http {
    pub addr: String,
    pub token: String,
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Http {
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> HttpResponse {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect to the API");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.unwrap_or(b"");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !self.token.is_empty() {
            req.push_str(&format!("Authorization: Bearer {}\r\n", self.token));
        }
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        HttpResponse {
            status,
            headers: head.to_string(),
            body,
        }
    }
    pub fn get(&self, path: &str) -> HttpResponse {
        let r = self.request("GET", path, None, &[]);
        capture(path, &r);
        r
    }
    pub fn post(&self, path: &str, json: &Value) -> HttpResponse {
        self.request(
            "POST",
            path,
            Some(json.to_string().as_bytes()),
            &[("Content-Type", "application/json")],
        )
    }
    pub fn patch(&self, path: &str, json: &Value) -> HttpResponse {
        self.request(
            "PATCH",
            path,
            Some(json.to_string().as_bytes()),
            &[("Content-Type", "application/json")],
        )
    }
    pub fn with_token(&self, token: &str) -> Http {
        Http {
            addr: self.addr.clone(),
            token: token.to_string(),
        }
    }
}

/// With `CAPTURE_API_DIR` set, every successful JSON answer to a GET is
/// written there (one file per path, the last answer wins): how the golden
/// API fixtures of tests/golden/ were captured (scripts/capture-golden).
fn capture(path: &str, r: &HttpResponse) {
    let Some(dir) = std::env::var_os("CAPTURE_API_DIR") else {
        return;
    };
    if r.status != 200 || !r.body.trim_start().starts_with('{') {
        return;
    }
    let name: String = path
        .trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        std::path::Path::new(&dir).join(format!("{name}.json")),
        &r.body,
    );
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((len, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n.min(after.len())]);
        rest = after.get(n + 2..).unwrap_or("");
    }
    out
}

/// A running `genki serve` with its own data directory and ports.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub api: String,
    pub sip_port: u16,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl Daemon {
    pub fn start(dir: PathBuf, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let api = format!("127.0.0.1:{}", free_tcp_port());
        let sip_port = free_port();
        let mut d = Daemon {
            child: None,
            dir,
            api,
            sip_port,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        let child = Command::new(genki())
            .arg("serve")
            .args(&self.args)
            .env("GENKI_STORAGE_PATH", &self.dir)
            .env("GENKI_API_LISTEN", &self.api)
            .env("GENKI_SIP_BIND", format!("127.0.0.1:{}", self.sip_port))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            // A file, not a pipe: nobody reads a pipe while the daemon runs,
            // and a full one would stall its logging (and with it the daemon).
            .stderr(self.log_file())
            .spawn()
            .expect("start genki serve");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if healthz_ok(&self.api) {
                break;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child.take();
                    panic!("genki serve exited early ({status}): {}", self.log());
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "genki serve did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where the daemon's log goes (appended across restarts).
    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("genki.stderr"))
            .expect("daemon log file")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("genki.stderr")).unwrap_or_default()
    }

    pub fn http(&self) -> Http {
        let token =
            std::fs::read_to_string(self.dir.join("operator-token")).expect("operator token file");
        Http {
            addr: self.api.clone(),
            token: token.trim().to_string(),
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait; returns the exit code and stderr.
    pub fn terminate(&mut self) -> (i32, String) {
        let c = self.child.take().expect("running");
        unsafe_kill(c.id(), 15);
        let out = wait_bounded(c, Duration::from_secs(90));
        (out.status.code().unwrap_or(-1), self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether `GET /healthz` at `addr` answers 200 now. Any error is "not
/// yet": while nothing listens, a connect from an ephemeral port equal to
/// the target port connects the socket to itself (TCP simultaneous open)
/// and then resets — seen once in CI; such a connection is dropped.
fn healthz_ok(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    if s.local_addr().ok() == s.peer_addr().ok() {
        return false;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_end(&mut raw).is_ok()
        && raw.starts_with(b"HTTP/1.1 200")
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Send a signal with the `kill` command (no libc in the tests).
pub fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "genki-test-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Poll a check until it is done; returns its JSON.
pub fn wait_done(http: &Http, check_id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let r = http.get(&format!("/v1/checks/{check_id}"));
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["status"] == "done" {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "check {check_id} not done after {limit:?}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A long-running `genki-loadtest` peer (webhook receiver, SMTP sink,
/// phones) whose JSON lines go to a file that can be read while it runs.
pub struct Peer {
    pub child: Child,
    pub out: PathBuf,
    pub addr: String,
}

impl Peer {
    /// `genki-loadtest <sub> --listen 127.0.0.1:<free port> <args…>`.
    pub fn start(dir: &std::path::Path, sub: &str, tcp: bool, args: &[&str]) -> Peer {
        let port = if tcp { free_tcp_port() } else { free_port() };
        let addr = format!("127.0.0.1:{port}");
        let out = dir.join(format!("{sub}-{port}.jsonl"));
        let rtp_base = (40000 + (port % 1000) * 20).to_string();
        let mut cmd = Command::new(loadtest());
        cmd.args([sub, "--listen", &addr]);
        if sub == "phones" {
            cmd.args(["--json", "--rtp-base", &rtp_base]);
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .expect("start genki-loadtest");
        let start = Instant::now();
        // Wait until it listens (TCP) or give it a moment (UDP).
        if tcp {
            // (A connection to itself, TCP simultaneous open while nothing
            // listens yet, is not the peer.)
            while std::net::TcpStream::connect(&addr)
                .map_or(true, |c| c.local_addr().ok() == c.peer_addr().ok())
            {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{sub} did not listen"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
        Peer { child, out, addr }
    }

    pub fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Poll until `pred` holds over the records.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let r = self.records();
            if pred(&r) {
                return r;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not seen after {limit:?}; records: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll a JSON GET until `pred` holds.
pub fn poll(http: &Http, path: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = http.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let v = r.json();
        if pred(&v) {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "{path}: condition not met after {limit:?}: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Request a one-off check of subscriber `sid` now; returns its id.
pub fn check_now(http: &Http, sid: u64) -> String {
    let r = http.request("POST", &format!("/v1/subscribers/{sid}/checks"), None, &[]);
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()["check_id"].as_str().unwrap().to_string()
}

/// The sum of a Prometheus metric's samples whose line starts with `name`.
pub fn metric(http: &Http, name: &str) -> u64 {
    http.get("/metrics")
        .body
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// sipp (Debian's sip-tester) as a callee on 127.0.0.1:`port`, media on
/// `media_port`: answers every call and presses "1" by RFC 2833 from its own
/// pcap (loadtest/sipp/uas_dtmf_2833.xml); `args` add e.g. `-m 1`, `-timeout`.
/// Its stderr goes to `dir/sipp.stderr` (a pipe nobody reads could fill
/// and stall it).
pub fn sipp_uas(dir: &std::path::Path, port: u16, media_port: u16, args: &[&str]) -> Child {
    sipp_scenario(dir, "uas_dtmf_2833.xml", port, media_port, args)
}

/// sipp running `loadtest/sipp/<scenario>` as a callee, like [`sipp_uas`].
pub fn sipp_scenario(
    dir: &std::path::Path,
    scenario: &str,
    port: u16,
    media_port: u16,
    args: &[&str],
) -> Child {
    let pcap = "/usr/share/sip-tester/dtmf_2833_1.pcap";
    assert!(
        std::path::Path::new(pcap).exists() && Command::new("sipp").arg("-v").output().is_ok(),
        "sipp and {pcap} are needed: apt-get install sip-tester (the README's test command does)"
    );
    let scenario = format!("{}/../loadtest/sipp/{scenario}", env!("CARGO_MANIFEST_DIR"));
    let child = Command::new("sipp")
        .current_dir(dir)
        .args(["-sf", &scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media_port.to_string()])
        .args(["-key", "pcap", pcap, "-nostdin"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sipp.stderr")).expect("sipp.stderr"))
        .spawn()
        .expect("start sipp");
    std::thread::sleep(Duration::from_millis(600));
    child
}

/// The retry policy of a tenant that tries each check once (no retries):
/// every failure ends the check at once, the harshest case for false alarms.
pub fn no_retries() -> Value {
    serde_json::json!({"max_attempts": 1, "spacing_minutes": 1, "retry_no_answer": false,
        "retry_busy": false, "retry_failed": false, "retry_no_input": false,
        "carry_to_next_window": false})
}

/// Create a tenant from `body` (the operator's token); its id.
pub fn create_tenant(http: &Http, body: &Value) -> u64 {
    let r = http.post("/v1/tenants", body);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_u64().unwrap()
}

/// A watcher of tenant `tid` reached by a signed webhook at `url`, made the
/// tenant's one-tier ladder; its id.
pub fn webhook_ladder(http: &Http, tid: u64, url: &str, secret: &str) -> u64 {
    let r = http.post(
        &format!("/v1/tenants/{tid}/watchers"),
        &serde_json::json!({"name": "家族", "webhook_url": url, "webhook_secret": secret}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let w = r.json()["id"].as_u64().unwrap();
    let body = serde_json::json!({"tiers": [{"watchers": [w], "deadline_s": 3600}]}).to_string();
    let r = http.request(
        "PUT",
        &format!("/v1/tenants/{tid}/ladder"),
        Some(body.as_bytes()),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    w
}

/// Phones on `port` that take `calls` calls with `args`, then exit; their
/// per-call records go to a file (a pipe nobody reads would fill and stall
/// them).
pub fn phones_for(dir: &std::path::Path, port: u16, calls: u64, args: &[&str]) -> (Child, PathBuf) {
    let out = dir.join(format!("phones-{port}-{}.jsonl", args.join("_")));
    let child = Command::new(loadtest())
        .args(["phones", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--calls",
            &calls.to_string(),
            "--max-seconds",
            "180",
            "--json",
        ])
        .args(["--rtp-base", &(40000 + (port % 1000) * 20).to_string()])
        .args(args)
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("start genki-loadtest phones");
    std::thread::sleep(Duration::from_millis(300));
    (child, out)
}

/// Wait until the phones have recorded `want` calls (or exited, or
/// `limit` passed), stop them, and read their per-call records.
pub fn records_of((mut child, out): (Child, PathBuf), want: usize, limit: Duration) -> Vec<Value> {
    let read = |out: &PathBuf| -> Vec<Value> {
        std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none()
        && read(&out).len() < want
        && start.elapsed() < limit
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    read(&out)
}

pub fn kinds(records: &[Value], kind: &str) -> usize {
    records.iter().filter(|r| r["type"] == kind).count()
}

/// Kamailio (Debian's `kamailio`) as a carrier edge on loopback, from
/// `tests/kamailio/carrier.cfg`: digest REGISTER required before any
/// INVITE is relayed (record-routed) to `phones`. Stopped (SIGTERM, which
/// also ends its children) when dropped.
pub struct Kamailio {
    child: Option<Child>,
    pub port: u16,
    /// Its TLS port and the CA its certificate is from ([`Kamailio::start_tls`]).
    pub tls: Option<(u16, PathBuf)>,
    cfg: PathBuf,
    dir: PathBuf,
}

impl Kamailio {
    pub fn start(dir: &std::path::Path, phones: &str, user: &str, password: &str) -> Kamailio {
        Kamailio::start_with(dir, phones, phones, user, password)
    }

    /// [`Kamailio::start`] that also takes SIP over TLS: a test CA and a
    /// certificate for carrier.test are made with openssl.
    pub fn start_tls(dir: &std::path::Path, phones: &str, user: &str, password: &str) -> Kamailio {
        Kamailio::start_full(dir, phones, phones, user, password, true)
    }

    /// [`Kamailio::start`] relaying numbers that begin 09 to `phones2`.
    pub fn start_with(
        dir: &std::path::Path,
        phones: &str,
        phones2: &str,
        user: &str,
        password: &str,
    ) -> Kamailio {
        Kamailio::start_full(dir, phones, phones2, user, password, false)
    }

    fn start_full(
        dir: &std::path::Path,
        phones: &str,
        phones2: &str,
        user: &str,
        password: &str,
        tls: bool,
    ) -> Kamailio {
        assert!(
            Command::new("kamailio").arg("-v").output().is_ok(),
            "kamailio is needed: apt-get install kamailio (the README's test command does)"
        );
        let modules = [
            "/usr/lib/x86_64-linux-gnu/kamailio/modules",
            "/usr/lib/kamailio/modules",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).join("tm.so").exists())
        .expect("kamailio modules directory");
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/kamailio/carrier.cfg"
        ))
        .expect("tests/kamailio/carrier.cfg");
        // A port found free may be taken by another test's socket before
        // Kamailio binds it: then it exits with "Address already in use"
        // and the next try takes other ports.
        for attempt in 1.. {
            let port = free_tcp_and_udp_port();
            let text = template
                .replace("@PORT@", &port.to_string())
                .replace("@DOMAIN@", "carrier.test")
                .replace("@MODULES@", modules)
                .replace("@PASSWORD@", password)
                .replace("@USER@", user)
                .replace("@PHONES2@", phones2)
                .replace("@PHONES@", phones);
            let kdir = dir.join(format!("kamailio-{port}"));
            std::fs::create_dir_all(&kdir).unwrap();
            let tls = tls.then(|| {
                let (ca, cert, key) = test_certificates(&kdir, "carrier.test");
                let tls_cfg = kdir.join("tls.cfg");
                std::fs::write(
                    &tls_cfg,
                    format!(
                        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = {}\ncertificate = {}\n\n[client:default]\nverify_certificate = no\nrequire_certificate = no\n",
                        key.display(),
                        cert.display()
                    ),
                )
                .unwrap();
                (free_tcp_and_udp_port(), ca, tls_cfg)
            });
            let text = match &tls {
                Some((tls_port, _, tls_cfg)) => text
                    .replace("@TLS_PORT@", &tls_port.to_string())
                    .replace("@TLS_CFG@", tls_cfg.to_str().unwrap()),
                None => text,
            };
            let cfg = kdir.join("carrier.cfg");
            std::fs::write(&cfg, text).unwrap();
            let mut k = Kamailio {
                child: None,
                port,
                tls: tls.map(|(p, ca, _)| (p, ca)),
                cfg,
                dir: kdir,
            };
            match k.try_spawn() {
                Ok(()) => return k,
                Err(log) if attempt < 5 && log.contains("Address already in use") => {
                    eprintln!("kamailio: port {port} was taken meanwhile; another try");
                    k.child = None;
                }
                Err(log) => panic!("kamailio did not come up: {log}"),
            }
        }
        unreachable!()
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("kamailio did not come up: {log}");
        }
    }

    /// Start it and wait until it answers an OPTIONS; its log if it exits
    /// or stays silent for 15 s.
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kamailio.log"))
            .unwrap();
        let d = self.dir.to_str().unwrap();
        let mut cmd = Command::new("kamailio");
        if self.tls.is_some() {
            cmd.args(["-A", "WITH_TLS"]);
        }
        let child = cmd
            .arg("-f")
            .arg(&self.cfg)
            .args(["-DD", "-E", "-w", d, "-Y", d, "-m", "32", "-M", "8"])
            .arg("-P")
            .arg(self.dir.join("kamailio.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kamailio");
        self.child = Some(child);
        // Ready when it answers an OPTIONS.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let me = sock.local_addr().unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            let req = format!(
                "OPTIONS sip:127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{n}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:{p}>\r\nCall-ID: probe-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                p = self.port,
                n = start.elapsed().as_millis()
            );
            let _ = sock.send_to(req.as_bytes(), ("127.0.0.1", self.port));
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if buf[..n].starts_with(b"SIP/2.0 200") {
                    return Ok(());
                }
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || start.elapsed() > Duration::from_secs(15) {
                if let Some(mut c) = self.child.take() {
                    unsafe_kill(c.id(), 15);
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(self.log());
            }
        }
    }

    /// Stop it (SIGTERM: its children go too) and wait for the port to be free.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id(), 15);
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let start = Instant::now();
        while std::net::UdpSocket::bind(("127.0.0.1", self.port)).is_err()
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop and start again on the same port: every binding is forgotten.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Its log so far (the carrier's `xlog` lines say what it refused).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A WAV (8 kHz mono) of 2 s silence, an in-band "1" (697 + 1209 Hz,
/// 300 ms), and 12 s of silence, made with sox.
pub fn key_one_wav(path: &std::path::Path) {
    let p = path.to_str().unwrap();
    let st = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16", p])
        .args([
            "synth", "0.3", "sine", "697", "sine", "1209", "remix", "1,2",
        ])
        .args(["vol", "0.4", "pad", "2", "12"])
        .status()
        .expect("sox is needed: apt-get install sox (the README's test command does)");
    assert!(st.success());
}

/// baresip (Debian's baresip-core) on 127.0.0.1:`port` (UDP and TCP), a
/// real user agent that answers every call at once and plays a WAV with
/// an in-band "1" ([`key_one_wav`]); its config lives in `dir`. Killed
/// when the returned guard drops.
pub fn baresip(dir: &std::path::Path, port: u16) -> KillOnDrop {
    assert!(
        Command::new("baresip").arg("-h").output().is_ok(),
        "baresip is needed: apt-get install baresip-core (the README's test command does)"
    );
    let conf = dir.join(format!("baresip-{port}"));
    std::fs::create_dir_all(&conf).unwrap();
    let wav = dir.join("one.wav");
    key_one_wav(&wav);
    std::fs::write(
        conf.join("config"),
        format!(
            "module_path /usr/lib/baresip/modules\nsip_listen 127.0.0.1:{port}\n\
             audio_source aufile,{}\naudio_player aufile,{}\naudio_alert aufile,{}\n\
             module g711.so\nmodule aufile.so\nmodule_app account.so\nmodule_app menu.so\n\
             call_max_calls 8\n",
            wav.display(),
            dir.join("heard.wav").display(),
            dir.join("alert.wav").display(),
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        format!("<sip:watch@127.0.0.1:{port}>;regint=0;answermode=auto\n"),
    )
    .unwrap();
    let child = Command::new("baresip")
        .args(["-f", conf.to_str().unwrap(), "-t", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start baresip");
    std::thread::sleep(Duration::from_millis(1500));
    KillOnDrop(child)
}

/// A test CA and a certificate for `name` signed by it, made with openssl
/// in `dir`: (CA certificate, certificate, key), PEM.
pub fn test_certificates(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed (Debian's openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend_from_slice(&ec);
    a.extend_from_slice(&[
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=genki test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend_from_slice(&ec);
    let subj = format!("/CN={name}");
    a.extend_from_slice(&["-keyout", "srv.key", "-out", "srv.csr", "-subj", &subj]);
    run(&a);
    let ext = dir.join("srv.ext");
    std::fs::write(
        &ext,
        format!("subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
    ]);
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

/// dnsmasq (Debian's dnsmasq-base) answering on 127.0.0.1:`port` only,
/// from `records` (dnsmasq options such as `--srv-host=…`,
/// `--naptr-record=…`, `--host-record=…`), with a TTL of one second.
/// Nothing else: no upstream servers, no hosts file.
pub fn dnsmasq(port: u16, records: &[String]) -> KillOnDrop {
    let log = std::env::temp_dir().join(format!("genki-test-dnsmasq-{port}.log"));
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--local-ttl=1",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"))
        .args(records)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&log).expect("a log file for dnsmasq"),
        ))
        .spawn()
        .expect("dnsmasq is needed: apt-get install dnsmasq-base (the README's test command does)");
    // Ready when it answers a query (any answer). A fixed sleep raced a
    // loaded machine: genki asked before it listened, and its calls ended
    // "unreachable". `--port` binds UDP and TCP both: a port someone holds
    // for either makes it exit, which is reported, not waited out.
    let mut child = KillOnDrop(child);
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // A standard query (RFC 1035 §4.1): id 0x6b69, RD, one question,
    // "ready.test" type A class IN.
    let mut query = vec![0x6b, 0x69, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["ready", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answer = [0u8; 512];
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("dnsmasq on 127.0.0.1:{port} exited ({status}): {why}");
        }
        let _ = probe.send_to(&query, ("127.0.0.1", port));
        if matches!(probe.recv(&mut answer), Ok(n) if n >= 12 && answer[..2] == query[..2]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dnsmasq did not answer on 127.0.0.1:{port} in 10 s"
        );
    }
    child
}
