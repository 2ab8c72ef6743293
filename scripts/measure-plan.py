#!/usr/bin/env python3
"""Plan a day for N subscribers (default 1,000,000) through the real daemon:
import them by CSV through the API (batches of 100,000), restart genki so
its planner runs at start-up, and report the planner's own timing from the
log ("planned checks … ms=…"), plus a subscriber read's latency. With
IDLE_S=130 it then measures genki's CPU over that many idle seconds (the
due loop's minute re-plans: skipped while no tenant, person or day changed;
with TOUCH=1 the tenant is edited each minute, so each re-plan runs; with
PROBE=1 a person is checked now every quarter second meanwhile — simulated
phones answer busy — and the due loop's dispatch lag (due → claimed, the
`genki_scheduler_lag_seconds` quantiles) shows whether a pass holds calls).
Usage: scripts/measure-plan.py [N]  (release binaries in $GENKI_BIN_DIR,
default /var/tmp/genki-target/release)."""
import json, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
BIN = os.environ.get("GENKI_BIN_DIR", "/var/tmp/genki-target/release")
def port(k=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, k); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
d = tempfile.mkdtemp(prefix="genki-plan-")
API = f"127.0.0.1:{port()}"
PHONES = f"127.0.0.1:{port(socket.SOCK_DGRAM)}"
env = dict(os.environ, GENKI_TRUNK_PROXY=f"sip:{PHONES}", GENKI_STORAGE_PATH=d, GENKI_API_LISTEN=API, GENKI_SIP_BIND=f"127.0.0.1:{port(socket.SOCK_DGRAM)}",
           GENKI_SCHEDULER_PLAN_DAYS="1", GENKI_LOG="info")
def start():
    log = open(os.path.join(d, "log"), "a")
    p = subprocess.Popen([f"{BIN}/genki", "serve", "--clock-start", "2026-11-24T05:00:00+09:00"], env=env, stderr=log, stdout=log)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://{API}/healthz", timeout=1); return p
        except Exception: time.sleep(0.1)
    sys.exit("genki did not start")
def req(method, path, body=None, ctype="application/json"):
    r = urllib.request.Request(f"http://{API}{path}", data=body, method=method)
    r.add_header("Authorization", f"Bearer {tok}")
    if body is not None: r.add_header("Content-Type", ctype)
    t = time.time()
    with urllib.request.urlopen(r, timeout=600) as resp:
        return json.loads(resp.read() or b"null"), time.time() - t
try:
    g = start()
    tok = open(os.path.join(d, "operator-token")).read().strip()
    t, _ = req("POST", "/v1/tenants", json.dumps({"name": "plan", "skip_holidays": False,
                                           # The probe's checks are made at 05:00, in the window.
                                           "window_start": "00:00", "window_end": "23:59"}).encode())
    tid = t["id"]
    imp = 0.0
    for b in range(0, N, 100_000):
        csv = "name,phone,days,times\n" + "".join(f"s{i},+8147{i:07d},1-7,09:30\n" for i in range(b, min(N, b + 100_000)))
        r, dt = req("POST", f"/v1/tenants/{tid}/subscribers/import", csv.encode(), "text/csv")
        imp += dt
        assert r["imported"] == min(100_000, N - b), r["errors"][:3]
    print(f"imported {N} subscribers through the API in {imp:.1f} s", flush=True)
    g.terminate(); g.wait()
    open(os.path.join(d, "log"), "w").close()
    t0 = time.time()
    g = start()
    for _ in range(1200):
        m = re.search(r"planned checks.*?created=(\d+).*?ms=(\d+)|ms=(\d+).*?created=(\d+)", open(os.path.join(d, "log")).read())
        if m: break
        time.sleep(0.1)
    lat = sorted(req("GET", f"/v1/subscribers/{1 + i * 997 % N}")[1] * 1000 for i in range(200))
    print("planner log:", [l for l in open(os.path.join(d, "log")) if "planned" in l][-1].strip()[:300])
    print(f"subscriber reads after planning: p50 {lat[100]:.2f} ms, p99 {lat[197]:.2f} ms")
    idle = int(os.environ.get("IDLE_S", "0"))
    if idle:
        cpu = lambda: sum(int(x) for x in open(f"/proc/{g.pid}/stat").read().split(")")[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")
        c0 = cpu(); t_end = time.time() + idle
        # TOUCH=1: change the tenant each minute (as an edit through the
        # API would), so every minute's re-plan runs its whole pass.
        probe = os.environ.get("PROBE")
        phones = subprocess.Popen([f"{BIN}/genki-loadtest", "phones", "--listen", PHONES, "--behaviour", "busy"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if probe else None
        k, touched = 0, 0.0
        while time.time() < t_end:
            if os.environ.get("TOUCH") and time.time() - touched >= 60:
                req("PATCH", f"/v1/tenants/{tid}", json.dumps({"name": "plan"}).encode()); touched = time.time()
            if probe:
                k += 1
                req("POST", f"/v1/subscribers/{1 + k * 7919 % N}/checks", b"{}")
                time.sleep(0.25)
            else:
                time.sleep(min(60, max(0, t_end - time.time())))
        if phones:
            phones.terminate()
            m = urllib.request.Request(f"http://{API}/metrics")
            m.add_header("Authorization", f"Bearer {tok}")
            lag = [l for l in urllib.request.urlopen(m).read().decode().splitlines()
                   if l.startswith("genki_scheduler_lag_seconds")]
            print(f"{k} checks made now during the idle time; dispatch lag:", *lag, sep="\n  ")
        c1 = cpu()
        passes = [l.strip()[:160] for l in open(os.path.join(d, "log")) if "planned checks" in l]
        print(f"idle {idle} s after the plan: genki CPU {c1 - c0:.2f} s; plan passes {len(passes)}:", *passes[1:], sep="\n  ", flush=True)
    g.terminate(); g.wait()
finally:
    shutil.rmtree(d, ignore_errors=True)
