# remat: one library (build/libremat.a, build/libremat.so), one CLI (build/remat), tests, benchmarks.
# `make` builds everything; `make test` runs the Criterion tests; `make help` lists the targets.

BUILD     ?= build
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
DOCDIR    ?= $(PREFIX)/share/doc/remat
NVCC      ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
REMAT_CUDA ?= $(if $(NVCC),1,0)
SANITIZE  ?=

CC  ?= gcc
CXX ?= g++
OPT ?= -O2
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(or $(shell pkg-config --libs openblas 2>/dev/null),-lopenblas)

CPPFLAGS += -Iinclude -I. $(BLAS_CFLAGS) -D_GNU_SOURCE
WERROR   ?= -Werror
CFLAGS   += -std=c11 $(OPT) -g -fPIC -fopenmp -Wall -Wextra $(WERROR) -MMD -MP $(SANITIZE)
CXXFLAGS += -std=c++17 $(OPT) -g -fPIC -Wall -Wextra $(WERROR) -MMD -MP $(SANITIZE)
# Only what include/remat.h marks REMAT_API is visible outside the library; everything else is hidden.
CFLAGS   += -fvisibility=hidden
CXXFLAGS += -fvisibility=hidden
LDFLAGS  += -fopenmp $(SANITIZE) $(EXTRA_LDFLAGS)
LDLIBS   := -lcjson -ljemalloc $(BLAS_LIBS) -lm -lpthread -ldl

# libxsmm (Debian libxsmm-dev: a static archive, linked into libremat) gives the CPU bf16 GEMM on
# AVX512-BF16; REMAT_LIBXSMM=0, or no <libxsmm.h>, builds without it (the sgemm path only).
REMAT_LIBXSMM ?= $(shell echo '\#include <libxsmm.h>' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1 || echo 0)
ifeq ($(REMAT_LIBXSMM),1)
CPPFLAGS += -DREMAT_HAVE_LIBXSMM
LDLIBS   := -lxsmm $(LDLIBS) -lrt
endif

# The version lives in include/remat.h only; libremat.so.MAJOR is the SONAME.
remat_version_part = $(shell sed -n 's/^\#define REMAT_VERSION_$(1) \([0-9]*\)$$/\1/p' include/remat.h)
VERSION_MAJOR := $(call remat_version_part,MAJOR)
VERSION := $(VERSION_MAJOR).$(call remat_version_part,MINOR).$(call remat_version_part,PATCH)

# What remat.pc tells a user to link besides libremat: dependencies that pkg-config knows go to
# Requires.private (their own private libraries follow with --static), the rest to Libs.private.
PC_DEPS     := $(foreach m,libcjson jemalloc openblas $(if $(filter 1,$(REMAT_LIBXSMM)),libxsmm),$(if $(shell pkg-config --exists $(m) && echo y),$(m)))
PC_NOPC     := $(if $(filter libcjson,$(PC_DEPS)),,-lcjson) $(if $(filter jemalloc,$(PC_DEPS)),,-ljemalloc) \
               $(if $(filter openblas,$(PC_DEPS)),,-lopenblas)
PC_SYS      := -lgomp -lm -lpthread -ldl

# MPI (data parallel over processes): on when Open MPI's pkg-config file is there; REMAT_MPI=0
# builds without it (remat_comm is then one rank, and a launch under mpirun is refused clearly).
REMAT_MPI ?= $(if $(shell pkg-config --exists ompi-c && echo y),1,0)
ifeq ($(REMAT_MPI),1)
CPPFLAGS += -DREMAT_HAVE_MPI $(shell pkg-config --cflags ompi-c)
LDLIBS   += $(shell pkg-config --libs ompi-c)
PC_DEPS  += ompi-c
MPI_TEST_BIN := $(patsubst tests/mpi/%.c,$(BUILD)/mpi/%,$(wildcard tests/mpi/*.c))
endif

ifeq ($(REMAT_CUDA),1)
# -fmad=false: kernels/math.h rounds on the GPU as on the CPU (no multiply-add contraction; the
# CPU build targets baseline x86-64, which has no FMA), so where a CUDA kernel takes the CPU
# kernel's order of operations the two agree bit for bit (gpu/gpu_bf16 checks it).
CPPFLAGS += -DREMAT_HAVE_CUDA -I$(CUDA_HOME)/include
NVFLAGS  := -O3 -std=c++17 -fmad=false -Iinclude -I. -DREMAT_HAVE_CUDA -Xcompiler -fPIC -Xcompiler -Wall \
            -Xcompiler -fvisibility=hidden \
            -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
            -gencode arch=compute_90,code=compute_90
LDLIBS   += -L$(CUDA_HOME)/lib64 -lcudart_static -lrt -lstdc++
PC_SYS   += -L$(CUDA_HOME)/lib64 -lcudart_static -lrt -lstdc++
CUDA_SRC := $(wildcard kernels/cuda/*.cu)
endif

LIB_SRC  := $(wildcard core/*.c alloc/*.c checkpoint/*.c comm/*.c kernels/*.c kernels/cpu/*.c model/*.c \
                       fit/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(CUDA_SRC:%.cu=$(BUILD)/obj/%.cu.o)
CLI_SRC  := $(wildcard cli/*.c)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
CLI_LIB_OBJ := $(filter-out $(BUILD)/obj/cli/main.o,$(CLI_OBJ))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
# Tests by kind: tests/unit/ (the library through its API), tests/cli/ (the remat command),
# tests/mpi/ (under mpirun), tests/fuzz/, tests/tsan/, tests/link/; helpers in tests/common/.
# Every Criterion binary lands in $(BUILD)/tests/.
TEST_UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
TEST_CLI_BIN := $(patsubst tests/cli/%.c,$(BUILD)/tests/%,$(wildcard tests/cli/test_*.c))
TEST_BIN := $(TEST_UNIT_BIN) $(TEST_CLI_BIN)
TEST_HELPER_SRC := $(wildcard tests/common/*.c)
TEST_HELPER_OBJ := $(TEST_HELPER_SRC:%.c=$(BUILD)/obj/%.o)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
BENCH_SHIM := $(BUILD)/obj/bench/shim.o
GPU_SRC  := $(wildcard bench/gpu_*.c)
GPU_BIN  := $(GPU_SRC:bench/%.c=$(BUILD)/gpu/%)
EX_SRC   := $(wildcard examples/*.c)
LINK_BIN := $(BUILD)/link/clash
EX_BIN   := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)

# LIB_A and LIB_SO are what users link: only the REMAT_API names of include/remat.h are global in
# them. LIB_INT holds the same objects with their internal names still linkable, for the in-tree
# programs (CLI, tests, benchmarks) that use module headers; examples link LIB_A like a user.
LIB_A   := $(BUILD)/libremat.a
LIB_SO  := $(BUILD)/libremat.so
SONAME  := libremat.so.$(VERSION_MAJOR)
LIB_SO_FILE := $(BUILD)/libremat.so.$(VERSION)
LIB_INT := $(BUILD)/obj/libremat-internal.a
CLI    := $(BUILD)/remat

.PHONY: gpu-bundle fuzz fuzzers deps all lib cli tests benches examples test bench run asan tsan gpu-check install clean format help soak
.DEFAULT_GOAL := all
.SECONDARY:

all: lib cli tests benches examples
lib: $(LIB_A) $(LIB_SO)
cli: $(CLI)
tests: $(TEST_BIN) $(LINK_BIN) $(LIB_SO) $(MPI_TEST_BIN)
benches: $(BENCH_BIN) $(GPU_BIN)
examples: $(EX_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

$(LIB_INT): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# The user's archive: one relocatable object (ld -r) in which every symbol that is not REMAT_API is
# made local, so a trainer's own chain_validate or gpt_model_create cannot clash with ours.
$(LIB_A): $(LIB_OBJ) libremat.map
	@mkdir -p $(@D)
	ld -r -o $(BUILD)/obj/libremat-all.o $(LIB_OBJ)
	sed -n 's/^REMAT_API .*[ *]\(remat_[a-z_0-9]*\)(.*/\1/p' include/remat.h > $(BUILD)/obj/libremat.syms
	objcopy --localize-hidden --keep-global-symbols=$(BUILD)/obj/libremat.syms \
	    $(BUILD)/obj/libremat-all.o $(BUILD)/obj/libremat-api.o
	rm -f $@ && ar rcs $@ $(BUILD)/obj/libremat-api.o

# The version script keeps the static cudart (and anything else linked in) out of the exports.
# libremat.so.MAJOR.MINOR.PATCH is the file, libremat.so.MAJOR (the SONAME) and libremat.so link to it.
$(LIB_SO_FILE): $(LIB_OBJ) libremat.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=libremat.map -o $@ $(LIB_OBJ) \
	    $(LDFLAGS) $(LDLIBS)

$(LIB_SO): $(LIB_SO_FILE)
	ln -sf $(notdir $(LIB_SO_FILE)) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(CLI): $(CLI_OBJ) $(LIB_INT)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB_INT) $(LDLIBS)

# Tests find the CLI through REMAT_BIN (set by `make test`), defaulting to build/remat.
$(TEST_UNIT_BIN): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_HELPER_OBJ) $(LIB_INT)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_HELPER_OBJ) $(LIB_INT) -lcriterion $(LDLIBS)

$(TEST_CLI_BIN): $(BUILD)/tests/%: $(BUILD)/obj/tests/cli/%.o $(TEST_HELPER_OBJ) $(LIB_INT)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_HELPER_OBJ) $(LIB_INT) -lcriterion $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BENCH_SHIM) $(LIB_INT)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $< $(BENCH_SHIM) $(LIB_INT) -lbenchmark $(LDLIBS)

# GPU checks (bench/gpu_*.c): plain C programs run by `make gpu-check` on a machine with a GPU.
$(BUILD)/gpu/%: $(BUILD)/obj/bench/%.o $(LIB_INT)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_INT) $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

# tests/link/*.c: programs linked against the user's archive as a trainer would (run by test_link).
$(BUILD)/link/%: $(BUILD)/obj/tests/link/%.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

# Multi-process tests (tests/mpi/*.c): plain C programs that scripts/run-tests.sh runs under mpirun.
$(BUILD)/mpi/%: $(BUILD)/obj/tests/mpi/%.o $(LIB_INT)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_INT) $(LDLIBS)

# libFuzzer targets (clang): tests/fuzz/fuzz_*.c, linked with the library and the CLI (less main).
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(CLI_LIB_OBJ) $(LIB_INT)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(CLI_LIB_OBJ) $(LIB_INT) $(LDLIBS)

fuzzers: $(FUZZ_BIN)

# ---- running ----------------------------------------------------------------------------------

# CRITERION_JOBS: Criterion forks one worker per core by default; tests that time or spawn the CLI
# stay correct either way.
# test and run first install what the build needs (scripts/deps.sh is quiet when nothing is missing).
deps:
	@bash scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory tests cli examples lib
	@scripts/run-tests.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory benches cli
	@scripts/run-bench.sh $(BUILD)

run: deps
	@$(MAKE) --no-print-directory cli
	@scripts/run-main.sh $(BUILD)

soak: tests
	REMAT_SOAK=1 $(BUILD)/tests/test_pool --filter 'soak/*'

# ASan + UBSan build of everything in build-asan/, then the whole test suite under it.
# One Criterion worker at a time: with two, Criterion 2.4.1's runner itself (not a test) leaks a
# 48-byte calloc now and then, which LeakSanitizer reports in the runner and fails the binary
# (seen on test_bad_inputs: 4 runs of 4 with --jobs 2, 0 of 3 with --jobs 1).
asan:
	CRITERION_JOBS=1 $(MAKE) BUILD=build-asan REMAT_CUDA=0 OPT=-O1 \
	  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

# ThreadSanitizer build in build-tsan/ (gcc), running tests/tsan/tsan_pool (threads on one pool).
tsan: deps
	@$(MAKE) --no-print-directory BUILD=build-tsan REMAT_CUDA=0 OPT=-O1 \
	  SANITIZE="-fsanitize=thread -fno-omit-frame-pointer" build-tsan/tsan/tsan_pool
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tsan/tsan_pool

# TSan programs (tests/tsan/*.c): plain C, since Criterion cannot start under TSan.
$(BUILD)/tsan/%: $(BUILD)/obj/tests/tsan/%.o $(LIB_INT)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_INT) $(LDLIBS)

# Fuzz every target for FUZZ_SECONDS each (clang, ASan+UBSan, build-fuzz/); seeds in tests/corpus/.
FUZZ_SECONDS ?= 30
fuzz: deps
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang CXX=clang++ REMAT_CUDA=0 OPT=-O1 WERROR= \
	  SANITIZE="-fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer" fuzzers
	@scripts/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

gpu-bundle:
	@scripts/gpu-bundle.sh

gpu-check: cli benches
	@scripts/gpu-check.sh $(BUILD)

# Installs the header, the archive, the versioned shared library with its two links, the CLI,
# remat.pc and the user documentation (docs/*.md, the README) under $(DOCDIR).
install: lib cli
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(DOCDIR)
	install -m 644 include/remat.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_SO_FILE) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(LIB_SO_FILE)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libremat.so
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES_PRIVATE@|$(PC_DEPS)|' -e 's|@LIBS_PRIVATE@|$(strip $(PC_NOPC) $(PC_SYS))|' \
	    -e 's|@STATIC_DEPS@|$(strip $(if $(PC_DEPS),$(shell pkg-config --libs $(PC_DEPS))) $(PC_NOPC) $(PC_SYS))|' \
	    remat.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/remat.pc

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cc' '*.cu')

clean:
	rm -rf build build-asan build-tsan build-gpu build-fuzz build-nocuda

help:
	@echo "make [all]        library, CLI, tests, benchmarks, examples (REMAT_CUDA=0: no CUDA)"
	@echo "make test         Criterion tests"
	@echo "make bench        every benchmark suite, with ratios against in-run baselines"
	@echo "make run          the main job"
	@echo "make asan         ASan+UBSan build and test run (build-asan/)"
	@echo "make tsan         ThreadSanitizer build and the pool's thread test (build-tsan/)"
	@echo "make gpu-check    GPU tests and benchmarks (needs a GPU)"
	@echo "make install PREFIX=/usr/local [LIBDIR=...]  (scripts/check-install.sh checks it)"
	@echo "make format | clean"

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
