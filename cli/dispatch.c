/* cli/dispatch.c: `remat`: dispatches to one subcommand per file (cli/cmd_*.c). */
#include "cli/cli.h"

#include <string.h>

static const cli_command commands[] = {
    {"info", "version, build options and the devices found", cmd_info, cmd_info_usage},
    {"replay", "run an allocation trace through the pool (peaks, device calls)", cmd_replay, cmd_replay_usage},
    {"fit", "what fits on which card: memory per GPU and the largest batch", cmd_fit, cmd_fit_usage},
    {"train", "train GPT-2 through the pool under a checkpoint plan", cmd_train, cmd_train_usage},
    {"profile", "measure the model's stages into a chain file", cmd_profile, cmd_profile_usage},
    {"plan", "checkpoint schedule for a chain under a memory budget", cmd_plan, cmd_plan_usage},
    {"memviz", "draw memory over a trace's events, one band per tag (gnuplot)", cmd_memviz, cmd_memviz_usage},
    {"curve", "measured overhead against memory of each policy on our GPT", cmd_curve, cmd_curve_usage},
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

static void main_usage(FILE *f)
{
    fprintf(f, "remat %s: train larger models on the GPU you have\n\n"
               "usage: remat COMMAND [OPTIONS]\n\ncommands:\n", remat_version());
    for (size_t i = 0; i < n_commands; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'remat COMMAND --help' describes a command. Exit codes: 0 ok, 1 runtime failure,\n"
               "2 bad usage or bad input.\n");
}

static int main_dispatch(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(stderr);
        return EXIT_USAGE;
    }
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        main_usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("remat %s\n", remat_version());
        return EXIT_OK;
    }
    for (size_t i = 0; i < n_commands; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        for (int a = 2; a < argc; a++) {
            if (strcmp(argv[a], "--") == 0)
                break;
            if (cli_is_help(argv[a])) {
                commands[i].usage(stdout);
                return EXIT_OK;
            }
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "remat: unknown command '%s'\n(see 'remat --help')\n", argv[1]);
    return EXIT_USAGE;
}

int cli_main(int argc, char **argv)
{
    int rc = main_dispatch(argc, argv);
    const char *cmd = NULL;
    for (size_t i = 0; argc > 1 && i < n_commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            cmd = commands[i].name;
    return cli_finish_stdout(cmd, rc);
}
