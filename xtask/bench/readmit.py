#!/usr/bin/env python3
"""Issue 13's figure: N simulated agents admitted by join token over TLS to 3 masters, then kill -9
the leader: time until the new leader serves and every agent is active again (re-admitted on the
certificate it was issued, no token). BIN_DIR has keel-master, keel-agent, keelctl.

    cargo build --release --bins && python3 xtask/bench/readmit.py target/release 1000
"""
import json, os, signal, socket, subprocess, sys, tempfile, time
B, N = sys.argv[1], int(sys.argv[2])
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
tmp = tempfile.mkdtemp(prefix="readmit-")
ports = [free_port() for _ in range(3)]
lst = ",".join(f"127.0.0.1:{p}" for p in ports)
pki = tmp + "/pki"
subprocess.run([B + "/keelctl", "pki", "init", "--dir", pki, "--masters", lst], check=True, capture_output=True)
env = dict(os.environ, KEEL_TLS_CA=pki + "/ca.crt", KEEL_TLS_CERT=pki + "/admin.crt", KEEL_TLS_KEY=pki + "/admin.key")
def ctl(master, *args):
    r = subprocess.run([B + "/keelctl", "--master", master, *args], env=env, capture_output=True, text=True, timeout=30)
    return r.stdout if r.returncode == 0 else None
masters = {}
for p in ports:
    stem = f"{pki}/master-127.0.0.1-{p}"
    masters[p] = subprocess.Popen([B + "/keel-master", "--ip", "127.0.0.1", "--port", str(p), "--masters", lst,
        "--work-dir", f"{tmp}/m{p}", "--tls-ca", pki + "/ca.crt", "--tls-cert", stem + ".crt", "--tls-key", stem + ".key",
        "--tls-ca-key", pki + "/ca.key", "--agent-admission", "token"],
        stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/m{p}.log", "wb"))
procs = list(masters.values())
try:
    tok = None
    for _ in range(300):
        tok = ctl(lst, "tokens", "create", "--uses", str(N), "--ttl", "1h")
        if tok: break
        time.sleep(0.2)
    tok = tok.strip()
    t = time.time()
    sim = subprocess.Popen([B + "/keel-agent", "sim", "--master", lst, "--agents", str(N), "--work-dir", tmp + "/sim",
        "--tls-ca", pki + "/ca.crt", "--join-token", tok], stdout=subprocess.DEVNULL, stderr=open(tmp + "/sim.log", "wb"))
    procs.append(sim)
    def states(master, since=None):
        out = ctl(master, "agents", "-o", "json")
        if out is None: return None
        v = json.loads(out); agents = v.get("agents", v) if isinstance(v, dict) else v
        c = {}
        for a in agents:
            k = a["state"]
            if since is not None:
                k += "+back" if (a.get("reregistered_time") or 0) >= since else "+not-yet"
            c[k] = c.get(k, 0) + 1
        return c
    while (states(lst) or {}).get("active", 0) < N:
        time.sleep(0.5)
    print(f"{N} agents admitted by token over TLS in {time.time()-t:.1f} s", flush=True)
    time.sleep(3)
    m = json.loads(ctl(lst, "masters", "-o", "json"))
    leader = None
    for x in m.get("members", m.get("masters", [])):
        if x.get("leader") or x.get("is_leader"):
            leader = x.get("address") or x.get("addr")
    if leader is None:
        leader = m.get("leader_address") or m.get("leader")
    lp = int(str(leader).rsplit(":", 1)[1])
    t0 = time.time(); since = t0
    masters[lp].send_signal(signal.SIGKILL); masters[lp].wait()
    rest = ",".join(f"127.0.0.1:{p}" for p in ports if p != lp)
    served = None; seen = {}
    while time.time() - t0 < 300:
        s = states(rest, since)
        now = time.time() - t0
        if s is not None and served is None and any("+back" in k for k in s):
            served = now; print(f"first re-registration seen after {served:.2f} s: {s}", flush=True)
        if s is not None and s.get("active+back", 0) == N:
            print(f"all {N} agents active again {now:.2f} s after the kill", flush=True); break
        if s is not None and s != seen:
            seen = s; print(f"  {now:.2f} s: {s}", flush=True)
        time.sleep(0.2)
    else:
        print("not all back within 300 s:", seen)
    used = ctl(rest, "tokens", "list", "-o", "json")
    print("tokens after:", used.strip()[:300] if used else None)
finally:
    for p in procs:
        try: p.kill()
        except Exception: pass
    print("logs in", tmp)
