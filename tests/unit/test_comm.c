/* tests/unit/test_comm.c: remat_comm without a launcher: the 1-rank world, its collectives as copies,
 * argument errors, device rules and statistics. The N-rank behaviour is tests/mpi/mpi_comm.c's. */
#include "remat.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static remat_comm *world(void)
{
    unsetenv("REMAT_MPI_FORCE");
    remat_comm *c = NULL;
    cr_assert_eq(remat_comm_create_world(&c), REMAT_OK, "%s", remat_last_error());
    return c;
}

Test(comm, one_rank_world_without_a_launcher)
{
    if (remat_comm_launched())
        cr_skip_test("run under an MPI launcher");
    remat_comm *c = world();
    cr_assert_eq(remat_comm_size(c), 1);
    cr_assert_eq(remat_comm_rank(c), 0);
    cr_assert_eq(remat_comm_local_rank(c), 0);
    cr_assert_str_eq(remat_comm_backend(c), "self");
    remat_comm_destroy(c);
}

Test(comm, one_rank_collectives_are_copies)
{
    remat_comm *c = world();
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {0};
    cr_assert_eq(remat_comm_allreduce(c, a, b, 5, REMAT_COMM_F32), REMAT_OK);
    cr_assert_arr_eq(a, b, sizeof a);
    memset(b, 0, sizeof b);
    cr_assert_eq(remat_comm_reduce_scatter(c, a, b, 5, REMAT_COMM_F32), REMAT_OK);
    cr_assert_arr_eq(a, b, sizeof a);
    memset(b, 0, sizeof b);
    cr_assert_eq(remat_comm_allgather(c, a, b, 5, REMAT_COMM_F32), REMAT_OK);
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert_eq(remat_comm_allreduce(c, a, a, 5, REMAT_COMM_F32), REMAT_OK);
    cr_assert_eq(remat_comm_broadcast(c, a, 5, REMAT_COMM_F32, 0), REMAT_OK);
    cr_assert_float_eq(a[4], 5.0f, 0);
    cr_assert_eq(remat_comm_barrier(c), REMAT_OK);
    int v = 3;
    cr_assert_eq(remat_comm_check_same(c, "--zero", &v, sizeof v), REMAT_OK);
    remat_comm_stats st;
    cr_assert_eq(remat_comm_stats_get(c, &st), REMAT_OK);
    cr_assert_eq(st.calls, 5);
    cr_assert_eq(st.allreduce_calls, 2);
    cr_assert_eq(st.bytes_sent, 0, "one rank sends nothing");
    cr_assert_eq(st.bytes_received, 0);
    remat_comm_stats_reset(c);
    cr_assert_eq(remat_comm_stats_get(c, &st), REMAT_OK);
    cr_assert_eq(st.calls, 0);
    remat_comm_destroy(c);
}

Test(comm, bad_arguments_are_refused_with_a_message)
{
    remat_comm *c = world();
    float a[4] = {0};
    cr_assert_eq(remat_comm_allreduce(c, a, a, 4, REMAT_COMM_BYTE), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "cannot be summed"), "%s", remat_last_error());
    cr_assert_eq(remat_comm_allreduce(c, NULL, a, 4, REMAT_COMM_F32), REMAT_EINVAL);
    cr_assert_eq(remat_comm_allreduce(c, a, a, 4, (remat_comm_dtype)99), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "99"), "%s", remat_last_error());
    cr_assert_eq(remat_comm_allreduce(NULL, a, a, 4, REMAT_COMM_F32), REMAT_EINVAL);
    cr_assert_eq(remat_comm_broadcast(c, a, 4, REMAT_COMM_F32, 1), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "root 1"), "%s", remat_last_error());
    cr_assert_eq(remat_comm_allreduce(c, a, a, (size_t)1 << 40, REMAT_COMM_F32), REMAT_EINVAL);
    cr_assert_eq(remat_comm_check_same(c, "x", NULL, 4), REMAT_EINVAL);
    cr_assert_eq(remat_comm_create_world(NULL), REMAT_EINVAL);
    cr_assert_eq(remat_comm_create_mpi(NULL, &c), REMAT_EINVAL);
    remat_comm_destroy(c);
    remat_comm_destroy(NULL);
}

Test(comm, a_sim_device_is_refused_and_host_is_kept)
{
    remat_comm *c = world();
    remat_device *sim = NULL, *host = NULL;
    cr_assert_eq(remat_device_open("sim:1GiB", &sim), REMAT_OK);
    cr_assert_eq(remat_comm_use_device(c, sim, NULL), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "simulated"), "%s", remat_last_error());
    cr_assert_eq(remat_device_open("host", &host), REMAT_OK);
    cr_assert_eq(remat_comm_use_device(c, host, NULL), REMAT_OK, "%s", remat_last_error());
    cr_assert_str_eq(remat_comm_backend(c), "self");
    float a[2] = {1, 2}, b[2];
    cr_assert_eq(remat_comm_allreduce(c, a, b, 2, REMAT_COMM_F32), REMAT_OK);
    cr_assert_float_eq(b[1], 2.0f, 0);
    remat_comm_destroy(c);
    remat_device_close(sim);
    remat_device_close(host);
}

Test(comm, dtype_sizes)
{
    cr_assert_eq(remat_comm_dtype_size(REMAT_COMM_F32), 4);
    cr_assert_eq(remat_comm_dtype_size(REMAT_COMM_BF16), 2);
    cr_assert_eq(remat_comm_dtype_size(REMAT_COMM_F64), 8);
    cr_assert_eq(remat_comm_dtype_size(REMAT_COMM_BYTE), 1);
    cr_assert_eq(remat_comm_dtype_size((remat_comm_dtype)-1), 0);
}
