#!/usr/bin/env python3
"""Measure the alert path on this machine: N subscribers whose phones are
busy all miss at once; each opens a case whose one watcher has a webhook.
Reports how long from the last outcome to the last signed webhook, and the
daemon's CPU. Usage: scripts/measure-alerts.py [N] (binaries from
$CARGO_TARGET_DIR/{debug,release}, default /var/tmp/genki-target/debug)."""
import json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
BIN = os.environ.get("GENKI_BIN", "/var/tmp/genki-target/debug")
SECRET = "measure-secret-0123"

def port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def req(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(f"http://{API}{path}", data=data, method=method)
    if token: r.add_header("Authorization", f"Bearer {token}")
    if data: r.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(r, timeout=30) as resp:
        return json.loads(resp.read() or b"null")

d = tempfile.mkdtemp(prefix="genki-measure-")
API = f"127.0.0.1:{port()}"
hook_addr = f"127.0.0.1:{port()}"; phone_addr = f"127.0.0.1:{port(socket.SOCK_DGRAM)}"
hook_out = open(os.path.join(d, "hook.jsonl"), "w")
hook = subprocess.Popen([f"{BIN}/genki-loadtest", "webhook", "--listen", hook_addr, "--secret", SECRET, "--max-seconds", "600"], stdout=hook_out, stderr=subprocess.DEVNULL)
phones = subprocess.Popen([f"{BIN}/genki-loadtest", "phones", "--listen", phone_addr, "--behaviour", "busy", "--calls", "0", "--max-seconds", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
env = dict(os.environ, GENKI_STORAGE_PATH=d, GENKI_API_LISTEN=API, GENKI_SIP_BIND=f"127.0.0.1:{port(socket.SOCK_DGRAM)}",
           GENKI_TRUNK_CPS="200", GENKI_TRUNK_MAX_CALLS="500", GENKI_ALERTS_PARALLEL="16",
           GENKI_ALERTS_WEBHOOK_ALLOW="127.0.0.0/8")
daemon = subprocess.Popen([f"{BIN}/genki", "serve", "--clock-start", "2026-11-24T10:00:00+09:00"], env=env, stderr=subprocess.DEVNULL)
try:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://{API}/healthz", timeout=1); break
        except Exception: time.sleep(0.1)
    tok = open(os.path.join(d, "operator-token")).read().strip()
    t = req("POST", "/v1/tenants", {"name": "measure", "retry": {"max_attempts": 1, "spacing_minutes": 1, "retry_no_answer": False, "retry_busy": False, "retry_failed": False, "retry_no_input": False, "carry_to_next_window": False}}, tok)["id"]
    w = req("POST", f"/v1/tenants/{t}/watchers", {"name": "office", "webhook_url": f"http://{hook_addr}/h", "webhook_secret": SECRET}, tok)["id"]
    req("PUT", f"/v1/tenants/{t}/ladder", {"tiers": [{"watchers": [w], "deadline_s": 3600}]}, tok)
    subs = [req("POST", f"/v1/tenants/{t}/subscribers", {"name": f"s{i}", "phone": f"sip:u{i}@{phone_addr}"}, tok)["id"] for i in range(N)]
    cpu0 = sum(float(x) for x in open(f"/proc/{daemon.pid}/stat").read().split(")")[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")
    start = time.time()
    for s in subs: req("POST", f"/v1/subscribers/{s}/checks", None, tok)
    last_outcome = None
    while True:
        seen = [json.loads(l) for l in open(hook_out.name) if l.strip()]
        ids = {e["event_id"] for e in seen}
        summ = req("GET", f"/v1/tenants/{t}/alerts?state=all&limit=1000", None, tok)["alerts"]
        if last_outcome is None and len(summ) >= N: last_outcome = time.time()
        if len(ids) >= N: break
        if time.time() - start > 300: sys.exit(f"timeout: {len(ids)} events")
        time.sleep(0.05)
    end = time.time()
    cpu1 = sum(float(x) for x in open(f"/proc/{daemon.pid}/stat").read().split(")")[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")
    bad = [e for e in seen if not e["signature_ok"] or e["duplicate"]]
    print(json.dumps({"subscribers": N, "checks_to_all_cases_s": round(last_outcome - start, 2),
                      "checks_to_all_webhooks_s": round(end - start, 2), "webhooks": len(seen), "bad_or_duplicate": len(bad),
                      "daemon_cpu_s": round(cpu1 - cpu0, 2)}))
finally:
    for p in (daemon, hook, phones): p.kill()
    shutil.rmtree(d, ignore_errors=True)
