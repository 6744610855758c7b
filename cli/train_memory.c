/* cli/train_memory.c: `remat train --trace` (the pool's allocation trace of the run, written to a
 * temporary file and renamed at the end) and `--profile-memory` (the per-stage memory table). */
#include "cli/cli.h"
#include "core/core.h"
#include "model/gpt.h"
#include "model/rig.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* ==== --trace ============================================================================== */

/* The one trace a run records (cli_output: a temporary file beside the target). */
static cli_output train_trace_out;

int train_trace_open(const char *path, FILE **out)
{
    remat_status s = cli_output_open(&train_trace_out, path);
    if (s != REMAT_OK)
        return cli_fail("train", s, "--trace");
    *out = train_trace_out.f;
    return EXIT_OK;
}

int train_trace_finish(gpt_rig *rig, FILE *f, int rc)
{
    if (!f)
        return rc;
    remat_status s = gpt_rig_trace_end(rig);
    if (rc != EXIT_OK || s != REMAT_OK) {
        cli_output_close(&train_trace_out, 0);
        return rc != EXIT_OK ? rc : cli_fail("train", s, "--trace");
    }
    if ((s = cli_output_close(&train_trace_out, 1)) != REMAT_OK)
        return cli_fail("train", s, "--trace");
    return EXIT_OK;
}

/* ==== --profile-memory ===================================================================== */

/* Rows that ran, most memory live first (then most bytes handed out, then stage order). */
static int train_memprof_cmp(const void *a, const void *b)
{
    const gpt_memprof_row *x = *(const gpt_memprof_row *const *)a;
    const gpt_memprof_row *y = *(const gpt_memprof_row *const *)b;
    if (x->total_peak != y->total_peak)
        return x->total_peak < y->total_peak ? 1 : -1;
    if (x->alloc_bytes != y->alloc_bytes)
        return x->alloc_bytes < y->alloc_bytes ? 1 : -1;
    return (x > y) - (x < y);
}

/* The rows that ran, sorted; *all sums calls, time and bytes and takes the peaks' maximum. */
static int train_memprof_sorted(const gpt_memprof *p, const gpt_memprof_row **sorted,
                                gpt_memprof_row *all)
{
    const gpt_memprof_row *rows;
    int n = gpt_memprof_rows(p, &rows), k = 0;
    memset(all, 0, sizeof *all);
    snprintf(all->stage, sizeof all->stage, "all");
    for (int i = 0; i < n; i++) {
        if (!rows[i].calls)
            continue;
        sorted[k++] = &rows[i];
        all->calls += rows[i].calls;
        all->ms += rows[i].ms;
        all->alloc_bytes += rows[i].alloc_bytes;
        for (int t = 0; t < GPT_MEMPROF_TAGS; t++)
            if (rows[i].tag_peak[t] > all->tag_peak[t])
                all->tag_peak[t] = rows[i].tag_peak[t];
        if (rows[i].total_peak > all->total_peak)
            all->total_peak = rows[i].total_peak;
    }
    qsort(sorted, (size_t)k, sizeof *sorted, train_memprof_cmp);
    return k;
}

static void train_memprof_row_text(const gpt_memprof_row *r, const char *pass, const int *cols,
                                   int n_tags)
{
    char b[32];
    printf("%-10s %-8s %7llu %10.2f %11s", r->stage, pass, (unsigned long long)r->calls, r->ms,
           remat_format_bytes(r->alloc_bytes, b, sizeof b));
    for (int t = 0; t < n_tags; t++)
        printf(" %11s", remat_format_bytes(r->tag_peak[cols[t]], b, sizeof b));
    printf(" %11s\n", remat_format_bytes(r->total_peak, b, sizeof b));
}

static void train_memprof_text(const gpt_memprof_row **sorted, int k, const gpt_memprof_row *all,
                               const char **tags, const int *cols, int n_tags)
{
    printf(
        "\nmemory profile: per stage and pass, summed over every call (recomputations included);\n"
        "alloc = pool bytes handed to the stage (its output or input gradient, and workspace);\n"
        "the tag columns and total = the most bytes live under each tag while the stage ran\n");
    printf("%-10s %-8s %7s %10s %11s", "stage", "pass", "calls", "time ms", "alloc");
    for (int t = 0; t < n_tags; t++)
        printf(" %11.11s", tags[cols[t]]);
    printf(" %11s\n", "total");
    for (int i = 0; i < k; i++)
        train_memprof_row_text(sorted[i], sorted[i]->backward ? "backward" : "forward", cols,
                               n_tags);
    train_memprof_row_text(all, "", cols, n_tags);
}

static void train_memprof_json_row(const gpt_memprof_row *r, const char **tags, const int *cols,
                                   int n_tags)
{
    printf("{\"stage\": ");
    cli_json_string(stdout, r->stage);
    printf(", \"pass\": \"%s\", \"calls\": %llu, \"ms\": %.3f, \"alloc_bytes\": %llu, "
           "\"total_peak_bytes\": %llu, \"peak_bytes\": {",
           r->backward ? "backward" : "forward", (unsigned long long)r->calls, r->ms,
           (unsigned long long)r->alloc_bytes, (unsigned long long)r->total_peak);
    for (int t = 0; t < n_tags; t++) {
        printf("%s", t ? ", " : "");
        cli_json_string(stdout, tags[cols[t]]);
        printf(": %llu", (unsigned long long)r->tag_peak[cols[t]]);
    }
    printf("}}");
}

static void train_memprof_json(const gpt_memprof_row **sorted, int k, const gpt_memprof_row *all,
                               const char **tags, const int *cols, int n_tags)
{
    printf("{\"memory_profile\": {\"tags\": [");
    for (int t = 0; t < n_tags; t++) {
        printf("%s", t ? ", " : "");
        cli_json_string(stdout, tags[cols[t]]);
    }
    printf("], \"rows\": [");
    for (int i = 0; i < k; i++) {
        printf("%s", i ? ", " : "");
        train_memprof_json_row(sorted[i], tags, cols, n_tags);
    }
    printf("], \"all\": ");
    train_memprof_json_row(all, tags, cols, n_tags);
    printf("}}\n");
}

int train_memprof_report(const struct gpt_memprof *p, int json)
{
    remat_status s = gpt_memprof_status(p);
    if (s != REMAT_OK)
        return cli_fail("train", s, "--profile-memory");
    const gpt_memprof_row *rows;
    int n = gpt_memprof_rows(p, &rows);
    const gpt_memprof_row **sorted = calloc((size_t)n + 1, sizeof *sorted);
    if (!sorted)
        return cli_fail("train", remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    const char *tags[GPT_MEMPROF_TAGS];
    int n_tags = gpt_memprof_tags(p, tags);
    gpt_memprof_row all;
    int k = train_memprof_sorted(p, sorted, &all);
    int cols[GPT_MEMPROF_TAGS], n_cols = 0; /* tags that held bytes (not an unused "untagged") */
    for (int t = 0; t < n_tags; t++)
        if (all.tag_peak[t])
            cols[n_cols++] = t;
    if (json)
        train_memprof_json(sorted, k, &all, tags, cols, n_cols);
    else
        train_memprof_text(sorted, k, &all, tags, cols, n_cols);
    free(sorted);
    return EXIT_OK;
}

/* ==== Profiling (train, curve) ============================================================= */

/* Warns (stderr) of each option the profile measured below the default's backward: an option
 * only adds work, so the measurement was disturbed; the chain holds the raised value. */
static void train_profile_warn(const char *cmd, const gpt_profile_info *info, const remat_chain *ch)
{
    if (info->unclean_times)
        fprintf(stderr,
                "remat %s: warning: the machine was busy while profiling: %d of %d timed calls "
                "were preempted, and %d times had fewer than %d undisturbed calls (estimated "
                "from disturbed ones): this profile may not repeat\n",
                cmd, info->disturbed, info->samples, info->unclean_times, GPT_PROFILE_MIN_CLEAN);
    if (!info->contradicted || ch->n_stages < 3)
        return;
    const remat_stage *blk = &ch->stages[1];
    for (int o = 0; o < blk->n_options && o < GPT_N_BLOCK_OPTIONS; o++)
        if (info->measured_option_bwd[o] < info->default_bwd * 0.97)
            fprintf(stderr,
                    "remat %s: warning: the profile measured %s's backward at %.3f ms, below "
                    "the default's %.3f ms, though it only adds work (a disturbed measurement; "
                    "is the machine busy?): using %.3f ms\n",
                    cmd, blk->options[o].name, info->measured_option_bwd[o], info->default_bwd,
                    blk->options[o].bwd);
}

int train_profile(const char *cmd, gpt_model *m, const int *inputs, int reps, const char *path,
                  FILE *note, remat_chain **out)
{
    gpt_profile_key key;
    char why[256] = "";
    remat_status s = REMAT_OK;
    if (path) {
        remat_chain *shape = NULL;
        if ((s = gpt_profile_key_of(m, &key)) == REMAT_OK &&
            (s = gpt_model_chain(m, &shape)) == REMAT_OK)
            s = gpt_profile_load(path, &key, shape, out, why, sizeof why);
        remat_chain_free(shape);
        if (s != REMAT_OK)
            return cli_fail(cmd, s, "--profile-file");
        if (*out) {
            if (note)
                fprintf(note, "profile: read %s (same model, batch, seq, device and dtype)\n",
                        path);
            return EXIT_OK;
        }
    }
    gpt_profile_info info;
    s = gpt_model_profile(m, inputs, reps, out, &info);
    if (s == REMAT_ENOMEM) {
        /* Even one stage's buffers do not fit next to the model: plan on FLOP counts. */
        fprintf(stderr, "remat %s: cannot profile (%s); planning on FLOP counts as --analytic\n",
                cmd, remat_last_error());
        return gpt_model_chain(m, out) == REMAT_OK ? EXIT_OK : cli_fail(cmd, s, "");
    }
    if (s != REMAT_OK)
        return cli_fail(cmd, s, "cannot profile the model's stages");
    train_profile_warn(cmd, &info, *out);
    if (path && (s = gpt_profile_save(path, *out, &key)) != REMAT_OK)
        return cli_fail(cmd, s, "--profile-file");
    if (note) {
        char pb[32];
        int replaced = path && strcmp(why, "no such file") != 0;
        fprintf(note, "profile: %d rounds stage by stage in %.2f s, at most %s live", info.rounds,
                info.elapsed_ms / 1e3, remat_format_bytes(info.peak_bytes, pb, sizeof pb));
        fprintf(note, ", %d of %d timed calls preempted", info.disturbed, info.samples);
        if (path)
            fprintf(note, "; written to %s", path);
        if (replaced)
            fprintf(note, " (replacing a profile that does not fit this run: %s)", why);
        fprintf(note, "\n");
    }
    return EXIT_OK;
}

/* ==== --dtype and --master-weights ========================================================== */

int cli_parse_dtype(const char *cmd, const char *text, cli_precision *p)
{
    gpt_dtype d = GPT_FP32;
    if (gpt_dtype_parse(text, &d) != REMAT_OK) {
        cli_usage_error(cmd, "--dtype: %s", remat_last_error());
        return -1;
    }
    p->bf16 = d == GPT_BF16;
    return 0;
}

int cli_parse_master_weights(const char *cmd, const char *text, cli_precision *p)
{
    if (strcmp(text, "on") != 0 && strcmp(text, "off") != 0) {
        cli_usage_error(cmd, "--master-weights '%s': use on or off", text);
        return -1;
    }
    p->master_weights = strcmp(text, "on") == 0;
    return 0;
}

int cli_check_precision(const char *cmd, const cli_precision *p)
{
    if (p->master_weights >= 0 && !p->bf16) {
        cli_usage_error(cmd, "--master-weights needs --dtype bf16 (fp32 weights are the master "
                             "weights)");
        return -1;
    }
    return 0;
}

void cli_model_precision(const cli_precision *p, uint64_t seed, gpt_precision *out)
{
    *out = gpt_precision_default();
    out->dtype = p->bf16 ? GPT_BF16 : GPT_FP32;
    out->master_weights = p->master_weights != 0;
    out->seed = seed;
}

const char *cli_precision_name(const cli_precision *p)
{
    return !p->bf16 ? "fp32" : p->master_weights == 0 ? "bf16, no master weights" : "bf16";
}

/* ==== The options train, curve and profile share ============================================ */

int cli_model_option(const char *cmd, int c, const char *arg, const cli_model_opts *to)
{
    static const struct {
        int code;
        const char *name;
        long lo, hi;
    } dims[] = {{CLI_O_SEQ, "--seq", 1, 1 << 20},        {CLI_O_LAYERS, "--layers", 1, 1024},
                {CLI_O_CHANNELS, "--channels", 1, 65536}, {CLI_O_HEADS, "--heads", 1, 65536},
                {CLI_O_VOCAB, "--vocab", 2, 1 << 24}};
    long v;
    if ((c == 'm' && to->model) || (c == 'D' && to->device)) {
        *(c == 'm' ? to->model : to->device) = arg;
        return 1;
    }
    if (c == 'b' && to->batch)
        return cli_parse_int(cmd, "--batch", arg, 1, 1 << 20, to->batch) ? -1 : 1;
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (c != dims[i].code || !to->ov)
            continue;
        if (cli_parse_int(cmd, dims[i].name, arg, dims[i].lo, dims[i].hi, &v))
            return -1;
        int *field[] = {&to->ov->seq, &to->ov->layers, &to->ov->channels, &to->ov->heads,
                        &to->ov->vocab};
        *field[i] = (int)v;
        return 1;
    }
    if (c == CLI_O_DTYPE && to->prec)
        return cli_parse_dtype(cmd, arg, to->prec) ? -1 : 1;
    if (c == CLI_O_MASTER && to->prec)
        return cli_parse_master_weights(cmd, arg, to->prec) ? -1 : 1;
    if (c == CLI_O_LAYOUT && to->layout) {
        if (remat_layout_mode_parse(arg, to->layout) == REMAT_OK)
            return 1;
        cli_usage_error(cmd, "--layout: %s", remat_last_error());
        return -1;
    }
    return 0;
}

int cli_next_option(const char *cmd, int argc, char **argv, const char *shortopts,
                    const struct option *opts, const cli_model_opts *to)
{
    int c, k;
    while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1)
        if ((k = cli_model_option(cmd, c, optarg, to)) <= 0)
            return k < 0 ? -2 : c;
    return -1;
}
