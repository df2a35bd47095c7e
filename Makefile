# LAIO: Lazy Asynchronous I/O on user-level scheduler activations. `make help` lists the targets.
CC      ?= gcc
BUILD   ?= build
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
SAN     ?=
OPT     ?= -O2
# User CFLAGS/LDFLAGS replace the defaults; the flags the code needs are added to them.
CFLAGS  ?= $(OPT) -g
override CFLAGS += -std=gnu11 -Wall -Wextra -fPIC -pthread -D_GNU_SOURCE -D_LGPL_SOURCE $(SAN)
LDLIBS  += -pthread
# One version: the one laio.h declares.
VERSION := $(shell sed -n 's/^\#define LAIO_VERSION "\(.*\)"/\1/p' laio/laio.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
HAVE_LIBEVENT := $(shell pkg-config --exists libevent 2>/dev/null && echo yes)

# the shim's files, bottom layer first (kernel-shim/ks.h; scripts/layers.sh checks the order)
SHIM_SRC := kernel-shim/ctx.S kernel-shim/futex.c kernel-shim/counters.c kernel-shim/tls.c \
            kernel-shim/sigmask.c kernel-shim/cgroup_find.c kernel-shim/cgroup.c \
            kernel-shim/confirm.c kernel-shim/act.c \
            kernel-shim/vp.c kernel-shim/complete.c kernel-shim/deliver.c \
            kernel-shim/claim.c kernel-shim/lost.c kernel-shim/cancel.c kernel-shim/hold.c \
            kernel-shim/move.c kernel-shim/kick.c kernel-shim/probe.c kernel-shim/watchdog.c \
            kernel-shim/upcall.c kernel-shim/vpgroup.c kernel-shim/idle.c kernel-shim/detect.c \
            kernel-shim/trap.S kernel-shim/signals.c kernel-shim/entry.c
SA_SRC   := activation/sa.c activation/calls.c activation/limits.c
TRACE_SRC := trace/trace.c
RT_SRC   := $(wildcard runtime/*.c runtime/*.S)
LAIO_SRC := laio/laio.c laio/state.c laio/upcall_handler.c laio/entry.S
LIB_SRC  := $(SHIM_SRC) $(SA_SRC) $(TRACE_SRC) $(RT_SRC) $(LAIO_SRC)
LIB_OBJ  := $(patsubst %,$(BUILD)/obj/%.o,$(LIB_SRC))

TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(patsubst test/%.c,$(BUILD)/test/%,$(TEST_SRC))
EXAMPLES := $(patsubst %.c,$(BUILD)/%,$(wildcard docs/examples/*.c))

EVENT_LIBS := $(BUILD)/liblaio-event.a $(BUILD)/liblaio-event.so $(BUILD)/laio-event.pc
SONAME   := liblaio.so.$(SOMAJOR)

.PHONY: install-check valgrind-event all help deps deps-check test-deps bench-deps macrobench-deps timeline-deps check test model check-asan check-tsan install uninstall \
        clean bench bench-quick stress examples macrobench macrobench-quick results pc timeline FORCE
# `make` builds; it never installs packages (`make deps` does, as root): deps-check says what is
# missing and fails.
all: deps-check $(BUILD)/liblaio.a $(BUILD)/liblaio.so $(BUILD)/laio.pc $(if $(HAVE_LIBEVENT),$(EVENT_LIBS))

help:
	@echo 'make                 build/liblaio.a, build/liblaio.so (and the libevent adapter when'
	@echo '                     libevent is installed): never installs packages'
	@echo 'make deps            install the Debian packages the build needs (as root)'
	@echo 'make test            every Criterion suite, the examples, the install check, the'
	@echo '                     output check of the benchmarks and scripts, the model'
	@echo 'make bench           the paper'"'"'s pipe microbenchmark pinned and unpinned, the notice pinned,'
	@echo '                     unpinned and on a busy machine, false alarms; every figure beside'
	@echo '                     its bar at the end (< 3 min; bench-quick: ~30 s)'
	@echo 'make macrobench      the paper'"'"'s web-server experiment, pinned (~19 min; macrobench-quick ~3 min)'
	@echo 'make check-asan      the suites under AddressSanitizer and UBSan'
	@echo 'make check-tsan      the suites under ThreadSanitizer'
	@echo 'make model           the Spin models of the hand-off protocol and the idle standby'
	@echo 'make stress          the long race stress (10 million calls per detector)'
	@echo 'make examples        build the programs of docs/examples'
	@echo 'make timeline        a PNG of a trace file: TRACE=f.json [OUT=f.png] [FROM=ms TO=ms]'
	@echo '                     (a window; docs/tracing.md)'
	@echo 'make results         the tables of docs/results.md from the last benchmark CSVs'
	@echo 'make install         PREFIX=/usr/local DESTDIR= LIBDIR=$$(PREFIX)/lib INCLUDEDIR= MANDIR='
	@echo 'make uninstall       the same variables; removes what install put there, and the'
	@echo '                     directories it created; install runs ldconfig (LDCONFIG=) when the'
	@echo '                     dynamic linker searches LIBDIR'
	@echo 'make clean           remove build, build-asan, build-tsan'
	@echo 'Variables: CFLAGS, LDFLAGS (added to what the build needs), BUILD=dir, CC'

deps:
	@sh scripts/deps.sh build
deps-check:
	@sh scripts/deps.sh --check build
test-deps:
	@sh scripts/deps.sh test
bench-deps macrobench-deps timeline-deps:
	@sh scripts/deps.sh $(@:-deps=)

# ThreadSanitizer keeps its thread identity in TLS, and the shim exchanges TLS blocks between
# kernel threads: one kernel thread's stack is then seen under several identities, which TSan
# reports as races on stack slots. The shim is checked by the model and the stress tests; under
# TSan it is built uninstrumented and TSan checks everything above it (docs/reliability.md).
SHIM_NOSAN := $(if $(findstring thread,$(SAN)),-fno-sanitize=thread,)
# Only what the installed headers declare leaves the library (liblaio.map names it and gives it
# a version): a program's own function of the same name as an internal one is not called.
$(BUILD)/obj/%.c.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fvisibility=hidden $(if $(findstring kernel-shim/,$<),$(SHIM_NOSAN),) -c $< -o $@
# the system call names of traces, from the kernel's table of this machine
$(BUILD)/gen/syscall-names.h: scripts/syscall-names.sh
	@mkdir -p $(dir $@)
	sh scripts/syscall-names.sh > $@
$(BUILD)/obj/trace/trace.c.o: $(BUILD)/gen/syscall-names.h
$(BUILD)/obj/trace/trace.c.o: override CFLAGS += -I$(BUILD)/gen
$(BUILD)/obj/%.S.o: %.S kernel-shim/ks-offsets.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/liblaio.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/liblaio.so.$(VERSION): $(LIB_OBJ) liblaio.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=liblaio.map -Wl,-z,defs $(SAN) \
		$(LDFLAGS) -o $@ $(LIB_OBJ) $(LDLIBS)
$(BUILD)/liblaio.so: $(BUILD)/liblaio.so.$(VERSION)
	ln -sf liblaio.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

# The libevent adapter is a library of its own, so that liblaio does not depend on libevent.
$(BUILD)/liblaio-event.a: $(BUILD)/obj/laio/laio_event.c.o
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/liblaio-event.so.$(VERSION): $(BUILD)/obj/laio/laio_event.c.o liblaio-event.map $(BUILD)/liblaio.so
	$(CC) -shared -Wl,-soname,liblaio-event.so.$(SOMAJOR) -Wl,--version-script=liblaio-event.map \
		$(SAN) $(LDFLAGS) -o $@ $< -L$(BUILD) -llaio $$(pkg-config --libs libevent) $(LDLIBS)
$(BUILD)/liblaio-event.so: $(BUILD)/liblaio-event.so.$(VERSION)
	ln -sf liblaio-event.so.$(VERSION) $(BUILD)/liblaio-event.so.$(SOMAJOR)
	ln -sf liblaio-event.so.$(SOMAJOR) $@

# pkg-config files, written from PREFIX, LIBDIR and INCLUDEDIR at every make and make install.
# sa.h includes liburcu's wait-free queue, hence liburcu in Requires.private (its Cflags).
PC_LIBDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
$(BUILD)/laio.pc: FORCE
	@mkdir -p $(BUILD)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(PC_LIBDIR)' 'includedir=$(PC_INCDIR)' '' \
		'Name: laio' 'Description: Lazy Asynchronous I/O on user-level scheduler activations' \
		'Version: $(VERSION)' 'Requires.private: liburcu' 'Libs: -L$${libdir} -llaio' \
		'Libs.private: -pthread' 'Cflags: -I$${includedir}' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@
$(BUILD)/laio-event.pc: FORCE
	@mkdir -p $(BUILD)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(PC_LIBDIR)' 'includedir=$(PC_INCDIR)' '' \
		'Name: laio-event' 'Description: libevent adapter for LAIO completions' \
		'Version: $(VERSION)' 'Requires: laio libevent' 'Libs: -L$${libdir} -llaio-event' \
		'Cflags: -I$${includedir}' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@
pc: $(BUILD)/laio.pc $(if $(HAVE_LIBEVENT),$(BUILD)/laio-event.pc)
FORCE:

# Tests link the static library so that every layer's internals are reachable.
$(BUILD)/test/%: test/%.c test/test-util.h $(BUILD)/liblaio.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ilaio -Iactivation -Iruntime -o $@ $< $(BUILD)/liblaio.a \
		$$(pkg-config --cflags --libs criterion) $(LDLIBS)
$(BUILD)/test/test_movedfd $(BUILD)/test/test_movedcalls: test/movedfd-util.h
$(BUILD)/test/test_event: test/test_event.c test/test-util.h $(BUILD)/liblaio-event.a $(BUILD)/liblaio.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ilaio -o $@ $< $(BUILD)/liblaio-event.a $(BUILD)/liblaio.a \
		$$(pkg-config --cflags --libs criterion libevent) $(LDLIBS)
$(BUILD)/docs/examples/%: docs/examples/%.c $(BUILD)/liblaio.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ilaio -Iruntime -Iactivation -o $@ $< $(BUILD)/liblaio.a $(LDLIBS)
examples: $(EXAMPLES)

check: test
test: test-deps all $(TEST_BIN) $(EXAMPLES)
	@sh scripts/layers.sh $(BUILD) $(SHIM_SRC) >$(BUILD)/layers.txt && \
		echo "layers: kernel-shim/ calls one way ($(BUILD)/layers.txt)"
	@if [ -f macrobench/Makefile ]; then $(MAKE) --no-print-directory -C macrobench all BUILD=$(abspath $(BUILD)); fi
	@sh test/run-suites.sh $(BUILD) $(TEST_BIN)
	@$(MAKE) --no-print-directory valgrind-event
	@sh test/install/install-test.sh $(BUILD)
	@sh test/tools/tools-test.sh $(BUILD)
	@$(MAKE) --no-print-directory model

# The libevent adapter frees its context from inside its own callbacks: its suite runs under
# valgrind too, which reports a read of freed memory even where the freed bytes still look right.
# A memcheck error in any of the suite's processes fails the step (test/valgrind-suite.sh).
valgrind-event: $(BUILD)/test/test_event
	@if command -v valgrind >/dev/null; then \
		sh test/valgrind-suite.sh $(BUILD) $(BUILD)/test/test_event; \
	else echo "valgrind-event: valgrind is not installed: skipped (make test-deps)"; fi

# A PNG of a timeline (docs/tracing.md): make timeline TRACE=f.json [OUT=f.png] [FROM=ms] [TO=ms];
# without TRACE, the paper's example is run and drawn into $(BUILD)/laio_paper_timeline.png.
# FROM and TO: a window, in ms since the trace's first event.
timeline: timeline-deps $(if $(TRACE),,$(BUILD)/docs/examples/laio_paper)
	@if [ -n "$(TRACE)" ]; then \
		sh scripts/timeline.sh "$(TRACE)" "$(or $(OUT),$(basename $(TRACE)).png)" "$(notdir $(TRACE))" \
			"$(FROM)" "$(TO)"; \
	else \
		LAIO_TRACE_FILE=$(BUILD)/laio_paper.json $(BUILD)/docs/examples/laio_paper >/dev/null && \
		sh scripts/timeline.sh $(BUILD)/laio_paper.json $(or $(OUT),$(BUILD)/laio_paper_timeline.png) \
			"docs/examples/laio_paper.c: LAIO_TRACE_FILE timeline" "$(FROM)" "$(TO)"; \
	fi

model:
	@if [ -f test/model/run.sh ]; then bash test/model/run.sh; else echo "model: test/model/run.sh missing"; exit 1; fi

check-asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		OPT=-O1 test-sanitized
check-tsan:
	$(MAKE) BUILD=build-tsan SAN="-fsanitize=thread" OPT=-O1 test-sanitized
# ThreadSanitizer sleeps 1 s (atexit_sleep_ms) before a process with threads still alive exits, so
# that a race of those threads with the exit is seen; every Criterion test is such a process (the
# spares and standbys live on), and the sleeps made half of check-tsan's time. The spares and
# standbys are parked on futexes by then: 100 ms still lets any of them that would run into the
# exit do so. TSAN_OPTIONS given to make come after and win.
TSAN_EXIT_SLEEP := atexit_sleep_ms=100
test-sanitized: test-deps all $(TEST_BIN) $(EXAMPLES)
	@if [ -f macrobench/Makefile ]; then $(MAKE) --no-print-directory -C macrobench all BUILD=$(abspath $(BUILD)) SAN="$(SAN)"; fi
	@sh scripts/tsan-supp.sh $(BUILD) $(SHIM_SRC) >$(BUILD)/tsan.supp
	@LAIO_SANITIZED=1 TSAN_OPTIONS="suppressions=$(CURDIR)/$(BUILD)/tsan.supp $(TSAN_EXIT_SLEEP) $(TSAN_OPTIONS)" \
		sh test/run-suites.sh $(BUILD) $(TEST_BIN)

stress: all
	$(MAKE) -C test/stress BUILD=$(abspath $(BUILD))

# Each installs what it needs first (prerequisites run left to right), then builds.
bench bench-quick: bench-deps all
	@$(MAKE) --no-print-directory -C microbench $@ BUILD=$(abspath $(BUILD))

# docs/results.md's tables, from the CSVs the last `make bench` and `make macrobench` wrote
results:
	sh scripts/results-tables.sh $(BUILD) --update docs/results.md

macrobench macrobench-quick: macrobench-deps all
	$(MAKE) -C macrobench $@ BUILD=$(abspath $(BUILD))

# What is installed is the contract: <laio.h>, <laio/sa.h>, <laio/rt.h>, <laio/event.h>.
INC_INSTALL := laio/laio.h:laio.h activation/sa.h:laio/sa.h runtime/rt.h:laio/rt.h \
               $(if $(HAVE_LIBEVENT),laio/laio_event.h:laio/event.h)
MAN_PAGES   := $(wildcard docs/man/*.3 docs/man/*.7)
INSTALL_DIRS := $(INCLUDEDIR)/laio $(LIBDIR)/pkgconfig $(MANDIR)/man3 $(MANDIR)/man7
# The directories install created, so that uninstall removes those and no others.
INSTALL_RECORD := $(INCLUDEDIR)/laio/.installed-dirs
LDCONFIG ?= ldconfig
# Said first, before anything is built: without permission, install -d's own message is misleading.
install-check:
	@sh scripts/install-dirs.sh check $(addprefix $(DESTDIR),$(INSTALL_DIRS))
install: install-check all pc
	sh scripts/install-dirs.sh create "$(DESTDIR)" $(INSTALL_RECORD) $(INSTALL_DIRS)
	for h in $(INC_INSTALL); do install -m 644 "$${h%%:*}" "$(DESTDIR)$(INCLUDEDIR)/$${h#*:}"; done
	install -m 644 $(BUILD)/liblaio.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/liblaio.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf liblaio.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/liblaio.so
	install -m 644 $(BUILD)/laio.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
ifeq ($(HAVE_LIBEVENT),yes)
	install -m 644 $(BUILD)/liblaio-event.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/liblaio-event.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf liblaio-event.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblaio-event.so.$(SOMAJOR)
	ln -sf liblaio-event.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/liblaio-event.so
	install -m 644 $(BUILD)/laio-event.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
endif
	for m in $(MAN_PAGES); do install -m 644 "$$m" "$(DESTDIR)$(MANDIR)/man$${m##*.}/"; done
	$(if $(DESTDIR),,@sh scripts/install-dirs.sh ldconfig $(LDCONFIG) $(LIBDIR))

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/laio.h $(DESTDIR)$(INCLUDEDIR)/laio/sa.h \
		$(DESTDIR)$(INCLUDEDIR)/laio/rt.h $(DESTDIR)$(INCLUDEDIR)/laio/event.h
	rm -f $(addprefix $(DESTDIR)$(LIBDIR)/,liblaio.a liblaio.so liblaio.so.$(SOMAJOR) \
		liblaio.so.$(VERSION) liblaio-event.a liblaio-event.so liblaio-event.so.$(SOMAJOR) \
		liblaio-event.so.$(VERSION) pkgconfig/laio.pc pkgconfig/laio-event.pc)
	rm -f $(foreach m,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	sh scripts/install-dirs.sh remove "$(DESTDIR)" $(INSTALL_RECORD)
	-rmdir $(DESTDIR)$(INCLUDEDIR)/laio 2>/dev/null

clean:
	rm -rf build build-asan build-tsan
