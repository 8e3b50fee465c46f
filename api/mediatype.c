/* mediatype.c -- the media types the API speaks: names, parsing a Content-Type,
 * negotiating a reply format from an Accept header (api_helpers.h). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_helpers.h"

static const struct {
    int mt;
    const char *name;
} mts[] = {
    {API_MT_JSON, "application/json"},
    {API_MT_NPY, "application/x-npy"},
    {API_MT_NPZ, "application/x-npz"},
    {API_MT_PNG, "image/png"},
    {API_MT_OCTET, "application/octet-stream"},
};

const char *api_mt_name(int mt)
{
    for (size_t i = 0; i < sizeof mts / sizeof mts[0]; i++)
        if (mts[i].mt == mt)
            return mts[i].name;
    return "application/octet-stream";
}

/* Length of the media type in s (up to ';' or ',' or end, trailing blanks cut). */
static size_t mt_len(const char *s)
{
    size_t n = strcspn(s, ";,");
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return n;
}

int api_mt_parse(const char *ctype)
{
    if (!ctype)
        return API_MT_NONE;
    while (isspace((unsigned char)*ctype))
        ctype++;
    size_t n = mt_len(ctype);
    if (n == 0)
        return API_MT_NONE;
    for (size_t i = 0; i < sizeof mts / sizeof mts[0]; i++)
        if (strlen(mts[i].name) == n && strncasecmp(ctype, mts[i].name, n) == 0)
            return mts[i].mt;
    return API_MT_OTHER;
}

/* q of the most specific media range in `accept` matching `type`; -1 if none. */
static double accept_q(const char *accept, const char *type)
{
    const char *slash = strchr(type, '/');
    size_t tlen = (size_t)(slash - type);
    double best_q = -1;
    int best_spec = 0;
    const char *p = accept;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t n = mt_len(p);
        int spec = 0;
        if (n == 3 && strncmp(p, "*/*", 3) == 0)
            spec = 1;
        else if (n == tlen + 2 && strncasecmp(p, type, tlen) == 0 && p[tlen] == '/' &&
                 p[tlen + 1] == '*')
            spec = 2;
        else if (n == strlen(type) && strncasecmp(p, type, n) == 0)
            spec = 3;
        /* parameters: only q matters */
        double q = 1;
        const char *end = p + strcspn(p, ",");
        const char *par = p + n;
        while (par < end) {
            par++; /* skip ';' or blank */
            while (par < end && isspace((unsigned char)*par))
                par++;
            if (end - par >= 2 && (par[0] == 'q' || par[0] == 'Q') && par[1] == '=') {
                q = strtod(par + 2, NULL);
                if (!(q >= 0 && q <= 1))
                    q = 0;
            }
            par += strcspn(par, ";,");
            if (par > end)
                par = end;
        }
        if (spec > best_spec) {
            best_spec = spec;
            best_q = q;
        }
        p = *end ? end + 1 : end;
    }
    return best_q;
}

int api_negotiate(const char *accept, const int *cands, int ncand)
{
    if (ncand <= 0)
        return API_MT_NONE;
    if (!accept || !*accept)
        return cands[0];
    int best = API_MT_NONE;
    double bq = 0;
    for (int i = 0; i < ncand; i++) {
        double q = accept_q(accept, api_mt_name(cands[i]));
        if (q > bq) {
            bq = q;
            best = cands[i];
        }
    }
    return best;
}
