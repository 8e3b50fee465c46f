#!/usr/bin/env bash
# check_layering.sh -- the rules of the source layout that the compiler does not check
# (or checks only in one build):
#
#   (a) no include cycle between the project's own files. A file's node is its path
#       without the extension, so core/x.c and core/x.h are one node: x.c including
#       y.h while y.c includes x.h is a cycle (x needs y and y needs x). A private
#       header x_int.h (in the room's internal/ folder or beside x.c) belongs to x's
#       node too.
#   (b) a function declared in a header X.h (or X_int.h, X's private header) is
#       defined in X.c, or in one of the files the header names in a comment
#       "implemented in: a.c b.c" (names relative to the header's room folder). In a
#       header split into sections by comments "---- a.c ----", a declaration after
#       such a line must be defined in that file. Checked for core/ api/ server/ cli/
#       (non-test code).
#   (c) rooms: core/rooms.txt says which rooms each room may include headers from
#       (core/CMakeLists.txt builds the core rooms from the same table). A file belongs
#       to the room whose folder is the longest prefix of its path; it may include
#       headers of its own room and of the rooms its row lists, nothing else. The
#       table itself has no cycle, and is closed as the build's links are (a room
#       using B lists every room B uses).
#   (d) private headers: a header under ROOM_FOLDER/internal/ is included only by files
#       of that room.
#
#   scripts/check_layering.sh [ROOT]     check the tree at ROOT (default: this repo)
#   scripts/check_layering.sh --self-test  run on small temporary trees: one clean
#                                          (must pass), and one per rule broken
#                                          (each must fail)
#
# Prints each violation (the cycle as a -> b -> a) and exits 1 when there is one.
# Reads the files as text (bash, grep, awk): comments, strings and preprocessor lines
# are skipped; a declaration is a top-level statement "type name(...);", a definition
# a top-level non-static "type name(...) {".
set -euo pipefail

# The folders whose files form the include graph; the second list is the
# non-test code whose headers and definitions rule (b) checks.
CYCLE_DIRS="core api server cli tests fuzz bench"
DEF_DIRS="core api server cli"
# Where #include "x.h" is looked for after the including file's own folder and its
# room's internal/ folder (as the build's include paths do). Last, every other
# internal/ folder is looked in, so that a private header included from outside its
# room is found -- and reported by rule (d).
INC_PATH="core core/formats core/model core/data core/train api server cli tests/common"
# The rooms table (rule c), relative to the root.
ROOMS=core/rooms.txt

# Strips comments, strings, character constants and preprocessor lines from C source;
# prints one line per top-level statement: "D name" for a prototype ending in ';',
# "F name" for a non-static function definition ending in '{'.
# shellcheck disable=SC2016 # awk's own \$ fields
C_STATEMENTS='
function classify(s, end,    t, i, c, name) {
    gsub(/__attribute__[ \t]*\(\([^()]*(\([^()]*\)[^()]*)*\)\)/, " ", s)
    gsub(/[ \t\n]+/, " ", s); sub(/^ /, "", s)
    if (s ~ /^(typedef|static|extern "C")/ || s !~ /\(/) return
    i = index(s, "(")
    if (index(substr(s, 1, i), "=") > 0) return
    t = substr(s, 1, i - 1); sub(/ +$/, "", t)
    if (!match(t, /[A-Za-z_][A-Za-z0-9_]*$/)) return
    name = substr(t, RSTART, RLENGTH)
    if (name ~ /^(if|for|while|switch|return|sizeof|int|char|void|float|double|long|unsigned|short|const)$/) return
    if (RSTART == 1) return        # no type before the name: a macro call
    print end " " name
}
{
    line = $0
    if (!incomment && match(line, /---- [A-Za-z0-9_]+\.c ----/)) {
        sect = substr(line, RSTART + 5, RLENGTH - 10); print "S " sect; next
    }
    if (cont) { cont = (line ~ /\\$/); next }
    if (!incomment && line ~ /^[ \t]*#/) { cont = (line ~ /\\$/); next }
    out = ""
    n = length(line)
    for (i = 1; i <= n; i++) {
        c = substr(line, i, 1)
        if (incomment) {
            if (c == "*" && substr(line, i + 1, 1) == "/") { incomment = 0; i++ }
            continue
        }
        if (c == "/" && substr(line, i + 1, 1) == "*") { incomment = 1; i++; continue }
        if (c == "/" && substr(line, i + 1, 1) == "/") break
        if (c == "\"" || c == "\047") {
            q = c
            for (i++; i <= n; i++) {
                d = substr(line, i, 1)
                if (d == "\\") { i++; continue }
                if (d == q) break
            }
            out = out "0"
            continue
        }
        if (depth > 0) {
            if (c == "{") depth++
            else if (c == "}") { depth--; if (depth == 0) stmt = "" }
            continue
        }
        if (c == "{") { classify(stmt, "F"); stmt = ""; depth = 1; continue }
        if (c == ";") { classify(stmt, "D"); stmt = ""; continue }
        if (c == "}") { stmt = ""; continue }
        stmt = stmt c
    }
    stmt = stmt " "
}'

# Prints "FROM TO" for each #include "..." that resolves to a project file, both as
# paths relative to the root.
include_files() {
    local root=$1 f dir inc target p own internals
    internals=$(cd "$root" && for d in $CYCLE_DIRS; do
                    [ -d "$d" ] && find "$d" -type d -name internal
                done | sort)
    for f in $(cd "$root" && for d in $CYCLE_DIRS; do
                   [ -d "$d" ] && find "$d" -name '*.[ch]'
               done | sort); do
        dir=$(dirname "$f")
        own=$(room_of "$root" "$f" | cut -d' ' -f2)
        while IFS= read -r inc; do
            target=""
            for p in "$dir" "$own/internal" $INC_PATH $internals; do
                if [ -f "$root/$p/$inc" ]; then
                    target=$(realpath -m --relative-to="$root" "$root/$p/$inc")
                    break
                fi
            done
            [ -n "$target" ] && echo "$f $target"
        done < <(sed -n 's/^[ \t]*#[ \t]*include[ \t]*"\([^"]*\)".*/\1/p' "$root/$f")
    done
}

# A file's node: its path without the extension, the internal/ folder and _int.
nodes() {
    sed -E 's#/internal/#/#g; s#\.[ch]( |$)#\1#g; s#_int( |$)#\1#g'
}

# The rooms table without comments: "ROOM FOLDER USES..." per line.
rooms_table() {
    [ -f "$1/$ROOMS" ] || return 0
    sed -e 's/#.*//' "$1/$ROOMS" | awk 'NF >= 2'
}

# "ROOM FOLDER" of the path $2 (the longest folder of the table that holds it), or
# nothing.
room_of() {
    rooms_table "$1" | awk -v f="$2" '
        index(f, $2 "/") == 1 && length($2) > best { best = length($2); r = $1 " " $2 }
        END { if (r != "") print r }'
}

# Rules (c) and (d): reads "FROM TO" file edges, prints each include that crosses a
# room boundary the table does not allow, or reaches into another room's internal/.
room_violations() {
    local root=$1
    awk -v table="$(rooms_table "$root")" -v rooms="$ROOMS" '
    BEGIN {
        n = split(table, rows, "\n")
        for (i = 1; i <= n; i++) {
            k = split(rows[i], c, " ")
            folder[c[1]] = c[2]
            for (j = 3; j <= k; j++) uses[c[1], c[j]] = 1
        }
    }
    function room(p,    r, best, b) {
        best = ""; b = -1
        for (r in folder)
            if (index(p, folder[r] "/") == 1 && length(folder[r]) > b) { b = length(folder[r]); best = r }
        return best
    }
    {
        a = room($1); b = room($2)
        if (a == "" || b == "" || a == b) next
        if (index($2, folder[b] "/internal/") == 1)
            print $1 " includes " $2 ", a private header of room " b
        else if (!((a, "*") in uses) && !((a, b) in uses))
            print $1 " includes " $2 ": room " a " (" folder[a] ") may not use room " b \
                  " (" folder[b] "; " rooms ")"
    }'
}

# Reads "FROM TO" edges; prints each cycle found by a depth-first search as
# "a -> b -> a" (one per back edge).
find_cycles() {
    awk '
    $1 != $2 && !(($1, $2) in seen) { seen[$1, $2] = 1; adj[$1] = adj[$1] " " $2; node[$1]; node[$2] }
    function visit(u,    n, i, vs, v, k, s) {
        state[u] = 1; stack[++sp] = u
        n = split(adj[u], vs, " ")
        for (i = 1; i <= n; i++) {
            v = vs[i]
            if (state[v] == 1) {
                s = v
                for (k = sp; k > 0 && stack[k] != v; k--) ;
                for (k++; k <= sp; k++) s = s " -> " stack[k]
                print s " -> " v
            } else if (state[v] == 0) visit(v)
        }
        sp--; state[u] = 2
    }
    END { for (u in node) if (state[u] == 0) visit(u) }'
}

# Rule (b). Prints "HEADER declares NAME, defined in FILE" for each violation.
misplaced_definitions() {
    local root=$1 f
    (
        cd "$root"
        for d in $DEF_DIRS; do
            [ -d "$d" ] || continue
            for f in $(find "$d" -name '*.[ch]' | sort); do
                case $f in
                *.h)
                    awk "$C_STATEMENTS" "$f" |
                        awk -v f="$f" '$1 == "S" { s = $2 } $1 == "D" { print "D", f, $2, s ? s : "-" }'
                    # The allow-list: "implemented in: a.c b.c" (up to the comment's end).
                    sed -n 's/.*implemented in:[ \t]*\([^*]*\).*/\1/Ip' "$f" | tr -s '[:blank:]' '\n' |
                        grep '\.c$' | awk -v f="$f" '{ print "A", f, $1 }' || true
                    ;;
                *.c) awk "$C_STATEMENTS" "$f" | awk -v f="$f" '$1 == "F" { print "F", f, $2 }' ;;
                esac
            done
        done
    ) | awk '
    function dirof(p) { sub(/\/[^\/]*$/, "", p); sub(/\/internal$/, "", p); return p }
    $1 == "D" { nd++; dh[nd] = $2; dn[nd] = $3; ds[nd] = $4 }
    $1 == "A" { allow[$2, dirof($2) "/" $3] = 1; allow[$2, $3] = 1 }
    $1 == "F" { defs[$3] = defs[$3] " " $2 }
    END {
        for (i = 1; i <= nd; i++) {
            h = dh[i]; own = h; sub(/\/internal\//, "/", own); sub(/(_int)?\.h$/, ".c", own)
            n = split(defs[dn[i]], fs, " ")
            for (k = 1; k <= n; k++) {
                if (ds[i] != "-") {
                    if (fs[k] != dirof(h) "/" ds[i])
                        print h " declares " dn[i] "() under \"---- " ds[i] " ----\", defined in " fs[k]
                } else if (fs[k] != own && !((h, fs[k]) in allow))
                    print h " declares " dn[i] "(), defined in " fs[k]
            }
        }
    }' | sort -u
}

check() {
    local root=$1 edges cycles misplaced rooms rc=0
    edges=$(include_files "$root")
    cycles=$(nodes <<<"$edges" | find_cycles)
    if [ -n "$cycles" ]; then
        echo "check_layering: include cycles (x.c and x.h are one node):"
        echo "  ${cycles//$'\n'/$'\n'  }"
        rc=1
    fi
    misplaced=$(misplaced_definitions "$root")
    if [ -n "$misplaced" ]; then
        echo "check_layering: functions defined outside the file their header names" \
             "(add the file to the header's \"implemented in:\" comment, or move it):"
        echo "  ${misplaced//$'\n'/$'\n'  }"
        rc=1
    fi
    if [ ! -f "$root/$ROOMS" ]; then
        echo "check_layering: no rooms table $ROOMS"
        rc=1
    fi
    cycles=$(rooms_table "$root" | awk '{ for (i = 3; i <= NF; i++) if ($i != "-" && $i != "*") print $1, $i }' |
             find_cycles)
    if [ -n "$cycles" ]; then
        echo "check_layering: the rooms of $ROOMS use each other in a cycle:"
        echo "  ${cycles//$'\n'/$'\n'  }"
        rc=1
    fi
    # The build's PUBLIC links are transitive, so the table must be too (or the build
    # would allow what the table forbids): A uses B and B uses C => A lists C.
    rooms=$(rooms_table "$root" | awk '
        { for (i = 3; i <= NF; i++) { uses[$1, $i] = 1; list[$1] = list[$1] " " $i } }
        END {
            for (a in list) {
                if ((a, "*") in uses) continue
                n = split(list[a], bs, " ")
                for (i = 1; i <= n; i++) {
                    m = split(list[bs[i]], cs, " ")
                    for (j = 1; j <= m; j++)
                        if (cs[j] != "-" && cs[j] != "*" && !((a, cs[j]) in uses))
                            print a " uses " bs[i] ", which uses " cs[j] ": list " cs[j] " in the row of " a
                }
            }
        }' | sort -u)
    if [ -n "$rooms" ]; then
        echo "check_layering: $ROOMS is not closed under \"uses\" (the build's links are):"
        echo "  ${rooms//$'\n'/$'\n'  }"
        rc=1
    fi
    rooms=$(room_violations "$root" <<<"$edges")
    if [ -n "$rooms" ]; then
        echo "check_layering: includes against the rooms' direction or privacy ($ROOMS):"
        echo "  ${rooms//$'\n'/$'\n'  }"
        rc=1
    fi
    [ $rc -eq 0 ] && echo "check_layering: no include cycle, every declared function where its header says," \
                          "every include in the rooms' direction, private headers kept in their rooms"
    return $rc
}

self_test() {
    local rc=0 out tree
    t=$(mktemp -d)
    trap 'rm -rf "$t"' EXIT
    for tree in clean cycle misplaced direction private roomcycle notclosed; do
        mkdir -p "$t/$tree/core/formats/internal" "$t/$tree/core/model"
        printf '#pragma once\n/* a "string" with a b(x); in it */\nint a_one(int x);\nconst char *\na_two(void);\n' >"$t/$tree/core/a.h"
        printf '#pragma once\n#include "a.h"\ntypedef int (*b_fn)(int);\nstruct b { int (*f)(void); };\nint b_one(void);\n' >"$t/$tree/core/b.h"
        printf '#include "a.h"\nint a_one(int x)\n{\n    return x;\n}\nconst char *\na_two(void) { return "}"; }\n' >"$t/$tree/core/a.c"
        printf '#include "b.h"\nstatic int helper(void) { return 1; }\nint b_one(void)\n{\n    return helper() + a_one(1);\n}\n' >"$t/$tree/core/b.c"
        # Two rooms above the base: formats (with a private header) and model.
        printf '# room folder uses\nbase core -\nformats core/formats base\nmodel core/model formats base\n' \
            >"$t/$tree/core/rooms.txt"
        printf '#pragma once\nint f_one(void);\n' >"$t/$tree/core/formats/f.h"
        printf '#pragma once\nint f_two(void);\n' >"$t/$tree/core/formats/internal/f_int.h"
        printf '#include "f.h"\n#include "f_int.h"\n#include "a.h"\nint f_one(void) { return f_two(); }\nint f_two(void) { return a_one(2); }\n' \
            >"$t/$tree/core/formats/f.c"
        printf '#include "f.h"\n#include "b.h"\nint m_one(void) { return f_one() + b_one(); }\n' >"$t/$tree/core/model/m.c"
    done
    # a.c including b.h while b.h includes a.h: a -> b -> a
    sed -i '1a #include "b.h"' "$t/cycle/core/a.c"
    # b.h declares b_two, which a.c defines
    printf 'int b_two(void);\n' >>"$t/misplaced/core/b.h"
    printf 'int b_two(void) { return 2; }\n' >>"$t/misplaced/core/a.c"
    # the base including a header of a room above it
    sed -i '1i #include "f.h"' "$t/direction/core/b.c"
    # model, which may use formats, including formats' private header
    sed -i '1i #include "f_int.h"' "$t/private/core/model/m.c"
    # the table letting the base use formats, which uses the base
    sed -i 's/^base core -$/base core formats/' "$t/roomcycle/core/rooms.txt"
    # model using formats without listing base, which formats uses
    sed -i 's/^model core\/model formats base$/model core\/model formats/' "$t/notclosed/core/rooms.txt"
    if ! out=$(check "$t/clean"); then
        echo "self-test: the clean tree failed:"; echo "$out"; rc=1
    fi
    if out=$(check "$t/cycle") || ! grep -q 'core/a -> core/b -> core/a\|core/b -> core/a -> core/b' <<<"$out"; then
        echo "self-test: the cycle was not reported:"; echo "$out"; rc=1
    fi
    if out=$(check "$t/misplaced") || ! grep -q 'core/b.h declares b_two(), defined in core/a.c' <<<"$out"; then
        echo "self-test: the misplaced definition was not reported:"; echo "$out"; rc=1
    fi
    if out=$(check "$t/direction") ||
        ! grep -q 'core/b.c includes core/formats/f.h: room base (core) may not use room formats' <<<"$out"; then
        echo "self-test: the include against the rooms' direction was not reported:"; echo "$out"; rc=1
    fi
    if out=$(check "$t/private") ||
        ! grep -q 'core/model/m.c includes core/formats/internal/f_int.h, a private header of room formats' <<<"$out"; then
        echo "self-test: the private header included from another room was not reported:"; echo "$out"; rc=1
    fi
    if out=$(check "$t/roomcycle") || ! grep -q 'base -> formats -> base\|formats -> base -> formats' <<<"$out"; then
        echo "self-test: the cycle in the rooms table was not reported:"; echo "$out"; rc=1
    fi
    if out=$(check "$t/notclosed") ||
        ! grep -q 'model uses formats, which uses base: list base in the row of model' <<<"$out"; then
        echo "self-test: a rooms table not closed under \"uses\" was not reported:"; echo "$out"; rc=1
    fi
    # The allow-list makes it legal.
    printf '/* implemented in: a.c */\n' >>"$t/misplaced/core/b.h"
    if ! out=$(check "$t/misplaced"); then
        echo "self-test: the allow-list comment was not honoured:"; echo "$out"; rc=1
    fi
    [ $rc -eq 0 ] && echo "check_layering self-test: passed (clean tree passes; cycle, misplaced definition," \
                          "include against the rooms' direction, private header from another room," \
                          "cycle in the rooms table and a table not closed each fail)"
    return $rc
}

if [ "${1:-}" = "--self-test" ]; then
    self_test
else
    check "${1:-$(cd "$(dirname "$0")/.." && pwd)}"
fi
