/* cli/cli.h: what the subcommands of `remat` share: the command table, exit codes, error output. */
#ifndef REMAT_CLI_H
#define REMAT_CLI_H

#include "remat.h"

#include <stdio.h>

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    void (*usage)(FILE *f);
} cli_command;

/* Prints "remat CMD: <message>" to stderr and returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* After getopt returned '?' or ':': names the option that is unknown or lacks its value
 * (argv[optind - 1]) through cli_usage_error; returns EXIT_USAGE. */
int cli_bad_option(const char *cmd, char **argv);
/* Prints "remat CMD: <what>: <remat_last_error()>" and returns the exit code for status s:
 * EXIT_USAGE for bad input (EINVAL, EPARSE, EIO), EXIT_RUNTIME otherwise. */
int cli_fail(const char *cmd, remat_status s, const char *what);
/* The exit code for a status: 0, 1 or 2. */
int cli_exit_code(remat_status s);

/* Parses a whole positive integer option value within [lo, hi]; prints a usage error naming the
 * option and value on failure and returns -1. */
int cli_parse_int(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out);
/* Parses a size option (remat_parse_size); prints the usage error on failure and returns -1. */
int cli_parse_size(const char *cmd, const char *opt, const char *text, uint64_t *out);

/* Is the argument "-h" or "--help"? */
int cli_is_help(const char *arg);

/* An output file written as PATH.tmp and renamed to PATH only when complete, so a failure never
 * leaves a partial file behind. */
typedef struct {
    FILE *f;
    char path[4096], tmp[4112];
} cli_output;
/* Opens o->tmp for writing; on failure sets the message (naming the path) and returns REMAT_EIO. */
remat_status cli_output_open(cli_output *o, const char *path);
/* Closes the file; with ok (and no write error) renames it into place, otherwise removes it.
 * Returns REMAT_EIO with a message when the file could not be completed. */
remat_status cli_output_close(cli_output *o, int ok);

/* Writes s as a JSON string literal (quotes and escapes) to f. */
void cli_json_string(FILE *f, const char *s);

/* The whole CLI: `remat ARGS...` as a function (main() calls it; fuzzers call it in-process). */
int cli_main(int argc, char **argv);

int cmd_info(int argc, char **argv);
void cmd_info_usage(FILE *f);

int cmd_replay(int argc, char **argv);
void cmd_replay_usage(FILE *f);

int cmd_fit(int argc, char **argv);
void cmd_fit_usage(FILE *f);
/* `remat fit --measure` (cli/cmd_fit_measure.c): trains our GPT at each policy's planned largest
 * batch on `device` in a pool limited to res->pool_bytes (expandable segments if asked) and
 * prints planned against measured. */
int fit_measure(const remat_fit_request *req, const remat_fit_result *res, const char *device,
                int expandable, int json);

int cmd_train(int argc, char **argv);
void cmd_train_usage(FILE *f);

int cmd_profile(int argc, char **argv);
void cmd_profile_usage(FILE *f);

int cmd_plan(int argc, char **argv);
void cmd_plan_usage(FILE *f);

int cmd_curve(int argc, char **argv);
void cmd_curve_usage(FILE *f);

/* `remat train --trace FILE` (cli/train_memory.c): records pool's trace into FILE.tmp; finish
 * ends it and renames it to FILE when rc is EXIT_OK (else removes it); returns the exit code. */
int train_trace_begin(const char *path, remat_pool *pool, FILE **out);
int train_trace_finish(const char *path, remat_pool *pool, FILE *f, int rc);
/* `remat train --profile-memory`: prints the profile's table (or one JSON line). */
struct gpt_memprof;
int train_memprof_report(const struct gpt_memprof *p, int json);

/* `remat train` and `remat curve` (cli/train_memory.c): the profiled chain of m into *out. With
 * path (--profile-file): read from it when its key (model, batch, seq, device, dtype) matches;
 * otherwise profile and write it there (replacing a profile of another key, saying so). A file
 * that is no profile is refused (exit 2). Options measured below the default's backward are
 * warned about on stderr. One "profile:" line to `note` (NULL: none). Where even one stage's
 * buffers do not fit, *out is the FLOP-count chain (said on stderr). Returns the exit code. */
struct gpt_model;
int train_profile(const char *cmd, struct gpt_model *m, const int *inputs, int reps,
                  const char *path, FILE *note, remat_chain **out);

int cmd_memviz(int argc, char **argv);
void cmd_memviz_usage(FILE *f);

#endif
