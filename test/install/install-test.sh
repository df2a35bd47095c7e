#!/bin/sh
# install-test.sh BUILD - the library as a user gets it (part of `make test`):
#   1. `make install` into a staging DESTDIR with PREFIX=/opt/laio; the pkg-config files say so
#   2. a C and a C++ program that include every installed header build with pkg-config alone,
#      link the shared libraries and run
#   3. the shared libraries export exactly what the installed headers declare, versioned (and a
#      program built against the 0.1 structures of laio_stats and rt_stats still gets them)
#   4. every declared function has a man page; every page renders without a warning and names no
#      path of the source tree
#   5. `make CFLAGS=-O1` builds (user flags add to the ones the code needs)
#   6. `make uninstall` removes everything `make install` put there
# Prints one line per check; exits 1 at the first failure.
set -eu
build=$(cd "${1:?usage: install-test.sh BUILD}" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/test/install
work=$(mktemp -d "${TMPDIR:-/tmp}/laio-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=/opt/laio
stage=$work/stage
fail() { printf "install-test: FAIL: %s\n" "$*" >&2; exit 1; }
ok() { printf "install-test: ok: %s\n" "$*"; }
cd "$top"
version=$(sed -n 's/^#define LAIO_VERSION "\(.*\)"/\1/p' laio/laio.h)

# 1. staged install
make -s --no-print-directory install BUILD="$build" DESTDIR="$stage" PREFIX="$prefix" \
	>"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "make install"; }
root=$stage$prefix
for f in include/laio.h include/laio/sa.h include/laio/rt.h include/laio/event.h \
	 lib/liblaio.a lib/liblaio.so "lib/liblaio.so.$version" lib/pkgconfig/laio.pc \
	 lib/liblaio-event.a lib/liblaio-event.so lib/pkgconfig/laio-event.pc \
	 share/man/man3/laio_syscall.3 share/man/man7/laio.7; do
	[ -e "$root/$f" ] || fail "make install did not install $f"
done
[ "$(readlink "$root/lib/liblaio.so")" = liblaio.so.0 ] || fail "liblaio.so -> liblaio.so.0"
soname=$(readelf -d "$root/lib/liblaio.so.$version" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = liblaio.so.0 ] || fail "SONAME is '$soname'"
grep -qx "prefix=$prefix" "$root/lib/pkgconfig/laio.pc" || fail "laio.pc: $(head -n 1 "$root/lib/pkgconfig/laio.pc")"
ok "make install DESTDIR=... PREFIX=$prefix: headers, liblaio.so.$version (SONAME $soname), liblaio-event, laio.pc with prefix=$prefix, man pages"

# 2. programs built with pkg-config alone, against the staged tree
# prefix moved to the staged tree, as a packager's build checks it
export PKG_CONFIG_PATH="$root/lib/pkgconfig"
pc() { pkg-config --define-variable=prefix="$root" "$@"; }
cflags=$(pc --cflags laio) || fail "pkg-config --cflags laio"
libs=$(pc --libs laio) || fail "pkg-config --libs laio"
gcc -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -DVERSION_FROM_MAKEFILE="\"$version\"" \
	$cflags -o "$work/user" "$here/user.c" $libs -pthread || fail "C program: gcc $cflags ... $libs"
ecflags=$(pc --cflags laio-event) && elibs=$(pc --libs laio-event) ||
	fail "pkg-config laio-event"
g++ -std=c++11 -Wall -Wextra -Werror $ecflags -o "$work/user++" "$here/user.cc" $elibs ||
	fail "C++ program: g++ $ecflags ... $elibs"
for h in laio.h laio/sa.h laio/rt.h laio/event.h; do   # each header alone, first in its unit
	printf '#include <%s>\nint main(void) { return 0; }\n' "$h" >"$work/one.c"
	gcc -std=c11 -Wall -Wextra -pedantic -Werror $ecflags -c "$work/one.c" -o "$work/one.o" ||
		fail "<$h> alone in C11"
	cp "$work/one.c" "$work/one.cc"
	g++ -std=c++11 -Wall -Wextra -pedantic -Werror $ecflags -c "$work/one.cc" -o "$work/one.o" ||
		fail "<$h> alone in C++11"
done
LD_LIBRARY_PATH="$root/lib" ldd "$work/user" | grep -q "$root/lib/liblaio.so.0" ||
	fail "the C program did not link the installed liblaio.so.0"
LD_LIBRARY_PATH="$root/lib" LAIO_TRACE=1 "$work/user" >"$work/user.out" 2>"$work/user.err" ||
	{ cat "$work/user.out" "$work/user.err"; fail "the C program failed (exit $?)"; }
LD_LIBRARY_PATH="$root/lib" "$work/user++" >"$work/user++.out" 2>&1 ||
	{ cat "$work/user++.out"; fail "the C++ program failed"; }
ok "C and C++ programs with \`pkg-config --cflags --libs laio\` / laio-event ran: $(tail -n 1 "$work/user.out"); $(cat "$work/user++.out")"
gcc -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror $cflags -o "$work/old_stats" \
	"$here/old_stats.c" $libs -pthread || fail "a program linked to the LAIO_0.1 stats functions"
LD_LIBRARY_PATH="$root/lib" "$work/old_stats" >"$work/old_stats.out" 2>&1 ||
	{ cat "$work/old_stats.out"; fail "laio_stats@LAIO_0.1, rt_stats@LAIO_0.1"; }
ok "$(cat "$work/old_stats.out")"

# 3. exports == the installed headers' functions, each with the library's version
declared() {  # the functions the given headers declare (static inline ones excluded)
	for h in "$@"; do echo "#include <$h>"; done >"$work/decl.c"
	gcc -std=gnu11 $ecflags -fsyntax-only -aux-info "$work/decl.aux" "$work/decl.c"
	grep -F "$root/include/" "$work/decl.aux" | grep -v '\*/ static' |
		sed -e 's|^/\*[^*]*\*/ *||' -e 's/ (.*//' -e 's/.*[ *]//' | sort -u
}
exported() {  # name@@version of each defined dynamic symbol
	nm -D --defined-only "$1" | awk '$2 ~ /^[TtWDdBb]$/ { print $3 }' | sort
}
declared laio.h laio/sa.h laio/rt.h >"$work/api"
exported "$root/lib/liblaio.so" >"$work/exports"
# the two signal-mask functions are interposed on glibc's, unversioned (kernel-shim/sigmask.c)
grep -v '@' "$work/exports" >"$work/unversioned" || true
printf 'pthread_sigmask\nsigprocmask\n' | cmp -s - "$work/unversioned" ||
	fail "unversioned exports: $(tr '\n' ' ' <"$work/unversioned")"
# the functions added or changed after 0.1 are LAIO_0.2 (liblaio.map); the two whose structure
# grew keep their 0.1 form for programs built against it
grep '@' "$work/exports" | grep -v '@@LAIO_0\.[12]$' >"$work/compat" || true
printf 'laio_stats@LAIO_0.1\nrt_stats@LAIO_0.1\n' | cmp -s - "$work/compat" ||
	fail "exports outside LAIO_0.1 and LAIO_0.2: $(tr '\n' ' ' <"$work/compat")"
grep '@@LAIO_0\.2$' "$work/exports" >"$work/v02" || true
printf '%s@@LAIO_0.2\n' laio_in_flight laio_stats laio_syscall_r rt_stats | cmp -s - "$work/v02" ||
	fail "LAIO_0.2 exports: $(tr '\n' ' ' <"$work/v02")"
grep '@' "$work/exports" | sed 's/@.*//' | sort -u >"$work/names"
if ! cmp -s "$work/api" "$work/names"; then
	diff "$work/api" "$work/names" | sed -n 's/^</  declared, not exported:/p; s/^>/  exported, not declared:/p' >&2
	fail "liblaio.so exports differ from <laio.h>, <laio/sa.h>, <laio/rt.h>"
fi
declared laio/event.h >"$work/eall"
comm -13 "$work/api" "$work/eall" >"$work/eapi"
exported "$root/lib/liblaio-event.so" | sed 's/@.*//' >"$work/enames"
cmp -s "$work/eapi" "$work/enames" || fail "liblaio-event.so exports $(tr '\n' ' ' <"$work/enames"), <laio/event.h> declares $(tr '\n' ' ' <"$work/eapi")"
ok "exports: $(wc -l <"$work/names") functions, LAIO_0.1 and LAIO_0.2, exactly those of the headers (+ 2 interposed, unversioned); liblaio-event.so: $(tr '\n' ' ' <"$work/enames")"

# 4. man pages: one per function, each renders without a warning, no source paths
man=$root/share/man
missing=""
for f in $(cat "$work/api" "$work/eapi"); do
	[ -e "$man/man3/$f.3" ] || missing="$missing $f"
done
[ -z "$missing" ] || fail "functions without a man page:$missing"
cd "$man"
pages=0
for p in man3/*.3 man7/*.7; do
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=w -l "$p" 2>&1 >/dev/null) || fail "man -l $p"
	[ -z "$w" ] || fail "man -l $p: $w"
	w=$(groff -s -man -ww -z -Tutf8 "$p" 2>&1) || fail "groff $p"
	[ -z "$w" ] || fail "groff -ww $p: $w"
	if grep -nE '(^|[^a-z<])(docs|kernel-shim|activation|runtime|microbench|macrobench|scripts|test)/' "$p" >"$work/paths"; then
		fail "$p names source paths: $(head -n 3 "$work/paths")"
	fi
	pages=$((pages + 1))
done
cd "$top"
ok "$pages man pages render (man -l, groff -ww) with no warning and no source path; every function has one"

# 5. user CFLAGS
make -s --no-print-directory BUILD="$work/o1" CFLAGS=-O1 "$work/o1/liblaio.so" "$work/o1/liblaio.a" \
	>"$work/o1.log" 2>&1 || { tail -n 20 "$work/o1.log"; fail "make CFLAGS=-O1"; }
ok "make CFLAGS=-O1 builds"

# 6. uninstall leaves nothing
make -s --no-print-directory uninstall BUILD="$build" DESTDIR="$stage" PREFIX="$prefix" >/dev/null 2>&1 ||
	fail "make uninstall"
left=$(find "$stage" -type f -o -type l | sed "s|^$stage||")
[ -z "$left" ] || fail "make uninstall left: $left"
ok "make uninstall removed everything"
