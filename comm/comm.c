/* comm/comm.c: remat_comm, the collectives of data-parallel training over MPI (host buffers) and
 * NCCL (device buffers, dlopen'ed, its unique id broadcast over MPI), or one rank without either. */
#include "core/core.h"
#include "kernels/math.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef REMAT_HAVE_MPI
#include <mpi.h>
#endif

/* ==== NCCL through dlopen ================================================================== */
/* The few NCCL entry points used, with NCCL's ABI (nccl.h, stable since 2.0): opaque
 * communicator, 128-byte unique id, its data type and reduction enums. Declared here, not
 * included, so a build needs no NCCL and a binary starts without it. */
typedef struct {
    char internal[128];
} nccl_unique_id;
typedef void *nccl_comm_t;
enum { NCCL_SUCCESS = 0, NCCL_SUM = 0 };
enum { NCCL_UINT8 = 1, NCCL_INT32 = 2, NCCL_FLOAT32 = 7, NCCL_FLOAT64 = 8, NCCL_BFLOAT16 = 9 };

typedef struct {
    void *handle;
    int (*get_unique_id)(nccl_unique_id *);
    int (*comm_init_rank)(nccl_comm_t *, int, nccl_unique_id, int);
    int (*comm_destroy)(nccl_comm_t);
    int (*all_reduce)(const void *, void *, size_t, int, int, nccl_comm_t, void *);
    int (*reduce_scatter)(const void *, void *, size_t, int, int, nccl_comm_t, void *);
    int (*all_gather)(const void *, void *, size_t, int, nccl_comm_t, void *);
    int (*broadcast)(const void *, void *, size_t, int, int, nccl_comm_t, void *);
    const char *(*get_error_string)(int);
} nccl_api;

struct remat_comm {
    int rank, size, local_rank;
    int use_mpi;       /* collectives go through MPI */
    int owns_mpi_init; /* this comm called MPI_Init (and finalises it) */
#ifdef REMAT_HAVE_MPI
    MPI_Comm mpi;
    MPI_Op bf16_sum;
#endif
    remat_device *dev; /* set by remat_comm_use_device; NULL = host buffers */
    remat_stream stream;
    nccl_api nccl;
    nccl_comm_t nccl_comm;
    remat_comm_stats stats;
};

size_t remat_comm_dtype_size(remat_comm_dtype dt)
{
    switch (dt) {
    case REMAT_COMM_F32: return 4;
    case REMAT_COMM_BF16: return 2;
    case REMAT_COMM_I32: return 4;
    case REMAT_COMM_F64: return 8;
    case REMAT_COMM_BYTE: return 1;
    }
    return 0;
}

int remat_built_with_mpi(void)
{
#ifdef REMAT_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int remat_comm_launched(void)
{
    const char *force = getenv("REMAT_MPI_FORCE");
    if (force && strcmp(force, "1") == 0)
        return 1;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static double comm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static remat_status comm_alloc(remat_comm **out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_comm_create: out must not be NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return remat_fail(REMAT_ENOMEM, "cannot allocate a communicator");
    (*out)->size = 1;
    return REMAT_OK;
}

/* ==== MPI ================================================================================== */

#ifdef REMAT_HAVE_MPI
static remat_status mpi_fail(int err, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error %d", err);
    return remat_fail(REMAT_EDEVICE, "%s failed: %s", what, msg);
}
#define MPI_TRY(call, what)                                                                        \
    do {                                                                                           \
        int mpi_e_ = (call);                                                                       \
        if (mpi_e_ != MPI_SUCCESS)                                                                 \
            return mpi_fail(mpi_e_, what);                                                         \
    } while (0)

/* bf16 sums: each pairwise step widens both, adds in float32 and rounds once to nearest even. */
static void bf16_sum_op(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    const kern_bf16 *a = in;
    kern_bf16 *b = inout;
    for (int i = 0; i < *len; i++)
        b[i] = kern_f32_to_bf16(kern_bf16_to_f32(a[i]) + kern_bf16_to_f32(b[i]));
}

static MPI_Datatype mpi_type(remat_comm_dtype dt)
{
    switch (dt) {
    case REMAT_COMM_F32: return MPI_FLOAT;
    case REMAT_COMM_BF16: return MPI_UINT16_T;
    case REMAT_COMM_I32: return MPI_INT32_T;
    case REMAT_COMM_F64: return MPI_DOUBLE;
    case REMAT_COMM_BYTE: return MPI_BYTE;
    }
    return MPI_BYTE;
}

static remat_status comm_mpi_setup(remat_comm *c, MPI_Comm base)
{
    MPI_TRY(MPI_Comm_dup(base, &c->mpi), "MPI_Comm_dup");
    c->use_mpi = 1;
    MPI_TRY(MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    MPI_TRY(MPI_Comm_rank(c->mpi, &c->rank), "MPI_Comm_rank");
    MPI_TRY(MPI_Comm_size(c->mpi, &c->size), "MPI_Comm_size");
    MPI_Comm node;
    MPI_TRY(MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
    int lr = 0;
    int e = MPI_Comm_rank(node, &lr);
    MPI_Comm_free(&node);
    if (e != MPI_SUCCESS)
        return mpi_fail(e, "MPI_Comm_rank");
    c->local_rank = lr;
    MPI_TRY(MPI_Op_create(bf16_sum_op, 1, &c->bf16_sum), "MPI_Op_create");
    return REMAT_OK;
}
#endif

remat_status remat_comm_create_world(remat_comm **out)
{
    REMAT_TRY(comm_alloc(out));
    remat_comm *c = *out;
    if (!remat_comm_launched())
        return REMAT_OK;
#ifdef REMAT_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            free(c);
            *out = NULL;
            return remat_fail(REMAT_EDEVICE, "MPI_Init failed (launched by mpirun?)");
        }
        c->owns_mpi_init = 1;
    }
    /* MPI_COMM_WORLD's own handler stays MPI_ERRORS_ARE_FATAL only for calls remat does not
     * make: every collective here runs on the duplicate, which returns errors. */
    remat_status s = comm_mpi_setup(c, MPI_COMM_WORLD);
    if (s != REMAT_OK) {
        remat_comm_destroy(c);
        *out = NULL;
    }
    return s;
#else
    free(c);
    *out = NULL;
    return remat_fail(REMAT_EUNSUPPORTED,
                      "this process was started by an MPI launcher, but this build of remat has no "
                      "MPI (built with REMAT_MPI=0): rebuild with libopenmpi-dev installed");
#endif
}

remat_status remat_comm_create_mpi(const void *mpi_comm, remat_comm **out)
{
    if (!mpi_comm)
        return remat_fail(REMAT_EINVAL, "remat_comm_create_mpi: mpi_comm must not be NULL");
#ifdef REMAT_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited)
        return remat_fail(REMAT_EINVAL, "remat_comm_create_mpi: MPI is not initialised");
    REMAT_TRY(comm_alloc(out));
    remat_status s = comm_mpi_setup(*out, *(const MPI_Comm *)mpi_comm);
    if (s != REMAT_OK) {
        remat_comm_destroy(*out);
        *out = NULL;
    }
    return s;
#else
    (void)out;
    return remat_fail(REMAT_EUNSUPPORTED, "this build of remat has no MPI (REMAT_MPI=0)");
#endif
}

void remat_comm_destroy(remat_comm *c)
{
    if (!c)
        return;
    if (c->nccl_comm && c->nccl.comm_destroy)
        c->nccl.comm_destroy(c->nccl_comm);
    if (c->nccl.handle)
        dlclose(c->nccl.handle);
#ifdef REMAT_HAVE_MPI
    if (c->use_mpi) {
        if (c->bf16_sum != MPI_OP_NULL && c->bf16_sum != 0)
            MPI_Op_free(&c->bf16_sum);
        if (c->mpi != MPI_COMM_NULL && c->mpi != 0)
            MPI_Comm_free(&c->mpi);
    }
    if (c->owns_mpi_init) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin)
            MPI_Finalize();
    }
#endif
    free(c);
}

int remat_comm_rank(const remat_comm *c) { return c ? c->rank : 0; }
int remat_comm_size(const remat_comm *c) { return c ? c->size : 1; }
int remat_comm_local_rank(const remat_comm *c)
{
    if (!c)
        return 0;
    const char *s = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    return c->use_mpi && s ? atoi(s) : c->local_rank;
}

const char *remat_comm_backend(const remat_comm *c)
{
    if (!c)
        return "self";
    return c->nccl_comm ? "nccl" : c->use_mpi ? "mpi" : "self";
}

/* ==== Device buffers ======================================================================= */

static remat_status nccl_load(nccl_api *n)
{
    const char *env = getenv("REMAT_NCCL_LIBRARY");
    const char *name = env && *env ? env : "libnccl.so.2";
    n->handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!n->handle)
        return remat_fail(REMAT_EUNSUPPORTED,
                          "NCCL is needed for collectives on a CUDA device and '%s' cannot be "
                          "loaded (%s); set REMAT_NCCL_LIBRARY to its path",
                          name, dlerror());
    struct {
        const char *sym;
        void **slot;
    } syms[] = {{"ncclGetUniqueId", (void **)&n->get_unique_id},
                {"ncclCommInitRank", (void **)&n->comm_init_rank},
                {"ncclCommDestroy", (void **)&n->comm_destroy},
                {"ncclAllReduce", (void **)&n->all_reduce},
                {"ncclReduceScatter", (void **)&n->reduce_scatter},
                {"ncclAllGather", (void **)&n->all_gather},
                {"ncclBroadcast", (void **)&n->broadcast},
                {"ncclGetErrorString", (void **)&n->get_error_string}};
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].slot = dlsym(n->handle, syms[i].sym);
        if (!*syms[i].slot)
            return remat_fail(REMAT_EUNSUPPORTED, "'%s' has no %s: not an NCCL library", name,
                              syms[i].sym);
    }
    return REMAT_OK;
}

static remat_status nccl_check(const remat_comm *c, int r, const char *what)
{
    if (r == NCCL_SUCCESS)
        return REMAT_OK;
    return remat_fail(REMAT_EDEVICE, "%s failed: %s", what,
                      c->nccl.get_error_string ? c->nccl.get_error_string(r) : "NCCL error");
}

remat_status remat_comm_use_device(remat_comm *c, remat_device *dev, remat_stream stream)
{
    if (!c || !dev)
        return remat_fail(REMAT_EINVAL, "remat_comm_use_device: arguments must not be NULL");
    remat_device_info info;
    REMAT_TRY(remat_device_info_get(dev, &info));
    if (info.kind == REMAT_DEVICE_SIM)
        return remat_fail(REMAT_EINVAL,
                          "device '%s': a simulated device's buffers hold no data to communicate",
                          info.spec);
    c->dev = dev;
    c->stream = stream;
    if (info.kind != REMAT_DEVICE_CUDA || c->nccl_comm)
        return REMAT_OK;
    REMAT_TRY(nccl_load(&c->nccl));
    nccl_unique_id id;
    memset(&id, 0, sizeof id);
    if (c->rank == 0)
        REMAT_TRY(nccl_check(c, c->nccl.get_unique_id(&id), "ncclGetUniqueId"));
    if (c->size > 1) /* one rank alone still gets an NCCL communicator: the same path as N */
        REMAT_TRY(remat_comm_broadcast(c, &id, sizeof id, REMAT_COMM_BYTE, 0));
    return nccl_check(c, c->nccl.comm_init_rank(&c->nccl_comm, c->size, id, c->rank),
                      "ncclCommInitRank");
}

/* ==== Collectives ========================================================================== */

static int nccl_type(remat_comm_dtype dt)
{
    switch (dt) {
    case REMAT_COMM_F32: return NCCL_FLOAT32;
    case REMAT_COMM_BF16: return NCCL_BFLOAT16;
    case REMAT_COMM_I32: return NCCL_INT32;
    case REMAT_COMM_F64: return NCCL_FLOAT64;
    case REMAT_COMM_BYTE: return NCCL_UINT8;
    }
    return NCCL_UINT8;
}

static remat_status comm_args(const remat_comm *c, const void *a, const void *b, size_t count,
                              remat_comm_dtype dt, int sums, const char *what)
{
    if (!c)
        return remat_fail(REMAT_EINVAL, "%s: comm must not be NULL", what);
    size_t es = remat_comm_dtype_size(dt);
    if (es == 0)
        return remat_fail(REMAT_EINVAL, "%s: unknown element type %d", what, (int)dt);
    if (sums && dt == REMAT_COMM_BYTE)
        return remat_fail(REMAT_EINVAL, "%s: bytes cannot be summed; give the element type", what);
    if (count && (!a || !b))
        return remat_fail(REMAT_EINVAL, "%s: buffers must not be NULL", what);
    if (count > (size_t)INT32_MAX)
        return remat_fail(REMAT_EINVAL, "%s: %zu elements in one call (at most %d: split it)",
                          what, count, INT32_MAX);
    return REMAT_OK;
}

/* Adds one call's ring volume and time to the stats. */
static void comm_account(remat_comm *c, uint64_t *calls, uint64_t sent, uint64_t received,
                         double t0)
{
    c->stats.calls++;
    (*calls)++;
    c->stats.bytes_sent += sent;
    c->stats.bytes_received += received;
    c->stats.ms += comm_now_ms() - t0;
}

static remat_status comm_sync(remat_comm *c)
{
    return c->nccl_comm ? remat_device_sync(c->dev) : REMAT_OK;
}

/* A local copy (the 1-rank case and in-place moves), on the buffers' device. */
static remat_status comm_copy(remat_comm *c, void *dst, const void *src, size_t bytes)
{
    if (dst == src || bytes == 0)
        return REMAT_OK;
    if (c->dev) {
        remat_device_info info;
        REMAT_TRY(remat_device_info_get(c->dev, &info));
        if (info.kind == REMAT_DEVICE_CUDA)
            return remat_device_copy(c->dev, dst, src, bytes, REMAT_COPY_DEVICE_TO_DEVICE);
    }
    memmove(dst, src, bytes);
    return REMAT_OK;
}

remat_status remat_comm_allreduce(remat_comm *c, const void *send, void *recv, size_t count,
                                  remat_comm_dtype dt)
{
    REMAT_TRY(comm_args(c, send, recv, count, dt, 1, "allreduce"));
    size_t bytes = count * remat_comm_dtype_size(dt);
    double t0 = comm_now_ms();
    uint64_t vol = c->size > 1 ? 2 * (uint64_t)bytes * (c->size - 1) / c->size : 0;
    if (count == 0 || (c->size == 1 && !c->nccl_comm)) {
        REMAT_TRY(comm_copy(c, recv, send, bytes));
    } else if (c->nccl_comm) {
        REMAT_TRY(nccl_check(c, c->nccl.all_reduce(send, recv, count, nccl_type(dt), NCCL_SUM,
                                                   c->nccl_comm, c->stream),
                             "ncclAllReduce"));
        REMAT_TRY(comm_sync(c));
    } else {
#ifdef REMAT_HAVE_MPI
        MPI_Op op = dt == REMAT_COMM_BF16 ? c->bf16_sum : MPI_SUM;
        MPI_TRY(MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, (int)count, mpi_type(dt),
                              op, c->mpi),
                "MPI_Allreduce");
#endif
    }
    comm_account(c, &c->stats.allreduce_calls, vol, vol, t0);
    return REMAT_OK;
}

remat_status remat_comm_reduce_scatter(remat_comm *c, const void *send, void *recv, size_t count,
                                       remat_comm_dtype dt)
{
    REMAT_TRY(comm_args(c, send, recv, count, dt, 1, "reduce_scatter"));
    size_t es = remat_comm_dtype_size(dt), bytes = count * es;
    const char *s = send, *mine = s + (size_t)c->rank * bytes;
    char *r = recv;
    int in_place = r == mine;
    if (!in_place && r < s + bytes * c->size && s < r + bytes)
        return remat_fail(REMAT_EINVAL,
                          "reduce_scatter: recv overlaps send other than at this rank's slice");
    double t0 = comm_now_ms();
    uint64_t vol = (uint64_t)bytes * (c->size - 1);
    if (count == 0 || (c->size == 1 && !c->nccl_comm)) {
        REMAT_TRY(comm_copy(c, recv, send, bytes));
    } else if (c->nccl_comm) {
        REMAT_TRY(nccl_check(c, c->nccl.reduce_scatter(send, recv, count, nccl_type(dt), NCCL_SUM,
                                                       c->nccl_comm, c->stream),
                             "ncclReduceScatter"));
        REMAT_TRY(comm_sync(c));
    } else {
#ifdef REMAT_HAVE_MPI
        MPI_Op op = dt == REMAT_COMM_BF16 ? c->bf16_sum : MPI_SUM;
        if (in_place) { /* MPI leaves the result at the start of the buffer: move it to r */
            MPI_TRY(MPI_Reduce_scatter_block(MPI_IN_PLACE, (void *)s, (int)count, mpi_type(dt), op,
                                             c->mpi),
                    "MPI_Reduce_scatter_block");
            memmove(r, s, bytes);
        } else {
            MPI_TRY(MPI_Reduce_scatter_block(send, recv, (int)count, mpi_type(dt), op, c->mpi),
                    "MPI_Reduce_scatter_block");
        }
#endif
    }
    comm_account(c, &c->stats.reduce_scatter_calls, vol, vol, t0);
    return REMAT_OK;
}

remat_status remat_comm_allgather(remat_comm *c, const void *send, void *recv, size_t count,
                                  remat_comm_dtype dt)
{
    REMAT_TRY(comm_args(c, send, recv, count, dt, 0, "allgather"));
    size_t es = remat_comm_dtype_size(dt), bytes = count * es;
    const char *s = send;
    char *r = recv, *mine = r + (size_t)c->rank * bytes;
    int in_place = s == mine;
    if (!in_place && s < r + bytes * c->size && r < s + bytes)
        return remat_fail(REMAT_EINVAL,
                          "allgather: send overlaps recv other than at this rank's slice");
    double t0 = comm_now_ms();
    uint64_t vol = (uint64_t)bytes * (c->size - 1);
    if (count == 0 || (c->size == 1 && !c->nccl_comm)) {
        REMAT_TRY(comm_copy(c, recv, send, bytes));
    } else if (c->nccl_comm) {
        REMAT_TRY(nccl_check(
            c, c->nccl.all_gather(send, recv, count, nccl_type(dt), c->nccl_comm, c->stream),
            "ncclAllGather"));
        REMAT_TRY(comm_sync(c));
    } else {
#ifdef REMAT_HAVE_MPI
        MPI_TRY(MPI_Allgather(in_place ? MPI_IN_PLACE : send, (int)count, mpi_type(dt), recv,
                              (int)count, mpi_type(dt), c->mpi),
                "MPI_Allgather");
#endif
    }
    comm_account(c, &c->stats.allgather_calls, vol, vol, t0);
    return REMAT_OK;
}

remat_status remat_comm_broadcast(remat_comm *c, void *buf, size_t count, remat_comm_dtype dt,
                                  int root)
{
    REMAT_TRY(comm_args(c, buf, buf, count, dt, 0, "broadcast"));
    if (root < 0 || root >= c->size)
        return remat_fail(REMAT_EINVAL, "broadcast: root %d is not a rank (0..%d)", root,
                          c->size - 1);
    size_t bytes = count * remat_comm_dtype_size(dt);
    double t0 = comm_now_ms();
    if ((c->size > 1 || c->nccl_comm) && count > 0) {
        if (c->nccl_comm) {
            REMAT_TRY(nccl_check(c, c->nccl.broadcast(buf, buf, count, nccl_type(dt), root,
                                                      c->nccl_comm, c->stream),
                                 "ncclBroadcast"));
            REMAT_TRY(comm_sync(c));
        } else {
#ifdef REMAT_HAVE_MPI
            MPI_TRY(MPI_Bcast(buf, (int)count, mpi_type(dt), root, c->mpi), "MPI_Bcast");
#endif
        }
    }
    uint64_t sent = c->size > 1 && c->rank == root ? bytes : 0;
    uint64_t received = c->size > 1 && c->rank != root ? bytes : 0;
    comm_account(c, &c->stats.broadcast_calls, sent, received, t0);
    return REMAT_OK;
}

remat_status remat_comm_barrier(remat_comm *c)
{
    if (!c)
        return remat_fail(REMAT_EINVAL, "barrier: comm must not be NULL");
#ifdef REMAT_HAVE_MPI
    if (c->use_mpi && c->size > 1)
        MPI_TRY(MPI_Barrier(c->mpi), "MPI_Barrier");
#endif
    return REMAT_OK;
}

/* FNV-1a over the bytes and their count: equal values hash equal on every rank. */
static uint64_t comm_hash(const void *data, size_t bytes)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull ^ bytes;
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

remat_status remat_comm_check_same(remat_comm *c, const char *what, const void *data, size_t bytes)
{
    if (!c || !what || (bytes && !data))
        return remat_fail(REMAT_EINVAL, "check_same: arguments must not be NULL");
    if (c->size == 1)
        return REMAT_OK;
    /* Host buffers for the check itself, whatever device the comm uses. */
    remat_device *dev = c->dev;
    nccl_comm_t nc = c->nccl_comm;
    c->dev = NULL;
    c->nccl_comm = NULL;
    int n = c->size;
    uint64_t *all = malloc((size_t)n * sizeof *all);
    remat_status s = REMAT_ENOMEM;
    if (!all) {
        s = remat_fail(REMAT_ENOMEM, "check_same: cannot allocate %d hashes", n);
    } else {
        all[c->rank] = comm_hash(data, bytes);
        s = remat_comm_allgather(c, &all[c->rank], all, 8, REMAT_COMM_BYTE);
    }
    c->dev = dev;
    c->nccl_comm = nc;
    if (s == REMAT_OK)
        for (int r = 1; r < n; r++)
            if (all[r] != all[0]) {
                s = remat_fail(REMAT_EINVAL, "%s differs between ranks: rank %d has other values "
                                             "than rank 0", what, r);
                break;
            }
    free(all);
    return s;
}

remat_status remat_comm_stats_get(const remat_comm *c, remat_comm_stats *out)
{
    if (!c || !out)
        return remat_fail(REMAT_EINVAL, "remat_comm_stats_get: arguments must not be NULL");
    *out = c->stats;
    return REMAT_OK;
}

void remat_comm_stats_reset(remat_comm *c)
{
    if (c)
        memset(&c->stats, 0, sizeof c->stats);
}
