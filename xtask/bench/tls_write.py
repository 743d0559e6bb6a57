#!/usr/bin/env python3
"""One keel-master (BIN), plaintext then TLS (certs made with keelctl pki), N UPDATE_WEIGHTS over one
keep-alive connection each; p50/p99 ms and the master's context switches per write.

    cargo build --release --bins && python3 xtask/bench/tls_write.py target/release/keel-master target/release/keelctl 2000
"""
import http.client, json, os, socket, ssl, subprocess, sys, tempfile, time, glob
BIN, KEELCTL = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
BODY = json.dumps({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "r1", "weight": 2.0}]}})
HDR = {"Content-Type": "application/json"}
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def ctxt(pid):
    t = 0
    for f in glob.glob(f"/proc/{pid}/task/*/status"):
        for l in open(f):
            if "ctxt_switches" in l: t += int(l.split()[1])
    return t
def run(tls):
    tmp = tempfile.mkdtemp(prefix="tls1-")
    port = free_port()
    args = [BIN, "--ip", "127.0.0.1", "--port", str(port), "--work-dir", tmp + "/m"]
    ctx = None
    if tls:
        pki = tmp + "/pki"
        subprocess.run([KEELCTL, "pki", "init", "--dir", pki, "--masters", f"127.0.0.1:{port}"], check=True, capture_output=True)
        stem = f"{pki}/master-127.0.0.1-{port}"
        args += ["--tls-ca", pki + "/ca.crt", "--tls-cert", stem + ".crt", "--tls-key", stem + ".key", "--agent-admission", "open"]
        ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
        ctx.check_hostname = False
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(tmp + "/log", "wb"))
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx) if tls else http.client.HTTPConnection("127.0.0.1", port)
                c.request("POST", "/api/v1", body=BODY, headers=HDR); r = c.getresponse(); r.read()
                if r.status == 200: break
            except Exception:
                time.sleep(0.1)
        for _ in range(200):
            c.request("POST", "/api/v1", body=BODY, headers=HDR); c.getresponse().read()
        c0 = ctxt(p.pid); lat = []
        for _ in range(N):
            t = time.perf_counter(); c.request("POST", "/api/v1", body=BODY, headers=HDR); r = c.getresponse(); r.read()
            lat.append((time.perf_counter() - t) * 1000)
        c1 = ctxt(p.pid)
        lat.sort()
        return lat[len(lat)//2], lat[int(len(lat)*0.99)], (c1 - c0) / N
    finally:
        p.terminate(); p.wait()
for r in range(2):
    for tls in (False, True):
        p50, p99, cs = run(tls)
        print(f"{'tls  ' if tls else 'plain'} p50 {p50:.3f} p99 {p99:.3f} ms, master ctxt/write {cs:.2f}", flush=True)
