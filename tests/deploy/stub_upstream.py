#!/usr/bin/env python3
"""A stand-in for one solad replica, to test the nginx front's routing without solad.

Usage: stub_upstream.py PORT MODE LOG [RELEASE_FILE]
  MODE ok    answers 200 {"ok": true} to everything
  MODE busy  answers 503 {"error": "queue full"} with Retry-After: 1 to everything
Both modes stream GET /jobs/ID/events as server-sent events: one event at once, then
(after RELEASE_FILE appears, at most 10 s later) a second one, and the stream ends.
Every request is appended to LOG as "METHOD PATH REQUEST_ID BODY_BYTES".
Runs until killed.
"""
import http.server
import os
import sys
import threading
import time

PORT, MODE, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
RELEASE = sys.argv[4] if len(sys.argv) > 4 else None
log_lock = threading.Lock()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the request log below is what matters
        pass

    def handle_any(self):
        # Bodies are counted, not kept: the body-limit checks send hundreds of MiB.
        n = int(self.headers.get("Content-Length") or 0)
        nbody = 0
        while nbody < n:
            got = self.rfile.read(min(1 << 20, n - nbody))
            if not got:
                break
            nbody += len(got)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                left = size + 2
                while left:
                    got = self.rfile.read(min(1 << 20, left))
                    if not got:
                        break
                    left -= len(got)
                nbody += size
                if size == 0:
                    break
        with log_lock, open(LOG, "a") as f:
            f.write("%s %s %s %d\n" % (self.command, self.path,
                                      self.headers.get("X-Request-ID", "-"), nbody))
        if self.command == "GET" and self.path.startswith("/jobs/") and self.path.endswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"event: progress\ndata: one\n\n")
            self.wfile.flush()
            t0 = time.time()
            while RELEASE and not os.path.exists(RELEASE) and time.time() - t0 < 10:
                time.sleep(0.05)
            self.wfile.write(b"event: progress\ndata: two\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        if MODE == "busy":
            out, code = b'{"error":"queue full"}', 503
        else:
            out, code = b'{"ok":true}', 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        if code == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # nginx closing an idle keep-alive connection is not news


S(("127.0.0.1", PORT), H).serve_forever()
