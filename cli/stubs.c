/* stubs.c -- weak placeholders so the command links while a subcommand is being
 * written in its own cli/cmd_*.c; a real definition replaces each one. */
#include "cli.h"

#define SOLA_STUB(fn)                                                                   \
    __attribute__((weak)) int fn(int argc, char **argv)                                \
    {                                                                                  \
        (void)argc;                                                                    \
        cli_errorf("'%s' is not available in this build", argv[0]);                    \
        return EXIT_RUNTIME;                                                           \
    }

SOLA_STUB(cmd_info)
SOLA_STUB(cmd_init)
SOLA_STUB(cmd_refine)
SOLA_STUB(cmd_tsm)
SOLA_STUB(cmd_train)
SOLA_STUB(cmd_grad)
SOLA_STUB(cmd_probe)
SOLA_STUB(cmd_synth)
