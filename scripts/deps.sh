#!/bin/sh
# Install the Debian packages the build, the tests or the benchmarks need, when they are missing.
# As root it runs apt-get itself; otherwise it prints the exact command and fails.
# Usage: scripts/deps.sh build|test|bench
set -eu
need=""
have_hdr() { [ -e "/usr/include/$1" ] || [ -e "/usr/include/x86_64-linux-gnu/$1" ]; }
have_hdr urcu/wfcqueue.h || need="$need liburcu-dev"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
case "${1:-build}" in
test|bench)
	have_hdr criterion/criterion.h || need="$need libcriterion-dev"
	command -v spin >/dev/null 2>&1 || need="$need spin"
	have_hdr event2/event.h || need="$need libevent-dev"
	have_hdr liburing.h || need="$need liburing-dev"   # the web server of make test
	;;
esac
case "${1:-build}" in
bench)
	have_hdr liburing.h || need="$need liburing-dev"
	command -v gnuplot >/dev/null 2>&1 || need="$need gnuplot-nox"
	command -v wrk >/dev/null 2>&1 || need="$need wrk"
	;;
esac
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing$need" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq $need >&2
else
	echo "deps: missing$need; run: sudo apt-get update && sudo apt-get install -y$need" >&2
	exit 1
fi
