#!/bin/sh
# install-test.sh BUILD - the library as a user gets it (part of `make test`):
#   1. `make install` into a staging DESTDIR with PREFIX=/opt/laio; the pkg-config files say so;
#      without permission, install says so before it builds anything
#   2. a C and a C++ program that include every installed header build with pkg-config alone,
#      link the shared libraries and run; each header alone compiles in C99, C11 and C++11
#      with -pedantic
#   3. the shared libraries export exactly what the installed headers declare, versioned (and a
#      program built against the 0.1 structures of laio_stats and rt_stats still gets them)
#   4. every declared function has a man page; every page renders without a warning and names no
#      path of the source tree; laio(7) and laio_init(3) name every detector and laio(7) every
#      environment variable the library accepts; the default detector is described in laio(7)
#      alone
#   5. `make CFLAGS=-O1` builds (user flags add to the ones the code needs)
#   6. `make uninstall` removes everything `make install` put there, and the directories it
#      created, but not one that was there before
#   7. without DESTDIR, install runs ldconfig when the dynamic linker searches LIBDIR, and says
#      what a program needs otherwise
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

# 1. staged install; an empty directory that was there before must survive uninstall (6)
mkdir -p "$stage$prefix/share/man/man3"
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

# without permission: the cause, before anything is built (root has every permission: nobody)
mkdir "$work/ro"
chmod 755 "$work" "$work/ro"
asuser=""
if [ "$(id -u)" = 0 ]; then
	asuser="setpriv --reuid=65534 --regid=65534 --clear-groups"
else
	chmod 555 "$work/ro"
fi
if $asuser make -s --no-print-directory install BUILD="$build" DESTDIR="$work/ro" PREFIX="$prefix" \
	>"$work/ro.log" 2>&1; then
	fail "make install into a directory without write permission succeeded"
fi
grep -q 'permission denied' "$work/ro.log" && grep -q 'PREFIX=' "$work/ro.log" ||
	{ cat "$work/ro.log"; fail "make install without permission did not say why"; }
ok "make install without permission: $(head -n 1 "$work/ro.log" | sed "s|$work|\$work|g")"

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
	for std in c99 c11; do
		gcc -std=$std -Wall -Wextra -pedantic -Werror $ecflags -c "$work/one.c" -o "$work/one.o" ||
			fail "<$h> alone in $std -pedantic"
	done
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
ok "each header alone: gcc -std=c99 and -std=c11 -pedantic, g++ -std=c++11 -pedantic, no warning"
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
# the functions added or changed after 0.1 are LAIO_0.2 (liblaio.map); the four whose structure
# grew keep their 0.1 form for programs built against it
grep '@' "$work/exports" | grep -v '@@LAIO_0\.[12]$' >"$work/compat" || true
printf '%s@LAIO_0.1\n' laio_init laio_stats rt_init_config rt_stats | sort | cmp -s - "$work/compat" ||
	fail "exports outside LAIO_0.1 and LAIO_0.2: $(tr '\n' ' ' <"$work/compat")"
grep '@@LAIO_0\.2$' "$work/exports" >"$work/v02" || true
printf '%s@@LAIO_0.2\n' laio_in_flight laio_init laio_stats laio_syscall_r rt_init_config \
	rt_stats sa_cgroup sa_set_cgroup | sort | cmp -s - "$work/v02" ||
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

# the facts the code decides: the detectors' names (the one table of them) and the environment
# variables (every name the library passes to getenv or its two wrappers)
lib_sources() {
	find kernel-shim activation runtime laio trace -maxdepth 1 -name '*.c' 2>/dev/null
}
detectors=$(lib_sources | xargs grep -h 'names\[\] *= *{ *"auto"' | sed 's/.*{\(.*\)}.*/\1/' |
	tr -d '"' | tr ',' ' ')
[ -n "$detectors" ] || fail "the table of detector names was not found in the library's sources"
envs=$(lib_sources | xargs grep -ohE '(getenv|laio_env_long|sa_trace_env_on)\("[A-Z0-9_]+"' |
	sed 's/.*("\(.*\)"/\1/' | sort -u)
[ -n "$envs" ] || fail "no environment variable found in the library's sources"
render() { LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$man/$1" 2>/dev/null | col -bx; }
section() {  # the text of section $2 (a heading in column 0) or subsection (column 3) of page $1
	render "$1" | awk -v h="$2" '
		$0 == h || $0 == "   " h { on = 1; next }
		on && /^[^ ]/ { exit }
		on && /^   [^ ]/ { exit }
		on { print }'
}
entry() {  # the paragraph of tag $3 in section $2 of page $1
	section "$1" "$2" | awk -v t="$3" '
		$1 == t { on = 1; next }
		on && /^       [^ ]/ { exit }
		on { print }'
}
check_names() {  # every word after the first two in file $2 (described as $1)
	what=$1 text=$2
	shift 2
	[ -s "$text" ] || fail "$what: not found"
	for n in "$@"; do
		grep -qw -- "$n" "$text" || fail "$what does not name $n"
	done
}
section man7/laio.7 Detectors >"$work/detectors7"
check_names "laio(7), Detectors" "$work/detectors7" $detectors
entry man7/laio.7 ENVIRONMENT LAIO_DETECTOR >"$work/envdet7"
check_names "laio(7), ENVIRONMENT, LAIO_DETECTOR" "$work/envdet7" $detectors
entry man3/laio_init.3 ENVIRONMENT LAIO_DETECTOR >"$work/envdet3"
check_names "laio_init(3), ENVIRONMENT, LAIO_DETECTOR" "$work/envdet3" $detectors
section man7/laio.7 ENVIRONMENT >"$work/env7"
check_names "laio(7), ENVIRONMENT" "$work/env7" $envs
# the default is described once, in laio(7); the pages that name it point there
for p in man3/laio_init.3 man3/laio_syscall.3 man3/sa_set_detector.3 man3/sa_syscall.3 man3/rt_init.3; do
	render "$p" | tr -s ' \n' '  ' | grep -q 'Detectors in laio(7)' ||
		fail "$p does not refer to laio(7)'s Detectors for the default"
done
ok "laio(7) and laio_init(3) name every detector ($(echo $detectors)); laio(7) every environment variable ($(echo $envs)); 5 pages refer to laio(7) for the default"

# 5. user CFLAGS
make -s --no-print-directory BUILD="$work/o1" CFLAGS=-O1 "$work/o1/liblaio.so" "$work/o1/liblaio.a" \
	>"$work/o1.log" 2>&1 || { tail -n 20 "$work/o1.log"; fail "make CFLAGS=-O1"; }
ok "make CFLAGS=-O1 builds"

# 6. uninstall leaves nothing but the directories that were there before
make -s --no-print-directory uninstall BUILD="$build" DESTDIR="$stage" PREFIX="$prefix" >/dev/null 2>&1 ||
	fail "make uninstall"
left=$(find "$stage" -mindepth 1 | sed "s|^$stage||" | grep -vxF -e /opt -e "$prefix" -e "$prefix/share" \
	-e "$prefix/share/man" -e "$prefix/share/man/man3") || true
[ -z "$left" ] || fail "make uninstall left: $left"
[ -d "$stage$prefix/share/man/man3" ] || fail "make uninstall removed $prefix/share/man/man3, which was there before"
ok "make uninstall removed every file and every directory install created (kept share/man/man3, there before)"

# 7. ldconfig: a stand-in that lists one directory as searched and logs being run
sys=$work/sys
printf '#!/bin/sh\nif [ "$*" = "-v -N" ]; then printf "%%s: (from test)\\n" "%s"; exit 0; fi\necho "ran $*" >>"%s"\n' \
	"$sys/lib" "$work/ldconfig.log" >"$work/ldconfig"
chmod +x "$work/ldconfig"
mkdir -p "$sys/lib"
make -s --no-print-directory install BUILD="$build" PREFIX="$sys" LDCONFIG="$work/ldconfig" \
	>"$work/sys.log" 2>&1 || { cat "$work/sys.log"; fail "make install PREFIX=$sys"; }
[ -s "$work/ldconfig.log" ] || fail "make install into a directory the dynamic linker searches did not run ldconfig"
make -s --no-print-directory uninstall BUILD="$build" PREFIX="$sys" >/dev/null 2>&1 || fail "make uninstall PREFIX=$sys"
rm -f "$work/ldconfig.log"
other=$work/other
make -s --no-print-directory install BUILD="$build" PREFIX="$other" LDCONFIG="$work/ldconfig" \
	>"$work/other.log" 2>&1 || { cat "$work/other.log"; fail "make install PREFIX=$other"; }
[ -e "$work/ldconfig.log" ] && fail "make install ran ldconfig for $other/lib, which is not searched"
grep -q 'LD_LIBRARY_PATH' "$work/other.log" ||
	{ cat "$work/other.log"; fail "make install PREFIX=$other did not say what a program needs"; }
make -s --no-print-directory uninstall BUILD="$build" PREFIX="$other" >/dev/null 2>&1 ||
	fail "make uninstall PREFIX=$other"
[ ! -e "$other" ] || fail "make uninstall PREFIX=$other left $(find "$other" | head -n 3)"
ok "install runs ldconfig for a LIBDIR the dynamic linker searches; for another, it says PKG_CONFIG_PATH, rpath or LD_LIBRARY_PATH"
