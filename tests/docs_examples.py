#!/usr/bin/python3
"""docs_examples.py -- every shell block of README.md and docs/*.md works as pasted.

    /usr/bin/python3 tests/docs_examples.py SRC_DIR BIN_DIR FILE.md
    /usr/bin/python3 tests/docs_examples.py --self-test SRC_DIR BIN_DIR

ctest runs it once per Markdown file (CMakeLists.txt: docs_examples_NAME). For FILE it
runs the file's shell blocks in order in one bash, the way a reader pastes them into
one terminal, and then all of them a second time (an example must work when pasted
twice: no hard-coded job ids, no "sleep 1" instead of waiting for readiness).

Conventions for writers of README.md and docs/*.md:
  * A fence labelled sh, bash or shell is run. Any other label (text, console, json,
    yaml, python, ...) is not. A fence with no label whose first line looks like a
    command fails this test: label it, so that nothing meant to be pasted escapes.
  * <!-- no-run: REASON --> on the last non-blank line before a fence: the block is
    not run (it installs packages, needs a cluster, your own data, runs forever...).
    The reason is required and printed.
  * <!-- http-errors-ok: REASON --> before a fence: the block may get 4xx answers from
    solad (it shows an error on purpose). Otherwise a 4xx or 5xx answer to a request
    of the block fails the test, even when curl -s hid it.
  * Blocks may assume what scripts/serve.sh gives: solad on 127.0.0.1:8080 with a data
    directory, `sola` and `solad` on the PATH (or as build/sola, build/solad), curl,
    awk, coreutils and the files of the checkout (examples/, deploy/, ...). Nothing
    else: a block that calls python3, jq, file, node, wget... (NOT_MINIMAL) fails
    unless it is marked no-run.

How it runs them: in a fresh temporary directory that stands in for the checkout (the
repository's top-level files are linked into it, build/ is BIN_DIR); a fresh solad
(--data in that directory) on a free port replaces 127.0.0.1:8080 / localhost:8080;
any other 127.0.0.1:PORT / localhost:PORT in the blocks (a block that starts its own
solad) is mapped to another free port; /tmp/ is mapped into the temporary directory,
so parallel runs do not collide. PATH is Debian's default with BIN_DIR first (no
pyenv or other local tools). Everything the blocks started is killed at the end.

Exit status: 0 passed (or the file has no block to run), 1 a block failed, 77 a tool
this test needs (bash, curl) is missing -- a failure instead under CI=true.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RUN_LANGS = {"sh", "bash", "shell"}
# First words that make an unlabelled fence look like something to paste.
COMMANDISH = re.compile(r"^\s*(\$ |sudo |curl |sola |solad |build/|cmake |export |cd |"
                        r"bash |apt-get |apt |docker |kubectl |python3? |\./|scripts/)")
MARKER = re.compile(r"<!--\s*(no-run|http-errors-ok)\s*:\s*(.*?)\s*-->")
BLOCK_TIMEOUT = 600  # seconds; a block that trains a small model takes a few
REQUEST = re.compile(r" (GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) (\S+) (\d{3}) ")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def skip(msg):
    if os.environ.get("CI") in ("true", "1"):
        fail("CI=true, so this must run, but " + msg)
    print("SKIP: " + msg)
    sys.exit(77)


def blocks_of(path):
    """[(line, lang, text, markers)] of every fenced block; lints unlabelled ones."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i, problems = [], 0, []
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i
        # markers: the last non-blank lines before the fence that are markers
        markers, k = {}, i - 1
        while k >= 0 and lines[k].strip() == "":
            k -= 1
        while k >= 0 and MARKER.search(lines[k]):
            mk = MARKER.search(lines[k])
            markers[mk.group(1)] = mk.group(2)
            k -= 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence[:3]):
            body.append(lines[i][len(m.group(1)):] if lines[i].startswith(m.group(1)) else lines[i])
            i += 1
        i += 1
        text = "\n".join(body)
        first = next((l for l in body if l.strip() and not l.strip().startswith("#")), "")
        if not lang and COMMANDISH.match(first):
            problems.append("%s:%d: an unlabelled block starts like a command (%r): label "
                            "it ```sh to have it run, or ```text if it is not meant to be "
                            "pasted" % (path, start + 1, first.strip()[:60]))
        if lang in RUN_LANGS and "no-run" not in markers and foreign_tools(text):
            problems.append("%s:%d: the block needs %s, which a minimal Debian lacks (only "
                            "curl, awk and coreutils come with scripts/serve.sh): use sola, "
                            "curl or awk instead, or mark it no-run with the reason" %
                            (path, start + 1, ", ".join(foreign_tools(text))))
        for key, why in markers.items():
            if not why:
                problems.append("%s:%d: <!-- %s: --> needs a reason" % (path, start + 1, key))
        out.append((start + 1, lang, text, markers))
    return out, problems


# Commands a minimal Debian lacks (scripts/serve.sh installs only curl beside the
# build tools): a block meant to be pasted on such a machine must not need them.
NOT_MINIMAL = {"python", "python3", "pip", "pip3", "jq", "file", "node", "npm", "wget",
               "xxd", "bc"}


def foreign_tools(text):
    """Commands of NOT_MINIMAL in command position (after a pipe, ;, && or $( )."""
    found = []
    for line in text.split("\n"):
        code = re.sub(r"(^|\s)#.*$", "", line)
        for seg in re.split(r"\|\||&&|[|;(`]|\$\(", code):
            words = seg.split()
            while words and re.match(r"^\w+=", words[0]):  # VAR=value cmd
                words = words[1:]
            if words and words[0] in NOT_MINIMAL and words[0] not in found:
                found.append(words[0])
    return found


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_ready(port, proc, log, seconds=60):
    t0 = time.time()
    while time.time() - t0 < seconds:
        if proc.poll() is not None:
            fail("solad exited at start (status %s):\n%s" % (proc.returncode, tail(log, 30)))
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            c.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
            if b" 200 " in c.recv(100):
                c.close()
                return
            c.close()
        except OSError:
            pass
        time.sleep(0.1)
    fail("solad not ready on port %d after %d s:\n%s" % (port, seconds, tail(log, 30)))


def tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no %s)" % path


def rewrite(text, ports, tmp):
    def port_of(m):
        orig = m.group(2)
        if orig not in ports:
            ports[orig] = str(free_port())
        return m.group(1) + ":" + ports[orig]
    text = re.sub(r"\b(127\.0\.0\.1|localhost):(\d{2,5})\b", port_of, text)
    return re.sub(r"(?<![\w./])/tmp/", tmp + "/tmp/", text)


SELF_TESTS = [
    # (what, markdown, must pass)
    ("a block that works", "```sh\ncurl -sf 127.0.0.1:8080/readyz\necho hi > /tmp/x\n```\n", True),
    ("a failing command", "```bash\ncurl -s 127.0.0.1:8080/readyz\nfalse\n```\n", False),
    ("a 404 hidden by curl -s", "```sh\ncurl -s 127.0.0.1:8080/no/such/route\n```\n", False),
    ("a 404 marked as expected",
     "<!-- http-errors-ok: shows the error -->\n```sh\ncurl -s 127.0.0.1:8080/nope\n```\n", True),
    ("a failing block marked no-run", "<!-- no-run: needs a cluster -->\n```sh\nfalse\n```\n", True),
    ("no-run without a reason", "<!-- no-run: -->\n```sh\ntrue\n```\n", False),
    ("an unlabelled command", "```\ncurl -s 127.0.0.1:8080/readyz\n```\n", False),
    ("a text block", "```text\ncurl whatever\n```\n", True),
    ("state that breaks a second paste", "```sh\nmkdir /tmp/once\n```\n", False),
    ("a tool a minimal Debian lacks", "```sh\necho '{}' | python3 -m json.tool\n```\n", False),
    ("a word that is not a command", "```sh\necho file python3  # a file\n```\n", True),
]


def self_test(src, bindir):
    """The runner must fail where a reader would: each case of SELF_TESTS."""
    bad = []
    tmp = tempfile.mkdtemp(prefix="sola-docs-selftest.")
    try:
        for i, (what, md, must_pass) in enumerate(SELF_TESTS):
            f = os.path.join(tmp, "case%d.md" % i)
            with open(f, "w") as fh:
                fh.write("# case\n\n" + md)
            r = subprocess.run([sys.executable, os.path.abspath(__file__), src, bindir, f],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode == 77:
                sys.exit(77)
            passed = r.returncode == 0
            print("%s: %s (%s)" % ("ok" if passed == must_pass else "WRONG", what,
                                   "passed" if passed else "failed"))
            if passed != must_pass:
                bad.append("%s: %s, expected to %s\n%s" % (what, "passed" if passed else
                           "failed", "pass" if must_pass else "fail", r.stdout[-1500:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if bad:
        fail("\n".join(bad))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--self-test":
        self_test(os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3]))
        return
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    src, bindir, md = (os.path.abspath(a) for a in sys.argv[1:])
    for tool in ("bash", "curl"):
        if not shutil.which(tool, path="/usr/bin:/bin"):
            skip("%s is not installed (Debian: %s)" % (tool, tool))
    solad = os.path.join(bindir, "solad")
    if not os.access(solad, os.X_OK):
        skip("no solad in %s (build it)" % bindir)
    blocks, problems = blocks_of(md)
    if problems:
        fail("\n".join(problems))
    name = os.path.relpath(md, src)
    runnable = [b for b in blocks if b[1] in RUN_LANGS and "no-run" not in b[3]]
    for line, lang, _, mk in blocks:
        if lang in RUN_LANGS and "no-run" in mk:
            print("not run: %s:%d (%s)" % (name, line, mk["no-run"]))
    if not runnable:
        print("%s: no block to run" % name)
        return

    tmp = tempfile.mkdtemp(prefix="sola-docs.")
    procs = []
    try:
        work = os.path.join(tmp, "checkout")
        os.makedirs(os.path.join(tmp, "tmp"))
        os.makedirs(work)
        for entry in os.listdir(src):
            if entry == ".git" or entry.startswith("build"):
                continue
            os.symlink(os.path.join(src, entry), os.path.join(work, entry))
        os.symlink(bindir, os.path.join(work, "build"))
        ports = {}
        port = free_port()
        ports["8080"] = str(port)
        log = os.path.join(tmp, "solad.log")
        env = {"PATH": bindir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": os.path.join(tmp, "home"), "TMPDIR": os.path.join(tmp, "tmp"),
               "LANG": "C.UTF-8", "TERM": "dumb"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                  "OPENBLAS_NUM_THREADS", "CI"):
            if k in os.environ:
                env[k] = os.environ[k]
        os.makedirs(env["HOME"])
        with open(log, "w") as lf:
            d = subprocess.Popen([solad, "--listen", "127.0.0.1:%d" % port, "--data",
                                  os.path.join(tmp, "solad-data")], stdout=lf, stderr=lf,
                                 stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        procs.append(d)
        wait_ready(port, d, log)

        out = os.path.join(tmp, "output.txt")
        status = os.path.join(tmp, "status")
        with open(out, "w") as of:
            sh = subprocess.Popen(["/bin/bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                                  stdout=of, stderr=subprocess.STDOUT, cwd=work, env=env,
                                  start_new_session=True, text=True)
        procs.append(sh)
        sh.stdin.write("set -eo pipefail\n")
        n = 0
        for rnd in (1, 2):
            for line, _, text, mk in runnable:
                n += 1
                script = rewrite(text, ports, tmp)
                bf = os.path.join(tmp, "block%03d.sh" % n)
                with open(bf, "w") as f:
                    f.write(script + "\n")
                logpos = os.path.getsize(log)
                with open(out, "a") as of:
                    of.write("\n@@ %s:%d (pass %d)\n" % (name, line, rnd))
                if os.path.exists(status):
                    os.unlink(status)
                sh.stdin.write("source %s </dev/null\necho ok > %s\n" % (bf, status))
                sh.stdin.flush()
                t0 = time.time()
                while not os.path.exists(status) and sh.poll() is None:
                    if time.time() - t0 > BLOCK_TIMEOUT:
                        break
                    time.sleep(0.05)
                ok = os.path.exists(status)
                why = ""
                if not ok:
                    why = ("it exited with status %s" % sh.returncode if sh.poll() is not None
                           else "it did not finish within %d s" % BLOCK_TIMEOUT)
                else:
                    with open(log, errors="replace") as f:
                        f.seek(logpos)
                        bad = [l.strip() for l in f if REQUEST.search(l)
                               and int(REQUEST.search(l).group(3)) >= 400]
                    if bad and not ("http-errors-ok" in mk and
                                    all(int(REQUEST.search(l).group(3)) < 500 for l in bad)):
                        ok, why = False, ("solad answered errors (curl -s hides them):\n  " +
                                          "\n  ".join(bad[:10]))
                if not ok:
                    fail("%s:%d (pass %d of 2): %s\n--- the block as run:\n%s\n--- its output "
                         "(last lines):\n%s--- solad's log (last lines):\n%s" %
                         (name, line, rnd, why, script, tail(out, 40), tail(log, 15)))
                print("ok: %s:%d (pass %d, %.1f s)" % (name, line, rnd, time.time() - t0))
        print("%d blocks of %s ran twice" % (len(runnable), name))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
