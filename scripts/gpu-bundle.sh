#!/usr/bin/env bash
# scripts/gpu-bundle.sh: builds the GPU binaries into build-gpu/bundle/ with the shared libraries they
# need beside them (rpath $ORIGIN/lib; libcudart is static, cuBLAS is loaded at run time from the
# machine's CUDA), so a GPU machine with none of our Debian packages can run them:
#   (carry build-gpu/bundle)  bash build-gpu/bundle/run.sh
# Rehearse here: without a GPU, run.sh must start and report "no usable GPU" cleanly.
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
# NCCL is loaded at run time (dlopen): ship the toolkit's beside the others
nccl=$(ls "${CUDA_HOME:-/usr/local/cuda}"/lib64/libnccl.so.2 2>/dev/null || true)
[ -n "$nccl" ] && cp -L "$nccl" "$out/lib/"
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs remat's GPU checks from this bundle (see scripts/gpu-check.sh in the repository).
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" && exec bash ./gpu-check.sh "$here"
RUN
chmod +x "$out/run.sh"
du -sh "$out" | awk '{print "bundle: " $2 " (" $1 ")"}'
