#!/usr/bin/env bash
# scripts/check-install.sh: installs remat into a temporary prefix and builds and runs the README's
# example against it through pkg-config, as a user would.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
make --no-print-directory install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# static: the archive itself, then the private libraries pkg-config lists for it
cc -o "$prefix/hello_pool" examples/hello_pool.c $(pkg-config --cflags remat) "$prefix/lib/libremat.a" \
    $(pkg-config --libs --static remat | sed "s/-lremat\b//")
"$prefix/hello_pool"
cc -o "$prefix/hello_pool_so" examples/hello_pool.c $(pkg-config --cflags --libs remat) -Wl,-rpath,"$prefix/lib"
"$prefix/hello_pool_so"
echo "check-install: static and shared links through pkg-config work"
