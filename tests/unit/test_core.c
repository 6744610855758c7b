/* tests/unit/test_core.c: statuses, messages, size parsing and byte formatting. */
#include "remat.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

Test(status, every_status_has_a_distinct_name)
{
    const char *seen[REMAT_EINTERNAL + 1];
    for (int s = REMAT_OK; s <= REMAT_EINTERNAL; s++) {
        seen[s] = remat_strerror((remat_status)s);
        cr_assert(seen[s] && *seen[s]);
        for (int t = 0; t < s; t++)
            cr_assert_str_neq(seen[s], seen[t]);
    }
    cr_assert_str_eq(remat_strerror((remat_status)999), "unknown status");
}

Test(status, last_error_is_set_by_failures_and_cleared)
{
    uint64_t v;
    remat_clear_error();
    cr_assert_str_eq(remat_last_error(), "");
    cr_assert_eq(remat_parse_size("12XB", &v), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "12XB"), "message must name the value: %s",
              remat_last_error());
    remat_clear_error();
    cr_assert_str_eq(remat_last_error(), "");
}

typedef struct {
    const char *text;
    uint64_t bytes;
} good_size;

Test(size, good_inputs)
{
    static const good_size cases[] = {
        {"0", 0},
        {"0B", 0},
        {"1B", 1},
        {"512B", 512},
        {"512 B", 512},
        {"1KB", 1000},
        {"1KiB", 1024},
        {"80GB", 80000000000ull},
        {"512MiB", 536870912ull},
        {"1.5GiB", 1610612736ull},
        {"2TB", 2000000000000ull},
        {"1TiB", 1099511627776ull},
        {"  7 MiB ", 7340032ull},
        {"0.5KB", 500},
        {"18446744073709551615B", 18446744073709551615ull},
        {"16000000TB", 16000000000000000000ull},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 12345;
        remat_status s = remat_parse_size(cases[i].text, &v);
        cr_assert_eq(s, REMAT_OK, "'%s' should parse: %s", cases[i].text, remat_last_error());
        cr_assert_eq(v, cases[i].bytes, "'%s' gave %llu", cases[i].text, (unsigned long long)v);
    }
}

Test(size, bad_inputs_are_rejected_with_the_value_named)
{
    static const char *bad[] = {
        "",        " ",     "abc",  "12XB", "-5",  "-5GB",          "GB",
        "1.5.5GB", "1e9",   "0x10", "5 G",  "5gb", "99999999999TB", "18446744073709551616",
        "40%",     "1,000", ".",    "nan",  "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v;
        cr_assert_eq(remat_parse_size(bad[i], &v), REMAT_EINVAL, "'%s' should be rejected", bad[i]);
        cr_assert_neq(strlen(remat_last_error()), 0);
        if (strlen(bad[i]) > 1 && bad[i][0] != ' ')
            cr_assert(strstr(remat_last_error(), bad[i]), "message for '%s': %s", bad[i],
                      remat_last_error());
    }
    cr_assert_eq(remat_parse_size(NULL, NULL), REMAT_EINVAL);
}

/* A size is a number and a unit: "80" could be bytes or GB, so it fails naming the text and
 * offering the spellings; only 0 is the same in every unit. */
Test(size, a_number_without_a_unit_is_refused)
{
    static const char *bare[] = {"1", "80", "512", "1.5", "  7 ", "18446744073709551615"};
    for (size_t i = 0; i < sizeof bare / sizeof bare[0]; i++) {
        uint64_t v = 0;
        double p = 0;
        int is_p = 0;
        cr_assert_eq(remat_parse_size(bare[i], &v), REMAT_EINVAL, "'%s' should be rejected",
                     bare[i]);
        cr_assert(strstr(remat_last_error(), bare[i]), "%s", remat_last_error());
        cr_assert(strstr(remat_last_error(), "no unit"), "%s", remat_last_error());
        cr_assert_eq(remat_parse_budget(bare[i], &v, &p, &is_p), REMAT_EINVAL, "%s", bare[i]);
    }
    uint64_t v = 7;
    cr_assert_eq(remat_parse_size("80", &v), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "80B") && strstr(remat_last_error(), "80GB"), "%s",
              remat_last_error());
    cr_assert_eq(remat_parse_size("0", &v), REMAT_OK);
    cr_assert_eq(v, 0);
    /* too large is still reported as too large, unit or not */
    cr_assert_eq(remat_parse_size("18446744073709551616", &v), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "too large"), "%s", remat_last_error());
}

/* An independent oracle: percent x reference / 100 in exact integer arithmetic where it fits,
 * and saturation (never a wrap to a small budget) where it does not. */
Test(size, budget_percentages_saturate_instead_of_wrapping)
{
    cr_assert_eq(remat_budget_of_percent(50, 1000), 500);
    cr_assert_eq(remat_budget_of_percent(100, 7002112), 7002112);
    cr_assert_eq(remat_budget_of_percent(400, 1ull << 40), 4ull << 40);
    cr_assert_eq(remat_budget_of_percent(12.5, 8), 1);
    cr_assert_eq(remat_budget_of_percent(1e24, 7002112), UINT64_MAX);
    cr_assert_eq(remat_budget_of_percent(200, UINT64_MAX), UINT64_MAX);
    cr_assert_eq(remat_budget_of_percent(1e300, 1), UINT64_MAX);
    cr_assert_eq(remat_budget_of_percent(0, 1000), 0);
    cr_assert_eq(remat_budget_of_percent(NAN, 1000), 0);
    /* the largest percentage the parser accepts still gives a huge budget, not 0 */
    uint64_t bytes = 0;
    double p = 0;
    int is_p = 0;
    cr_assert_eq(remat_parse_budget("1000000000000000000000000%", &bytes, &p, &is_p), REMAT_OK);
    cr_assert_eq(is_p, 1);
    cr_assert_eq(remat_budget_of_percent(p, 7002112), UINT64_MAX);
}

Test(size, budgets_accept_percentages)
{
    uint64_t v = 0;
    double p = 0;
    int is_p = -1;
    cr_assert_eq(remat_parse_budget("40%", &v, &p, &is_p), REMAT_OK);
    cr_assert_eq(is_p, 1);
    cr_assert_float_eq(p, 40.0, 1e-12);
    cr_assert_eq(remat_parse_budget("12.5 %", &v, &p, &is_p), REMAT_OK);
    cr_assert_float_eq(p, 12.5, 1e-12);
    cr_assert_eq(remat_parse_budget("2GiB", &v, &p, &is_p), REMAT_OK);
    cr_assert_eq(is_p, 0);
    cr_assert_eq(v, 2147483648ull);
    cr_assert_eq(remat_parse_budget("0%", &v, &p, &is_p), REMAT_EINVAL);
    cr_assert_eq(remat_parse_budget("-3%", &v, &p, &is_p), REMAT_EINVAL);
    cr_assert_eq(remat_parse_budget("%", &v, &p, &is_p), REMAT_EINVAL);
}

/* An independent oracle for the human form: value in the largest binary unit not exceeding it. */
Test(size, format_bytes_round_trips_within_a_percent)
{
    char buf[32];
    cr_assert_str_eq(remat_format_bytes(0, buf, sizeof buf), "0 B");
    cr_assert_str_eq(remat_format_bytes(1023, buf, sizeof buf), "1023 B");
    cr_assert_str_eq(remat_format_bytes(1024, buf, sizeof buf), "1.00 KiB");
    cr_assert_str_eq(remat_format_bytes(1536, buf, sizeof buf), "1.50 KiB");
    cr_assert_str_eq(remat_format_bytes(40265318400ull, buf, sizeof buf), "37.5 GiB");
    cr_assert_str_eq(remat_format_bytes(536870912ull, buf, sizeof buf), "512 MiB");
    uint64_t x = 1;
    for (int i = 0; i < 400; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t bytes = x >> (i % 60);
        remat_format_bytes(bytes, buf, sizeof buf);
        uint64_t back;
        char text[40];
        /* "1.50 KiB" -> "1.50KiB" parses back with remat_parse_size */
        size_t j = 0;
        for (const char *c = buf; *c; c++)
            if (*c != ' ')
                text[j++] = *c;
        text[j] = '\0';
        if (strstr(text, "PiB") || strstr(text, "EiB"))
            continue;
        cr_assert_eq(remat_parse_size(text, &back), REMAT_OK, "%s", text);
        double rel = fabs((double)back - (double)bytes) / (double)(bytes ? bytes : 1);
        cr_assert(rel < 0.01, "%llu -> %s -> %llu", (unsigned long long)bytes, buf,
                  (unsigned long long)back);
    }
}
