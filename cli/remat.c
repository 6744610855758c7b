/* cli/remat.c: the `remat` program's entry point. */
#include "cli/cli.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
