/* cli/cmd_info.c: `remat info [--json]`: version, build options, devices and their memory. */
#include "cli/cli.h"

#include <getopt.h>
#include <string.h>

void cmd_info_usage(FILE *f)
{
    fprintf(f, "usage: remat info [--json]\n\n"
               "Prints remat's version, its build options (CUDA on or off) and the devices found\n"
               "with their memory. --json prints one JSON object instead.\n");
}

/* Describes one device for both output forms; returns 0 if it could be opened. */
static int info_device(const char *spec, remat_device_info *out, char *why, size_t n)
{
    remat_device *dev = NULL;
    remat_status s = remat_device_open(spec, &dev);
    if (s != REMAT_OK) {
        snprintf(why, n, "%s", remat_last_error());
        return -1;
    }
    s = remat_device_info_get(dev, out);
    if (s != REMAT_OK)
        snprintf(why, n, "%s", remat_last_error());
    remat_device_close(dev);
    return s == REMAT_OK ? 0 : -1;
}

int cmd_info(int argc, char **argv)
{
    int json = 0;
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else
            return cli_bad_option("info", argv);
    }
    if (optind < argc)
        return cli_usage_error("info", "unexpected argument '%s'", argv[optind]);

    int n_cuda = 0;
    const char *why_none = "";
    (void)!remat_cuda_device_count(&n_cuda, &why_none); /* a failure reads as 0 devices */
    remat_device_info host;
    char why[512];
    int have_host = info_device("host", &host, why, sizeof why) == 0;

    if (json) {
        printf("{\"version\": \"%s\", \"cuda\": %s, \"devices\": [", remat_version(),
               remat_built_with_cuda() ? "true" : "false");
        int first = 1;
        if (have_host) {
            printf("{\"spec\": \"host\", \"name\": ");
            cli_json_string(stdout, host.name);
            printf(", \"total_bytes\": %llu, \"free_bytes\": %llu}",
                   (unsigned long long)host.total_bytes, (unsigned long long)host.free_bytes);
            first = 0;
        }
        for (int i = 0; i < n_cuda; i++) {
            char spec[32];
            remat_device_info d;
            snprintf(spec, sizeof spec, "cuda:%d", i);
            if (info_device(spec, &d, why, sizeof why) != 0)
                continue;
            printf("%s{\"spec\": \"%s\", \"name\": ", first ? "" : ", ", spec);
            cli_json_string(stdout, d.name);
            printf(", \"total_bytes\": %llu, \"free_bytes\": %llu}", (unsigned long long)d.total_bytes,
                   (unsigned long long)d.free_bytes);
            first = 0;
        }
        printf("], \"cuda_devices\": %d, \"cuda_note\": ", n_cuda);
        cli_json_string(stdout, n_cuda ? "" : why_none);
        printf("}\n");
        return EXIT_OK;
    }

    char t[32], f[32];
    printf("remat %s\n", remat_version());
    printf("build: CUDA %s\n", remat_built_with_cuda() ? "on" : "off");
    printf("devices:\n");
    if (have_host)
        printf("  host      %-28s %s total, %s free\n", host.name,
               remat_format_bytes(host.total_bytes, t, sizeof t),
               remat_format_bytes(host.free_bytes, f, sizeof f));
    for (int i = 0; i < n_cuda; i++) {
        char spec[32];
        remat_device_info d;
        snprintf(spec, sizeof spec, "cuda:%d", i);
        if (info_device(spec, &d, why, sizeof why) != 0) {
            printf("  %-9s unusable: %s\n", spec, why);
            continue;
        }
        printf("  %-9s %-28s %s total, %s free\n", spec, d.name,
               remat_format_bytes(d.total_bytes, t, sizeof t), remat_format_bytes(d.free_bytes, f, sizeof f));
    }
    if (n_cuda == 0)
        printf("  cuda      none: %s\n", why_none);
    printf("  sim:SIZE  address space only, any size (e.g. sim:80GB)\n");
    return EXIT_OK;
}
