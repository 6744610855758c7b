/* tests/link/clash.c: a trainer that happens to use the names libremat uses inside
 * (gpt_model_create, pool_map_get, kern_open, chain_validate, remat_fail, remat_json_string),
 * linked statically against libremat.a. With internal names left global this does not link
 * ("multiple definition"), or the library calls the trainer's functions. It must link, and the
 * library must keep using its own: run by tests/unit/test_link.c, exit 0 and "clash: ok" when both
 * hold. Only remat.h is included, as a user would. */
#include "remat.h"

#include <stdio.h>
#include <string.h>

/* The trainer's own functions, with signatures of its own. Each counts its calls. */
static int own_calls;
int gpt_model_create(int layers)
{
    return own_calls++, layers * 2;
}
void *pool_map_get(void *map, unsigned long key)
{
    return own_calls++, (char *)map + key;
}
int kern_open(const char *name)
{
    return own_calls++, (int)strlen(name);
}
int chain_validate(void)
{
    return own_calls++, 42;
}
int remat_fail(int s, const char *fmt, ...)
{
    return own_calls++, (void)fmt, s + 1;
}
void remat_json_string(FILE *f, const char *s)
{
    own_calls++, (void)f, (void)s;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "clash: %s:%d: %s failed (%s)\n", __FILE__, __LINE__, #cond,           \
                    remat_last_error());                                                           \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Library paths that use chain_validate, remat_fail and remat_json_string inside. */
static int use_chains(void)
{
    const char *good = "{\"name\":\"c\",\"input_bytes\":8,\"stages\":[{\"name\":\"s0\",\"fwd\":1,"
                       "\"bwd\":2,\"out_bytes\":8,\"saved_bytes\":8}]}";
    /* saved_bytes below out_bytes: refused by chain_validate */
    const char *bad = "{\"name\":\"c\",\"input_bytes\":8,\"stages\":[{\"name\":\"s0\",\"fwd\":1,"
                      "\"bwd\":2,\"out_bytes\":8,\"saved_bytes\":4}]}";
    remat_chain *c = NULL;
    CHECK(remat_chain_parse(good, strlen(good), &c) == REMAT_OK);
    CHECK(c->n_stages == 1 && c->stages[0].out_bytes == 8);
    remat_policy p;
    CHECK(remat_policy_parse("store-all", &p) == REMAT_OK);
    remat_schedule *s = NULL;
    CHECK(remat_plan(c, &p, 1 << 20, &s) == REMAT_OK);
    FILE *f = tmpfile();
    CHECK(f && remat_schedule_write_json(s, c, f) == REMAT_OK);
    char buf[4096] = {0};
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    /* the library's remat_json_string wrote the option name */
    CHECK(n > 0 && strstr(buf, "\"option\": \"default\""));
    remat_schedule_free(s);
    remat_chain_free(c);
    remat_clear_error();
    CHECK(remat_chain_parse(bad, strlen(bad), &c) == REMAT_EPARSE);
    CHECK(strstr(remat_last_error(), "saved_bytes") != NULL); /* the library's remat_fail set it */
    return 0;
}

/* The pool's live map (pool_map_get) on the host device. */
static int use_pool(void)
{
    remat_device *dev = NULL;
    remat_pool *pool = NULL;
    CHECK(remat_device_open("host", &dev) == REMAT_OK);
    CHECK(remat_pool_create(dev, NULL, &pool) == REMAT_OK);
    void *a = remat_alloc(pool, 1000, NULL);
    CHECK(a != NULL);
    size_t sz = 0;
    CHECK(remat_pool_block_size(pool, a, &sz) == REMAT_OK && sz == 1024);
    remat_free(pool, a);
    remat_pool_stats st;
    CHECK(remat_pool_stats_get(pool, &st) == REMAT_OK);
    CHECK(st.allocated.current == 0 && st.n_alloc == 1 && st.n_free == 1);
    remat_pool_destroy(pool);
    remat_device_close(dev);
    return 0;
}

int main(void)
{
    /* The trainer's names are its own... */
    char map[8];
    CHECK(gpt_model_create(3) == 6 && pool_map_get(map, 2) == map + 2 && kern_open("abc") == 3);
    CHECK(chain_validate() == 42 && remat_fail(1, "x") == 2);
    remat_json_string(stdout, "x");
    CHECK(own_calls == 6);
    /* ...and the library never calls them. */
    if (use_chains() || use_pool())
        return 1;
    CHECK(own_calls == 6);
    printf("clash: ok (%s)\n", remat_version());
    return 0;
}
