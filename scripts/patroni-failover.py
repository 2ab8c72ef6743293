#!/usr/bin/env python3
"""Patroni switchover and a primary's kill -9 during a round (issue 16).

Starts on loopback, all of it from Debian's packages: a three-member etcd
3.4, two PostgreSQL 15 instances managed by Patroni 3 in synchronous mode,
two `genki serve` nodes whose postgres_url lists both instances with
target_session_attrs=read-write, and the simulated phones. Then it runs a
round of N checks and, during it, (1) asks Patroni for a switchover, and
(2) kill -9s the new primary's host (its Patroni and its postmaster). Before the kill it snapshots
every outcome the primary has acknowledged; afterwards it checks that:
- the round completes: every check ends with exactly one outcome;
- no acknowledged outcome is lost or changed (synchronous replication);
- every person was called at least once.

Usage: [LEASE_S=20] scripts/patroni-failover.py [N]   (default 600; about 3 minutes)
Needs: postgresql-15 patroni etcd-server (apt), a built genki and
genki-loadtest (GENKI_BIN_DIR, default target/debug or
/var/tmp/genki-target/debug). Prints a JSON summary; exit 1 on a failed
check. Everything runs as child processes on 127.0.0.1 and is stopped at
the end.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 600
# Seconds of a node's claim (genki's [storage] lease_s). Shorter than the
# failover (Patroni's ttl 10 s here) and claims run out during it: other
# nodes take them over and some people are called twice.
LEASE_S = os.environ.get("LEASE_S", "20")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The newest build of the candidates (or GENKI_BIN_DIR).
_dirs = [os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), p)
         for p in ["release", "debug"]] + ["/var/tmp/genki-target/debug"]
_built = [d for d in _dirs if os.path.exists(os.path.join(d, "genki"))]
BIN = os.environ.get("GENKI_BIN_DIR") or (
    max(_built, key=lambda d: os.path.getmtime(os.path.join(d, "genki"))) if _built else None)
if not BIN:
    sys.exit("no genki binary: build first, or set GENKI_BIN_DIR")
PG_BIN = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
PG_BIN = f"/usr/lib/postgresql/{PG_BIN}/bin"
for tool in ["etcd", "patroni", "patronictl"]:
    if not shutil.which(tool):
        sys.exit(f"{tool} not found: apt install patroni etcd-server")

TOKEN = "patroni-operator-token-0123456789"
KEY = "7" * 64
PG_PORTS = [5541, 5542]
REST = [8108, 8109]
URL = ("host=127.0.0.1,127.0.0.1 port=5541,5542 user=genki dbname=genki "
       "target_session_attrs=read-write connect_timeout=3")
procs = []
work = tempfile.mkdtemp(prefix="genki-patroni-")
root = os.geteuid() == 0


def as_postgres(cmd):
    return (["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + cmd
            if root else cmd)


def start(cmd, log, env=None):
    p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                         env=env, start_new_session=True)
    procs.append(p)
    return p


def psql(sql, url=URL):
    out = subprocess.run([f"{PG_BIN}/psql", url, "-XAtc", sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return out.stdout.strip()


def http(method, addr, path, body=None):
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                 data=None if body is None else body.encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def leader():
    for port in REST:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/patroni", timeout=2) as r:
                s = json.loads(r.read())
                if s.get("role") in ("master", "primary") and s.get("state") == "running":
                    return f"pg{REST.index(port) + 1}", port
        except Exception:
            pass
    return None, None


def wait(pred, limit, what):
    t = time.time()
    while time.time() - t < limit:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    raise RuntimeError(f"timed out: {what}")


def cleanup():
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except Exception:
            pass
    shutil.rmtree(work, ignore_errors=True)


def main():
    if root:
        shutil.chown(work, "postgres", "postgres")
    # etcd: three members.
    cluster = ",".join(f"e{i}=http://127.0.0.1:{2380 + i * 10}" for i in range(1, 4))
    for i in range(1, 4):
        start(["etcd", "--name", f"e{i}", "--data-dir", f"{work}/etcd{i}",
               "--listen-peer-urls", f"http://127.0.0.1:{2380 + i * 10}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{2380 + i * 10}",
               "--listen-client-urls", f"http://127.0.0.1:{2379 + i * 10}",
               "--advertise-client-urls", f"http://127.0.0.1:{2379 + i * 10}",
               "--initial-cluster", cluster, "--initial-cluster-state", "new",
               "--initial-cluster-token", "genki-patroni"], f"{work}/etcd{i}.log")
    patronis = []
    etcd_hosts = ",".join(f"127.0.0.1:{2379 + i * 10}" for i in range(1, 4))
    time.sleep(2)
    # Patroni: two PostgreSQL instances, synchronous mode.
    for i, (port, rest) in enumerate(zip(PG_PORTS, REST), start=1):
        cfg = f"""scope: genki
name: pg{i}
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: {etcd_hosts}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 5
    synchronous_mode: true
    # Synchronous mode already keeps every acknowledged commit on the
    # standby; the async lag guard (1 MB by default) only stalls a
    # failover under write load.
    maximum_lag_on_failover: 67108864
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 200
        wal_log_hints: "on"
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
  pg_hba:
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{port}
  connect_address: 127.0.0.1:{port}
  data_dir: {work}/pg{i}
  bin_dir: {PG_BIN}
  pgpass: {work}/pgpass{i}
  authentication:
    replication: {{username: replicator, password: rep}}
    superuser: {{username: genki, password: genki}}
  parameters:
    unix_socket_directories: {work}
"""
        path = f"{work}/patroni{i}.yml"
        with open(path, "w") as f:
            f.write(cfg)
        if root:
            shutil.chown(path, "postgres", "postgres")
        patronis.append(start(as_postgres(["patroni", path]), f"{work}/patroni{i}.log"))
        if i == 1:
            wait(lambda: leader()[1], 60, "a Patroni leader")
    wait(lambda: psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                      url=f"host=127.0.0.1 port={leader()[1] - REST[0] + PG_PORTS[0]} user=genki dbname=postgres")
         == "1", 90, "a synchronous standby")
    first = leader()[1] - REST[0] + PG_PORTS[0]
    psql("CREATE DATABASE genki", url=f"host=127.0.0.1 port={first} user=genki dbname=postgres")

    # The phones and two genki nodes.
    phones_out = f"{work}/phones.jsonl"
    start([f"{BIN}/genki-loadtest", "phones", "--listen", "127.0.0.1:45900", "--json",
           "--max-seconds", "900", "--digit-delay-ms", "800", "--max-call-ms", "10000",
           "--rtp-base", "46000"], phones_out)
    nodes = []
    for i in range(2):
        api = f"127.0.0.1:{18300 + i}"
        env = dict(os.environ, GENKI_STORAGE_ENGINE="postgres", GENKI_STORAGE_POSTGRES_URL=URL,
                   GENKI_STORAGE_NODE=f"node-{i + 1}", GENKI_STORAGE_LEASE_S=LEASE_S,
                   GENKI_STORAGE_SECRET_KEY=KEY, GENKI_API_OPERATOR_TOKEN=TOKEN,
                   GENKI_STORAGE_PATH=f"{work}/genki{i}", GENKI_API_LISTEN=api,
                   GENKI_SIP_BIND=f"127.0.0.{i + 1}:{15300 + i}",
                   GENKI_SIP_RTP_PORTS=f"{30000 + i * 4000}-{33999 + i * 4000}",
                   GENKI_TRUNK_CPS="40", GENKI_TRUNK_MAX_CALLS="300", GENKI_LOG="info")
        start([f"{BIN}/genki", "serve", "--clock-start", "2026-11-24T10:00:00+09:00"],
              f"{work}/genki{i}.log", env=env)
        nodes.append(api)
    for api in nodes:
        wait(lambda: _ok(api), 60, f"genki at {api}")
    t = http("POST", nodes[0], "/v1/tenants", json.dumps(
        {"name": "patroni", "window_start": "08:00", "window_end": "20:00",
         "retry": {"max_attempts": 1, "spacing_minutes": 1, "retry_no_answer": False,
                   "retry_busy": False, "retry_failed": False, "retry_no_input": False,
                   "carry_to_next_window": False}}))
    tid = t["id"]
    csv = "name,phone\n" + "".join(f"p {i},sip:p{i}@127.0.0.1:45900\n" for i in range(N))
    req = urllib.request.Request(f"http://{nodes[0]}/v1/tenants/{tid}/subscribers/import",
                                 data=csv.encode(), method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    ids = json.loads(urllib.request.urlopen(req, timeout=60).read())["ids"]
    t0 = time.time()
    for k, sid in enumerate(ids):
        http("POST", nodes[k % 2], f"/v1/subscribers/{sid}/checks")

    def done():
        try:
            return int(psql("SELECT count(*) FROM checks WHERE status = 2"))
        except RuntimeError:
            return -1

    result = {"checks": N, "lease_s": int(LEASE_S)}
    wait(lambda: done() >= N // 5, 300, "a fifth of the round")
    name, _ = leader()
    other = "pg2" if name == "pg1" else "pg1"
    sw = subprocess.run(as_postgres(["patronictl", "-c", f"{work}/patroni1.yml", "switchover",
                                     "genki", "--leader", name, "--candidate", other, "--force"]),
                        capture_output=True, text=True)
    result["switchover"] = {"from": name, "to": other, "ok": sw.returncode == 0,
                            "at_done": done()}
    wait(lambda: leader()[0] == other, 60, "the switchover")
    wait(lambda: done() >= N // 2, 300, "half the round")
    # Synchronous mode fails over only to the synchronous standby (else an
    # acknowledged commit could be lost): the old primary must have caught
    # up as one since the switchover.
    def sync_standby():
        try:
            return psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync' "
                        "AND pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) < 1048576") == "1"
        except RuntimeError:
            return False
    wait(sync_standby, 120, "a synchronous standby after the switchover")
    # …and on the new primary's timeline (a standby still on the old one is
    # not promoted: Patroni would wait for ever, rightly).
    def same_timeline():
        name, rest = leader()
        k = REST.index(rest)
        standby = f"host=127.0.0.1 port={PG_PORTS[1 - k]} user=genki dbname=postgres"
        primary = f"host=127.0.0.1 port={PG_PORTS[k]} user=genki dbname=postgres"
        try:
            return (psql("SELECT received_tli FROM pg_stat_wal_receiver", url=standby)
                    == psql("SELECT timeline_id FROM pg_control_checkpoint()", url=primary))
        except RuntimeError:
            return False
    wait(same_timeline, 120, "the standby on the new primary's timeline")
    acked = psql("SELECT subscriber_id || ':' || kind || ':' || slot || '=' || (body->>'outcome') "
                 "FROM checks WHERE status = 2").splitlines()
    # The primary's host dies: its Patroni and its postmaster at once
    # (a postmaster killed alone is restarted in place by its Patroni).
    name, rest = leader()
    k = REST.index(rest)
    pid = int(open(f"{work}/pg{k + 1}/postmaster.pid").readline())
    os.killpg(patronis[k].pid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    result["kill9"] = {"primary": name, "acknowledged_before": len(acked)}
    wait(lambda: leader()[0] not in (None, name), 120, "a new primary after the kill")
    result["kill9"]["new_primary_after_s"] = round(time.time() - killed_at, 1)
    wait(lambda: done() >= N, 600, "the whole round")
    result["round_s"] = round(time.time() - t0, 1)
    after = dict(line.split("=") for line in psql(
        "SELECT subscriber_id || ':' || kind || ':' || slot || '=' || (body->>'outcome') "
        "FROM checks WHERE status = 2").splitlines())
    lost = [a for a in acked if after.get(a.split("=")[0]) != a.split("=")[1]]
    result["acknowledged_lost_or_changed"] = len(lost)
    states = psql("SELECT status || ':' || coalesce(body->>'outcome', '-') || '=' || count(*) "
                  "FROM checks GROUP BY status, body->>'outcome'")
    result["ledger"] = dict(line.split("=") for line in states.splitlines())
    time.sleep(15)
    recs = [json.loads(x) for x in open(phones_out) if x.strip().startswith("{")]
    called = {}
    for r in recs:
        if r.get("answered"):
            called[r["callee"]] = called.get(r["callee"], 0) + 1
    result["people_called"] = len(called)
    result["called_twice"] = sum(1 for v in called.values() if v > 1)
    errors = []
    for api in nodes:
        for m in ["genki_leases_taken_over_total", "genki_fenced_writes_total",
                  "genki_storage_write_failures_total"]:
            result.setdefault(m, 0)
            result[m] += _metric(api, m)
    ok = (result["acknowledged_lost_or_changed"] == 0
          and sum(int(v) for k, v in result["ledger"].items() if k.startswith("2:")) == N
          and result["people_called"] == N)
    result["ok"] = ok
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0 if ok else 1


def _ok(api):
    try:
        with urllib.request.urlopen(f"http://{api}/healthz", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def _metric(api, name):
    req = urllib.request.Request(f"http://{api}/metrics",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    return sum(int(float(l.split()[-1])) for l in text.splitlines()
               if l.startswith(name) and not l.startswith("#"))


if __name__ == "__main__":
    try:
        code = main()
    except Exception as e:
        print(json.dumps({"ok": False, "error": str(e), "logs": work}), file=sys.stderr)
        code = 1
        # Keep the logs for a look.
        procs_copy = list(procs)
        for p in reversed(procs_copy):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except Exception:
                pass
        sys.exit(code)
    cleanup()
    sys.exit(code)
