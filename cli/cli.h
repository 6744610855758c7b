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

/* ==== Files remat writes (cli/files.c; the rules are in docs/cli.md) ======================= */

enum { CLI_PATH_MAX = 4096 };

/* An output file being written: the data goes to a unique temporary file beside the target
 * (mkstemp, removed on SIGINT/SIGTERM) renamed over it only when complete, so a failure never
 * leaves a partial file and never touches the old one. */
typedef struct {
    FILE *f;                     /* the temporary file; NULL once closed (see gnuplot below) */
    char path[CLI_PATH_MAX];     /* the file replaced: through a symlink, the file it names */
    char tmp[CLI_PATH_MAX + 32]; /* the temporary file; "" when none */
    int slot;                    /* its entry in the signal cleanup table, or -1 */
} cli_output;
/* Checks path (cli_output_check) and opens o->f on a new temporary file beside it. REMAT_EINVAL
 * for a path that may not be replaced, REMAT_EIO when it cannot be created; the message names
 * the path. */
remat_status cli_output_open(cli_output *o, const char *path);
/* Closes the temporary file (if still open); with ok and no write error renames it over the
 * target, otherwise removes it. REMAT_EIO with a message when ok and the file could not be
 * completed. Safe to call twice. */
remat_status cli_output_close(cli_output *o, int ok);
/* May path be written? Only a regular file, a symlink to one (written through), or a new name in
 * an existing writable directory. REMAT_EINVAL for a directory, FIFO, device, socket or dangling
 * symlink, REMAT_EIO for a missing or read-only directory. Writes the real path of the file that
 * would be replaced into resolved. */
remat_status cli_output_check(const char *path, char *resolved, size_t n);

/* The signal cleanup table: path is unlinked if SIGINT, SIGTERM or SIGHUP ends the process
 * before cli_cleanup_remove(slot). Returns the slot, or -1 when the table is full. */
int cli_cleanup_add(const char *path);
void cli_cleanup_remove(int slot);

/* One file a command names: opt is the option for messages ("--save", "TRACE"). */
typedef struct {
    const char *opt, *path; /* path NULL: not given, skipped */
    int output;
} cli_file;
/* Before any work: every output passes cli_output_check, and no output is the same file (same
 * inode, or the same resolved path for one not yet created) as an input or another output.
 * Prints the usage error and returns EXIT_USAGE, else EXIT_OK. */
int cli_check_files(const char *cmd, const cli_file *files, size_t n);

/* ==== gnuplot (cli/gnuplot.c) ============================================================== */

/* A picture drawn by gnuplot. User text reaches the script only through cli_plot_string, as a
 * string expression gnuplot cannot execute; the script is piped to gnuplot (no shell, no script
 * file) and the picture checked (exit status, non-empty, PNG signature or SVG header) before it
 * replaces the target. */
typedef struct {
    cli_output out; /* the picture's temporary file, which gnuplot writes */
    FILE *script;   /* the script being built (in memory) */
    char *text;
    size_t len;
    int svg;
} cli_plot;
/* Opens the picture (.svg: SVG, else PNG) and starts the script with `terminal` (trusted
 * commands choosing the terminal, e.g. "set terminal pngcairo size 900,520") and the output line.
 * Returns REMAT_EIO/EINVAL naming path. */
remat_status cli_plot_begin(cli_plot *p, const char *path, const char *terminal);
/* Writes s into the script as a gnuplot string expression equal to s: single-quoted pieces, and
 * quotes, backquotes, '@' and control characters as octal escapes in double-quoted pieces. */
void cli_plot_string(FILE *script, const char *s);
/* Runs gnuplot ($REMAT_GNUPLOT, else gnuplot on PATH) on the script and puts the checked
 * picture in place; otherwise removes it. *missing is set when gnuplot could not be started
 * (then nothing is drawn). REMAT_EIO with a message on failure. */
remat_status cli_plot_finish(cli_plot *p, int *missing);
/* Discards a plot that was begun (no gnuplot run). */
void cli_plot_abort(cli_plot *p);

/* ==== Terminal output (cli/term.c) ========================================================= */

/* Replaces stdout and stderr by streams that show control characters other than newline and
 * tab (ESC, BEL, CR, the rest of C0, DEL) as \xNN, so names from files and arguments cannot
 * drive the terminal. JSON output is unchanged (it escapes them itself). */
void cli_term_install(void);
/* printf to f's underlying stream, unescaped: for the CLI's own progress lines that redraw
 * themselves with "\r". Only trusted text may go through it. */
void cli_progress(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* After a command: flushes stdout; a write error (a full disk, a closed pipe) is a failure:
 * prints it and returns EXIT_RUNTIME where rc was EXIT_OK, else rc. */
int cli_finish_stdout(const char *cmd, int rc);

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
/* `remat fit --measure` (cli/cmd_fit_measure.c). fit_measure_ranks first, before anything is
 * printed: with --zero or --gpus (or under mpirun) it joins mpirun's world, which must hold
 * --gpus ranks, silences the stdout of ranks other than 0 and sets *comm (else NULL) and the
 * device spec to train on (`cuda` becomes cuda:LOCAL_RANK); returns an exit code. fit_measure
 * then trains our GPT at each policy's planned largest batch in a pool limited to what the plan
 * leaves the allocator (expandable segments if asked), prints planned against measured, and
 * destroys comm. */
int fit_measure_ranks(const remat_fit_request *req, const char *device, remat_comm **comm,
                      char *spec, size_t n);
int fit_measure(const remat_fit_request *req, const remat_fit_result *res, remat_comm *comm,
                const char *spec, int expandable, int json);

/* Sends this process's stdout to /dev/null (ranks other than 0 print nothing). */
remat_status cli_quiet_stdout(void);

int cmd_train(int argc, char **argv);
void cmd_train_usage(FILE *f);

int cmd_profile(int argc, char **argv);
void cmd_profile_usage(FILE *f);

int cmd_plan(int argc, char **argv);
void cmd_plan_usage(FILE *f);

int cmd_curve(int argc, char **argv);
void cmd_curve_usage(FILE *f);

/* --dtype fp32|bf16 and --master-weights on|off, the same in train, curve and profile
 * (cli/train_memory.c). */
typedef struct {
    int bf16;           /* --dtype bf16 */
    int master_weights; /* 1 on, 0 off, -1 not given (on) */
} cli_precision;
#define CLI_PRECISION_DEFAULT ((cli_precision){.bf16 = 0, .master_weights = -1})
/* Parse one option's value into p: a usage error naming the value and -1 when it is bad. */
int cli_parse_dtype(const char *cmd, const char *text, cli_precision *p);
int cli_parse_master_weights(const char *cmd, const char *text, cli_precision *p);
/* After the options: --master-weights without --dtype bf16 is a usage error (-1). */
int cli_check_precision(const char *cmd, const cli_precision *p);
/* The model's precision: master weights unless off, stochastic rounding seeded from seed. */
struct gpt_precision;
void cli_model_precision(const cli_precision *p, uint64_t seed, struct gpt_precision *out);
/* "fp32", "bf16", or "bf16, no master weights" for headers. */
const char *cli_precision_name(const cli_precision *p);

/* The options that train, curve and profile share (cli/train_memory.c): --model, --device,
 * --batch, --seq, the model's dimensions, --dtype, --master-weights and --layout. Each command lists in its getopt
 * table those it takes (the CLI_OPT_* entries) and hands every option code to cli_model_option,
 * which stores it where `to` says (a NULL field: the command takes no such option). */
enum {
    CLI_O_SEQ = 0x4000,
    CLI_O_LAYERS,
    CLI_O_CHANNELS,
    CLI_O_HEADS,
    CLI_O_VOCAB,
    CLI_O_DTYPE,
    CLI_O_MASTER,
    CLI_O_LAYOUT
};
#define CLI_OPT_MODEL {"model", required_argument, NULL, 'm'}, {"device", required_argument, NULL, 'D'}
#define CLI_OPT_BATCH {"batch", required_argument, NULL, 'b'}
#define CLI_OPT_SEQ {"seq", required_argument, NULL, CLI_O_SEQ}
#define CLI_OPT_DIMS                                                                               \
    {"layers", required_argument, NULL, CLI_O_LAYERS},                                            \
        {"channels", required_argument, NULL, CLI_O_CHANNELS},                                    \
        {"heads", required_argument, NULL, CLI_O_HEADS},                                          \
        {"vocab", required_argument, NULL, CLI_O_VOCAB}
#define CLI_OPT_PRECISION                                                                          \
    {"dtype", required_argument, NULL, CLI_O_DTYPE},                                              \
        {"master-weights", required_argument, NULL, CLI_O_MASTER}
#define CLI_OPT_LAYOUT {"layout", required_argument, NULL, CLI_O_LAYOUT}
struct gpt_overrides;
typedef struct {
    const char **model;         /* --model */
    const char **device;        /* --device */
    long *batch;                /* --batch (1 .. 2^20) */
    struct gpt_overrides *ov;   /* --seq and the dimensions */
    cli_precision *prec;        /* --dtype, --master-weights */
    remat_layout_mode *layout;  /* --layout */
} cli_model_opts;
/* 1: c was one of the shared options and its value is stored; 0: c is not one of them; -1: a
 * bad value, reported as a usage error of cmd. */
int cli_model_option(const char *cmd, int c, const char *arg, const cli_model_opts *to);
/* getopt_long over argv, storing the shared options through cli_model_option: the next option
 * code that is not one of them, -1 at the end, -2 after a bad shared value (reported). */
struct option;
int cli_next_option(const char *cmd, int argc, char **argv, const char *shortopts,
                    const struct option *opts, const cli_model_opts *to);

/* `remat train --trace FILE` (cli/train_memory.c): open gives the temporary file (cli_output)
 * that the rig records the pool's trace into; finish ends the rig's trace and puts the file in
 * place when rc is EXIT_OK (else removes it); each returns an exit code. */
struct gpt_rig;
int train_trace_open(const char *path, FILE **out);
int train_trace_finish(struct gpt_rig *rig, FILE *f, int rc);
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
