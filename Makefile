# valuestream: `make demo` runs the engine end to end on an embedded broker, `make test` runs
# the whole test suite. Both install missing Debian packages first, configure and build.

BUILD      ?= build
ASAN_BUILD ?= build-asan
CLANG_BUILD ?= build-clang
RELEASE_BUILD ?= build-release
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
DEBS = build-essential cmake pkg-config librdkafka-dev libavro-dev librocksdb-dev \
       libopenblas-dev libuv1-dev libgsl-dev libcmocka-dev python3 python3-confluent-kafka \
       python3-avro

.PHONY: all build configure deps demo test bench sanitize clang release clean

all: build

# Install the Debian packages that are missing: as root with apt-get, else with sudo when it
# needs no password, else print the exact command and stop.
deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "valuestream: installing missing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "valuestream: cannot install packages (not root, no sudo). Run:"; \
	    echo "  sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

configure: $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

demo: deps
	@$(MAKE) --no-print-directory build
	./$(BUILD)/valuestream demo

test: deps
	@$(MAKE) --no-print-directory build
	ctest --test-dir $(BUILD) --output-on-failure -j 2

# The test suite once more, built with AddressSanitizer and UndefinedBehaviorSanitizer.
sanitize: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVS_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir $(ASAN_BUILD) --output-on-failure -j 2 -LE slow

# The whole tree built with clang, whose warnings (-Wall -Wextra -Werror) differ from gcc's.
clang: DEBS += clang
clang: deps
	CC=clang CXX=clang++ cmake -S . -B $(CLANG_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(CLANG_BUILD) -j $(JOBS)

# The whole tree built as CMake's Release (-O3), whose inlining gives gcc's warnings other paths.
release: deps
	cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(RELEASE_BUILD) -j $(JOBS)

bench: deps
	@$(MAKE) --no-print-directory build
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(CLANG_BUILD) $(RELEASE_BUILD)
