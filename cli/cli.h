/* cli.h -- the `sola` command: one function per subcommand (cli/cmd_*.c), shared
 * helpers for flags, progress and messages. Exit codes: 0 ok, 1 runtime error,
 * 2 usage error. */
/* implemented in: util.c cmd_grad.c cmd_info.c cmd_init.c cmd_probe.c cmd_refine.c cmd_synth.c cmd_train.c cmd_tsm.c */
#ifndef SOLA_CLI_H
#define SOLA_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "numparse.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Subcommands: argv[0] is the subcommand name. */
int cmd_info(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_refine(int argc, char **argv);
int cmd_tsm(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_synth(int argc, char **argv);

/* "sola: " + message to stderr. */
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: prints message and the subcommand's usage line; returns EXIT_USAGE. */
int cli_usage(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict numeric flag parsing: 0 on success, -1 if not a whole number in range
 * (integers in a range: sola_parse_long, core/numparse.h, shared with solad). */
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_double(const char *s, double *out);

/* Progress display: a redrawn line on a terminal (stderr is a tty), a plain log line
 * at most every `interval` seconds otherwise. */
typedef struct cli_progress {
    int tty;
    double start, last;
    double interval;
} cli_progress;
void cli_progress_init(cli_progress *p);
/* done/total units; label e.g. "refine"; extra free text ("loss 0.6931"). Forced
 * output when done == total. */
void cli_progress_update(cli_progress *p, const char *label, long done, long total,
                         const char *unit, const char *extra);
void cli_progress_end(cli_progress *p);
double cli_now(void);

/* Loads the model at `path`; on failure prints why ("sola: ...") and returns NULL,
 * for the caller to return EXIT_RUNTIME. */
struct sola_model *cli_load_model(const char *path);
/* The same for a run whose passes have at least min_rows rows (sola_model_load_ex). */
struct sola_model *cli_load_model_ex(const char *path, size_t min_rows);

/* Sets OpenBLAS threads (and records it for the trainer). n <= 0: leave default. */
void cli_set_threads(int n);

#endif
