/* main.c -- `sola` entry point: dispatches to the subcommands of cli/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: sola COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  info FILE                      shapes, dtypes, metadata of .npy/.npz/.safetensors\n"
    "  init --dim C [--hidden H] [--kernel K] [--seed S] -o MODEL.safetensors\n"
    "  refine -m MODEL IN(.npy|.npz|DIR) -o OUT(.npy|DIR)\n"
    "  tsm [-m MODEL] IN.npy -o OUT(.npy|.png) [--raw]\n"
    "  train -m INIT|--dim C DATASET_DIR -o OUT.safetensors [options]\n"
    "  grad -m MODEL --windows W.npy [-o GRADS.safetensors]\n"
    "  probe --features DIR --labels DIR\n"
    "  synth -o DIR [--videos N] [--dim C] [--length T] [--seed S]\n"
    "\n"
    "Run 'sola COMMAND --help' for the options of one command.\n"
    "Exit codes: 0 ok, 1 runtime error, 2 usage error.\n";

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"info", cmd_info},   {"init", cmd_init},   {"refine", cmd_refine},
    {"tsm", cmd_tsm},     {"train", cmd_train}, {"grad", cmd_grad},
    {"probe", cmd_probe}, {"synth", cmd_synth},
};

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        puts("sola 0.1.0");
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "sola: unknown command '%s'\n\n%s", argv[1], usage);
    return EXIT_USAGE;
}
