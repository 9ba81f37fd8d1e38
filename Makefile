# disa: one non-recursive Makefile. `make help` lists the targets.
#
# Knobs (echoed below): CFLAGS, BUILD (output folder), NATIVE=1 (-march=native),
# BLAS_LIBS, NP (ranks for the demo).

BUILD     ?= build
CC        ?= cc
CFLAGS    ?= -O2 -g
NATIVE    ?= 0
NP        ?= $(shell nproc 2>/dev/null || echo 2)
PYTHON    ?= /usr/bin/python3

ifeq ($(CC),cc)
CC := gcc
endif
ifeq ($(NATIVE),1)
CFLAGS += -march=native
endif

WARN      := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
# pkg-config and mpicc are asked only when they exist, so `make help` and `make deps`
# work on a machine where the dependencies are not installed yet.
PKGS      := libpng libcjson
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
MPI_CFLAGS = $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   = $(shell mpicc --showme:link 2>/dev/null)
BLAS_LIBS ?= -lopenblas
CMOCKA_LIBS ?= -lcmocka
LIBZIP_LIBS ?= -lzip

CPPFLAGS  += -Iinclude -Itests/parity -D_GNU_SOURCE $(PKG_CFLAGS)
DEPFLAGS   = -MMD -MP
LDLIBS    += $(PKG_LIBS) $(BLAS_LIBS) $(MPI_LIBS) -lz -lm -lpthread

LIB       := $(BUILD)/lib/libdisa.a
LIB_SRC   := $(filter-out src/cli/disa-%.c,$(wildcard src/*/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
BIN_SRC   := $(wildcard src/cli/disa-*.c)
BINS      := $(BIN_SRC:src/cli/%.c=$(BUILD)/bin/%)
PARITY_SRC:= $(wildcard tests/parity/*.c)
PARITY_OBJ:= $(PARITY_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELP := $(filter-out tests/unit/test_%.c,$(wildcard tests/unit/*.c))
UNIT_HOBJ := $(UNIT_HELP:%.c=$(BUILD)/obj/%.o)
# Fuzz targets (tests/fuzz): built with libFuzzer by `make fuzz` (build-fuzz/), and as one
# corpus replay test with every build, so corpus files found once keep running.
FUZZ_SRC  := $(wildcard tests/fuzz/*.c)
FUZZ_OBJ  := $(FUZZ_SRC:%.c=$(BUILD)/obj/%.o)
FUZZ_REPLAY := $(BUILD)/tests/test_fuzz_replay
FUZZ_SECONDS ?= 60

$(info disa: BUILD=$(BUILD) CC=$(CC) CFLAGS=$(CFLAGS) NATIVE=$(NATIVE) BLAS_LIBS=$(BLAS_LIBS))

.SECONDARY:
.PHONY: all help deps deps-cluster deps-tools test test-unit test-parity test-e2e asan debug demo bench goldens clean fuzz
.DEFAULT_GOAL := all

all: $(LIB) $(BINS) $(UNIT_BINS) $(FUZZ_REPLAY)

help:
	@echo "make            build $(BUILD)/lib/libdisa.a, $(BUILD)/bin/*, unit tests"
	@echo "make deps       install the Debian packages (apt-get as root, else print the line)"
	@echo "make deps-cluster  the packages of the cluster tests: slurm-wlm, munge, iproute2 (same rules)"
	@echo "make deps-tools the packages of tools/ and the converter tests: python3-torch, numpy, scipy"
	@echo "make test       deps + build + unit, parity and end-to-end tests; ends 'N passed, N failed'"
	@echo "make test-unit | test-parity | test-e2e   one part of the suite"
	@echo "make demo       the main job on the embedded default model"
	@echo "make bench      speed measurements (never part of make test)"
	@echo "make asan       build in build-asan/ with AddressSanitizer + UBSan and run unit + parity tests"
	@echo "make debug      build in build-debug/ with -O0 -g"
	@echo "make fuzz       libFuzzer targets in build-fuzz/ (clang), FUZZ_SECONDS=$(FUZZ_SECONDS) each"
	@echo "make goldens    regenerate tests/golden/*.safetensors with PyTorch (needs python3-torch)"
	@echo "make clean      remove build folders"
	@echo "knobs: CFLAGS='-O2 -g' NATIVE=1 BUILD=dir BLAS_LIBS=-lopenblas NP=ranks"

deps:
	@sh tools/deps.sh

# The one-machine SLURM cluster and network-namespace hosts of tests/e2e/cluster_*.sh
# (tests/cluster/). Not needed to build; without it those tests SKIP and say why.
deps-cluster:
	@sh tools/deps-cluster.sh

# PyTorch for tools/ and the converter tests (tests/e2e/converters.sh SKIPs without it).
deps-tools:
	@sh tools/deps.sh tools

# The element-wise kernels (include/disa/vec.h) are written lane-wise for the vectoriser;
# GCC's default -O2 cost model ("very cheap") leaves loops with a remainder scalar.
VEC_OBJ   := $(addprefix $(BUILD)/obj/src/,nn/act.o nn/norm.o core/bf16.o core/blas.o model/mar.o model/diffloss.o \
             model/xar.o nn/flownn.o model/flowar.o model/flowhead.o)
$(VEC_OBJ): CFLAGS += -fvect-cost-model=dynamic

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(DEPFLAGS) -c $< -o $@

# Only src/mpi sees <mpi.h>: everything else of a run can be tested in one process, and
# an include of it elsewhere fails to build.
$(BUILD)/obj/src/mpi/%.o: CPPFLAGS += $(MPI_CFLAGS)

# The build id (git describe) goes into run.json; record.o is rebuilt when HEAD moves
# (git-dir: .git is a file in a worktree).
BUILD_ID := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
GIT_DIR   := $(shell git rev-parse --git-dir 2>/dev/null)
$(BUILD)/obj/src/run/record.o: CPPFLAGS += -DDISA_BUILD_ID='"$(BUILD_ID)"'
$(BUILD)/obj/src/run/record.o: $(wildcard $(GIT_DIR)/HEAD $(GIT_DIR)/index)

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/disa-parity: $(BUILD)/obj/src/cli/disa-parity.o $(PARITY_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/%: $(BUILD)/obj/src/cli/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBZIP_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(UNIT_HOBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LIBZIP_LIBS) $(LDLIBS)

$(BUILD)/obj/tests/fuzz/%.o: CPPFLAGS += -DFUZZ_REPLAY
$(FUZZ_REPLAY): $(FUZZ_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LIBZIP_LIBS) $(LDLIBS)

fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh

test: deps
	@sh tools/deps-cluster.sh || echo "deps-cluster: not installed; tests/e2e/cluster_*.sh will SKIP"
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tests/run.sh all

test-unit test-parity test-e2e: all
	@BUILD=$(BUILD) sh tests/run.sh $(@:test-%=%)

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" all
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  sh tests/run.sh unit parity

debug:
	@$(MAKE) --no-print-directory BUILD=build-debug CFLAGS="-O0 -g" all

demo: deps
	@$(MAKE) --no-print-directory all
	@NP=$(NP) BUILD=$(BUILD) sh tools/demo.sh

bench: all
	@BUILD=$(BUILD) sh tools/bench.sh

goldens:
	@for f in tools/golden/*.py; do echo "$(PYTHON) $$f"; $(PYTHON) $$f || exit 1; done

clean:
	rm -rf build build-asan build-debug

-include $(LIB_OBJ:.o=.d) $(PARITY_OBJ:.o=.d) $(BIN_SRC:src/cli/%.c=$(BUILD)/obj/src/cli/%.d) $(UNIT_SRC:tests/unit/%.c=$(BUILD)/obj/tests/unit/%.d) $(FUZZ_OBJ:.o=.d)
