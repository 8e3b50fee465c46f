/* deployutil.h -- what test_deploy.c and test_deploy_roles.c share: running a script
 * of tests/deploy with its output captured, and turning its "SKIP:" / "FORBIDDEN:"
 * lines into skipped tests. Static functions: include it in one .c per executable. */
#ifndef SOLA_TESTS_DEPLOYUTIL_H
#define SOLA_TESTS_DEPLOYUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* Not every executable uses every helper. */
#define DU_API static __attribute__((unused))

#define SKIPPED 77
/* Runs `cmd > DIR/out 2>&1` and returns its exit status; *out gets the output
 * (malloc'd, NUL-terminated, "" if unreadable). */
DU_API int run_logged(const char *cmd, char **out)
{
    char *dir = tu_tmpdir();
    ck_assert_ptr_nonnull(dir);
    int st = tu_system("%s > '%s/out' 2>&1", cmd, dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/out", dir);
    size_t n = 0;
    *out = tu_read(path, &n);
    if (!*out)
        *out = strdup("");
    tu_rmtree(dir);
    free(dir);
    return st;
}

/* The last `keep` bytes: check's messages are bounded, and the failure is at the end. */
DU_API const char *tail(const char *s, size_t keep)
{
    size_t n = strlen(s);
    return n > keep ? s + n - keep : s;
}

/* Path of the built solad, or NULL when this build has none (api/server not there). */
DU_API char *solad_path(void)
{
    char *p = malloc(strlen(tu_bin()) + 16);
    ck_assert_ptr_nonnull(p);
    sprintf(p, "%s/solad", tu_bin());
    if (access(p, X_OK) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* A script that passes, or says why it could not run a check: exit 77 with "SKIP:"
 * lines (a tool is missing: tu_skip, a failure under CI) and/or "FORBIDDEN:" lines
 * (the machine does not allow the check: tu_skip_forbidden). */
DU_API void run_script(const char *what, const char *cmd)
{
    char *out = NULL;
    int st = run_logged(cmd, &out);
    ck_assert_msg(st == 0 || st == SKIPPED, "%s failed (exit %d):\n%s", what, st, tail(out, 3000));
    printf("%s", out); /* the ok/SKIP lines of the sub-checks */
    for (char *l = out; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = '\0';
        if (!strncmp(l, "SKIP:", 5))
            tu_skip("%s: %s", what, l + 5);
        else if (!strncmp(l, "FORBIDDEN:", 10))
            tu_skip_forbidden("%s: %s", what, l + 10);
        l = nl ? nl + 1 : NULL;
    }
    ck_assert_msg(st == 0 || strstr(out, "SKIP:") || strstr(out, "FORBIDDEN:"),
                  "%s exited 77 without a SKIP: or FORBIDDEN: line", what);
    free(out);
}

/* Runs tests/deploy/SCRIPT SOLAD (through interp when not ""), as run_script. */
DU_API void run_with_solad(const char *script, const char *interp)
{
    char *root = tu_path("");
    char *solad = solad_path();
    if (!solad) {
        tu_skip("%s: no solad in %s (build solad too)", script, tu_bin());
        free(root);
        return;
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s '%s/tests/deploy/%s' '%s'", interp, root, script, solad);
    run_script(script, cmd);
    free(solad);
    free(root);
}

#endif
