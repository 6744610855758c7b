/* alloc/pool_lock.c: the pool's lock: a spinlock, biased towards the first thread that allocates.
 *
 * A training loop allocates and frees from one host thread. Taking even an uncontended spinlock
 * costs that thread two locked read-modify-writes per alloc+free pair, and each is a full barrier
 * that waits for the store buffer to drain: more than half the time of a cached pair. So the pool
 * is biased (as JVMs bias object monitors) to the first thread that allocates from it: that thread
 * enters with plain stores (pool_enter in pool.h). Any other thread that takes the lock revokes the
 * bias first, once and for good: it raises `bias_revoked`, runs membarrier(2), which makes every
 * running thread of the process execute a full memory barrier, so the owner either is seen inside
 * (`bias_busy`) and waited for, or sees `bias_revoked` on its next entry and takes the lock like
 * everyone else. This is the asymmetric Dekker handshake of userspace RCU (liburcu's membarrier
 * flavour): the owner's side has no barrier; the rare side pays a system call (about 1 us here).
 *
 * Where membarrier is missing or refused, and under ThreadSanitizer (which cannot see the
 * handshake), the pool is never biased: every entry takes the lock. A pool must not be used in a
 * child process after fork() (the CUDA runtime forbids it anyway). */
#include "alloc/pool.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define POOL_BIAS_ALLOWED 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POOL_BIAS_ALLOWED 0
#endif
#endif
#ifndef POOL_BIAS_ALLOWED
#define POOL_BIAS_ALLOWED 1
#endif

#define POOL_SPINS 128 /* busy-wait rounds before a waiter yields its core */

_Thread_local char pool_thread_token;

static void pool_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void pool_backoff(unsigned spins)
{
    if (spins < POOL_SPINS)
        pool_cpu_relax();
    else
        sched_yield();
}

/* The wait of a test-and-test-and-set spinlock (pool_lock tried one exchange and lost): spin on a
 * plain read, then yield, since a holder may sit in a device call. */
void pool_lock_wait(const remat_pool *pool)
{
    atomic_int *l = &((remat_pool *)pool)->lock;
    for (unsigned spins = 0;; spins++) {
        if (!atomic_load_explicit(l, memory_order_relaxed) &&
            !atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
        pool_backoff(spins);
    }
}

static int membarrier_cmd(int cmd) { return (int)syscall(SYS_membarrier, cmd, 0, 0); }

static int bias_supported;
static pthread_once_t bias_once = PTHREAD_ONCE_INIT;

static void bias_probe(void)
{
    int cmds = membarrier_cmd(MEMBARRIER_CMD_QUERY);
    bias_supported = POOL_BIAS_ALLOWED && cmds > 0 &&
                     (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                     membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

/* A full barrier on every running thread of the process; 0 on success. Registers again if the
 * kernel forgot the registration (a child process after fork). */
static int bias_barrier(void)
{
    if (membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
        return 0;
    if (membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0)
        return -1;
    return membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
}

/* Called with the lock held by a thread other than the owner: after it returns the owner is
 * outside the pool and will take the lock from now on. */
static void bias_revoke(remat_pool *pool)
{
    atomic_store_explicit(&pool->bias_revoked, 1, memory_order_relaxed);
    if (bias_barrier() != 0) {
        /* Not expected once the probe succeeded in this process. Without the barrier an owner
         * entering at this very instant might not see the flag yet; its flag store leaves its
         * store buffer within nanoseconds, so wait far longer than that before looking. */
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    for (unsigned spins = 0; atomic_load_explicit(&pool->bias_busy, memory_order_acquire); spins++)
        pool_backoff(spins);
    atomic_store_explicit(&pool->bias_owner, 0, memory_order_relaxed);
    pool->bias_off = 1;
}

void pool_bias_check(remat_pool *pool, int claim)
{
    uintptr_t owner = atomic_load_explicit(&pool->bias_owner, memory_order_relaxed);
    if (owner && owner != pool_self()) {
        bias_revoke(pool);
    } else if (!owner && claim) {
        pthread_once(&bias_once, bias_probe);
        if (bias_supported)
            atomic_store_explicit(&pool->bias_owner, pool_self(), memory_order_relaxed);
        else
            pool->bias_off = 1;
    }
}
