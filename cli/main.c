/* main.c -- `sola` entry point: dispatches to the subcommands of cli/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: sola COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  info FILE                      shapes, dtypes, metadata of .npy/.npz/.safetensors/.h5\n"
    "  init --dim C [--hidden H] [--kernel K] [--seed S] -o MODEL.safetensors\n"
    "  refine -m MODEL IN(.npy|.npz|DIR|.h5) -o OUT(.npy|.npz|DIR|.h5)\n"
    "  tsm [-m MODEL] IN.npy -o OUT(.npy|.png) [--raw|--both]\n"
    "  train -m INIT|--dim C DATASET_DIR -o OUT.safetensors [options]\n"
    "  grad -m MODEL --windows W.npy [-o GRADS.safetensors]\n"
    "  probe --features DIR --labels DIR [--model MODEL]\n"
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
    if (argc < 2) {
        fprintf(stderr, "%ssola: no command given\n", usage);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        puts("sola 0.1.0");
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "%ssola: unknown command '%s'\n", usage, argv[1]);
    return EXIT_USAGE;
}
