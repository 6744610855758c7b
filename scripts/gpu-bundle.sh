#!/usr/bin/env bash
# scripts/gpu-bundle.sh: builds the GPU binaries into build-gpu/bundle/ with the shared libraries they
# need beside them (rpath $ORIGIN/lib; libcudart is static, cuBLAS is loaded at run time from the
# machine's CUDA), so a GPU machine with none of our Debian packages can run them:
#   (carry build-gpu/bundle)  bash build-gpu/bundle/run.sh
# Rehearse here: without a GPU, run.sh must start and report "no usable GPU" cleanly.
# The device tool carries at most 64 MiB, so the binaries are stripped of debug information and the
# bundle is also packed as build-gpu/bundle.tar.xz (about 10 MB) to carry instead:
#   tar xJf build-gpu/bundle.tar.xz -C /tmp && bash /tmp/bundle/run.sh
# NCCL (218 MB) is not shipped: run.sh loads the GPU machine's own (its CUDA toolkit's, or the
# nvidia-nccl wheel beside its PyTorch), and likewise finds that machine's cuBLAS.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-gpu/bundle
make -j2 --no-print-directory BUILD=build-gpu REMAT_CUDA=1 \
    EXTRA_LDFLAGS="-Wl,-rpath,'\$\$ORIGIN/lib:\$\$ORIGIN/../lib'" cli benches >/dev/null
rm -rf "$out"
mkdir -p "$out/lib" "$out/gpu" "$out/bench"
cp build-gpu/remat "$out/"
cp build-gpu/gpu/gpu_* "$out/gpu/" 2>/dev/null || true
cp build-gpu/bench/bench_* "$out/bench/" 2>/dev/null || true
cp scripts/gpu-check.sh scripts/gpu-nccl.sh "$out/"
# every non-glibc shared library the binaries load
for b in "$out"/remat "$out"/gpu/* "$out"/bench/*; do
    [ -f "$b" ] || continue
    ldd "$b" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' | while read -r lib; do
    cp -L "$lib" "$out/lib/"
done
strip --strip-debug "$out"/remat "$out"/gpu/* "$out"/bench/* 2>/dev/null || true
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs remat's GPU checks from this bundle (see scripts/gpu-check.sh in the repository). cuBLAS and
# NCCL are loaded at run time from this machine: its CUDA toolkit, or the nvidia-* wheels of its
# python3 (PyTorch's), whichever has them.
here=$(cd "$(dirname "$0")" && pwd)
dirs=""
for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" \
         $(python3 -c 'import os, nvidia; p = list(nvidia.__path__)[0]; print(" ".join(os.path.join(p, n, "lib") for n in ("cublas", "nccl", "cuda_runtime")))' 2>/dev/null); do
    [ -d "$d" ] && dirs="$dirs${dirs:+:}$d"
done
export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -z "${REMAT_NCCL_LIBRARY:-}" ]; then
    for d in ${dirs//:/ }; do
        [ -f "$d/libnccl.so.2" ] && export REMAT_NCCL_LIBRARY="$d/libnccl.so.2" && break
    done
fi
echo "run.sh: libraries from ${dirs:-nowhere}; NCCL ${REMAT_NCCL_LIBRARY:-not found}"
cd "$here" && exec bash ./gpu-check.sh "$here"
RUN
chmod +x "$out/run.sh"
du -sh "$out" | awk '{print "bundle: " $2 " (" $1 ")"}'
tar -C build-gpu -cJf build-gpu/bundle.tar.xz bundle
du -sh build-gpu/bundle.tar.xz | awk '{print "to carry: " $2 " (" $1 ")"}'
