#!/usr/bin/env python3
"""systemd readiness notification (Type=notify) of solad, without systemd.

Plays the service manager: binds an AF_UNIX datagram socket, starts solad with
NOTIFY_SOCKET pointing at it (a path, then an abstract '@name'), and checks that
  * READY=1 arrives, and only once the models are loaded: at that moment GET /readyz
    already answers 200 (a models-dir store with a model, so loading is real work);
  * the same datagram carries a STATUS= line;
  * SIGTERM sends STOPPING=1 before solad exits 0;
  * without NOTIFY_SOCKET nothing breaks (solad starts and stops as usual).
Usage: notify.py SOLAD   Exit status 0 pass, 1 fail, 77 skipped.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
failed = False


def fail(msg):
    global failed
    failed = True
    print("FAIL: " + msg)


def ok(msg):
    print("ok:   " + msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def run(solad, store, sock_name, tmp):
    """One solad lifetime under a fake service manager; sock_name None = no socket."""
    port = free_port()
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    sock = None
    if sock_name is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        addr = "\0" + sock_name[1:] if sock_name.startswith("@") else sock_name
        sock.bind(addr)
        sock.settimeout(30)
        env["NOTIFY_SOCKET"] = sock_name
    log = open(os.path.join(tmp, "solad.log"), "ab")
    p = subprocess.Popen([solad, "--listen", "127.0.0.1:%d" % port, "--models-dir", store,
                          "--workers", "1", "--threads", "1", "--drain-timeout", "5"],
                         stdout=log, stderr=log, env=env)
    base = "http://127.0.0.1:%d" % port
    what = "NOTIFY_SOCKET=%s" % sock_name if sock_name else "no NOTIFY_SOCKET"
    try:
        if sock is None:
            for _ in range(300):
                if status(base + "/readyz") == 200:
                    break
                time.sleep(0.1)
            else:
                fail("%s: solad never became ready" % what)
                return
            ok("%s: solad starts and serves as usual" % what)
        else:
            try:
                msg = sock.recv(4096).decode()
            except socket.timeout:
                fail("%s: no notification within 30 s" % what)
                return
            ready = status(base + "/readyz")
            fields = dict(l.split("=", 1) for l in msg.splitlines() if "=" in l)
            if fields.get("READY") == "1" and ready == 200:
                ok("%s: READY=1 arrived when /readyz already answered 200" % what)
            else:
                fail("%s: first notification %r, /readyz %s at that moment" % (what, msg, ready))
            if fields.get("STATUS", "").startswith("serving 2 models"):
                ok("%s: STATUS=%s" % (what, fields["STATUS"]))
            else:
                fail("%s: no STATUS= with the models in %r" % (what, msg))
        p.send_signal(signal.SIGTERM)
        if sock is not None:
            try:
                msg = sock.recv(4096).decode()
                if "STOPPING=1" in msg.splitlines():
                    ok("%s: STOPPING=1 on SIGTERM (%s)" % (what, msg.replace("\n", " | ")))
                else:
                    fail("%s: after SIGTERM got %r, want STOPPING=1" % (what, msg))
            except socket.timeout:
                fail("%s: no STOPPING=1 within 30 s of SIGTERM" % what)
        rc = p.wait(timeout=30)
        if rc == 0:
            ok("%s: exit 0 after SIGTERM" % what)
        else:
            fail("%s: exit %d after SIGTERM" % (what, rc))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if sock is not None:
            sock.close()
        log.close()


def main():
    if len(sys.argv) != 2 or not os.access(sys.argv[1], os.X_OK):
        print("SKIP: usage: notify.py SOLAD (a built solad)")
        return 77
    solad = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="solad-notify.")
    try:
        store = os.path.join(tmp, "store")
        os.makedirs(os.path.join(store, "m"))
        for path, seed in ((os.path.join(store, "m", "1.safetensors"), 1),
                           (os.path.join(store, "flat.safetensors"), 2)):
            subprocess.check_call([sys.executable, os.path.join(HERE, "make_files.py"), "model",
                                   path, "--dim", "64", "--alpha", "0.5", "--seed", str(seed)])
        run(solad, store, os.path.join(tmp, "notify.sock"), tmp)
        run(solad, store, "@solad-notify-test-%d" % os.getpid(), tmp)
        run(solad, store, None, tmp)
        if failed:
            with open(os.path.join(tmp, "solad.log"), "rb") as f:
                sys.stdout.write(f.read().decode(errors="replace")[-2000:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
