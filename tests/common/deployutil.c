/* deployutil.c -- see deployutil.h. */
#include "deployutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define SKIPPED 77

int du_run_logged(const char *cmd, char **out)
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

const char *du_tail(const char *s, size_t keep)
{
    size_t n = strlen(s);
    return n > keep ? s + n - keep : s;
}

char *du_solad_path(void)
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

void du_run_script(const char *what, const char *cmd)
{
    char *out = NULL;
    int st = du_run_logged(cmd, &out);
    ck_assert_msg(st == 0 || st == SKIPPED, "%s failed (exit %d):\n%s", what, st,
                  du_tail(out, 3000));
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

void du_run_with_solad(const char *script, const char *interp)
{
    char *root = tu_path("");
    char *solad = du_solad_path();
    if (!solad) {
        tu_skip("%s: no solad in %s (build solad too)", script, tu_bin());
        free(root);
        return;
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s '%s/tests/deploy/%s' '%s'", interp, root, script, solad);
    du_run_script(script, cmd);
    free(solad);
    free(root);
}
