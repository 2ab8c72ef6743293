#!/usr/bin/env python3
"""The console's Today page at scale (issue 15, acceptance 5): a tenant of
N people (default 1,000,000) enrolled by CSV through the API with a call at
09:30 every day, so today's round of N checks is planned; a coordinator of
that tenant signs in; then a 2,000-call round of simulated phones
(`genki-loadtest run --all-answer`, its own tenant) runs while the Today
page's live part (/console/today/live) is fetched again and again, and so
are the API's reads a coordinator's tools make (issue 17, target 5): the
big tenant's summary and the round's tenant's (`GET /v1/tenants/{id}/summary`,
default page of up to 1,000 rows: the round's calls in progress), a
person of it (`GET /v1/subscribers/{id}`, a random one each time) and a
page of 100 outcomes of the round's tenant (`GET /v1/tenants/{id}/outcomes
?limit=100`, the first page and the pages after it). Reports the first
fetch after the start and then p50 / p99 / max of every fetch during the
round, and the round's own report.
Usage: scripts/measure-console.py [N] [CALLS]  (release binaries in
$GENKI_BIN_DIR, default /var/tmp/genki-target/release)."""
import http.client, json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.parse, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
CALLS = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
BIN = os.environ.get("GENKI_BIN_DIR", "/var/tmp/genki-target/release")
def port(k=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, k); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
d = tempfile.mkdtemp(prefix="genki-console-")
API_PORT = port()
API = f"127.0.0.1:{API_PORT}"
PHONES = f"127.0.0.1:{port(socket.SOCK_DGRAM)}"
env = dict(os.environ, GENKI_STORAGE_PATH=d, GENKI_API_LISTEN=API, GENKI_SIP_BIND=f"127.0.0.1:{port(socket.SOCK_DGRAM)}",
           GENKI_SCHEDULER_PLAN_DAYS="1", GENKI_LOG="info", GENKI_TRUNK_CPS="200", GENKI_TRUNK_MAX_CALLS=str(CALLS + 100),
           GENKI_API_RATE_PER_S="0", GENKI_SIP_RTP_PORTS="20000-29999")
def start():
    log = open(os.path.join(d, "log"), "a")
    # 05:00 in Tokyo: the N people's 09:30 calls are planned, not yet due.
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
    with urllib.request.urlopen(r, timeout=600) as resp:
        return json.loads(resp.read() or b"null")
def raw(method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=60)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, r.getheaders(), data
g = None
try:
    g = start()
    tok = open(os.path.join(d, "operator-token")).read().strip()
    tid = req("POST", "/v1/tenants", json.dumps({"name": "大きな市", "time_zone": "Asia/Tokyo", "skip_holidays": False}).encode())["id"]
    t0 = time.time()
    ids = []
    for b in range(0, N, 100_000):
        csv = "name,phone,days,times\n" + "".join(f"s{i},+8147{i:07d},1-7,09:30\n" for i in range(b, min(N, b + 100_000)))
        r = req("POST", f"/v1/tenants/{tid}/subscribers/import", csv.encode(), "text/csv")
        assert r["imported"] == min(100_000, N - b), r["errors"][:3]
        ids.extend(r["ids"])
    print(f"imported {N} people in {time.time() - t0:.1f} s", flush=True)
    req("POST", "/v1/staff", json.dumps({"tenant_id": tid, "login": "coordinator", "name": "係", "role": "coordinator", "password": "a long pass phrase"}).encode())
    g.terminate(); g.wait()
    g = start()  # its planner plans today's round at start-up
    for _ in range(3000):
        if re.search(r"planned checks", open(os.path.join(d, "log")).read()): break
        time.sleep(0.1)
    print("planner:", [l.strip()[:200] for l in open(os.path.join(d, "log")) if "planned" in l][-1:], flush=True)
    st, hs, body = raw("GET", "/console/signin")
    pre = [v for k, v in hs if k.lower() == "set-cookie" and v.startswith("genki_signin=")][0].split(";")[0]
    csrf = re.search(rb'name="_csrf" value="([0-9a-f]+)"', body).group(1).decode()
    form = urllib.parse.urlencode({"_csrf": csrf, "login": "coordinator", "password": "a long pass phrase", "locale": "ja"})
    st, hs, _ = raw("POST", "/console/signin", form, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": pre})
    sess = [v for k, v in hs if k.lower() == "set-cookie" and v.startswith("genki_session=")][0].split(";")[0]
    def today():
        t = time.time(); st, _, body = raw("GET", "/console/today/live", headers={"Cookie": sess})
        assert st == 200, (st, body[:300]); return (time.time() - t) * 1000, body
    first, body = today()
    total = re.search(rb"\xe4\xba\x88\xe5\xae\x9a\xe3\x81\xae\xe4\xbb\xb6\xe6\x95\xb0 (\d+)", body)  # 予定の件数 N
    print(f"first Today fetch after the start: {first:.0f} ms; checks today: {total.group(1).decode() if total else '?'}", flush=True)
    lats, stop = [], threading.Event()
    def poll():
        while not stop.is_set():
            lats.append(today()[0]); time.sleep(0.1)
    th = threading.Thread(target=poll); th.start()
    import random
    api_lats = {"summary (1M people)": [], "summary (round's tenant)": [], "subscriber": [], "outcomes page": []}
    def timed(kind, path):
        t = time.time(); st, _, body = raw("GET", path, headers={"Authorization": f"Bearer {tok}"})
        assert st == 200, (path, st, body[:300]); api_lats[kind].append((time.time() - t) * 1000); return json.loads(body)
    def poll_api():
        # The round's tenant is created by genki-loadtest, next after the big one.
        after = ""
        while not stop.is_set():
            timed("summary (1M people)", f"/v1/tenants/{tid}/summary")
            timed("subscriber", f"/v1/subscribers/{random.choice(ids)}")
            st, _, _ = raw("GET", f"/v1/tenants/{tid + 1}", headers={"Authorization": f"Bearer {tok}"})
            if st == 200:
                # Its calls in progress are rows: pages of up to 1,000.
                timed("summary (round's tenant)", f"/v1/tenants/{tid + 1}/summary")
                page = timed("outcomes page", f"/v1/tenants/{tid + 1}/outcomes?limit=100{after}")
                after = f"&after={page['next']}" if page.get("next") else ""
            time.sleep(0.05)
    th2 = threading.Thread(target=poll_api); th2.start()
    out = os.path.join(d, "round.json")
    rc = subprocess.call([f"{BIN}/genki-loadtest", "run", "--api", f"http://{API}", "--token-file", os.path.join(d, "operator-token"),
                          "--calls", str(CALLS), "--phones", PHONES, "--rtp-base", "30000", "--all-answer", "--genki-pid", str(g.pid), "--json"],
                         stdout=open(out, "w"), stderr=subprocess.DEVNULL)
    stop.set(); th.join(); th2.join()
    lats.sort()
    q = lambda p: lats[min(len(lats) - 1, int(p * len(lats)))]
    print(f"Today during the {CALLS}-call round: {len(lats)} fetches, p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {lats[-1]:.1f} ms")
    for kind, l in api_lats.items():
        l.sort()
        if l:
            print(f"API {kind} during the round: {len(l)} requests, p50 {l[len(l) // 2]:.1f} ms, "
                  f"p99 {l[min(len(l) - 1, int(0.99 * len(l)))]:.1f} ms, max {l[-1]:.1f} ms", flush=True)
    try:
        r = json.load(open(out))
        print("round:", json.dumps({"calls": r.get("calls"), "ledger_ok": (r.get("ledger") or {}).get("ok"), "round_s": r.get("round_s"),
                                    "peak_concurrent": (r.get("peak_concurrent_calls") or {}).get("phones"),
                                    "genki_rtp_send_lateness_p99_ms": (r.get("genki_send_lateness_ms") or {}).get("p99")}))
    except Exception as e:
        print("round report unreadable:", e, "exit", rc)
finally:
    if g: g.terminate(); g.wait()
    shutil.rmtree(d, ignore_errors=True)
