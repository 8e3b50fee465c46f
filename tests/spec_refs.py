#!/usr/bin/python3
"""spec_refs.py -- every citation of the contract resolves to a section of docs/spec.md.

    /usr/bin/python3 tests/spec_refs.py SRC_DIR

Sources, tests, scripts and web files cite the contract as "docs/spec.md section N"
(or "spec.md §N" in Markdown); docs/spec.md has "## N. Title" headings. This test
fails when a citation names a section that does not exist, when a citation still uses
the old form "SPEC N" / "SPEC.md" (a document that is not in the repository), or when
docs/spec.md is missing. It also checks that the Markdown anchors used for those
sections (spec.md#N-title) match a heading, as GitHub derives them.

Exit status: 0 passed, 1 a citation does not resolve.
"""
import os
import re
import sys

SCAN_DIRS = ["core", "api", "server", "cli", "tests", "web", "scripts", "bench", "fuzz",
             "docs", "deploy", "examples"]
SCAN_FILES = ["README.md", "CMakeLists.txt", "Dockerfile"]
EXTS = (".c", ".h", ".py", ".js", ".sh", ".md", ".html", ".txt", ".yaml", ".yml")
CITE = re.compile(r"(?:docs/)?spec\.md(?: section |\s*\u00a7\s*)(\d+)(?:\.(\d+))?")
ANCHOR = re.compile(r"spec\.md#([\w-]+)")
OLD = re.compile(r"\bSPEC(?: \d|\.md| \u00a7)")


def anchor_of(title):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    t = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return t.replace(" ", "-")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    src = sys.argv[1]
    spec = os.path.join(src, "docs", "spec.md")
    if not os.path.exists(spec):
        print("FAIL: docs/spec.md is missing")
        return 1
    sections, anchors = set(), set()
    for line in open(spec, encoding="utf-8"):
        m = re.match(r"^(#+)\s+(\d+)\.(?:(\d+)\.?)?\s", line)
        if m:
            sections.add((m.group(2), m.group(3)))
            if m.group(3) is None:
                sections.add((m.group(2), None))
        m = re.match(r"^#+\s+(.*)$", line)
        if m:
            anchors.add(anchor_of(m.group(1)))
    files = [os.path.join(src, f) for f in SCAN_FILES]
    for d in SCAN_DIRS:
        for root, dirs, names in os.walk(os.path.join(src, d)):
            dirs[:] = [x for x in dirs if x not in ("corpus", "fixtures", "__pycache__")]
            files += [os.path.join(root, n) for n in names if n.endswith(EXTS)]
    problems, cites = [], 0
    for path in sorted(files):
        rel = os.path.relpath(path, src)
        if not os.path.isfile(path) or rel == os.path.join("tests", "spec_refs.py"):
            continue  # this file shows the forms it looks for
        try:
            text = open(path, encoding="utf-8").read()
        except UnicodeDecodeError:
            continue
        for no, line in enumerate(text.split("\n"), 1):
            for m in CITE.finditer(line):
                cites += 1
                if (m.group(1), m.group(2)) not in sections:
                    problems.append("%s:%d: cites section %s%s, which docs/spec.md does "
                                    "not have" % (rel, no, m.group(1),
                                                  "." + m.group(2) if m.group(2) else ""))
            for m in ANCHOR.finditer(line):
                if m.group(1) not in anchors:
                    problems.append("%s:%d: link to spec.md#%s: no such heading"
                                    % (rel, no, m.group(1)))
            if OLD.search(line):
                problems.append("%s:%d: cites 'SPEC' (not in the repository): write "
                                "'docs/spec.md section N'" % (rel, no))
    for p in problems:
        print("FAIL: " + p)
    if problems:
        return 1
    if cites == 0:
        print("FAIL: no citation of docs/spec.md found (the scan is broken)")
        return 1
    print("ok: %d citations of docs/spec.md resolve" % cites)
    return 0


if __name__ == "__main__":
    sys.exit(main())
