#!/bin/sh
# The directory work of `make install` and `make uninstall`:
#   install-dirs.sh check DIR...          fail, saying why, if DIR cannot be created or written
#   install-dirs.sh create DESTDIR RECORD DIR...
#                                         create DESTDIR/DIR for each DIR; append to DESTDIR/RECORD
#                                         the DIRs that did not exist (so that uninstall removes
#                                         only those), as paths without DESTDIR, which a staged tree
#                                         does not keep
#   install-dirs.sh remove DESTDIR RECORD remove the directories DESTDIR/RECORD names once they
#                                         are empty, deepest first, then RECORD
#   install-dirs.sh ldconfig LDCONFIG LIBDIR
#                                         refresh the dynamic linker's cache if it searches LIBDIR,
#                                         else say what a program needs to find the library there
set -eu

# The nearest existing directory at or above $1.
existing() {
	d=$1
	while [ ! -d "$d" ]; do
		d=$(dirname "$d")
	done
	printf '%s\n' "$d"
}

check() {
	for dir in "$@"; do
		top=$(existing "$dir")
		[ -w "$top" ] && [ -x "$top" ] && continue
		if [ "$top" = "$dir" ]; then what="cannot write to $dir"
		else what="cannot create $dir: $top is not writable"; fi
		printf 'make install: %s by %s (permission denied).\n' "$what" "$(id -un)" >&2
		printf 'Install as root (sudo make install), or into a PREFIX of your own, e.g. make install PREFIX=$HOME/.local (README.md says what a program then needs).\n' >&2
		exit 1
	done
}

create() {
	dest=$1
	record=$dest$2
	shift 2
	made=""
	for dir in "$@"; do
		new=""
		d=$dir
		while [ "$d" != / ] && [ ! -d "$dest$d" ]; do
			new="$d
$new"
			d=$(dirname "$d")
		done
		mkdir -p "$dest$dir"
		made="$made$new"
	done
	printf '%s' "$made" | sed '/^$/d' >>"$record"
	sort -u -o "$record" "$record"
}

remove() {
	dest=$1
	record=$dest$2
	[ -f "$record" ] || return 0
	# deepest first: a parent is empty only once its children are gone
	dirs=$(awk '{ print gsub("/", "/"), $0 }' "$record" | sort -rn | cut -d' ' -f2-)
	rm -f "$record"
	printf '%s\n' "$dirs" | while IFS= read -r d; do
		[ -n "$d" ] && rmdir "$dest$d" 2>/dev/null || true
	done
}

refresh() {
	ldconfig=$1
	libdir=$(cd "$2" && pwd -P)
	searched=$("$ldconfig" -v -N 2>/dev/null | sed -n 's/^\([^	][^:]*\):.*/\1/p') || searched=""
	for d in $searched; do
		if [ -d "$d" ] && [ "$(cd "$d" && pwd -P)" = "$libdir" ]; then
			"$ldconfig"
			return
		fi
	done
	printf 'make install: %s is not searched by the dynamic linker: build programs with\n' "$2"
	printf '  PKG_CONFIG_PATH=%s/pkgconfig and -Wl,-rpath,%s (or run them with LD_LIBRARY_PATH=%s)\n' \
		"$2" "$2" "$2"
}

cmd=${1:?usage: install-dirs.sh check|create|remove|ldconfig ...}
shift
case $cmd in
check) check "$@" ;;
create) create "$@" ;;
remove) remove "$@" ;;
ldconfig) refresh "$@" ;;
*) echo "install-dirs.sh: unknown command $cmd" >&2; exit 2 ;;
esac
