#!/usr/bin/env python3
"""Bounded HTTP load against solad (directly or through nginx), standard library only.

Usage: load.py URL --dim C [--length T] [--concurrency N] [--max-requests M]
               [--stop-file PATH] [--progress PATH] [--seed S] [--query model=M]
               [--pause SECONDS]
Each worker thread keeps one keep-alive connection and sends, in turn,
POST /refine (JSON), POST /tsm (JSON) and GET /models. A request counts as failed
when it raises (connection reset, timeout...) or answers anything but 200, or when a
/refine reply does not hold a [T, C] "features" matrix. The run ends after
--max-requests requests or when --stop-file exists, whichever comes first.
--progress PATH is rewritten with the number of finished requests as they finish.
Prints one JSON summary line: {"ok", "failed", "by_status", "errors", "replicas"}.
Exit status 0 when no request failed, 1 otherwise, 2 on usage errors.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--length", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-requests", type=int, default=200)
    ap.add_argument("--stop-file")
    ap.add_argument("--progress")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds each worker waits between requests (bounds the CPU used)")
    ap.add_argument("--query", default="", help="query string for /refine and /tsm, e.g. model=m")
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if u.scheme != "http" or not u.hostname or not u.port:
        print("load.py: URL must be http://HOST:PORT", file=sys.stderr)
        return 2

    rng = random.Random(a.seed)
    feats = [[round(rng.uniform(-1, 1), 4) for _ in range(a.dim)] for _ in range(a.length)]
    body = json.dumps({"features": feats}).encode()
    qs = "?" + a.query if a.query else ""

    lock = threading.Lock()
    st = {"ok": 0, "failed": 0, "by_status": {}, "errors": [], "started": 0,
          "replicas": {}}

    def take():
        with lock:
            if st["started"] >= a.max_requests:
                return -1
            if a.stop_file and os.path.exists(a.stop_file):
                return -1
            st["started"] += 1
            return st["started"]

    def record(status, err, replica):
        with lock:
            key = str(status)
            st["by_status"][key] = st["by_status"].get(key, 0) + 1
            if err is None:
                st["ok"] += 1
            else:
                st["failed"] += 1
                if len(st["errors"]) < 10:
                    st["errors"].append(err)
            if replica:
                st["replicas"][replica] = st["replicas"].get(replica, 0) + 1
            done = st["ok"] + st["failed"]
        if a.progress:
            tmp = a.progress + ".tmp%d" % threading.get_ident()
            with open(tmp, "w") as f:
                f.write("%d\n" % done)
            os.replace(tmp, a.progress)

    def worker():
        conn = None
        while True:
            n = take()
            if n < 0:
                break
            kind = n % 3
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=a.timeout)
            status, err, replica = "exc", None, None
            try:
                if kind == 0:
                    conn.request("POST", "/refine" + qs, body, {"Content-Type": "application/json",
                                                            "Accept": "application/json"})
                elif kind == 1:
                    conn.request("POST", "/tsm" + qs, body, {"Content-Type": "application/json",
                                                         "Accept": "application/json"})
                else:
                    conn.request("GET", "/models")
                r = conn.getresponse()
                data = r.read()
                status = r.status
                replica = r.getheader("X-Replica")
                if r.status != 200:
                    err = "%s -> %d %s" % (("refine", "tsm", "models")[kind], r.status, data[:200])
                elif kind == 0:
                    out = json.loads(data)
                    f = out.get("features")
                    if not (isinstance(f, list) and len(f) == a.length and len(f[0]) == a.dim):
                        err = "refine reply has no [%d, %d] features: %s" % (a.length, a.dim, data[:200])
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # a failed request, whatever the cause
                err = "%s: %s: %r" % (("refine", "tsm", "models")[kind], type(e).__name__, e)
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
            record(status, err, replica)
            if a.pause > 0:
                time.sleep(a.pause)
        if conn is not None:
            conn.close()

    t0 = time.time()
    ths = [threading.Thread(target=worker, daemon=True) for _ in range(a.concurrency)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    st["seconds"] = round(time.time() - t0, 3)
    del st["started"]
    print(json.dumps(st, sort_keys=True))
    return 0 if st["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
