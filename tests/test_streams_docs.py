#!/usr/bin/python3
"""test_streams_docs.py -- the Python examples of docs/streaming.md work as pasted.

    /usr/bin/python3 tests/test_streams_docs.py SRC_DIR BIN_DIR

tests/docs_examples.py runs the page's shell blocks; this runs its ```python blocks,
in order in one interpreter (as a reader pastes them into one session), against a
fresh solad whose model "cam" is a PyTorch fixture (tests/data/ref/k5k3, R = 3), and
checks what they print: the stream equals the offline refine bit for bit, and the
viewer saw the client's rows. Exit 0 passed, 1 failed, 77 numpy or requests missing
(a failure under CI=true).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    src, bindir = sys.argv[1], sys.argv[2]
    try:
        import numpy  # noqa: F401
        import requests  # noqa: F401
    except ImportError as e:
        if os.environ.get("CI") in ("true", "1"):
            fail("CI=true, so this must run, but %s (Debian: python3-numpy python3-requests)" % e)
        print("SKIP: %s (Debian: python3-numpy python3-requests)" % e)
        sys.exit(77)
    text = open(os.path.join(src, "docs", "streaming.md"), encoding="utf-8").read()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    if len(blocks) < 2:
        fail("docs/streaming.md has %d python blocks, expected the two examples" % len(blocks))
    tmp = tempfile.mkdtemp(prefix="sola-streams-docs-")
    proc = None
    try:
        os.makedirs(os.path.join(tmp, "data", "models", "cam"))
        shutil.copy(os.path.join(src, "tests", "data", "ref", "k5k3.safetensors"),
                    os.path.join(tmp, "data", "models", "cam", "1.safetensors"))
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        log = open(os.path.join(tmp, "solad.log"), "w")
        proc = subprocess.Popen([os.path.join(bindir, "solad"), "--listen", "127.0.0.1:%d" % port,
                                 "--data", os.path.join(tmp, "data"), "--threads", "1"],
                                stdout=subprocess.DEVNULL, stderr=log)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    fail("solad exited at start")
                time.sleep(0.1)
        code = "\n".join(blocks).replace("localhost:8080", "localhost:%d" % port)
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True,
                           text=True, timeout=600)
        print(r.stdout, end="")
        if r.returncode != 0:
            fail("the python blocks failed:\n" + r.stderr)
        for want in ("bit-identical to the offline refine: True", "the same as the client: True"):
            if want not in r.stdout:
                fail("the output lacks %r" % want)
        print("ok: %d python blocks of docs/streaming.md" % len(blocks))
    finally:
        if proc:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
