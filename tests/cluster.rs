//! Many nodes on one PostgreSQL (issue 16), through the real binary and
//! the real protocol: three `genki serve` on 127.0.0.1, .2 and .3 sharing
//! a throw-away PostgreSQL (Debian's package, initdb in a temporary
//! directory), the simulated phones answering every call.
//!
//! - A 1,000-call round: every check exactly one outcome, each phone
//!   called once, the work spread over the three nodes.
//! - The same round with one node `kill -9`ed mid-round and another
//!   `SIGSTOP`ped for longer than its lease and then resumed: every check
//!   still ends with exactly one outcome (a person may be called twice,
//!   never zero times), the dead node's calls are taken over, and the
//!   paused node's late writes are refused and counted.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use genki_pg::testing::{Durability, TestPg};
use serde_json::{json, Value};

const CLOCK: &str = "2026-11-24T10:00:00+09:00";
const TOKEN: &str = "cluster-operator-token-0123456789";
const KEY: &str = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const LEASE_S: u64 = 6;

/// The tests of this file one at a time: each runs three nodes, a
/// PostgreSQL and the phones, which is what two cores carry.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Cluster {
    pg: TestPg,
    nodes: Vec<Daemon>,
}

fn node(dir: PathBuf, url: &str, n: usize) -> Daemon {
    let ip = format!("127.0.0.{}", n + 1);
    let sip = format!("{ip}:{}", free_port());
    let rtp = format!("{}-{}", 30000 + n * 2000, 30000 + n * 2000 + 1999);
    let lease = LEASE_S.to_string();
    let name = format!("node-{}", n + 1);
    Daemon::start(
        dir,
        &[
            ("GENKI_STORAGE_ENGINE", "postgres"),
            ("GENKI_STORAGE_POSTGRES_URL", url),
            ("GENKI_STORAGE_NODE", &name),
            ("GENKI_STORAGE_LEASE_S", &lease),
            ("GENKI_STORAGE_SECRET_KEY", KEY),
            ("GENKI_STORAGE_POOL_SIZE", "12"),
            ("GENKI_API_OPERATOR_TOKEN", TOKEN),
            ("GENKI_SIP_BIND", &sip),
            ("GENKI_SIP_RTP_PORTS", &rtp),
            ("GENKI_TRUNK_CPS", "50"),
            ("GENKI_TRUNK_MAX_CALLS", "300"),
            ("GENKI_SIP_MAX_CALL_S", "30"),
        ],
        &["--clock-start", CLOCK],
    )
}

fn http_of(d: &Daemon) -> Http {
    Http {
        addr: d.api.clone(),
        token: TOKEN.into(),
    }
}

fn cluster(name: &str) -> Cluster {
    let pg =
        TestPg::start(Durability::Fast).expect("PostgreSQL (scripts/deps installs postgresql-15)");
    pg.create_db("genki").unwrap();
    let url = pg.url("genki");
    let nodes = (0..3)
        .map(|n| node(temp_dir(&format!("{name}-{n}")), &url, n))
        .collect();
    Cluster { pg, nodes }
}

/// Enrol `n` people (phones on `port`) through node 1 and ask every node
/// for a third of their checks now; the check ids.
fn round(c: &Cluster, tid: u64, port: u16, n: usize, tag: &str) -> Vec<String> {
    let http = http_of(&c.nodes[0]);
    let mut csv = String::from("name,phone\n");
    for i in 0..n {
        csv.push_str(&format!("{tag} {i},sip:{tag}{i}@127.0.0.1:{port}\n"));
    }
    let r = http.request(
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        Some(csv.as_bytes()),
        &[],
    );
    assert_eq!(r.json()["imported"], n as u64, "{}", r.body);
    let ids: Vec<u64> = r.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let https: Vec<Http> = c.nodes.iter().map(http_of).collect();
    ids.iter()
        .enumerate()
        .map(|(i, sid)| check_now(&https[i % 3], *sid))
        .collect()
}

/// The database's own ledger of a round's checks: (status, outcome) → count.
fn ledger(c: &Cluster, tag: &str) -> HashMap<String, u64> {
    let out =
        c.pg.psql(
            "genki",
            &format!(
                "SELECT k || '|' || n FROM (
                     SELECT c.status || ':' || coalesce(c.body->>'outcome', '-') AS k, count(*) AS n
                     FROM checks c JOIN subscribers s ON s.id = c.subscriber_id
                     WHERE s.body->>'name' LIKE '{tag} %' GROUP BY 1) x"
            ),
        )
        .unwrap();
    out.lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(k, n)| (k.to_string(), n.parse().unwrap()))
        .collect()
}

fn wait_all_done(c: &Cluster, tag: &str, n: u64, limit: Duration) -> HashMap<String, u64> {
    let start = Instant::now();
    loop {
        let l = ledger(c, tag);
        let done: u64 = l
            .iter()
            .filter(|(k, _)| k.starts_with("2:"))
            .map(|(_, v)| v)
            .sum();
        if done == n {
            return l;
        }
        assert!(start.elapsed() < limit, "round {tag} not done: {l:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn calls_per_callee(records: &[Value], tag: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records.iter().filter(|r| r["answered"] == true) {
        let callee = r["callee"].as_str().unwrap_or("");
        if callee.starts_with(tag) {
            *m.entry(callee.to_string()).or_default() += 1;
        }
    }
    m
}

#[test]
fn three_nodes_share_a_round_and_a_killed_or_paused_node_forgets_nobody() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster("cluster");
    let dir = temp_dir("cluster-phones");
    let port = free_port();
    let out = dir.join("phones.jsonl");
    let phones = std::process::Command::new(loadtest())
        .args(["phones", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--max-seconds", "900", "--json", "--digit-delay-ms", "300"])
        // A call whose node vanished without BYE ends (and is recorded)
        // within the test.
        .args(["--max-call-ms", "5000", "--rtp-base", "40000"])
        .stdout(std::process::Stdio::from(
            std::fs::File::create(&out).unwrap(),
        ))
        .stderr(std::process::Stdio::from(
            std::fs::File::create(dir.join("phones.stderr")).unwrap(),
        ))
        .env("GENKI_LOG", "info")
        .spawn()
        .expect("start genki-loadtest phones");
    let phones = (phones, out);
    let http = http_of(&c.nodes[0]);
    let r = http.post(
        "/v1/tenants",
        &json!({"name": "県", "window_start": "08:00", "window_end": "20:00", "retry": no_retries()}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();

    // 1. A round on three healthy nodes.
    let n = 1_000;
    let started = Instant::now();
    round(&c, tid, port, n, "a");
    let l = wait_all_done(&c, "a", n as u64, Duration::from_secs(240));
    let took = started.elapsed();
    assert_eq!(
        l.get("2:fine"),
        Some(&(n as u64)),
        "every check fine once: {l:?}"
    );
    let per_node: Vec<u64> = c
        .nodes
        .iter()
        .map(|d| metric(&http_of(d), "genki_attempts_total"))
        .collect();
    eprintln!("round 1: {n} checks in {took:?}, attempts per node {per_node:?}");
    assert_eq!(
        per_node.iter().sum::<u64>(),
        n as u64,
        "one call a check: {per_node:?}"
    );
    assert!(
        per_node.iter().all(|a| *a >= n as u64 / 10),
        "the work is spread over the nodes: {per_node:?}"
    );

    // 2. The same round; mid-round node 2 is killed and node 3 paused
    //    for longer than its lease.
    let mut c = c;
    round(&c, tid, port, n, "b");
    let start = Instant::now();
    while ledger(&c, "b").get("2:fine").copied().unwrap_or(0) < 150 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "round b does not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let paused_pid = c.nodes[2].child.as_ref().unwrap().id();
    let active_3 = metric(&http_of(&c.nodes[2]), "genki_active_calls");
    c.nodes[1].kill9();
    unsafe_kill(paused_pid, libc_sigstop());
    std::thread::sleep(Duration::from_secs(LEASE_S * 3));
    unsafe_kill(paused_pid, libc_sigcont());
    let l = wait_all_done(&c, "b", n as u64, Duration::from_secs(300));
    assert_eq!(
        l.iter().filter(|(k, _)| !k.starts_with("2:")).count(),
        0,
        "no check left pending or claimed: {l:?}"
    );
    let fine = l.get("2:fine").copied().unwrap_or(0);
    assert_eq!(fine, n as u64, "every check ended fine, once: {l:?}");
    // Nobody forgotten: every person of round b was called (some twice).
    // A call whose node was killed ends at the phone after --max-call-ms
    // and its BYE's timeout (64·T1): wait for those records too.
    let start = Instant::now();
    let read = || -> Vec<Value> {
        std::fs::read_to_string(&phones.1)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    while calls_per_callee(&read(), "b").len() < n && start.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let records = records_of(phones, usize::MAX, Duration::ZERO);
    let b = calls_per_callee(&records, "b");
    if b.len() != n {
        let missing: Vec<usize> = (0..n)
            .filter(|i| !b.contains_key(&format!("b{i}")))
            .collect();
        for i in missing.iter().take(3) {
            let rows = c
                .pg
                .psql(
                    "genki",
                    &format!(
                        "SELECT a.body::text FROM attempts a JOIN subscribers s ON s.id = a.subscriber_id
                         WHERE s.body->>'name' = 'b {i}'"
                    ),
                )
                .unwrap();
            eprintln!("b{i} was never recorded by the phones; its attempts: {rows}");
        }
    }
    assert_eq!(b.len(), n, "every person of round b was called");
    let twice = b.values().filter(|k| **k > 1).count();
    let a = calls_per_callee(&records, "a");
    assert_eq!(a.len(), n);
    assert!(
        a.values().all(|k| *k == 1),
        "round a: each phone called once"
    );
    let taken = metric(&http_of(&c.nodes[0]), "genki_leases_taken_over_total")
        + metric(&http_of(&c.nodes[2]), "genki_leases_taken_over_total");
    let fenced = metric(&http_of(&c.nodes[2]), "genki_fenced_writes_total");
    eprintln!(
        "round 2: node 3 had {active_3} calls up when paused; {taken} claims taken over, \
         {fenced} late writes of node 3 refused, {twice} people called twice"
    );
    assert!(taken > 0, "the dead node's claims were taken over");
    if active_3 > 0 {
        assert!(fenced > 0, "node 3's late results were refused");
    }
    // One outcome row a check (first outcome wins), one alert input each.
    let dup =
        c.pg.psql(
            "genki",
            "SELECT count(*) FROM checks WHERE status = 2 AND finished_at_ms IS NULL",
        )
        .unwrap();
    assert_eq!(dup, "0");
}

/// The most calls begun in any second, and the most up at once, as the
/// phones saw them (a call is up from its INVITE to its BYE; a call whose
/// node died counts until the phone gave up on it).
fn carrier_view(records: &[Value]) -> (usize, usize) {
    let mut starts: Vec<u64> = records
        .iter()
        .map(|r| r["invite_at_ms"].as_u64().unwrap())
        .collect();
    starts.sort_unstable();
    let mut per_second = 0;
    let mut j = 0;
    for i in 0..starts.len() {
        while starts[i] - starts[j] >= 1_000 {
            j += 1;
        }
        per_second = per_second.max(i - j + 1);
    }
    let mut edges: Vec<(u64, i64)> = records
        .iter()
        .flat_map(|r| {
            let at = r["invite_at_ms"].as_u64().unwrap();
            let end = r["ended_at_ms"]
                .as_u64()
                .unwrap_or(at + r["duration_ms"].as_u64().unwrap());
            [(at, 1), (end, -1)]
        })
        .collect();
    edges.sort_unstable_by_key(|(t, d)| (*t, *d));
    let (mut up, mut most) = (0i64, 0i64);
    for (_, d) in edges {
        up += d;
        most = most.max(up);
    }
    (per_second, most as usize)
}

/// A trunk of 50 calls a second and 300 calls at once, shared by three
/// nodes: the phones (the carrier) never see more, while one node is
/// killed mid-round and the other two take its part over.
#[test]
fn a_trunk_limit_holds_across_three_nodes_while_one_dies() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = cluster("trunk");
    let dir = temp_dir("trunk-phones");
    let port = free_port();
    let out = dir.join("phones.jsonl");
    let phones = std::process::Command::new(loadtest())
        .args(["phones", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--max-seconds", "900", "--json", "--digit-delay-ms", "6000"])
        .args(["--max-call-ms", "12000", "--rtp-base", "40000"])
        .stdout(std::process::Stdio::from(
            std::fs::File::create(&out).unwrap(),
        ))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start genki-loadtest phones");
    let phones = (phones, out);
    let http = http_of(&c.nodes[0]);
    let r = http.post(
        "/v1/tenants",
        &json!({"name": "幹線", "window_start": "08:00", "window_end": "20:00", "retry": no_retries()}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    let n = 900;
    round(&c, tid, port, n, "t");
    let start = Instant::now();
    while ledger(&c, "t").get("2:fine").copied().unwrap_or(0) < 250 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the round does not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.nodes[1].kill9();
    let l = wait_all_done(&c, "t", n as u64, Duration::from_secs(400));
    let start = Instant::now();
    let read = || -> Vec<Value> {
        std::fs::read_to_string(&phones.1)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    while calls_per_callee(&read(), "t").len() < n && start.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let records = records_of(phones, usize::MAX, Duration::ZERO);
    let (per_second, most) = carrier_view(&records);
    eprintln!("trunk: {l:?}; at the phones: at most {per_second} calls begun in a second, {most} up at once ({} calls)", records.len());
    assert_eq!(
        calls_per_callee(&records, "t").len(),
        n,
        "everyone was called"
    );
    // One saved token per node may add to a second's rate.
    assert!(per_second <= 50 + 3, "{per_second} calls in one second");
    assert!(most <= 300, "{most} calls up at once");
    assert!(most >= 200, "the trunk was used: {most} at once");
}

fn libc_sigstop() -> i32 {
    19
}

fn libc_sigcont() -> i32 {
    18
}
