# LAIO: Lazy Asynchronous I/O on user-level scheduler activations.
#   make                 build/liblaio.a, build/liblaio.so, headers
#   make test            every Criterion suite and the protocol model
#   make bench           the paper's pipe microbenchmark (bench-quick: a short run)
#   make check-asan      the suites under AddressSanitizer + UBSan
#   make check-tsan      the suites under ThreadSanitizer
#   make install PREFIX=/usr/local DESTDIR=
CC      ?= gcc
BUILD   ?= build
PREFIX  ?= /usr/local
SAN     ?=
OPT     ?= -O2
CFLAGS  ?=
CFLAGS  += -std=gnu11 $(OPT) -g -Wall -Wextra -fPIC -pthread -D_GNU_SOURCE -D_LGPL_SOURCE $(SAN)
LDLIBS  += -pthread
VERSION := 0.1.0

SHIM_SRC := kernel-shim/act.c kernel-shim/claim.c kernel-shim/futex.c kernel-shim/idle.c kernel-shim/move.c \
            kernel-shim/probe.c kernel-shim/sigmask.c kernel-shim/tls.c kernel-shim/upcall.c kernel-shim/vp.c \
            kernel-shim/watchdog.c kernel-shim/trap.S
SA_SRC   := activation/sa.c activation/calls.c
RT_SRC   := $(wildcard runtime/*.c runtime/*.S)
LAIO_SRC := laio/laio.c laio/upcall_handler.c laio/entry.S
LIB_SRC  := $(SHIM_SRC) $(SA_SRC) $(RT_SRC) $(LAIO_SRC)
LIB_OBJ  := $(patsubst %,$(BUILD)/obj/%.o,$(LIB_SRC))
HEADERS  := laio/laio.h laio/laio_event.h activation/sa.h $(wildcard runtime/rt.h)

TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(patsubst test/%.c,$(BUILD)/test/%,$(TEST_SRC))
EXAMPLES := $(patsubst %.c,$(BUILD)/%,$(wildcard docs/examples/*.c))

.PHONY: all deps test-deps check test model check-asan check-tsan install clean bench bench-quick \
        stress examples macrobench macrobench-quick results
all: deps $(BUILD)/liblaio.a $(BUILD)/liblaio.so $(BUILD)/laio.pc

# The libevent adapter is a library of its own, so that liblaio does not depend on libevent.
$(BUILD)/liblaio_event.a: $(BUILD)/obj/laio/laio_event.c.o
	@rm -f $@
	ar rcs $@ $^

deps:
	@sh scripts/deps.sh build
test-deps:
	@sh scripts/deps.sh test

# ThreadSanitizer keeps its thread identity in TLS, and the shim exchanges TLS blocks between
# kernel threads: one kernel thread's stack is then seen under several identities, which TSan
# reports as races on stack slots. The shim is checked by the model and the stress tests; under
# TSan it is built uninstrumented and TSan checks everything above it (docs/reliability.md).
SHIM_NOSAN := $(if $(findstring thread,$(SAN)),-fno-sanitize=thread,)
$(BUILD)/obj/%.c.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(findstring kernel-shim/,$<),$(SHIM_NOSAN),) -c $< -o $@
$(BUILD)/obj/%.S.o: %.S kernel-shim/ks-offsets.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/liblaio.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/liblaio.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,liblaio.so.0 $(SAN) -o $@ $^ $(LDLIBS)
$(BUILD)/laio.pc: Makefile
	@mkdir -p $(BUILD)
	@printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: laio\nDescription: Lazy Asynchronous I/O on user-level scheduler activations\nVersion: %s\nLibs: -L$${libdir} -llaio\nLibs.private: -pthread\nCflags: -I$${includedir}\n' \
		'$(PREFIX)' '$(VERSION)' > $@

# Tests link the static library so that every layer's internals are reachable.
$(BUILD)/test/%: test/%.c test/test-util.h $(BUILD)/liblaio.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ilaio -Iactivation -Iruntime -o $@ $< $(BUILD)/liblaio.a \
		$$(pkg-config --cflags --libs criterion) $(LDLIBS)
$(BUILD)/test/test_event: test/test_event.c test/test-util.h $(BUILD)/liblaio_event.a $(BUILD)/liblaio.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ilaio -o $@ $< $(BUILD)/liblaio_event.a $(BUILD)/liblaio.a \
		$$(pkg-config --cflags --libs criterion libevent) $(LDLIBS)
$(BUILD)/docs/examples/%: docs/examples/%.c $(BUILD)/liblaio.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ilaio -Iruntime -o $@ $< $(BUILD)/liblaio.a $(LDLIBS)
examples: $(EXAMPLES)

check: test
test: test-deps all $(TEST_BIN) $(EXAMPLES)
	@if [ -f macrobench/Makefile ]; then $(MAKE) --no-print-directory -C macrobench all BUILD=$(abspath $(BUILD)); fi
	@sh test/run-suites.sh $(BUILD) $(TEST_BIN)
	@$(MAKE) --no-print-directory model

model:
	@if [ -f test/model/run.sh ]; then bash test/model/run.sh; else echo "model: test/model/run.sh missing"; exit 1; fi

check-asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		OPT=-O1 test-sanitized
check-tsan:
	$(MAKE) BUILD=build-tsan SAN="-fsanitize=thread" OPT=-O1 test-sanitized
test-sanitized: test-deps all $(TEST_BIN) $(EXAMPLES)
	@if [ -f macrobench/Makefile ]; then $(MAKE) --no-print-directory -C macrobench all BUILD=$(abspath $(BUILD)) SAN="$(SAN)"; fi
	@LAIO_SANITIZED=1 TSAN_OPTIONS="suppressions=$(CURDIR)/test/tsan.supp $(TSAN_OPTIONS)" \
		sh test/run-suites.sh $(BUILD) $(TEST_BIN)

stress: all
	$(MAKE) -C test/stress BUILD=$(abspath $(BUILD))

bench bench-quick: all
	@sh scripts/deps.sh bench
	$(MAKE) -C microbench $@ BUILD=$(abspath $(BUILD))

# docs/results.md's tables, from the CSVs the last `make bench` and `make macrobench` wrote
results:
	sh scripts/results-tables.sh $(BUILD) --update docs/results.md

macrobench macrobench-quick: all
	@sh scripts/deps.sh bench
	$(MAKE) -C macrobench $@ BUILD=$(abspath $(BUILD))

install: all $(BUILD)/liblaio_event.a
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
		$(DESTDIR)$(PREFIX)/share/man/man3 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 644 laio/laio.h laio/laio_event.h activation/sa.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/liblaio_event.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(BUILD)/liblaio.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/liblaio.so $(DESTDIR)$(PREFIX)/lib/liblaio.so.0
	ln -sf liblaio.so.0 $(DESTDIR)$(PREFIX)/lib/liblaio.so
	install -m 644 $(BUILD)/laio.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	for m in docs/man/*.3 docs/man/*.7; do [ ! -e "$$m" ] || \
		install -m 644 "$$m" $(DESTDIR)$(PREFIX)/share/man/man$${m##*.}/; done

clean:
	rm -rf build build-asan build-tsan
