/* options.h -- solad's command line, from one table (options.c).
 *
 * Each option is one row: its name, its argument, the srv_config field it sets, its
 * bounds, its default, what a bad value is told and its help. The same row sets the
 * default (parsed by the option's own parser, so a default is always a valid value),
 * parses and checks the option, and writes its lines of `solad --help`;
 * tests/daemon_flags_doc.py checks docs/daemon.md's flag table against that help. */
#ifndef SOLA_SERVER_OPTIONS_H
#define SOLA_SERVER_OPTIONS_H

#include "server.h"

/* Sets every default in *c, then applies argv and checks the combination (--data's
 * parent exists, the roles need --data, ...). Returns -1: serve with *c; or the exit
 * code: 0 after --help or --version (printed on stdout), 2 after a usage error
 * (printed on stderr, the error on the last line). Strings in *c point into argv. */
int srv_options(int argc, char **argv, srv_config *c);

/* A usage error: a short usage line, then "solad: " + fmt (with arg) on the last line,
 * where the eye lands. Returns 2 (the exit code). */
int srv_usage_error(const char *fmt, const char *arg);

#endif
