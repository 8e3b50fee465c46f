#!/usr/bin/python3
"""daemon_flags_doc.py -- docs/daemon.md's flag table and `solad --help` agree.

    /usr/bin/python3 tests/daemon_flags_doc.py SRC_DIR BIN_DIR

`solad --help` is written from solad's option table (server/options.c), each option
ending in "(default X)". docs/daemon.md's "## Flags" table has one row per option (or
per group of options, defaults comma-separated in the same order). This test fails
when an option of --help has no row, a row names an option solad does not have, or
the two defaults differ (backticks aside): adding an option to the table without
documenting it, or changing a default in one place only, is caught here.
--help and --version are not options of the table.

Exit status: 0 agree, 1 they differ (each difference printed), 77 no solad binary
(a failure under CI=true).
"""
import os
import re
import subprocess
import sys

HELP_OPT = re.compile(r"^  --([a-z0-9-]+)(?: (\S+))?")
DEFAULT = re.compile(r"\(default ([^()]*)\)\s*$")


def help_defaults(solad):
    out = subprocess.run([solad, "--help"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit("FAIL: solad --help exited %d: %s" % (out.returncode, out.stderr))
    blocks, cur = [], None
    for line in out.stdout.split("\n"):
        m = HELP_OPT.match(line)
        if m and not line.startswith("  --help"):
            cur = [m.group(1), line]
            blocks.append(cur)
        elif cur is not None and line.startswith(" " * 25):
            cur[1] += " " + line.strip()
        else:
            cur = None
    opts = {}
    for name, text in blocks:
        m = DEFAULT.search(text)
        opts[name] = m.group(1).strip() if m else None
    return opts


def doc_defaults(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    try:
        start = lines.index("## Flags")
    except ValueError:
        raise SystemExit("FAIL: %s has no '## Flags' section" % path)
    rows, in_table = {}, False
    for no, line in enumerate(lines[start + 1:], start + 2):
        if line.startswith("|"):
            in_table = True
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if len(cells) < 2 or set(cells[0]) <= set("-: "):
                continue
            names = re.findall(r"`--([a-z0-9-]+)", cells[0])
            if not names:
                continue
            values = [v.strip().strip("`").strip() for v in cells[1].split(", ")]
            if len(values) == 1:
                values = values * len(names)
            if len(values) != len(names):
                raise SystemExit("FAIL: %s:%d: %d options but %d defaults: %s"
                                 % (path, no, len(names), len(values), cells[1]))
            for n, v in zip(names, values):
                rows[n] = (v, no)
        elif in_table:
            break
    return rows


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    src, bindir = sys.argv[1], sys.argv[2]
    solad = os.path.join(bindir, "solad")
    if not os.access(solad, os.X_OK):
        msg = "no solad binary at " + solad
        if os.environ.get("CI") in ("true", "1"):
            print("FAIL: CI=true, so this must run, but " + msg)
            return 1
        print("SKIP: " + msg)
        return 77
    doc = os.path.join(src, "docs", "daemon.md")
    opts, rows = help_defaults(solad), doc_defaults(doc)
    problems = []
    if len(opts) < 10:
        problems.append("solad --help lists only %d options: the parse is broken" % len(opts))
    for name, d in sorted(opts.items()):
        if d is None:
            problems.append("solad --help: --%s shows no '(default ...)'" % name)
        if name not in rows:
            problems.append("--%s (solad --help, default %s) has no row in docs/daemon.md's "
                            "flag table" % (name, d))
        elif d is not None and rows[name][0] != d:
            problems.append("docs/daemon.md:%d: --%s defaults to '%s' there, '%s' in "
                            "solad --help" % (rows[name][1], name, rows[name][0], d))
    for name, (d, no) in sorted(rows.items()):
        if name not in opts:
            problems.append("docs/daemon.md:%d: --%s is not an option of solad --help"
                            % (no, name))
    for p in problems:
        print("FAIL: " + p)
    if problems:
        return 1
    print("ok: %d options, each in docs/daemon.md with the default of solad --help"
          % len(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
