/* tests/unit/test_kernels.c: every CPU kernel against a naive float64 reference, every backward against
 * central finite differences of that reference, the += semantics of gradients, and kern_open;
 * the bf16 kernels (kernels_bf16.h) against the same references with bf16 tolerances. */
#include "tests/common/test_rng.h"
#include "kernels/kernels.h"
#include "kernels/kernels_bf16.h"
#include "kernels/math.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== Helpers ============================================================================== */

/* Every buffer of a test is registered here and freed by the suite's fini (keeps ASan quiet). */
static void *test_bufs[512];
static int test_nbufs;

static void *t_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    cr_assert(p && test_nbufs < 512);
    test_bufs[test_nbufs++] = p;
    return p;
}

static void *t_malloc(size_t bytes)
{
    return t_calloc(1, bytes);
}

static remat_device *bf16_dev; /* the bf16 kernels' context (their host workspace lives there) */
static kern_ctx *bf16_kc;

static void free_test_bufs(void)
{
    while (test_nbufs > 0)
        free(test_bufs[--test_nbufs]);
    kern_close(bf16_kc);
    remat_device_close(bf16_dev);
    bf16_kc = NULL, bf16_dev = NULL;
}

TestSuite(kernels, .fini = free_test_bufs);

static uint64_t rng_state; /* tests/common/test_rng.h draws from it */

static float *rand_floats(size_t n, double scale)
{
    float *x = t_malloc((n ? n : 1) * sizeof *x);
    cr_assert(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * test_rng_uniform(&rng_state) - 1.0) * scale);
    return x;
}

static double *to_double(const float *x, size_t n)
{
    double *d = t_malloc((n ? n : 1) * sizeof *d);
    cr_assert(d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

static float *copy_floats(const float *x, size_t n)
{
    float *c = t_malloc((n ? n : 1) * sizeof *c);
    cr_assert(c);
    memcpy(c, x, n * sizeof *c);
    return c;
}

/* got - before, i.e. what a backward kernel added to a pre-filled gradient buffer. */
static double *added(const float *got, const float *before, size_t n)
{
    double *d = t_malloc((n ? n : 1) * sizeof *d);
    cr_assert(d);
    for (size_t i = 0; i < n; i++)
        d[i] = (double)got[i] - (double)before[i];
    return d;
}

/* max |got - ref| / max(max |ref|, floor): a scale-free error for one tensor. */
static double rel_err(const double *got, const double *ref, size_t n)
{
    double diff = 0.0, mag = 1e-6;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs(got[i] - ref[i]));
        mag = fmax(mag, fabs(ref[i]));
    }
    return diff / mag;
}

static void expect_close_d(const char *what, const double *got, const double *ref, size_t n,
                           double tol)
{
    double e = rel_err(got, ref, n);
    cr_expect(e <= tol, "%s: relative error %.3g > %.3g", what, e, tol);
}

static void expect_close_f(const char *what, const float *got, const double *ref, size_t n,
                           double tol)
{
    double *g = to_double(got, n);
    expect_close_d(what, g, ref, n, tol);
}

/* Central differences of loss(p) with respect to x[0..n): grad[i] = dloss/dx[i]. */
typedef double (*loss_fn)(void *p);

static void fd_gradient(loss_fn loss, void *p, double *x, size_t n, double *grad)
{
    const double h = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double saved = x[i];
        x[i] = saved + h;
        double up = loss(p);
        x[i] = saved - h;
        double down = loss(p);
        x[i] = saved;
        grad[i] = (up - down) / (2.0 * h);
    }
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

#define FD_TOL 2e-4  /* float kernel gradient vs float64 finite differences */
#define FWD_TOL 1e-5 /* float kernel output vs float64 reference */

/* ==== Encoder ============================================================================== */

static void ref_encoder(double *out, const int *inp, const double *wte, const double *wpe, int B,
                        int T, int C)
{
    for (int n = 0; n < B * T; n++)
        for (int c = 0; c < C; c++)
            out[n * C + c] = wte[inp[n] * C + c] + wpe[(n % T) * C + c];
}

typedef struct {
    int B, T, C, *inp;
    double *wte, *wpe, *g, *out;
} enc_problem;

static double enc_loss(void *p)
{
    enc_problem *e = p;
    ref_encoder(e->out, e->inp, e->wte, e->wpe, e->B, e->T, e->C);
    return dot(e->out, e->g, (size_t)e->B * e->T * e->C);
}

Test(kernels, encoder_forward_backward)
{
    test_rng_seed(&rng_state, 1);
    int B = 3, T = 5, C = 70, V = 4; /* V < B*T: tokens repeat, so dwte rows accumulate */
    size_t N = (size_t)B * T;
    int inp[15];
    for (size_t n = 0; n < N; n++)
        inp[n] = (int)(test_rng_uniform(&rng_state) * V);
    float *wte = rand_floats((size_t)V * C, 1), *wpe = rand_floats((size_t)T * C, 1);
    float *out = rand_floats(N * C, 1), *dout = rand_floats(N * C, 1);
    kern_cpu.encoder_forward(NULL, out, inp, wte, wpe, B, T, C);
    enc_problem e = {B,
                     T,
                     C,
                     inp,
                     to_double(wte, (size_t)V * C),
                     to_double(wpe, (size_t)T * C),
                     to_double(dout, N * C),
                     t_calloc(N * C, sizeof(double))};
    enc_loss(&e);
    expect_close_f("encoder out", out, e.out, N * C, FWD_TOL);

    float *dwte = rand_floats((size_t)V * C, 1), *dwpe = rand_floats((size_t)T * C, 1);
    float *dwte0 = copy_floats(dwte, (size_t)V * C), *dwpe0 = copy_floats(dwpe, (size_t)T * C);
    kern_cpu.encoder_backward(NULL, dwte, dwpe, dout, inp, B, T, C);
    double *fd_wte = t_malloc((size_t)V * C * sizeof(double)),
           *fd_wpe = t_malloc((size_t)T * C * 8);
    fd_gradient(enc_loss, &e, e.wte, (size_t)V * C, fd_wte);
    fd_gradient(enc_loss, &e, e.wpe, (size_t)T * C, fd_wpe);
    double *got_wte = added(dwte, dwte0, (size_t)V * C),
           *got_wpe = added(dwpe, dwpe0, (size_t)T * C);
    expect_close_d("dwte (accumulated)", got_wte, fd_wte, (size_t)V * C, FD_TOL);
    expect_close_d("dwpe (accumulated)", got_wpe, fd_wpe, (size_t)T * C, FD_TOL);
}

/* ==== LayerNorm ============================================================================ */

static void ref_layernorm(double *out, double *mean, double *rstd, const double *x, const double *w,
                          const double *b, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const double *r = x + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++)
            m += r[c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (r[c] - m) * (r[c] - m);
        double s = 1.0 / sqrt(v / C + 1e-5);
        for (int c = 0; c < C; c++)
            out[(size_t)n * C + c] = (r[c] - m) * s * w[c] + b[c];
        if (mean)
            mean[n] = m, rstd[n] = s;
    }
}

typedef struct {
    int N, C;
    double *x, *w, *b, *g, *out;
} ln_problem;

static double ln_loss(void *p)
{
    ln_problem *l = p;
    ref_layernorm(l->out, NULL, NULL, l->x, l->w, l->b, l->N, l->C);
    return dot(l->out, l->g, (size_t)l->N * l->C);
}

Test(kernels, layernorm_forward)
{
    test_rng_seed(&rng_state, 2);
    int N = 37, C = 100;
    float *x = rand_floats((size_t)N * C, 3), *w = rand_floats(C, 1), *b = rand_floats(C, 1);
    for (int c = 0; c < C; c++) /* a large offset: the variance must not cancel badly */
        x[c] += 50.0f;
    float *out = rand_floats((size_t)N * C, 1), mean[37], rstd[37];
    kern_cpu.layernorm_forward(NULL, out, mean, rstd, x, w, b, N, C);
    double *rout = t_malloc((size_t)N * C * 8), rmean[37], rrstd[37];
    ref_layernorm(rout, rmean, rrstd, to_double(x, (size_t)N * C), to_double(w, C), to_double(b, C),
                  N, C);
    expect_close_f("layernorm out", out, rout, (size_t)N * C, 1e-5);
    expect_close_f("layernorm mean", mean, rmean, N, 1e-6);
    expect_close_f("layernorm rstd", rstd, rrstd, N, 1e-5);
}

Test(kernels, layernorm_backward)
{
    test_rng_seed(&rng_state, 3);
    int N = 6, C = 72; /* C > the column block: two blocks, one partial */
    size_t NC = (size_t)N * C;
    float *x = rand_floats(NC, 2), *w = rand_floats(C, 1), *b = rand_floats(C, 1);
    float *out = t_malloc(NC * 4), mean[6], rstd[6], *dout = rand_floats(NC, 1);
    kern_cpu.layernorm_forward(NULL, out, mean, rstd, x, w, b, N, C);
    float *dx = rand_floats(NC, 1), *dw = rand_floats(C, 1), *db = rand_floats(C, 1);
    float *dx0 = copy_floats(dx, NC), *dw0 = copy_floats(dw, C), *db0 = copy_floats(db, C);
    kern_cpu.layernorm_backward(NULL, dx, dw, db, dout, x, w, mean, rstd, N, C);

    ln_problem l = {N,
                    C,
                    to_double(x, NC),
                    to_double(w, C),
                    to_double(b, C),
                    to_double(dout, NC),
                    t_malloc(NC * 8)};
    double *fx = t_malloc(NC * 8), *fw = t_malloc(C * 8), *fb = t_malloc(C * 8);
    fd_gradient(ln_loss, &l, l.x, NC, fx);
    fd_gradient(ln_loss, &l, l.w, C, fw);
    fd_gradient(ln_loss, &l, l.b, C, fb);
    expect_close_d("layernorm dinp", added(dx, dx0, NC), fx, NC, FD_TOL);
    expect_close_d("layernorm dweight", added(dw, dw0, C), fw, C, FD_TOL);
    expect_close_d("layernorm dbias", added(db, db0, C), fb, C, FD_TOL);
}

/* ==== Matmul =============================================================================== */

static void ref_matmul(double *out, const double *x, const double *w, const double *bias, int N,
                       int C, int OC)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += x[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = s;
        }
}

typedef struct {
    int N, C, OC;
    double *x, *w, *b, *g, *out;
} mm_problem;

static double mm_loss(void *p)
{
    mm_problem *m = p;
    ref_matmul(m->out, m->x, m->w, m->b, m->N, m->C, m->OC);
    return dot(m->out, m->g, (size_t)m->N * m->OC);
}

Test(kernels, matmul_forward)
{
    test_rng_seed(&rng_state, 4);
    for (int trial = 0; trial < 6; trial++) {
        int N = 1 + (int)(test_rng_uniform(&rng_state) * 40), C = 1 + (int)(test_rng_uniform(&rng_state) * 70);
        int OC = 1 + (int)(test_rng_uniform(&rng_state) * 90);
        int with_bias = trial % 2;
        float *x = rand_floats((size_t)N * C, 1), *w = rand_floats((size_t)OC * C, 1);
        float *b = rand_floats(OC, 1), *out = rand_floats((size_t)N * OC, 9);
        kern_cpu.matmul_forward(NULL, out, x, w, with_bias ? b : NULL, N, C, OC);
        double *ref = t_malloc((size_t)N * OC * 8);
        ref_matmul(ref, to_double(x, (size_t)N * C), to_double(w, (size_t)OC * C),
                   with_bias ? to_double(b, OC) : NULL, N, C, OC);
        expect_close_f(with_bias ? "matmul out (bias)" : "matmul out (no bias)", out, ref,
                       (size_t)N * OC, FWD_TOL);
    }
}

Test(kernels, matmul_backward)
{
    test_rng_seed(&rng_state, 5);
    int N = 9, C = 11, OC = 70;
    size_t NC = (size_t)N * C, OCC = (size_t)OC * C, NO = (size_t)N * OC;
    float *x = rand_floats(NC, 1), *w = rand_floats(OCC, 1), *b = rand_floats(OC, 1);
    float *dout = rand_floats(NO, 1);
    float *dx = rand_floats(NC, 1), *dw = rand_floats(OCC, 1), *db = rand_floats(OC, 1);
    float *dx0 = copy_floats(dx, NC), *dw0 = copy_floats(dw, OCC), *db0 = copy_floats(db, OC);
    kern_cpu.matmul_backward(NULL, dx, dw, db, dout, x, w, N, C, OC);

    mm_problem m = {N,
                    C,
                    OC,
                    to_double(x, NC),
                    to_double(w, OCC),
                    to_double(b, OC),
                    to_double(dout, NO),
                    t_malloc(NO * 8)};
    double *fx = t_malloc(NC * 8), *fw = t_malloc(OCC * 8), *fb = t_malloc(OC * 8);
    fd_gradient(mm_loss, &m, m.x, NC, fx);
    fd_gradient(mm_loss, &m, m.w, OCC, fw);
    fd_gradient(mm_loss, &m, m.b, OC, fb);
    expect_close_d("matmul dinp", added(dx, dx0, NC), fx, NC, FD_TOL);
    expect_close_d("matmul dweight", added(dw, dw0, OCC), fw, OCC, FD_TOL);
    expect_close_d("matmul dbias", added(db, db0, OC), fb, OC, FD_TOL);

    /* NULL dinp and dbias: only dweight changes, by the same amount again. */
    float *dw1 = copy_floats(dw, OCC);
    kern_cpu.matmul_backward(NULL, NULL, dw, NULL, dout, x, w, N, C, OC);
    expect_close_d("matmul dweight (dinp, dbias NULL)", added(dw, dw1, OCC), fw, OCC, FD_TOL);
}

/* Shapes large enough that the GEMMs are split across threads, by rows and by columns. */
Test(kernels, matmul_threaded_splits)
{
    test_rng_seed(&rng_state, 13);
    int shapes[2][3] = {{300, 64, 100}, {100, 64, 300}}; /* N, C, OC */
    for (int s = 0; s < 2; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        size_t NC = (size_t)N * C, OCC = (size_t)OC * C, NO = (size_t)N * OC;
        float *x = rand_floats(NC, 1), *w = rand_floats(OCC, 1), *b = rand_floats(OC, 1);
        float *out = t_malloc(NO * 4), *dout = rand_floats(NO, 1);
        float *dx = rand_floats(NC, 1), *dw = rand_floats(OCC, 1);
        float *dx0 = copy_floats(dx, NC), *dw0 = copy_floats(dw, OCC);
        kern_cpu.matmul_forward(NULL, out, x, w, b, N, C, OC);
        kern_cpu.matmul_backward(NULL, dx, dw, NULL, dout, x, w, N, C, OC);
        double *xd = to_double(x, NC), *wd = to_double(w, OCC), *gd = to_double(dout, NO);
        double *ref = t_malloc(NO * 8), *rdx = t_calloc(NC, 8), *rdw = t_calloc(OCC, 8);
        ref_matmul(ref, xd, wd, to_double(b, OC), N, C, OC);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++)
                for (int c = 0; c < C; c++) {
                    rdx[(size_t)n * C + c] += gd[(size_t)n * OC + o] * wd[(size_t)o * C + c];
                    rdw[(size_t)o * C + c] += gd[(size_t)n * OC + o] * xd[(size_t)n * C + c];
                }
        expect_close_f("matmul out (split)", out, ref, NO, FWD_TOL);
        expect_close_d("matmul dinp (split)", added(dx, dx0, NC), rdx, NC, FWD_TOL);
        expect_close_d("matmul dweight (split)", added(dw, dw0, OCC), rdw, OCC, FWD_TOL);
    }
}

/* ==== Attention ============================================================================ */

static void ref_attention(double *out, double *att, const double *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    double *row = malloc((size_t)T * sizeof *row);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j <= t; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    double s = 0.0;
                    for (int i = 0; i < hs; i++)
                        s += q[i] * k[i];
                    row[j] = s * scale;
                    mx = fmax(mx, row[j]);
                }
                for (int j = 0; j <= t; j++)
                    sum += row[j] = exp(row[j] - mx);
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++)
                    o[i] = 0.0;
                for (int j = 0; j < T; j++) {
                    double p = j <= t ? row[j] / sum : 0.0;
                    if (att)
                        att[(((size_t)b * NH + h) * T + t) * T + j] = p;
                    const double *v = qkv + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs && j <= t; i++)
                        o[i] += p * v[i];
                }
            }
    free(row);
}

typedef struct {
    int B, T, C, NH;
    double *qkv, *g, *out;
} att_problem;

static double att_loss(void *p)
{
    att_problem *a = p;
    ref_attention(a->out, NULL, a->qkv, a->B, a->T, a->C, a->NH);
    return dot(a->out, a->g, (size_t)a->B * a->T * a->C);
}

static void check_attention(int B, int T, int C, int NH, uint64_t seed)
{
    test_rng_seed(&rng_state, seed);
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    float *qkv = rand_floats(nqkv, 2), *out = rand_floats(nout, 1), *att = rand_floats(natt, 1);
    float *dout = rand_floats(nout, 1), *dqkv = rand_floats(nqkv, 1);
    float *dqkv0 = copy_floats(dqkv, nqkv);
    size_t sb = kern_cpu.attention_scratch_bytes(B, T, C, NH);
    void *scratch = t_malloc(sb ? sb : 1);
    kern_cpu.attention_forward(NULL, out, att, qkv, scratch, B, T, C, NH);
    kern_cpu.attention_backward(NULL, dqkv, dout, qkv, att, scratch, B, T, C, NH);

    att_problem a = {B, T, C, NH, to_double(qkv, nqkv), to_double(dout, nout), t_malloc(nout * 8)};
    double *ratt = t_malloc(natt * 8);
    ref_attention(a.out, ratt, a.qkv, B, T, C, NH);
    expect_close_f("attention out", out, a.out, nout, FWD_TOL);
    expect_close_f("attention att", att, ratt, natt, FWD_TOL);
    for (int bh = 0; bh < B * NH; bh++)
        for (int t = 0; t < T; t++)
            for (int j = t + 1; j < T; j++)
                cr_expect(att[((size_t)bh * T + t) * T + j] == 0.0f,
                          "att above the diagonal not 0");
    double *fd = t_malloc(nqkv * 8);
    fd_gradient(att_loss, &a, a.qkv, nqkv, fd);
    expect_close_d("attention dqkv (accumulated)", added(dqkv, dqkv0, nqkv), fd, nqkv, FD_TOL);
}

Test(kernels, attention_tiny)
{
    check_attention(2, 3, 8, 2, 6);
}

/* T = 67 crosses the 64-row block of the CPU kernel. */
Test(kernels, attention_blocks, .timeout = 60)
{
    check_attention(1, 67, 8, 2, 7);
}

Test(kernels, attention_is_deterministic)
{
    test_rng_seed(&rng_state, 8);
    int B = 2, T = 130, C = 32, NH = 4;
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    float *qkv = rand_floats(nqkv, 2), *dout = rand_floats(nout, 1);
    float *out[2], *att[2], *dqkv[2];
    void *scratch = t_malloc(kern_cpu.attention_scratch_bytes(B, T, C, NH));
    for (int r = 0; r < 2; r++) {
        out[r] = t_malloc(nout * 4), att[r] = t_malloc(natt * 4), dqkv[r] = t_calloc(nqkv, 4);
        kern_cpu.attention_forward(NULL, out[r], att[r], qkv, scratch, B, T, C, NH);
        kern_cpu.attention_backward(NULL, dqkv[r], dout, qkv, att[r], scratch, B, T, C, NH);
    }
    cr_expect(memcmp(out[0], out[1], nout * 4) == 0, "attention out differs between runs");
    cr_expect(memcmp(att[0], att[1], natt * 4) == 0, "att differs between runs");
    cr_expect(memcmp(dqkv[0], dqkv[1], nqkv * 4) == 0, "dqkv differs between runs");
}

/* ==== GELU, residual, accumulate =========================================================== */

static double ref_gelu(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

Test(kernels, gelu_forward_backward)
{
    test_rng_seed(&rng_state, 9);
    size_t n = 1001;
    float *x = rand_floats(n, 6), *out = t_malloc(n * 4), *dout = rand_floats(n, 1);
    x[0] = 0.0f, x[1] = -30.0f, x[2] = 30.0f; /* saturation and zero */
    kern_cpu.gelu_forward(NULL, out, x, n);
    double *ref = t_malloc(n * 8), *fd = t_malloc(n * 8);
    for (size_t i = 0; i < n; i++) {
        double xd = x[i], h = 1e-6;
        ref[i] = ref_gelu(xd);
        fd[i] = (ref_gelu(xd + h) - ref_gelu(xd - h)) / (2 * h) * dout[i];
    }
    expect_close_f("gelu out", out, ref, n, FWD_TOL);
    float *dx = rand_floats(n, 1), *dx0 = copy_floats(dx, n);
    kern_cpu.gelu_backward(NULL, dx, x, dout, n);
    expect_close_d("gelu dinp (accumulated)", added(dx, dx0, n), fd, n, FD_TOL);
}

Test(kernels, residual_and_accumulate)
{
    test_rng_seed(&rng_state, 10);
    size_t n = 777;
    float *a = rand_floats(n, 1), *b = rand_floats(n, 1), *out = t_malloc(n * 4);
    kern_cpu.residual_forward(NULL, out, a, b, n);
    for (size_t i = 0; i < n; i++)
        cr_expect(out[i] == a[i] + b[i]);
    float *a0 = copy_floats(a, n);
    kern_cpu.residual_forward(NULL, a, a, b, n); /* out aliasing a */
    for (size_t i = 0; i < n; i++)
        cr_expect(a[i] == a0[i] + b[i]);
    float *d = copy_floats(b, n);
    kern_cpu.accumulate(NULL, d, a0, n);
    for (size_t i = 0; i < n; i++)
        cr_expect(d[i] == b[i] + a0[i]);
}

/* ==== Softmax + cross-entropy ============================================================== */

typedef struct {
    int N, V, Vp, *targets;
    double *logits, dscale;
} xent_problem;

static void ref_xent(double *losses, const xent_problem *x)
{
    for (int n = 0; n < x->N; n++) {
        const double *r = x->logits + (size_t)n * x->Vp;
        double mx = -INFINITY, s = 0.0;
        for (int i = 0; i < x->V; i++)
            mx = fmax(mx, r[i]);
        for (int i = 0; i < x->V; i++)
            s += exp(r[i] - mx);
        losses[n] = log(s) + mx - r[x->targets[n]];
    }
}

static double xent_loss(void *p)
{
    xent_problem *x = p;
    double losses[16], total = 0.0;
    ref_xent(losses, x);
    for (int n = 0; n < x->N; n++)
        total += losses[n];
    return total * x->dscale;
}

Test(kernels, softmax_xent_padded_and_aliased)
{
    test_rng_seed(&rng_state, 11);
    int N = 5, V = 37, Vp = 64, targets[5] = {0, 36, 5, 17, 36};
    size_t n = (size_t)N * Vp;
    float *logits = rand_floats(n, 8), *dlogits = rand_floats(n, 1), losses[5], losses2[5];
    for (int r = 0; r < N; r++) /* garbage in the padding must be ignored */
        for (int i = V; i < Vp; i++)
            logits[(size_t)r * Vp + i] = 1e30f;
    float dscale = 1.0f / N;
    kern_cpu.softmax_xent(NULL, losses, dlogits, logits, targets, dscale, N, V, Vp);

    xent_problem x = {N, V, Vp, targets, to_double(logits, n), dscale};
    double rl[5], *fd = t_malloc(n * 8);
    ref_xent(rl, &x);
    expect_close_f("xent losses", losses, rl, N, FWD_TOL);
    fd_gradient(xent_loss, &x, x.logits, n, fd);
    for (int r = 0; r < N; r++)
        for (int i = V; i < Vp; i++)
            fd[(size_t)r * Vp + i] = 0.0; /* FD of the ignored padding is 0 already; be explicit */
    expect_close_f("xent dlogits", dlogits, fd, n, FD_TOL);

    kern_cpu.softmax_xent(NULL, losses2, NULL, logits, targets, dscale, N, V, Vp);
    cr_expect(memcmp(losses, losses2, sizeof losses) == 0, "losses differ without dlogits");

    float *alias = copy_floats(logits, n);
    kern_cpu.softmax_xent(NULL, losses2, alias, alias, targets, dscale, N, V, Vp);
    cr_expect(memcmp(losses, losses2, sizeof losses) == 0, "losses differ with dlogits == logits");
    cr_expect(memcmp(alias, dlogits, n * 4) == 0, "dlogits differ when aliasing logits");
}

/* ==== AdamW ================================================================================ */

Test(kernels, adamw_matches_torch_formula)
{
    test_rng_seed(&rng_state, 12);
    size_t n = 513;
    float *p = rand_floats(n, 1), *m = t_calloc(n, 4), *v = t_calloc(n, 4);
    double *rp = to_double(p, n), *rm = t_calloc(n, 8), *rv = t_calloc(n, 8);
    double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    for (int t = 1; t <= 6; t++) {
        float *g = rand_floats(n, t == 3 ? 1e-6 : 1); /* tiny grads: eps matters */
        kern_cpu.adamw(NULL, p, g, m, v, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
                       t);
        double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
        for (size_t i = 0; i < n; i++) { /* torch.optim.AdamW, single-tensor path */
            rp[i] *= 1.0 - lr * wd;
            rm[i] = b1 * rm[i] + (1.0 - b1) * g[i];
            rv[i] = b2 * rv[i] + (1.0 - b2) * (double)g[i] * g[i];
            double denom = sqrt(rv[i]) / sqrt(bc2) + eps;
            rp[i] -= lr / bc1 * rm[i] / denom;
        }
    }
    expect_close_f("adamw params", p, rp, n, 1e-5);
    expect_close_f("adamw m", m, rm, n, 1e-5);
    expect_close_f("adamw v", v, rv, n, 1e-5);
}

/* ==== Memory helpers and opening ============================================================ */

Test(kernels, zero_and_copy)
{
    float a[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, b[9];
    kern_cpu.copy(NULL, b, a, sizeof a);
    cr_expect(memcmp(a, b, sizeof a) == 0);
    kern_cpu.zero(NULL, b + 2, 3 * sizeof(float));
    cr_expect(b[1] == 2 && b[2] == 0 && b[4] == 0 && b[5] == 6);
    cr_expect(kern_cpu.status(NULL) == REMAT_OK);
}

/* Large enough to be split across threads; overlapping copies must behave like memmove. */
Test(kernels, zero_and_copy_large)
{
    size_t n = (3u << 20) + 123; /* floats: a ragged 12 MiB */
    float *a = rand_floats(n, 1), *b = t_malloc(n * 4);
    kern_cpu.copy(NULL, b, a, n * 4);
    cr_expect(memcmp(a, b, n * 4) == 0, "large copy differs");
    kern_cpu.copy(NULL, b + 1000, b, (n - 1000) * 4); /* overlapping, forward */
    cr_expect(memcmp(b + 1000, a, (n - 1000) * 4) == 0, "overlapping copy differs from memmove");
    kern_cpu.zero(NULL, b + 7, (n - 9) * 4);
    size_t bad = 0;
    for (size_t i = 7; i < n - 2; i++)
        bad += b[i] != 0.0f;
    cr_expect(bad == 0, "%zu floats not zeroed", bad);
    cr_expect(b[n - 2] == a[n - 2 - 1000] && b[n - 1] == a[n - 1 - 1000], "zeroed past the end");
}

Test(kernels, open_host_and_sim)
{
    remat_device *host = NULL, *sim = NULL;
    cr_assert_eq(remat_device_open("host", &host), REMAT_OK, "%s", remat_last_error());
    const kern_table *t = NULL;
    kern_ctx *k = NULL;
    cr_assert_eq(kern_open(host, &t, &k), REMAT_OK, "%s", remat_last_error());
    cr_expect_str_eq(t->name, "cpu");
    cr_expect_null(kern_stream(k));
    cr_expect_eq(t->status(k), REMAT_OK);
    kern_close(k);

    cr_assert_eq(remat_device_open("sim:1GiB", &sim), REMAT_OK, "%s", remat_last_error());
    t = NULL, k = NULL;
    cr_expect_eq(kern_open(sim, &t, &k), REMAT_EUNSUPPORTED);
    cr_expect(strstr(remat_last_error(), "sim") != NULL, "message: %s", remat_last_error());
    cr_expect_null(k);
    cr_expect_eq(kern_open(NULL, &t, &k), REMAT_EINVAL);
    remat_device_close(host);
    remat_device_close(sim);
}

/* ==== bf16 kernels ========================================================================= */
/* Inputs are bf16 values, so the float64 reference sees exactly what the kernel sees; the kernel
 * computes in float32 and rounds its output once, so outputs are within a few bf16 ulps (2^-8
 * relative) of the reference. Gradients accumulate into pre-filled bf16 buffers. */

#define BF16_TOL 1e-2    /* bf16 output vs float64 reference (max error / max magnitude) */
#define BF16_FD_TOL 2e-2 /* bf16 gradient vs float64 finite differences */

static const kern_bf16_table *bt(void)
{
    if (!bf16_kc) {
        const kern_table *t = NULL;
        cr_assert_eq(remat_device_open("host", &bf16_dev), REMAT_OK);
        cr_assert_eq(kern_open(bf16_dev, &t, &bf16_kc), REMAT_OK, "%s", remat_last_error());
        cr_assert_not_null(t->bf16, "the CPU table has no bf16 kernels");
    }
    return kern_cpu.bf16;
}

static kern_bf16 *rand_bf16(size_t n, double scale)
{
    kern_bf16 *x = t_malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = kern_f32_to_bf16((float)((2.0 * test_rng_uniform(&rng_state) - 1.0) * scale));
    return x;
}

static kern_bf16 *copy_bf16(const kern_bf16 *x, size_t n)
{
    kern_bf16 *c = t_malloc((n ? n : 1) * sizeof *c);
    memcpy(c, x, n * sizeof *c);
    return c;
}

static double *bf_double(const kern_bf16 *x, size_t n)
{
    double *d = t_malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = kern_bf16_to_f32(x[i]);
    return d;
}

static double *bf_added(const kern_bf16 *got, const kern_bf16 *before, size_t n)
{
    double *d = t_malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = (double)kern_bf16_to_f32(got[i]) - kern_bf16_to_f32(before[i]);
    return d;
}

static void expect_close_bf(const char *what, const kern_bf16 *got, const double *ref, size_t n,
                            double tol)
{
    expect_close_d(what, bf_double(got, n), ref, n, tol);
}

Test(kernels, bf16_rounding)
{
    /* Round to nearest even on the 16 dropped bits, as torch's .to(torch.bfloat16). */
    uint32_t in[] = {0x3f800000u, 0x3f808000u, 0x3f818000u, 0x3f808001u, 0xbf80c000u,
                     0x7f7fffffu, 0x7f800000u, 0x00000001u, 0x80000000u};
    uint16_t want[] = {0x3f80, 0x3f80, 0x3f82, 0x3f81, 0xbf81, 0x7f80, 0x7f80, 0x0000, 0x8000};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        cr_expect_eq(kern_f32_to_bf16(kern_bits_f32(in[i])), want[i],
                     "0x%08x -> 0x%04x, want 0x%04x", in[i], kern_f32_to_bf16(kern_bits_f32(in[i])),
                     want[i]);
    kern_bf16 nan = kern_f32_to_bf16(NAN);
    cr_expect(isnan(kern_bf16_to_f32(nan)), "NaN must stay NaN (got 0x%04x)", nan);
    cr_expect(isnan(kern_bf16_to_f32(kern_f32_to_bf16(kern_bits_f32(0x7f800001u)))),
              "a NaN whose payload is in the dropped bits must not become infinity");
    for (uint32_t h = 0; h < 0x10000; h += 7) /* every bf16 converts exactly both ways */
        if (((h >> 7) & 0xff) != 0xff)
            cr_assert_eq(kern_f32_to_bf16(kern_bf16_to_f32((kern_bf16)h)), h);
}

Test(kernels, bf16_stochastic_rounding)
{
    /* x = 1 + 0.3 ulp: the mean of many stochastic roundings is x, each is one of the two
     * neighbours, and the draw is a pure function of (seed, index). */
    float lo = 1.0f, ulp = 1.0f / 128, x = lo + 0.3f * ulp;
    double sum = 0;
    int n = 200000, up = 0;
    for (int i = 0; i < n; i++) {
        float r = kern_bf16_to_f32(kern_f32_to_bf16_sr(x, kern_sr_bits(42, (uint64_t)i)));
        cr_assert(r == lo || r == lo + ulp, "%g is not a neighbour of %g", r, x);
        up += r != lo;
        sum += r;
    }
    cr_expect(fabs(sum / n - x) < 3e-5, "mean %.8f, want %.8f", sum / n, x);
    cr_expect(fabs((double)up / n - 0.3) < 0.01, "rounded up %.4f of the time, want 0.3",
              (double)up / n);
    cr_expect_eq(kern_sr_bits(7, 3), kern_sr_bits(7, 3));
    cr_expect_neq(kern_sr_bits(7, 3), kern_sr_bits(8, 3));
    cr_expect_eq(kern_f32_to_bf16_sr(INFINITY, 0xffff), 0x7f80);
}

Test(kernels, bf16_encoder)
{
    test_rng_seed(&rng_state, 21);
    int B = 4, T = 50, C = 70, V = 3; /* every token repeats ~67 times: one rounding per row */
    size_t N = (size_t)B * T;
    int *inp = t_malloc(N * sizeof *inp);
    for (size_t n = 0; n < N; n++)
        inp[n] = (int)(test_rng_uniform(&rng_state) * V);
    kern_bf16 *wte = rand_bf16((size_t)V * C, 1), *wpe = rand_bf16((size_t)T * C, 1);
    kern_bf16 *out = rand_bf16(N * C, 1), *dout = rand_bf16(N * C, 1);
    bt()->encoder_forward(bf16_kc, out, inp, wte, wpe, B, T, C);
    double *ref = t_malloc(N * C * 8);
    ref_encoder(ref, inp, bf_double(wte, (size_t)V * C), bf_double(wpe, (size_t)T * C), B, T, C);
    expect_close_bf("bf16 encoder out", out, ref, N * C, BF16_TOL);

    kern_bf16 *dwte = rand_bf16((size_t)V * C, 1), *dwpe = rand_bf16((size_t)T * C, 1);
    kern_bf16 *dwte0 = copy_bf16(dwte, (size_t)V * C), *dwpe0 = copy_bf16(dwpe, (size_t)T * C);
    bt()->encoder_backward(bf16_kc, dwte, dwpe, dout, inp, B, T, C);
    cr_assert_eq(kern_cpu.status(bf16_kc), REMAT_OK);
    double *rwte = t_calloc((size_t)V * C, 8), *rwpe = t_calloc((size_t)T * C, 8);
    double *d = bf_double(dout, N * C);
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            rwte[(size_t)inp[n] * C + c] += d[n * C + c];
            rwpe[(n % T) * C + c] += d[n * C + c];
        }
    expect_close_d("bf16 dwte (accumulated)", bf_added(dwte, dwte0, (size_t)V * C), rwte,
                   (size_t)V * C, BF16_TOL);
    expect_close_d("bf16 dwpe (accumulated)", bf_added(dwpe, dwpe0, (size_t)T * C), rwpe,
                   (size_t)T * C, BF16_TOL);
}

Test(kernels, bf16_layernorm)
{
    test_rng_seed(&rng_state, 22);
    int N = 6, C = 72;
    size_t NC = (size_t)N * C;
    kern_bf16 *x = rand_bf16(NC, 2), *w = rand_bf16(C, 1), *b = rand_bf16(C, 1);
    for (int c = 0; c < C; c++) /* an offset: the statistics are float32 two-pass */
        x[c] = kern_f32_to_bf16(kern_bf16_to_f32(x[c]) + 20.0f);
    kern_bf16 *out = t_malloc(NC * 2), *dout = rand_bf16(NC, 1);
    float mean[6], rstd[6];
    bt()->layernorm_forward(bf16_kc, out, mean, rstd, x, w, b, N, C);
    ln_problem l = {N,
                    C,
                    bf_double(x, NC),
                    bf_double(w, C),
                    bf_double(b, C),
                    bf_double(dout, NC),
                    t_malloc(NC * 8)};
    double *rout = t_malloc(NC * 8), rmean[6], rrstd[6];
    ref_layernorm(rout, rmean, rrstd, l.x, l.w, l.b, N, C);
    expect_close_bf("bf16 layernorm out", out, rout, NC, BF16_TOL);
    expect_close_f("bf16 layernorm mean (fp32)", mean, rmean, N, 1e-6);
    expect_close_f("bf16 layernorm rstd (fp32)", rstd, rrstd, N, 1e-5);

    kern_bf16 *dx = rand_bf16(NC, 1), *dw = rand_bf16(C, 1), *db = rand_bf16(C, 1);
    kern_bf16 *dx0 = copy_bf16(dx, NC), *dw0 = copy_bf16(dw, C), *db0 = copy_bf16(db, C);
    bt()->layernorm_backward(bf16_kc, dx, dw, db, dout, x, w, mean, rstd, N, C);
    double *fx = t_malloc(NC * 8), *fw = t_malloc(C * 8), *fb = t_malloc(C * 8);
    fd_gradient(ln_loss, &l, l.x, NC, fx);
    fd_gradient(ln_loss, &l, l.w, C, fw);
    fd_gradient(ln_loss, &l, l.b, C, fb);
    expect_close_d("bf16 layernorm dinp", bf_added(dx, dx0, NC), fx, NC, BF16_FD_TOL);
    expect_close_d("bf16 layernorm dweight", bf_added(dw, dw0, C), fw, C, BF16_FD_TOL);
    expect_close_d("bf16 layernorm dbias", bf_added(db, db0, C), fb, C, BF16_FD_TOL);
}

/* Shapes that cross every tile edge of the CPU bf16 GEMM (64 rows, 128 columns, 256 deep) and
 * are large enough to be split across threads. */
Test(kernels, bf16_matmul)
{
    test_rng_seed(&rng_state, 23);
    int shapes[3][3] = {{70, 300, 150}, {5, 7, 3}, {130, 64, 260}}; /* N, C, OC */
    for (int s = 0; s < 3; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        size_t NC = (size_t)N * C, OCC = (size_t)OC * C, NO = (size_t)N * OC;
        kern_bf16 *x = rand_bf16(NC, 1), *w = rand_bf16(OCC, 1), *b = rand_bf16(OC, 1);
        kern_bf16 *out = t_malloc(NO * 2), *dout = rand_bf16(NO, 1);
        kern_bf16 *dx = rand_bf16(NC, 1), *dw = rand_bf16(OCC, 1), *db = rand_bf16(OC, 1);
        kern_bf16 *dx0 = copy_bf16(dx, NC), *dw0 = copy_bf16(dw, OCC), *db0 = copy_bf16(db, OC);
        bt()->matmul_forward(bf16_kc, out, x, w, s == 1 ? NULL : b, N, C, OC);
        bt()->matmul_backward(bf16_kc, dx, dw, db, dout, x, w, N, C, OC);
        cr_assert_eq(kern_cpu.status(bf16_kc), REMAT_OK, "%s", remat_last_error());
        double *xd = bf_double(x, NC), *wd = bf_double(w, OCC), *gd = bf_double(dout, NO);
        double *ref = t_malloc(NO * 8), *rdx = t_calloc(NC, 8), *rdw = t_calloc(OCC, 8);
        double *rdb = t_calloc(OC, 8);
        ref_matmul(ref, xd, wd, s == 1 ? NULL : bf_double(b, OC), N, C, OC);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                rdb[o] += gd[(size_t)n * OC + o];
                for (int c = 0; c < C; c++) {
                    rdx[(size_t)n * C + c] += gd[(size_t)n * OC + o] * wd[(size_t)o * C + c];
                    rdw[(size_t)o * C + c] += gd[(size_t)n * OC + o] * xd[(size_t)n * C + c];
                }
            }
        expect_close_bf("bf16 matmul out", out, ref, NO, BF16_TOL);
        expect_close_d("bf16 matmul dinp", bf_added(dx, dx0, NC), rdx, NC, BF16_TOL);
        expect_close_d("bf16 matmul dweight", bf_added(dw, dw0, OCC), rdw, OCC, BF16_TOL);
        expect_close_d("bf16 matmul dbias", bf_added(db, db0, OC), rdb, OC, BF16_TOL);
    }
}

Test(kernels, bf16_attention, .timeout = 60)
{
    test_rng_seed(&rng_state, 24);
    int B = 1, T = 67, C = 8, NH = 2; /* T crosses the 64-row block */
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    kern_bf16 *qkv = rand_bf16(nqkv, 2), *out = t_malloc(nout * 2), *att = t_malloc(natt * 2);
    kern_bf16 *dout = rand_bf16(nout, 1), *dqkv = rand_bf16(nqkv, 1);
    kern_bf16 *dqkv0 = copy_bf16(dqkv, nqkv);
    void *scratch = t_malloc(bt()->attention_scratch_bytes(B, T, C, NH));
    bt()->attention_forward(bf16_kc, out, att, qkv, scratch, B, T, C, NH);
    bt()->attention_backward(bf16_kc, dqkv, dout, qkv, att, scratch, B, T, C, NH);
    att_problem a = {B, T, C, NH, bf_double(qkv, nqkv), bf_double(dout, nout), t_malloc(nout * 8)};
    double *ratt = t_malloc(natt * 8);
    ref_attention(a.out, ratt, a.qkv, B, T, C, NH);
    expect_close_bf("bf16 attention out", out, a.out, nout, BF16_TOL);
    expect_close_bf("bf16 attention att", att, ratt, natt, BF16_TOL);
    double *fd = t_malloc(nqkv * 8);
    fd_gradient(att_loss, &a, a.qkv, nqkv, fd);
    expect_close_d("bf16 attention dqkv (accumulated)", bf_added(dqkv, dqkv0, nqkv), fd, nqkv,
                   BF16_FD_TOL);
    /* A recomputation (what a checkpointed backward does) reproduces the saved bits. */
    kern_bf16 *out2 = t_malloc(nout * 2), *att2 = t_malloc(natt * 2);
    bt()->attention_forward(bf16_kc, out2, att2, qkv, scratch, B, T, C, NH);
    cr_expect(memcmp(out, out2, nout * 2) == 0 && memcmp(att, att2, natt * 2) == 0,
              "bf16 attention recomputed differs");
}

Test(kernels, bf16_gelu_residual)
{
    test_rng_seed(&rng_state, 25);
    size_t n = 1001;
    kern_bf16 *x = rand_bf16(n, 6), *out = t_malloc(n * 2), *dout = rand_bf16(n, 1);
    bt()->gelu_forward(bf16_kc, out, x, n);
    double *ref = t_malloc(n * 8), *rd = t_malloc(n * 8);
    for (size_t i = 0; i < n; i++) {
        double xd = kern_bf16_to_f32(x[i]), h = 1e-6;
        ref[i] = ref_gelu(xd);
        rd[i] = (ref_gelu(xd + h) - ref_gelu(xd - h)) / (2 * h) * kern_bf16_to_f32(dout[i]);
    }
    expect_close_bf("bf16 gelu out", out, ref, n, BF16_TOL);
    kern_bf16 *dx = rand_bf16(n, 1), *dx0 = copy_bf16(dx, n);
    bt()->gelu_backward(bf16_kc, dx, x, dout, n);
    expect_close_d("bf16 gelu dinp (accumulated)", bf_added(dx, dx0, n), rd, n, BF16_FD_TOL);

    kern_bf16 *a = rand_bf16(n, 1), *b = rand_bf16(n, 1), *sum = t_malloc(n * 2);
    bt()->residual_forward(bf16_kc, sum, a, b, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(sum[i], kern_f32_to_bf16(kern_bf16_to_f32(a[i]) + kern_bf16_to_f32(b[i])));
    kern_bf16 *acc = copy_bf16(a, n);
    bt()->accumulate(bf16_kc, acc, b, n);
    cr_expect(memcmp(acc, sum, n * 2) == 0, "accumulate differs from the residual add");
}

Test(kernels, bf16_softmax_xent)
{
    test_rng_seed(&rng_state, 26);
    int N = 5, V = 37, Vp = 64, targets[5] = {0, 36, 5, 17, 36};
    size_t n = (size_t)N * Vp;
    kern_bf16 *logits = rand_bf16(n, 8), *dlogits = t_malloc(n * 2);
    for (int r = 0; r < N; r++)
        for (int i = V; i < Vp; i++)
            logits[(size_t)r * Vp + i] = kern_f32_to_bf16(1e30f);
    float losses[5], losses2[5], dscale = 1.0f / N;
    bt()->softmax_xent(bf16_kc, losses, dlogits, logits, targets, dscale, N, V, Vp);
    xent_problem x = {N, V, Vp, targets, bf_double(logits, n), dscale};
    double rl[5], *fd = t_malloc(n * 8);
    ref_xent(rl, &x);
    expect_close_f("bf16 xent losses (fp32 from bf16 logits)", losses, rl, N, 1e-5);
    fd_gradient(xent_loss, &x, x.logits, n, fd);
    for (int r = 0; r < N; r++)
        for (int i = V; i < Vp; i++)
            fd[(size_t)r * Vp + i] = 0.0;
    expect_close_bf("bf16 xent dlogits", dlogits, fd, n, BF16_FD_TOL);
    kern_bf16 *alias = copy_bf16(logits, n);
    bt()->softmax_xent(bf16_kc, losses2, alias, alias, targets, dscale, N, V, Vp);
    cr_expect(memcmp(losses, losses2, sizeof losses) == 0, "losses differ when aliased");
    cr_expect(memcmp(alias, dlogits, n * 2) == 0, "dlogits differ when aliasing logits");
}

Test(kernels, bf16_adamw)
{
    test_rng_seed(&rng_state, 27);
    size_t n = 513;
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    /* Master weights: master, m, v exactly as the float32 kernel; params = nearest bf16. */
    float *master = rand_floats(n, 1), *ref = copy_floats(master, n);
    float *m = t_calloc(n, 4), *v = t_calloc(n, 4), *rm = t_calloc(n, 4), *rv = t_calloc(n, 4);
    kern_bf16 *p = t_malloc(n * 2);
    float *sr_m = t_calloc(n, 4), *sr_v = t_calloc(n, 4), *sr_m2 = t_calloc(n, 4),
          *sr_v2 = t_calloc(n, 4);
    kern_bf16 *sr = rand_bf16(n, 1), *sr2 = copy_bf16(sr, n);
    for (int t = 1; t <= 4; t++) {
        kern_bf16 *g = rand_bf16(n, 1);
        float *gf = t_malloc(n * 4);
        for (size_t i = 0; i < n; i++)
            gf[i] = kern_bf16_to_f32(g[i]);
        bt()->adamw_master(bf16_kc, p, master, g, m, v, n, lr, b1, b2, eps, wd, t);
        kern_cpu.adamw(NULL, ref, gf, rm, rv, n, lr, b1, b2, eps, wd, t);
        bt()->adamw_sr(bf16_kc, sr, g, sr_m, sr_v, n, lr, b1, b2, eps, wd, t, 1000 + t);
        bt()->adamw_sr(bf16_kc, sr2, g, sr_m2, sr_v2, n, lr, b1, b2, eps, wd, t, 1000 + t);
    }
    cr_expect(memcmp(master, ref, n * 4) == 0 && memcmp(m, rm, n * 4) == 0 &&
                  memcmp(v, rv, n * 4) == 0,
              "bf16 AdamW's float32 state differs from the float32 kernel");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(p[i], kern_f32_to_bf16(master[i]), "param %zu is not its master rounded", i);
    cr_expect(memcmp(sr, sr2, n * 2) == 0, "stochastic rounding is not reproducible");
    kern_bf16 *other = copy_bf16(sr, n);
    bt()->adamw_sr(bf16_kc, other, sr, sr_m, sr_v, n, lr, b1, b2, eps, wd, 5, 1);
    bt()->adamw_sr(bf16_kc, sr, sr, sr_m2, sr_v2, n, lr, b1, b2, eps, wd, 5, 2);
    cr_expect(memcmp(sr, other, n * 2) != 0, "different seeds give the same rounding");
}

Test(kernels, bf16_conversions)
{
    test_rng_seed(&rng_state, 28);
    size_t n = 3000;
    float *x = rand_floats(n, 100), *back = t_malloc(n * 4);
    kern_bf16 *h = t_malloc(n * 2);
    bt()->to_bf16(bf16_kc, h, x, n);
    bt()->to_f32(bf16_kc, back, h, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(h[i], kern_f32_to_bf16(x[i]));
        cr_assert_eq(back[i], kern_bf16_to_f32(h[i]));
    }
}
