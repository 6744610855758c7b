/* tests/unit/test_link.c: what a trainer linking libremat sees: the exported names of libremat.so and
 * the global names of libremat.a are exactly the REMAT_API functions of include/remat.h, and a
 * program defining our internal names (tests/link/clash.c) links statically and runs. The build
 * folder is the one holding the CLI under test ($REMAT_BIN). */
#include "remat.h"
#include "tests/common/cli_run.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define LINK_MAX_NAMES 512

typedef struct {
    int n;
    char name[LINK_MAX_NAMES][64];
} link_names;

static int link_has(const link_names *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0)
            return 1;
    return 0;
}

static void link_add(link_names *s, const char *name)
{
    cr_assert_lt(s->n, LINK_MAX_NAMES);
    if (!link_has(s, name))
        snprintf(s->name[s->n++], sizeof s->name[0], "%s", name);
}

static const char *link_build_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s", cli_bin());
    return dirname(dir);
}

/* The oracle: every "REMAT_API ... remat_NAME(" declaration of the public header. */
static void link_declared(link_names *out)
{
    char path[4096], line[1024];
    snprintf(path, sizeof path, "%s/include/remat.h", cli_root());
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    out->n = 0;
    while (fgets(line, sizeof line, f)) {
        /* a declaration at the left margin without REMAT_API would be hidden from users */
        if (line[0] >= 'a' && line[0] <= 'z' && strncmp(line, "typedef ", 8) != 0)
            cr_assert(!strstr(line, "remat_") || !strchr(line, '('),
                      "declared without REMAT_API: %s", line);
        if (strncmp(line, "REMAT_API ", 10) != 0)
            continue;
        /* the first "remat_NAME(" of the line (attributes such as REMAT_ALLOC(2) come before) */
        char *start = NULL, *end = NULL;
        for (char *p = strstr(line, "remat_"); p && !start; p = strstr(p + 1, "remat_")) {
            char *q = p;
            while (*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9'))
                q++;
            if (*q == '(')
                start = p, end = q;
        }
        cr_assert(start, "declaration without a remat_ name: %s", line);
        *end = '\0';
        link_add(out, start);
    }
    fclose(f);
    cr_assert_gt(out->n, 50, "only %d declarations found in %s", out->n, path);
}

/* Names of the defined symbols that `nm ARGS FILE` lists (the last field of each line). */
static void link_nm(const char *args, const char *file, link_names *out)
{
    char cmd[8192], line[1024];
    snprintf(cmd, sizeof cmd, "nm %s '%s/%s'", args, link_build_dir(), file);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    out->n = 0;
    while (fgets(line, sizeof line, p)) {
        char addr[64], type[8], name[512];
        if (sscanf(line, "%63s %7s %511s", addr, type, name) == 3)
            link_add(out, name);
    }
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
}

static void link_assert_same(const link_names *got, const link_names *want, const char *what)
{
    for (int i = 0; i < got->n; i++)
        cr_expect(link_has(want, got->name[i]), "%s exports '%s', not a REMAT_API function", what,
                  got->name[i]);
    for (int i = 0; i < want->n; i++)
        cr_expect(link_has(got, want->name[i]), "%s does not export REMAT_API '%s'", what,
                  want->name[i]);
}

Test(link, shared_library_exports_exactly_the_public_api)
{
    static link_names want, got;
    link_declared(&want);
    link_nm("-D --defined-only", "libremat.so", &got);
    link_assert_same(&got, &want, "libremat.so");
}

Test(link, static_archive_keeps_only_the_public_api_global)
{
    static link_names want, got;
    link_declared(&want);
    link_nm("--defined-only --extern-only", "libremat.a", &got);
    link_assert_same(&got, &want, "libremat.a");
}

Test(link, trainer_with_our_internal_names_links_statically_and_runs)
{
    char cmd[8192], out[4096] = {0};
    snprintf(cmd, sizeof cmd, "'%s/link/clash' 2>&1", link_build_dir());
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d: %s", cmd, st, out);
    cr_assert(strstr(out, "clash: ok"), "%s", out);
}

Test(link, version_is_one_number_in_the_header_the_library_and_the_soname)
{
    char want[64], cmd[8192], line[1024], soname[256] = "";
    snprintf(want, sizeof want, "%d.%d.%d", REMAT_VERSION_MAJOR, REMAT_VERSION_MINOR,
             REMAT_VERSION_PATCH);
    cr_assert_str_eq(REMAT_VERSION, want);
    cr_assert_str_eq(remat_version(), want);
    cr_assert_eq(REMAT_VERSION_NUMBER,
                 REMAT_VERSION_MAJOR * 10000 + REMAT_VERSION_MINOR * 100 + REMAT_VERSION_PATCH);

    /* libremat.so -> libremat.so.MAJOR -> libremat.so.MAJOR.MINOR.PATCH, whose SONAME is the
     * middle one, so programs linked today keep loading any later 0.x.y. */
    char path[4096];
    snprintf(path, sizeof path, "%s/libremat.so", link_build_dir());
    char *real = realpath(path, NULL);
    cr_assert(real, "%s does not resolve", path);
    char file[128];
    snprintf(file, sizeof file, "/libremat.so.%s", want);
    cr_assert(strlen(real) > strlen(file) && strcmp(real + strlen(real) - strlen(file), file) == 0,
              "libremat.so resolves to %s, not ...%s", real, file);
    free(real);

    snprintf(cmd, sizeof cmd, "readelf -d '%s/libremat.so'", link_build_dir());
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    while (fgets(line, sizeof line, p)) {
        char *s = strstr(line, "Library soname: [");
        if (s)
            sscanf(s + strlen("Library soname: ["), "%255[^]]", soname);
    }
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
    char want_soname[64];
    snprintf(want_soname, sizeof want_soname, "libremat.so.%d", REMAT_VERSION_MAJOR);
    cr_assert_str_eq(soname, want_soname);
}

/* Compiles `code` with the public header as a user would; returns cc's exit status. */
static int link_compile(const char *flags, const char *code)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cc -x c -std=c11 %s -I'%s/include' -c -o /dev/null - 2>/dev/null",
             flags, cli_root());
    FILE *p = popen(cmd, "w");
    cr_assert(p, "cannot run %s", cmd);
    fputs(code, p);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(link, ignoring_a_status_is_a_warning_unless_said)
{
    const char *head = "#include <remat.h>\nvoid f(void) { uint64_t v; ";
    char code[512];
    snprintf(code, sizeof code, "%s remat_parse_size(\"1\", &v); }\n", head);
    cr_assert_neq(link_compile("-Werror=unused-result", code), 0, "ignored status compiled");
    snprintf(code, sizeof code, "%s (void)!remat_parse_size(\"1\", &v); }\n", head);
    cr_assert_eq(link_compile("-Werror=unused-result", code), 0, "(void)! did not compile");
    snprintf(code, sizeof code, "%s if (remat_parse_size(\"1\", &v)) return; }\n", head);
    cr_assert_eq(link_compile("-Werror=unused-result", code), 0,
                 "a checked status did not compile");
}

Test(link, the_compiler_knows_the_size_of_a_pool_block)
{
    /* alloc_size(2): writing 16 bytes into remat_alloc(pool, 8, ...) is a compile-time error */
    const char *over = "#include <remat.h>\n#include <string.h>\nvoid g(char *);\n"
                       "void f(remat_pool *p) { char *x = remat_alloc(p, 8, NULL); "
                       "memset(x, 1, 16); g(x); }\n";
    const char *fits = "#include <remat.h>\n#include <string.h>\nvoid g(char *);\n"
                       "void f(remat_pool *p) { char *x = remat_alloc(p, 8, NULL); "
                       "memset(x, 1, 8); g(x); }\n";
    cr_assert_eq(link_compile("-O2 -Wall -Werror", fits), 0);
    cr_assert_neq(link_compile("-O2 -Wall -Werror", over), 0, "an overflow of 8 bytes compiled");
}
