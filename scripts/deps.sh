#!/bin/sh
# The Debian packages each target needs. Installs the missing ones when run as root (apt-get);
# otherwise prints the exact command and fails. With --check it never installs: it says what is
# missing and fails (what `make` does: only `make deps`, `make test`, `make bench` and
# `make macrobench` install packages).
# Usage: scripts/deps.sh [--check] build|test|bench|macrobench|timeline
set -eu
check=no
if [ "${1:-}" = --check ]; then check=yes; shift; fi
target=${1:-build}
need=""
have_hdr() { [ -e "/usr/include/$1" ] || [ -e "/usr/include/x86_64-linux-gnu/$1" ]; }
have_cmd() { command -v "$1" >/dev/null 2>&1; }
# the library: liburcu's wait-free queue, pkg-config for the build's own lookups
have_hdr urcu/wfcqueue.h || need="$need liburcu-dev"
have_cmd pkg-config || need="$need pkg-config"
case $target in
test)
	have_hdr criterion/criterion.h || need="$need libcriterion-dev"
	have_cmd spin || need="$need spin"                     # the protocol models
	have_hdr event2/event.h || need="$need libevent-dev"   # the libevent adapter's suite
	have_cmd valgrind || need="$need valgrind"             # ... run under valgrind too
	have_hdr liburing.h || need="$need liburing-dev"       # the web server's suite
	have_cmd g++ || need="$need g++"                       # the installed headers from C++
	have_cmd groff || need="$need groff-base"              # the man page check
	have_cmd man || need="$need man-db"
	have_cmd gnuplot || need="$need gnuplot-nox"           # the timeline picture's check
	;;
bench)
	have_hdr liburing.h || need="$need liburing-dev"       # the io_uring variant
	have_cmd gnuplot || need="$need gnuplot-nox"           # the plot
	;;
macrobench)
	have_hdr liburing.h || need="$need liburing-dev"
	have_cmd gnuplot || need="$need gnuplot-nox"
	have_cmd wrk || need="$need wrk"                       # the load generator's reference
	have_cmd nginx || need="$need nginx-light"             # the server people run instead
	;;
timeline)
	have_cmd gnuplot || need="$need gnuplot-nox"
	;;
build) ;;
*) echo "deps: unknown target '$target'" >&2; exit 2 ;;
esac
[ -z "$need" ] && exit 0
if [ "$check" = yes ]; then
	echo "deps: missing$need; \`make deps\` (as root) installs them, or run:" >&2
	echo "      sudo apt-get update && sudo apt-get install -y$need" >&2
	exit 1
fi
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing$need" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq $need >&2
else
	echo "deps: missing$need; run: sudo apt-get update && sudo apt-get install -y$need" >&2
	exit 1
fi
