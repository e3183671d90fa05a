# MixQ quick start: `make demo` runs the main job, `make test` the whole suite.
# Both install missing Debian packages first (scripts/install-deps.sh).

BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_ARGS ?=
JOBS       ?= $(shell nproc)

.PHONY: all deps configure build test demo bench docs clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -G Ninja -S . -B $(BUILD) \
	  -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	ninja -C $(BUILD) -j $(JOBS)

test: configure
	./scripts/run-tests.sh $(BUILD) $(JOBS)

demo: configure
	ninja -C $(BUILD) -j $(JOBS) mixq-import mixq-opt mixq-run mixq-search
	./scripts/demo.sh $(BUILD)

docs: configure
	ninja -C $(BUILD) mixq-doc

clean:
	rm -rf $(BUILD)
