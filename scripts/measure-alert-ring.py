#!/usr/bin/env python3
"""Alert latency (issue 17, target 6): from a person's key "2" ("please
contact me") to the first watcher's phone ringing, with N cases opening at
once (default 1,000).

N people, each with their own watcher (a phone) as the one tier of their
own ladder; N one-off checks are asked for at once; every person's phone
answers and presses 2 (`genki-loadtest phones --digits 2`), so N cases
open within the round's first seconds. Each watcher's phone (a second
`phones` population) answers and presses 1 (takes the case). Both
populations print one JSON line per call with wall-clock times, on this
one machine: the key's time is the person's phone's `first_digit_at_ms`,
the ring's is the INVITE's arrival at the watcher's phone
(`invite_at_ms`), matched by the person's index in both user parts.
Reports p50 / p99 / max of key → ring over the N cases, how many rang, and
genki's CPU.

Usage: scripts/measure-alert-ring.py [N] [CPS]  (release binaries in
$GENKI_BIN_DIR, default /var/tmp/genki-target/release; the trunk's calls a
second default 500, so N calls start within N/CPS s).
"""
import concurrent.futures, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
CPS = int(sys.argv[2]) if len(sys.argv) > 2 else 500
BIN = os.environ.get("GENKI_BIN_DIR", "/var/tmp/genki-target/release")


def port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def req(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(f"http://{API}{path}", data=data, method=method)
    r.add_header("Authorization", f"Bearer {tok}")
    if data: r.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(r, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


d = tempfile.mkdtemp(prefix="genki-ring-")
API = f"127.0.0.1:{port()}"
people_addr, watcher_addr = (f"127.0.0.1:{port(socket.SOCK_DGRAM)}" for _ in range(2))
procs = []
try:
    people_out, watcher_out = (open(os.path.join(d, n), "w") for n in ("people.jsonl", "watchers.jsonl"))
    common = ["--calls", str(N), "--max-seconds", "600", "--json", "--socket-per-call", "--answer-delay-ms", "300"]
    procs.append(subprocess.Popen([f"{BIN}/genki-loadtest", "phones", "--listen", people_addr, "--digits", "2",
                                   "--digit-delay-ms", "500"] + common, stdout=people_out, stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen([f"{BIN}/genki-loadtest", "phones", "--listen", watcher_addr, "--digits", "1",
                                   "--digit-delay-ms", "500"] + common, stdout=watcher_out, stderr=subprocess.DEVNULL))
    env = dict(os.environ, GENKI_STORAGE_PATH=d, GENKI_API_LISTEN=API, GENKI_SIP_BIND=f"127.0.0.1:{port(socket.SOCK_DGRAM)}",
               GENKI_TRUNK_CPS=str(CPS), GENKI_TRUNK_MAX_CALLS=str(2 * N + 100), GENKI_API_RATE_PER_S="0",
               GENKI_SIP_RTP_PORTS="20000-29999", GENKI_LOG="warn")
    genki = subprocess.Popen([f"{BIN}/genki", "serve", "--clock-start", "2026-11-24T10:00:00+09:00"], env=env,
                             stderr=open(os.path.join(d, "genki.log"), "w"))
    procs.append(genki)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://{API}/healthz", timeout=1); break
        except Exception: time.sleep(0.1)
    tok = open(os.path.join(d, "operator-token")).read().strip()
    t = req("POST", "/v1/tenants", {"name": "ring", "retry": {"max_attempts": 1, "spacing_minutes": 1, "retry_no_answer": False,
            "retry_busy": False, "retry_failed": False, "retry_no_input": False, "carry_to_next_window": False}})["id"]

    def enrol(i):
        s = req("POST", f"/v1/tenants/{t}/subscribers", {"name": f"p{i}", "phone": f"sip:p{i}@{people_addr}"})["id"]
        w = req("POST", f"/v1/tenants/{t}/watchers", {"name": f"w{i}", "phone": f"sip:w{i}@{watcher_addr}"})["id"]
        req("PUT", f"/v1/subscribers/{s}/ladder", {"tiers": [{"watchers": [w], "deadline_s": 3600}]})
        return s

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        subs = list(ex.map(enrol, range(N)))
    print(f"{N} people and watchers enrolled", flush=True)
    cpu0, start = cpu(genki.pid), time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda s: req("POST", f"/v1/subscribers/{s}/checks"), subs))
    print(f"{N} checks asked for in {time.time() - start:.1f} s", flush=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        rang = sum(1 for l in open(watcher_out.name) if l.strip())
        if rang >= N: break
        time.sleep(0.5)
    cpu1 = cpu(genki.pid)
    key = {}
    for l in open(people_out.name):
        if l.strip():
            r = json.loads(l)
            if r.get("first_digit_at_ms"): key[r["callee"].lstrip("p")] = r["first_digit_at_ms"]
    ring = {}
    for l in open(watcher_out.name):
        if l.strip():
            r = json.loads(l)
            ring.setdefault(r["callee"].lstrip("w"), r["invite_at_ms"])
    lat = sorted(ring[i] - key[i] for i in ring if i in key)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(json.dumps({"cases": N, "keys_pressed": len(key), "watchers_rung": len(ring), "matched": len(lat),
                      "key_to_ring_ms": {"p50": q(0.5), "p99": q(0.99), "max": lat[-1]} if lat else None,
                      "first_key_to_last_key_s": round((max(key.values()) - min(key.values())) / 1000, 2) if key else None,
                      "genki_cpu_s": round(cpu1 - cpu0, 2)}))
finally:
    for p in procs: p.kill()
    shutil.rmtree(d, ignore_errors=True)
