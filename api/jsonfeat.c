/* jsonfeat.c -- the JSON form of a feature request, parsed without a jansson tree.
 *
 * A [1000, 2048] request is two million numbers, ~20 MB of text. As a jansson tree
 * that is ~100 MB of small allocations; here the numbers go straight into one float
 * buffer while the small members ("model", "version", "tsm", ...) are cut out as byte
 * spans and decoded by jansson. The scanner follows RFC 8259's grammar for every value
 * it skips (strings with escapes, numbers, literals, nesting) and never reads past
 * `len`. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_helpers.h"

#define MAX_NEST 64

typedef struct scan {
    const char *p;
    size_t len, i;
    sola_err *e;
} scan;

static int fail(scan *s, const char *what)
{
    if (s->i >= s->len)
        return sola_errf(s->e, SOLA_EFORMAT,
                         "request body: malformed JSON: %s, but the body ends at byte %zu",
                         what, s->len);
    unsigned char c = (unsigned char)s->p[s->i];
    if (c >= 0x20 && c < 0x7f)
        return sola_errf(s->e, SOLA_EFORMAT,
                         "request body: malformed JSON at byte %zu: %s, found '%c'", s->i,
                         what, c);
    return sola_errf(s->e, SOLA_EFORMAT,
                     "request body: malformed JSON at byte %zu: %s, found byte 0x%02x", s->i,
                     what, c);
}

static void ws(scan *s)
{
    while (s->i < s->len) {
        char c = s->p[s->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        s->i++;
    }
}

static int peek(scan *s)
{
    return s->i < s->len ? (unsigned char)s->p[s->i] : -1;
}

/* Skips a string starting at '"'; validates escapes. Sets [*b, *e) to the content. */
static int skip_string(scan *s, size_t *b, size_t *en)
{
    if (peek(s) != '"')
        return fail(s, "expected a string");
    s->i++;
    *b = s->i;
    while (s->i < s->len) {
        unsigned char c = (unsigned char)s->p[s->i];
        if (c == '"') {
            *en = s->i;
            s->i++;
            return 0;
        }
        if (c < 0x20)
            return fail(s, "control character inside a string");
        if (c == '\\') {
            s->i++;
            int x = peek(s);
            if (x == 'u') {
                for (int k = 0; k < 4; k++) {
                    s->i++;
                    int h = peek(s);
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                          (h >= 'A' && h <= 'F')))
                        return fail(s, "bad \\u escape");
                }
            } else if (x <= 0 || !strchr("\"\\/bfnrt", x)) {
                return fail(s, "bad escape in a string");
            }
        }
        s->i++;
    }
    return fail(s, "unterminated string");
}

/* Scans a JSON number; [*b, *e) its text. */
static int skip_number(scan *s, size_t *b, size_t *en)
{
    *b = s->i;
    if (peek(s) == '-')
        s->i++;
    int c = peek(s);
    if (c == '0') {
        s->i++;
    } else if (c >= '1' && c <= '9') {
        while ((c = peek(s)) >= '0' && c <= '9')
            s->i++;
    } else {
        return fail(s, "expected a number");
    }
    if (peek(s) == '.') {
        s->i++;
        if (!((c = peek(s)) >= '0' && c <= '9'))
            return fail(s, "expected a digit after '.'");
        while ((c = peek(s)) >= '0' && c <= '9')
            s->i++;
    }
    if (peek(s) == 'e' || peek(s) == 'E') {
        s->i++;
        if (peek(s) == '+' || peek(s) == '-')
            s->i++;
        if (!((c = peek(s)) >= '0' && c <= '9'))
            return fail(s, "expected a digit in the exponent");
        while ((c = peek(s)) >= '0' && c <= '9')
            s->i++;
    }
    *en = s->i;
    return 0;
}

static int skip_value(scan *s, int depth)
{
    if (depth > MAX_NEST)
        return fail(s, "nesting deeper than 64 levels");
    ws(s);
    int c = peek(s);
    size_t b, en;
    if (c == '"')
        return skip_string(s, &b, &en);
    if (c == '-' || (c >= '0' && c <= '9'))
        return skip_number(s, &b, &en);
    static const char *lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(lits[k]);
        if (s->len - s->i >= n && memcmp(s->p + s->i, lits[k], n) == 0) {
            s->i += n;
            return 0;
        }
    }
    if (c == '[' || c == '{') {
        int obj = c == '{';
        s->i++;
        ws(s);
        if (peek(s) == (obj ? '}' : ']')) {
            s->i++;
            return 0;
        }
        for (;;) {
            if (obj) {
                ws(s);
                if (skip_string(s, &b, &en))
                    return s->e ? s->e->code : SOLA_EFORMAT;
                ws(s);
                if (peek(s) != ':')
                    return fail(s, "expected ':' after a member name");
                s->i++;
            }
            int rc = skip_value(s, depth + 1);
            if (rc)
                return rc;
            ws(s);
            c = peek(s);
            if (c == ',') {
                s->i++;
                continue;
            }
            if (c == (obj ? '}' : ']')) {
                s->i++;
                return 0;
            }
            return fail(s, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    return fail(s, "expected a JSON value");
}

/* ---- numbers ------------------------------------------------------------------ */

int api_parse_float_fast(const char *s, size_t n, float *out)
{
    /* Clinger's fast path, carried to float32: with at most 19 significant digits
     * (m < 2^53 after the checks below) and |e| <= 22, m and 10^|e| are exact doubles,
     * so m * 10^e (or m / 10^-e) is the exact value correctly rounded to double. Rounding
     * that double to float gives the correctly rounded float unless the double sits on
     * (or one double-ulp from) a float rounding midpoint; those rare cases, and
     * everything outside the fast path, return 0 and go to strtof. Several times faster
     * than strtof on the "0.123456789" numbers a JSON client sends. */
    size_t i = 0;
    int neg = 0, digits = 0, e10 = 0;
    uint64_t m = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (m == 0 && s[i] == '0')
            continue;
        if (++digits > 19)
            return 0;
        m = m * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            e10--;
            if (m == 0 && s[i] == '0')
                continue;
            if (++digits > 19)
                return 0;
            m = m * 10 + (uint64_t)(s[i] - '0');
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0, x = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            x = x * 10 + (s[i] - '0');
            if (x > 1000)
                return 0;
        }
        e10 += eneg ? -x : x;
    }
    if (i != n)
        return 0;
    if (m == 0) {
        *out = neg ? -0.0f : 0.0f;
        return 1;
    }
    if (m > (1ull << 53) || e10 < -22 || e10 > 22)
        return 0;
    double d = (double)m;
    d = e10 >= 0 ? d * api_pow10[e10] : d / api_pow10[-e10];
    if (!(d >= 1.17549435e-38 && d < 3.4028234e38)) /* subnormal or overflow: strtof */
        return 0;
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    uint64_t low = bits & ((1ull << 29) - 1), half = 1ull << 28;
    if (low + 1 >= half && low <= half + 1)
        return 0;
    float f = (float)d;
    *out = neg ? -f : f;
    return 1;
}

/* ---- the features matrix ----------------------------------------------------- */

typedef struct mat {
    float *v;
    size_t n, cap;
    int ndim;           /* 0 until the first number fixes it */
    int64_t shape[3];   /* fixed by the first complete row at each level */
    int64_t idx[3];     /* current index per level (for messages) */
} mat;

static int push(scan *s, mat *m, float x)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        size_t bytes;
        if (sola_mul_size(cap, sizeof(float), &bytes))
            return sola_errf(s->e, SOLA_ENOMEM, "request body: features too large");
        float *p = realloc(m->v, bytes);
        if (!p)
            return sola_errf(s->e, SOLA_ENOMEM, "request body: out of memory for features");
        m->v = p;
        m->cap = cap;
    }
    m->v[m->n++] = x;
    return 0;
}

static const char *where(mat *m, int level, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "features");
    for (int l = 0; l <= level && l < 3 && o < n; l++)
        o += (size_t)snprintf(buf + o, n - o, "[%lld]", (long long)m->idx[l]);
    return buf;
}

/* Parses the array at `level` (0 = outermost). */
static int parse_level(scan *s, mat *m, int level)
{
    char wb[96];
    ws(s);
    if (peek(s) != '[') {
        if (level == 0)
            return fail(s, "\"features\" must be an array of arrays of numbers");
        return sola_errf(s->e, SOLA_EFORMAT,
                         "request body: %s must be an array (rows of equal length), at byte %zu",
                         where(m, level - 1, wb, sizeof wb), s->i);
    }
    s->i++;
    ws(s);
    int64_t count = 0;
    m->idx[level] = 0;
    if (peek(s) == ']') {
        s->i++;
        goto closed;
    }
    for (;;) {
        ws(s);
        int c = peek(s);
        if (c == ']')
            return fail(s, "expected a value after ','");
        if (c == '[') {
            if (m->ndim && level + 1 >= m->ndim)
                return sola_errf(s->e, SOLA_EFORMAT,
                                 "request body: %s should be a number, found an array",
                                 where(m, level, wb, sizeof wb));
            if (level + 1 >= 3)
                return sola_errf(s->e, SOLA_EFORMAT,
                                 "request body: features nest deeper than [B][T][C]");
            int rc = parse_level(s, m, level + 1);
            if (rc)
                return rc;
        } else {
            if (!m->ndim) {
                m->ndim = level + 1;
                if (m->ndim < 2)
                    return sola_errf(s->e, SOLA_EFORMAT,
                                     "request body: \"features\" must be a [T][C] array of "
                                     "rows (one row of C numbers per snippet)");
            }
            if (level + 1 != m->ndim)
                return sola_errf(s->e, SOLA_EFORMAT,
                                 "request body: %s should be an array, found a number",
                                 where(m, level, wb, sizeof wb));
            size_t b, en;
            if (c != '-' && !(c >= '0' && c <= '9'))
                return sola_errf(s->e, SOLA_EFORMAT,
                                 "request body: %s is not a number (at byte %zu)",
                                 where(m, level, wb, sizeof wb), s->i);
            int rc = skip_number(s, &b, &en);
            if (rc)
                return rc;
            char tmp[64];
            if (en - b >= sizeof tmp)
                return sola_errf(s->e, SOLA_EFORMAT,
                                 "request body: %s has more than 63 characters",
                                 where(m, level, wb, sizeof wb));
            float x;
            if (api_parse_float_fast(s->p + b, en - b, &x)) {
                if ((rc = push(s, m, x)))
                    return rc;
                goto next;
            }
            memcpy(tmp, s->p + b, en - b);
            tmp[en - b] = '\0';
            errno = 0;
            x = strtof(tmp, NULL);
            if (errno == ERANGE && isinf(x))
                return sola_errf(s->e, SOLA_EFORMAT,
                                 "request body: %s = %s is outside the float32 range",
                                 where(m, level, wb, sizeof wb), tmp);
            if ((rc = push(s, m, x)))
                return rc;
        }
    next:
        count++;
        m->idx[level] = count;
        ws(s);
        c = peek(s);
        if (c == ',') {
            s->i++;
            continue;
        }
        if (c == ']') {
            s->i++;
            break;
        }
        return fail(s, "expected ',' or ']' in \"features\"");
    }
closed:
    if (count == 0)
        return sola_errf(s->e, SOLA_EFORMAT, "request body: %s is an empty array",
                         level == 0 ? "features" : where(m, level - 1, wb, sizeof wb));
    /* Level 0 of the first row at each level fixes the shape; every later row must
     * match it. A row is complete when its closing bracket is read, so the check for
     * level L happens here. */
    if (level > 0) {
        if (m->shape[level] == 0)
            m->shape[level] = count;
        else if (m->shape[level] != count)
            return sola_errf(s->e, SOLA_EFORMAT,
                             "request body: %s has %lld elements but earlier rows have %lld "
                             "(rows must have equal length)",
                             where(m, level - 1, wb, sizeof wb), (long long)count,
                             (long long)m->shape[level]);
    } else {
        m->shape[0] = count;
    }
    return 0;
}

int api_parse_features_json(const char *buf, size_t len, sola_array *out, json_t **rest,
                            sola_err *e)
{
    scan s = {.p = buf, .len = len, .i = 0, .e = e};
    mat m = {0};
    json_t *obj = json_object(); /* new reference, handed to *rest on success */
    int found = 0, rc;
    memset(out, 0, sizeof *out);
    *rest = NULL;
    if (!obj)
        return sola_errf(e, SOLA_ENOMEM, "out of memory");
    ws(&s);
    if (peek(&s) != '{') {
        rc = fail(&s, "expected a JSON object {\"features\": [[...], ...]}");
        goto err;
    }
    s.i++;
    ws(&s);
    if (peek(&s) == '}') {
        s.i++;
        goto end;
    }
    for (;;) {
        size_t kb, ke;
        ws(&s);
        if ((rc = skip_string(&s, &kb, &ke)))
            goto err;
        ws(&s);
        if (peek(&s) != ':') {
            rc = fail(&s, "expected ':' after a member name");
            goto err;
        }
        s.i++;
        ws(&s);
        if (ke - kb == 8 && memcmp(buf + kb, "features", 8) == 0) {
            if (found) {
                rc = sola_errf(e, SOLA_EFORMAT, "request body: \"features\" appears twice");
                goto err;
            }
            found = 1;
            if ((rc = parse_level(&s, &m, 0)))
                goto err;
        } else {
            size_t vb = s.i;
            if ((rc = skip_value(&s, 1)))
                goto err;
            /* Let jansson decode the key (escapes) and the small value. */
            json_error_t je;
            json_t *k = json_loadb(buf + kb - 1, ke - kb + 2, JSON_DECODE_ANY, &je);
            json_t *v = json_loadb(buf + vb, s.i - vb, JSON_DECODE_ANY, &je);
            if (!k || !v || !json_is_string(k)) {
                json_decref(k);
                json_decref(v);
                rc = sola_errf(e, SOLA_EFORMAT, "request body: malformed JSON near byte %zu: %s",
                               vb, je.text);
                goto err;
            }
            json_object_set_new(obj, json_string_value(k), v); /* steals v */
            json_decref(k);
        }
        ws(&s);
        int c = peek(&s);
        if (c == ',') {
            s.i++;
            continue;
        }
        if (c == '}') {
            s.i++;
            break;
        }
        rc = fail(&s, "expected ',' or '}'");
        goto err;
    }
end:
    ws(&s);
    if (s.i != len) {
        rc = fail(&s, "trailing data after the JSON object");
        goto err;
    }
    if (!found) {
        rc = sola_errf(e, SOLA_EFORMAT,
                       "request body: missing \"features\" (a [T][C] array of numbers)");
        goto err;
    }
    out->data = m.v;
    out->ndim = m.ndim;
    for (int d = 0; d < m.ndim; d++)
        out->shape[d] = m.shape[d];
    *rest = obj;
    return 0;
err:
    free(m.v);
    json_decref(obj);
    return rc;
}
