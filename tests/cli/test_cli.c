/* tests/cli/test_cli.c: the CLI's help, unknown commands and options, info, exit codes. */
#include "tests/common/cli_run.h"

#include <criterion/criterion.h>
#include <string.h>

Test(cli, no_arguments_is_usage_exit_2)
{
    cli_result r;
    cli_run(&r, "%s", "");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "usage"));
}

Test(cli, help_lists_commands_exit_0)
{
    cli_result r;
    cli_run(&r, "--help");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "info"));
    cli_run(&r, "info --help");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "usage: remat info"));
}

Test(cli, unknown_command_and_option_exit_2_naming_them)
{
    cli_result r;
    cli_run(&r, "frobnicate");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "frobnicate"));
    cli_run(&r, "info --bogus");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "--bogus"), "%s", r.err);
    cli_run(&r, "info extra");
    cr_assert_eq(r.code, 2);
}

Test(cli, info_reports_version_build_and_host)
{
    cli_result r;
    cli_run(&r, "info");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "remat 0."));
    cr_assert(strstr(r.out, "host"));
    cr_assert(strstr(r.out, "CUDA"));
    cli_run(&r, "info --json");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "\"version\""));
    cr_assert(strstr(r.out, "\"devices\": [{\"spec\": \"host\""));
    cr_assert(strstr(r.out, "\"total_bytes\""));
}
