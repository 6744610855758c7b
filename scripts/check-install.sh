#!/usr/bin/env bash
# scripts/check-install.sh: installs remat into a temporary prefix and builds and runs the README's
# example (examples/hello_pool.c) against it through pkg-config, as a user would, in the three ways
# remat.pc documents: the shared line (rpath, no LD_LIBRARY_PATH), `--static`, and the archive by
# path (the binary never loads libremat.so); then once more with only libremat.a installed.
# REMAT_CUDA=0 scripts/check-install.sh does the same for a CPU-only build (in build-nocuda/), whose
# remat.pc, library and binaries must not ask for cudart or libstdc++.
set -euo pipefail
# (grep without -q below: under pipefail, grep -q exiting at its first match can kill the writer
# with SIGPIPE and fail the pipeline now and then)
cd "$(dirname "$0")/.."
cuda=${REMAT_CUDA:-}
build=${BUILD:-$([ "$cuda" = 0 ] && echo build-nocuda || echo build)}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() {
    echo "check-install: $*" >&2
    exit 1
}
args=(BUILD="$build" PREFIX="$prefix")
[ -n "$cuda" ] && args+=(REMAT_CUDA="$cuda")
make --no-print-directory -j2 "${args[@]}" install >/dev/null
unset LD_LIBRARY_PATH
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
lib=$prefix/lib
version=$(pkg-config --modversion remat)
src=examples/hello_pool.c

# What was installed: the versioned library, its SONAME link and dev link, header, CLI, docs.
[ "$(readlink "$lib/libremat.so")" = libremat.so.0 ] || fail "libremat.so is not a link to libremat.so.0"
[ "$(readlink "$lib/libremat.so.0")" = "libremat.so.$version" ] || fail "libremat.so.0 is not a link to libremat.so.$version"
readelf -d "$lib/libremat.so.$version" | grep 'Library soname: \[libremat.so.0\]' >/dev/null || fail "SONAME is not libremat.so.0"
[ -f "$prefix/include/remat.h" ] || fail "no include/remat.h"
[ -f "$prefix/share/doc/remat/contracts.md" ] || fail "no share/doc/remat/contracts.md"
[ "$("$prefix/bin/remat" --version)" = "remat $version" ] || fail "bin/remat --version is not remat $version"

run() { # NAME: runs the built example, which must print its one line
    "$prefix/$1" | grep '^hello_pool: 9 allocations' >/dev/null || fail "$1 did not run as expected"
}
loads_libremat() { ldd "$prefix/$1" | grep "libremat.so.0 => $lib/libremat.so.0" >/dev/null; }

# 1. shared: pkg-config's rpath finds libremat.so.0
cc -o "$prefix/hello_shared" $src $(pkg-config --cflags --libs remat)
loads_libremat hello_shared || fail "hello_shared does not load $lib/libremat.so.0"
run hello_shared
# 2. pkg-config --static: the shared line plus every private dependency
cc -o "$prefix/hello_pc_static" $src $(pkg-config --cflags remat) $(pkg-config --static --libs remat)
run hello_pc_static
# 3. the archive by path (static_libs): no libremat.so at run time
cc -o "$prefix/hello_static" $src $(pkg-config --cflags remat) $(pkg-config --variable=static_libs remat)
loads_libremat hello_static && fail "hello_static loads libremat.so"
run hello_static

if [ "$cuda" = 0 ]; then
    # A CPU-only build asks for neither cudart nor libstdc++: not in remat.pc, not NEEDED by the
    # library or the binaries (ldd may still show libstdc++ when a dependency such as jemalloc
    # itself needs it, so the check is on what remat asks for) and no cudart loaded at all.
    pc="$(pkg-config --static --libs remat) $(pkg-config --variable=static_libs remat)"
    if grep -Eq 'cudart|stdc\+\+|cuda' <<<"$pc"; then fail "CPU-only remat.pc asks for CUDA or libstdc++: $pc"; fi
    for f in "$lib/libremat.so.$version" "$prefix/hello_shared" "$prefix/hello_pc_static" "$prefix/hello_static"; do
        if readelf -d "$f" | grep -E 'NEEDED.*(cudart|stdc\+\+)'; then fail "$f needs cudart or libstdc++"; fi
        if ldd "$f" | grep cudart >/dev/null; then fail "$f loads cudart"; fi
    done
fi

# 4. only the archive installed: `pkg-config --static --libs` alone links it
rm "$lib"/libremat.so*
cc -o "$prefix/hello_only_a" $src $(pkg-config --cflags remat) $(pkg-config --static --libs remat)
loads_libremat hello_only_a && fail "hello_only_a loads libremat.so"
run hello_only_a
echo "check-install: remat $version${cuda:+ (REMAT_CUDA=$cuda)}: shared (rpath), --static, archive by path and archive-only links built and ran"
