/* deployutil.h -- what test_deploy.c and test_deploy_roles.c share: running a script
 * of tests/deploy with its output captured, and turning its "SKIP:" / "FORBIDDEN:"
 * lines into skipped tests. Implemented in deployutil.c (library solatest). */
#ifndef SOLA_TESTS_DEPLOYUTIL_H
#define SOLA_TESTS_DEPLOYUTIL_H

#include <stddef.h>

#include "testutil.h"

/* Runs `cmd > DIR/out 2>&1` and returns its exit status; *out gets the output
 * (malloc'd, NUL-terminated, "" if unreadable). */
int du_run_logged(const char *cmd, char **out);

/* The last `keep` bytes: check's messages are bounded, and the failure is at the end. */
const char *du_tail(const char *s, size_t keep);

/* Path of the built solad, or NULL when this build has none (api/server not there). */
char *du_solad_path(void);

/* A script that passes, or says why it could not run a check: exit 77 with "SKIP:"
 * lines (a tool is missing: tu_skip, a failure under CI) and/or "FORBIDDEN:" lines
 * (the machine does not allow the check: tu_skip_forbidden). */
void du_run_script(const char *what, const char *cmd);

/* Runs tests/deploy/SCRIPT SOLAD (through interp when not ""), as du_run_script. */
void du_run_with_solad(const char *script, const char *interp);

#endif
