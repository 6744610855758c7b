/* checkpoint/chain.c: the chain model: building in code, the JSON loader with validation, saving.
 */
#include "checkpoint/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Each byte count stays below 2^47 (128 TiB), so sums over 30000 stages never overflow. */
#define CHAIN_MAX_BYTES ((uint64_t)1 << 47)
/* A chain file above 64 MiB is refused before it is read whole (30,000 stages take about 5 MiB). */
#define CHAIN_MAX_FILE ((size_t)64 << 20)
/* Every schedule runs each forward at most once per stage of the chain plus the backwards once,
 * so times whose (L + 1) * sum(fwd) + sum(bwd) stays below this bound keep every schedule time,
 * and ratios of them, finite. */
#define CHAIN_MAX_TIME 1e300

/* ==== sizes ============================================================================== */

uint64_t chain_act_bytes(const remat_chain *c, int k)
{
    return k == 0 ? c->input_bytes : c->stages[k - 1].out_bytes;
}

uint64_t chain_saved_bytes(const remat_chain *c, int stage, int option)
{
    const remat_stage *s = &c->stages[stage];
    return option < 0 ? s->saved_bytes : s->options[option].saved_bytes;
}

uint64_t chain_grad_bytes(const remat_chain *c, int k)
{
    return k == 0 && c->input_no_grad ? 0 : chain_act_bytes(c, k);
}

uint64_t chain_fwd_tmp_bytes(const remat_chain *c, int stage, int option)
{
    const remat_stage *s = &c->stages[stage];
    return s->fwd_tmp_bytes + (option >= 0 ? s->options[option].extra_fwd_tmp_bytes : 0);
}

uint64_t chain_bwd_tmp_bytes(const remat_chain *c, int stage, int option)
{
    const remat_stage *s = &c->stages[stage];
    return s->bwd_tmp_bytes + (option >= 0 ? s->options[option].extra_bwd_tmp_bytes : 0);
}

double chain_bwd_time(const remat_chain *c, int stage, int option)
{
    const remat_stage *s = &c->stages[stage];
    return option < 0 ? s->bwd : s->options[option].bwd;
}

double chain_base_time(const remat_chain *c)
{
    double t = 0;
    for (int i = 0; i < c->n_stages; i++)
        t += c->stages[i].fwd + c->stages[i].bwd;
    return t;
}

/* ==== building and freeing ================================================================ */

remat_status remat_chain_new(int n_stages, remat_chain **out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_chain_new: out must not be NULL");
    if (n_stages < 1)
        return remat_fail(REMAT_EINVAL, "remat_chain_new: n_stages must be at least 1, got %d",
                          n_stages);
    remat_chain *c = calloc(1, sizeof *c);
    remat_stage *st = calloc((size_t)n_stages, sizeof *st);
    if (!c || !st) {
        free(c);
        free(st);
        return remat_fail(REMAT_ENOMEM, "remat_chain_new: cannot allocate %d stages", n_stages);
    }
    c->n_stages = n_stages;
    c->stages = st;
    *out = c;
    return REMAT_OK;
}

void remat_chain_free(remat_chain *chain)
{
    if (!chain)
        return;
    for (int i = 0; i < chain->n_stages; i++)
        free(chain->stages[i].options);
    free(chain->stages);
    free(chain);
}

/* ==== validation ========================================================================== */

static int chain_time_ok(double t)
{
    return isfinite(t) && t >= 0;
}

static int chain_sizes_ok(const remat_stage *s)
{
    if (s->out_bytes > CHAIN_MAX_BYTES || s->saved_bytes > CHAIN_MAX_BYTES ||
        s->fwd_tmp_bytes > CHAIN_MAX_BYTES || s->bwd_tmp_bytes > CHAIN_MAX_BYTES)
        return 0;
    for (int k = 0; k < s->n_options; k++)
        if (s->options[k].saved_bytes > CHAIN_MAX_BYTES ||
            s->options[k].extra_fwd_tmp_bytes > CHAIN_MAX_BYTES ||
            s->options[k].extra_bwd_tmp_bytes > CHAIN_MAX_BYTES)
            return 0;
    return 1;
}

static remat_status chain_validate_stage(const remat_chain *c, int i)
{
    const remat_stage *s = &c->stages[i];
    if (!chain_time_ok(s->fwd))
        return remat_fail(REMAT_EPARSE, "stages[%d].fwd: %g must be a finite number >= 0", i,
                          s->fwd);
    if (!chain_time_ok(s->bwd))
        return remat_fail(REMAT_EPARSE, "stages[%d].bwd: %g must be a finite number >= 0", i,
                          s->bwd);
    if (s->saved_bytes < s->out_bytes)
        return remat_fail(REMAT_EPARSE,
                          "stages[%d].saved_bytes: %llu is below out_bytes %llu "
                          "(the saved state includes the output)",
                          i, (unsigned long long)s->saved_bytes, (unsigned long long)s->out_bytes);
    if (s->n_options < 0 || (s->n_options > 0 && !s->options))
        return remat_fail(REMAT_EPARSE, "stages[%d].options: bad count %d", i, s->n_options);
    for (int k = 0; k < s->n_options; k++) {
        const remat_stage_option *o = &s->options[k];
        if (o->name[0] == '\0' || strcmp(o->name, "default") == 0)
            return remat_fail(REMAT_EPARSE,
                              "stages[%d].options[%d].name: '%s' is reserved or empty", i, k,
                              o->name);
        if (!chain_time_ok(o->bwd))
            return remat_fail(REMAT_EPARSE,
                              "stages[%d].options[%d].bwd: %g must be a finite number "
                              ">= 0",
                              i, k, o->bwd);
        if (o->saved_bytes < s->out_bytes)
            return remat_fail(REMAT_EPARSE,
                              "stages[%d].options[%d].saved_bytes: %llu is below "
                              "out_bytes %llu",
                              i, k, (unsigned long long)o->saved_bytes,
                              (unsigned long long)s->out_bytes);
        for (int j = 0; j < k; j++)
            if (strcmp(s->options[j].name, o->name) == 0)
                return remat_fail(REMAT_EPARSE, "stages[%d].options[%d].name: '%s' is repeated", i,
                                  k, o->name);
    }
    if (!chain_sizes_ok(s))
        return remat_fail(REMAT_EPARSE, "stages[%d]: a byte count is above the limit of 128 TiB",
                          i);
    return REMAT_OK;
}

/* The worst schedule's time: every forward once per stage (L + 1 times), the dearest backward. */
static double chain_worst_time(const remat_chain *c)
{
    double fwd = 0, bwd = 0;
    for (int i = 0; i < c->n_stages; i++) {
        const remat_stage *s = &c->stages[i];
        double b = s->bwd;
        for (int k = 0; k < s->n_options; k++)
            b = s->options[k].bwd > b ? s->options[k].bwd : b;
        fwd += s->fwd;
        bwd += b;
    }
    return fwd * ((double)c->n_stages + 1) + bwd;
}

remat_status chain_validate(const remat_chain *c)
{
    if (!c)
        return remat_fail(REMAT_EINVAL, "chain must not be NULL");
    if (c->n_stages < 1 || !c->stages)
        return remat_fail(REMAT_EPARSE, "stages: the chain is empty");
    if (c->n_stages > 30000)
        return remat_fail(REMAT_EPARSE, "stages: %d stages, at most 30000 supported", c->n_stages);
    if (c->input_no_grad != 0 && c->input_no_grad != 1)
        return remat_fail(REMAT_EPARSE, "input_no_grad: %d must be 0 or 1", c->input_no_grad);
    if (c->input_bytes > CHAIN_MAX_BYTES)
        return remat_fail(REMAT_EPARSE, "input_bytes: %llu is above the limit of 128 TiB",
                          (unsigned long long)c->input_bytes);
    for (int i = 0; i < c->n_stages; i++)
        REMAT_TRY(chain_validate_stage(c, i));
    double worst = chain_worst_time(c);
    if (!(worst <= CHAIN_MAX_TIME))
        return remat_fail(REMAT_EPARSE,
                          "stages: the times are too large: (stages + 1) * sum(fwd) + sum(bwd) is "
                          "%g, above the limit of %g (scale the times down)",
                          worst, CHAIN_MAX_TIME);
    return REMAT_OK;
}

/* ==== JSON loading ======================================================================== */

/* Reads a required (or, with dflt != NULL, optional) non-negative whole byte count. */
static remat_status chain_get_bytes(const cJSON *obj, const char *key, const char *where,
                                    const uint64_t *dflt, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (dflt) {
            *out = *dflt;
            return REMAT_OK;
        }
        return remat_fail(REMAT_EPARSE, "%s%s: missing", where, key);
    }
    if (!cJSON_IsNumber(v))
        return remat_fail(REMAT_EPARSE, "%s%s: must be a number of bytes", where, key);
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0)
        return remat_fail(REMAT_EPARSE, "%s%s: %g must be a finite number >= 0", where, key, d);
    if (d != floor(d))
        return remat_fail(REMAT_EPARSE, "%s%s: %g is not a whole number of bytes", where, key, d);
    if (d > (double)CHAIN_MAX_BYTES)
        return remat_fail(REMAT_EPARSE, "%s%s: %g bytes is above the limit of 128 TiB", where, key,
                          d);
    *out = (uint64_t)d;
    return REMAT_OK;
}

static remat_status chain_get_time(const cJSON *obj, const char *key, const char *where,
                                   double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return remat_fail(REMAT_EPARSE, "%s%s: missing", where, key);
    if (!cJSON_IsNumber(v))
        return remat_fail(REMAT_EPARSE, "%s%s: must be a number", where, key);
    if (!chain_time_ok(v->valuedouble))
        return remat_fail(REMAT_EPARSE, "%s%s: %g must be a finite number >= 0", where, key,
                          v->valuedouble);
    *out = v->valuedouble;
    return REMAT_OK;
}

/* Copies an optional (dflt != NULL) or required string field into buf. */
static remat_status chain_get_name(const cJSON *obj, const char *where, const char *dflt, char *buf,
                                   size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "name");
    if (!v) {
        if (!dflt)
            return remat_fail(REMAT_EPARSE, "%sname: missing", where);
        snprintf(buf, n, "%s", dflt);
        return REMAT_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return remat_fail(REMAT_EPARSE, "%sname: must be a string", where);
    if (strlen(v->valuestring) >= n)
        return remat_fail(REMAT_EPARSE, "%sname: '%s' is longer than %zu characters", where,
                          v->valuestring, n - 1);
    snprintf(buf, n, "%s", v->valuestring);
    return REMAT_OK;
}

/* Reads an optional boolean (absent: 0). */
static remat_status chain_get_flag(const cJSON *obj, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v && !cJSON_IsBool(v))
        return remat_fail(REMAT_EPARSE, "%s: must be true or false", key);
    *out = v && cJSON_IsTrue(v);
    return REMAT_OK;
}

static remat_status chain_parse_options(const cJSON *arr, int i, remat_stage *s)
{
    if (!arr)
        return REMAT_OK;
    if (!cJSON_IsArray(arr))
        return remat_fail(REMAT_EPARSE, "stages[%d].options: must be an array", i);
    int n = cJSON_GetArraySize(arr);
    if (n == 0)
        return REMAT_OK;
    s->options = calloc((size_t)n, sizeof *s->options);
    if (!s->options)
        return remat_fail(REMAT_ENOMEM, "stages[%d].options: out of memory", i);
    s->n_options = n;
    int k = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        char where[64];
        snprintf(where, sizeof where, "stages[%d].options[%d].", i, k);
        if (!cJSON_IsObject(o))
            return remat_fail(REMAT_EPARSE, "stages[%d].options[%d]: must be an object", i, k);
        remat_stage_option *opt = &s->options[k];
        REMAT_TRY(chain_get_name(o, where, NULL, opt->name, sizeof opt->name));
        REMAT_TRY(chain_get_bytes(o, "saved_bytes", where, NULL, &opt->saved_bytes));
        REMAT_TRY(chain_get_time(o, "bwd", where, &opt->bwd));
        static const uint64_t zero = 0;
        REMAT_TRY(
            chain_get_bytes(o, "extra_fwd_tmp_bytes", where, &zero, &opt->extra_fwd_tmp_bytes));
        REMAT_TRY(
            chain_get_bytes(o, "extra_bwd_tmp_bytes", where, &zero, &opt->extra_bwd_tmp_bytes));
        k++;
    }
    return REMAT_OK;
}

static remat_status chain_parse_stage(const cJSON *obj, int i, remat_stage *s)
{
    char where[32], dflt[32];
    snprintf(where, sizeof where, "stages[%d].", i);
    snprintf(dflt, sizeof dflt, "stage%d", i);
    if (!cJSON_IsObject(obj))
        return remat_fail(REMAT_EPARSE, "stages[%d]: must be an object", i);
    static const uint64_t zero = 0;
    REMAT_TRY(chain_get_name(obj, where, dflt, s->name, sizeof s->name));
    REMAT_TRY(chain_get_time(obj, "fwd", where, &s->fwd));
    REMAT_TRY(chain_get_time(obj, "bwd", where, &s->bwd));
    REMAT_TRY(chain_get_bytes(obj, "out_bytes", where, NULL, &s->out_bytes));
    REMAT_TRY(chain_get_bytes(obj, "saved_bytes", where, NULL, &s->saved_bytes));
    REMAT_TRY(chain_get_bytes(obj, "fwd_tmp_bytes", where, &zero, &s->fwd_tmp_bytes));
    REMAT_TRY(chain_get_bytes(obj, "bwd_tmp_bytes", where, &zero, &s->bwd_tmp_bytes));
    return chain_parse_options(cJSON_GetObjectItemCaseSensitive(obj, "options"), i, s);
}

static remat_status chain_from_json(const cJSON *root, remat_chain **out)
{
    if (!cJSON_IsObject(root))
        return remat_fail(REMAT_EPARSE, "chain: the top level must be an object");
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(root, "stages");
    if (!stages)
        return remat_fail(REMAT_EPARSE, "stages: missing");
    if (!cJSON_IsArray(stages))
        return remat_fail(REMAT_EPARSE, "stages: must be an array");
    int n = cJSON_GetArraySize(stages);
    if (n == 0)
        return remat_fail(REMAT_EPARSE, "stages: the chain is empty");
    remat_chain *c;
    REMAT_TRY(remat_chain_new(n, &c));
    remat_status s = chain_get_name(root, "", "chain", c->name, sizeof c->name);
    if (s == REMAT_OK)
        s = chain_get_bytes(root, "input_bytes", "", NULL, &c->input_bytes);
    if (s == REMAT_OK)
        s = chain_get_flag(root, "input_no_grad", &c->input_no_grad);
    int i = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, stages)
    {
        if (s != REMAT_OK)
            break;
        s = chain_parse_stage(st, i, &c->stages[i]);
        i++;
    }
    if (s == REMAT_OK)
        s = chain_validate(c);
    if (s != REMAT_OK) {
        remat_chain_free(c);
        return s;
    }
    *out = c;
    return REMAT_OK;
}

static int chain_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses an object that repeats a key (cJSON would silently keep the first), at any depth; path
 * names obj in the message. Keys are sorted, so a hostile object of many keys costs n log n. */
static remat_status chain_check_keys(const cJSON *obj, char *path, size_t len, size_t cap)
{
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, obj) n++;
    if (cJSON_IsObject(obj) && n > 1) {
        const char **keys = malloc((size_t)n * sizeof *keys);
        if (!keys)
            return remat_fail(REMAT_ENOMEM, "chain: out of memory");
        int k = 0;
        cJSON_ArrayForEach(v, obj) keys[k++] = v->string ? v->string : "";
        qsort(keys, (size_t)n, sizeof *keys, chain_name_cmp);
        for (k = 1; k < n && strcmp(keys[k - 1], keys[k]) != 0; k++)
            ;
        remat_status s = k < n ? remat_fail(REMAT_EPARSE, "%s: duplicate key '%.64s'",
                                            len ? path : "chain", keys[k])
                               : REMAT_OK;
        free(keys);
        REMAT_TRY(s);
    }
    int i = 0;
    cJSON_ArrayForEach(v, obj)
    {
        if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
            int w = cJSON_IsArray(obj) ? snprintf(path + len, cap - len, "[%d]", i)
                                       : snprintf(path + len, cap - len, "%s%.64s", len ? "." : "",
                                                  v->string ? v->string : "");
            size_t next = w > 0 && (size_t)w < cap - len ? len + (size_t)w : len;
            REMAT_TRY(chain_check_keys(v, path, next, cap));
            path[len] = '\0';
        }
        i++;
    }
    return REMAT_OK;
}

remat_status remat_chain_parse(const char *json, size_t len, remat_chain **out)
{
    if (!json || !out)
        return remat_fail(REMAT_EINVAL, "remat_chain_parse: json and out must not be NULL");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return remat_fail(REMAT_EPARSE, "chain: malformed JSON near byte %zu", at);
    }
    /* one JSON value and nothing after it but white space */
    size_t at = end && end >= json ? (size_t)(end - json) : len;
    while (at < len &&
           (json[at] == ' ' || json[at] == '\t' || json[at] == '\n' || json[at] == '\r'))
        at++;
    char path[256] = "";
    remat_status s = at < len ? remat_fail(REMAT_EPARSE,
                                           "chain: unexpected data after the JSON value at byte "
                                           "%zu (one object per file)",
                                           at)
                              : chain_check_keys(root, path, 0, sizeof path);
    if (s == REMAT_OK)
        s = chain_from_json(root, out);
    cJSON_Delete(root);
    return s;
}

remat_status remat_chain_load(const char *path, remat_chain **out)
{
    if (!path || !out)
        return remat_fail(REMAT_EINVAL, "remat_chain_load: path and out must not be NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return remat_fail(REMAT_EIO, "cannot open chain file '%s': %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t n = 0;
    remat_status s = remat_read_capped(f, path, CHAIN_MAX_FILE, 0, &buf, &n);
    fclose(f);
    if (s != REMAT_OK)
        return remat_fail_context(s, "chain file");
    s = remat_chain_parse((const char *)buf, n, out);
    free(buf);
    if (s != REMAT_OK)
        return remat_fail_context(s, "%s", path);
    return REMAT_OK;
}

/* ==== saving ============================================================================== */

static void chain_write_stage(FILE *f, const remat_stage *s)
{
    fprintf(f, "    {\"name\": ");
    remat_json_string(f, s->name);
    fprintf(f,
            ", \"fwd\": %.17g, \"bwd\": %.17g, \"out_bytes\": %llu, \"saved_bytes\": %llu, "
            "\"fwd_tmp_bytes\": %llu, \"bwd_tmp_bytes\": %llu",
            s->fwd, s->bwd, (unsigned long long)s->out_bytes, (unsigned long long)s->saved_bytes,
            (unsigned long long)s->fwd_tmp_bytes, (unsigned long long)s->bwd_tmp_bytes);
    if (s->n_options > 0) {
        fprintf(f, ", \"options\": [");
        for (int k = 0; k < s->n_options; k++) {
            fprintf(f, "%s{\"name\": ", k ? ", " : "");
            remat_json_string(f, s->options[k].name);
            const remat_stage_option *o = &s->options[k];
            fprintf(f, ", \"saved_bytes\": %llu, \"bwd\": %.17g",
                    (unsigned long long)o->saved_bytes, o->bwd);
            /* written only when set, so chains without them keep their files byte for byte */
            if (o->extra_fwd_tmp_bytes)
                fprintf(f, ", \"extra_fwd_tmp_bytes\": %llu",
                        (unsigned long long)o->extra_fwd_tmp_bytes);
            if (o->extra_bwd_tmp_bytes)
                fprintf(f, ", \"extra_bwd_tmp_bytes\": %llu",
                        (unsigned long long)o->extra_bwd_tmp_bytes);
            fprintf(f, "}");
        }
        fprintf(f, "]");
    }
    fprintf(f, "}");
}

remat_status remat_chain_write(const remat_chain *chain, FILE *f)
{
    if (!f)
        return remat_fail(REMAT_EINVAL, "remat_chain_write: f must not be NULL");
    REMAT_TRY(chain_validate(chain));
    fprintf(f, "{\"name\": ");
    remat_json_string(f, chain->name);
    fprintf(f, ", \"input_bytes\": %llu,%s\n  \"stages\": [\n",
            (unsigned long long)chain->input_bytes,
            chain->input_no_grad ? " \"input_no_grad\": true," : "");
    for (int i = 0; i < chain->n_stages; i++) {
        chain_write_stage(f, &chain->stages[i]);
        fprintf(f, "%s\n", i + 1 < chain->n_stages ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (ferror(f))
        return remat_fail(REMAT_EIO, "cannot write the chain: %s", strerror(errno));
    return REMAT_OK;
}

remat_status remat_chain_save(const remat_chain *chain, const char *path)
{
    if (!path)
        return remat_fail(REMAT_EINVAL, "remat_chain_save: path must not be NULL");
    REMAT_TRY(chain_validate(chain));
    char tmp[4200];
    FILE *f;
    remat_status s = remat_tmp_open(path, tmp, sizeof tmp, &f);
    if (s != REMAT_OK)
        return remat_fail_context(s, "chain file '%s'", path);
    s = remat_chain_write(chain, f);
    remat_status fin = remat_tmp_finish(f, tmp, path, s == REMAT_OK);
    return s != REMAT_OK ? s : fin;
}
