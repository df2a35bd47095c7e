#!/usr/bin/env bash
# test/model/run.sh - model-check the handoff protocol (docs/protocol.md) with Spin.
#
# Runs the correct model exhaustively (safety: assertions and invalid end states; liveness:
# ltl p3 with weak fairness), then every deliberately broken variant and every variant that
# reproduces a defect found in the protocol text or the code, each of which must report a
# violation. Works in a temporary directory; leaves nothing in the tree.
# Exit 0 when everything is as expected, 1 otherwise. JOBS=n runs n checks at once (default 2).
set -u

here=$(cd "$(dirname "$0")" && pwd)
jobs=${JOBS:-2}

for tool in spin gcc; do
	command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/handoff-model.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# check NAME EXPECT MODE [spin -D options...]
#   EXPECT: ok (no error, search complete) or violation (at least one error)
#   MODE:   safety (assertions, invalid end states) or ltl (ltl p3, acceptance cycles, -f)
# Writes one summary line to $work/NAME.line and "pass" or "fail" to $work/NAME.rc.
check() {
	local name=$1 expect=$2 mode=$3
	shift 3
	local d=$work/$name opt cflags runflags model=$here/handoff.pml
	case $name in idle*) model=$here/idle.pml ;; esac  # the idle detector's standby
	mkdir -p "$d" && cp "$model" "$d/" || return
	cd "$d" || return
	# small searches: compile fast; the correct models store 16 million states: a hash table of
	# 2^26 slots (512 MB) instead of pan's 2^24 resolves a fifth as many conflicts, ~10% faster
	local hash=""
	if [ "$expect" = ok ]; then opt=-O2; hash=-w26; else opt=-O0; fi
	if [ "$mode" = safety ]; then
		cflags="-DSAFETY -DNOCLAIM"; runflags=""
	else
		cflags="-DNFAIR=3"; runflags="-a -f"
	fi
	local t0=$SECONDS verdict=fail detail
	if ! spin -a "$@" "$(basename "$model")" >spin.log 2>&1; then
		detail="spin -a failed: $(head -n 3 spin.log | tr '\n' ' ')"
	elif ! gcc $opt -w -DVECTORSZ=2048 -DMEMLIM=8192 -DCOLLAPSE $cflags -o pan pan.c \
		>gcc.log 2>&1; then
		detail="gcc failed: $(head -n 3 gcc.log | tr '\n' ' ')"
	else
		./pan -m500000 $hash $runflags >pan.log 2>&1
		local states errors first
		states=$(awk '/states, stored/ { print $1; exit }' pan.log)
		errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.log | head -n 1)
		first=$(grep -m 1 -E '^pan:[0-9]+:' pan.log | sed 's/^pan:[0-9]*: *//')
		detail="${states:-?} states stored, ${errors:-?} errors"
		if [ "$expect" = ok ]; then
			if [ "${errors:-1}" = 0 ] && ! grep -q -E 'max search depth too small|Search not completed|reached -DMEMLIM' pan.log; then
				verdict=pass
			elif grep -q -E 'max search depth too small|Search not completed|reached -DMEMLIM' pan.log; then
				detail="$detail, search incomplete"
			else
				detail="$detail: $first"
			fi
		else
			if [ -n "${errors:-}" ] && [ "$errors" -ge 1 ]; then
				verdict=pass
				detail="$detail: caught: $first"
			else
				detail="$detail: the violation was NOT found"
			fi
		fi
	fi
	local label
	if [ "$expect" = ok ]; then label="correct $(basename "$model"), $mode"; else label="$name ($mode)"; fi
	printf '%-4s %-40s %s (%ds)\n' "$(echo "$verdict" | tr a-z A-Z)" "$label" "$detail" \
		$((SECONDS - t0)) >"$work/$name.line"
	echo "$verdict" >"$work/$name.rc"
}

# name expect mode options (the two long searches first)
runs=(
	"correct ok safety"
	"correct-ltl ok ltl"
	"BROKEN_NO_MEMBARRIER violation safety -DBROKEN_NO_MEMBARRIER"
	"BROKEN_NO_VERDICT_RESET violation safety -DBROKEN_NO_VERDICT_RESET"
	"BROKEN_NO_CLAIM_LOCK violation safety -DBROKEN_NO_CLAIM_LOCK"
	"BROKEN_EARLY_COMPLETION violation safety -DBROKEN_EARLY_COMPLETION"
	"BROKEN_PARK_NO_RECHECK violation safety -DBROKEN_PARK_NO_RECHECK"
	"BROKEN_PARK_NO_RECHECK-ltl violation ltl -DBROKEN_PARK_NO_RECHECK"
	"AS_WRITTEN_RECLAIM violation safety -DAS_WRITTEN_RECLAIM"
	"AS_WRITTEN_WAKEUP violation safety -DAS_WRITTEN_WAKEUP"
	"AS_WRITTEN_GIVE violation safety -DAS_WRITTEN_GIVE"
	"AS_WRITTEN_CANCEL violation safety -DAS_WRITTEN_CANCEL"
	"idle ok safety"
	"idle-migrate ok safety -DMIGRATE"
	"idle-IDLE_NO_MEMBARRIER violation safety -DIDLE_NO_MEMBARRIER"
	"idle-IDLE_LOAD_BEFORE_T1 violation safety -DIDLE_LOAD_BEFORE_T1"
	"idle-IDLE_NO_RECHECK violation safety -DIDLE_NO_RECHECK"
)

names=()
for r in "${runs[@]}"; do
	set -- $r
	names+=("$1")
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
	( check "$@" ) &
done
wait

passed=0 failed=0
for n in "${names[@]}"; do
	if [ -f "$work/$n.line" ]; then cat "$work/$n.line"; else echo "FAIL $n: no result"; fi
	if [ "$(cat "$work/$n.rc" 2>/dev/null)" = pass ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
