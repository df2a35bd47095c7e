/*
 * stress.c - the LAIO stress program (test/stress/stress_core.h has the workload).
 *
 *   stress [--calls N] [--threads N] [--detector NAME|all] [--seconds S] [--seed N]
 *
 * --calls     laio_syscall() calls per detector, all threads together (default 10000000)
 * --threads   LAIO worker threads, each with its own feeder thread (default 4)
 * --detector  auto, upcall, probe, watchdog, eager, idle, or all (default): each in turn
 * --seconds   per detector, stop issuing calls after this long (default 0: no limit)
 * --seed      for the random mix (default 1)
 * --no-cancel no laio_cancel() calls
 * --cancels N laio_cancel() after N calls in 64 (default 3)
 *
 * Prints one line of totals per detector. Exit status 0 if every completion was accounted for
 * exactly once and every byte balanced under every detector that can work here, 1 otherwise.
 */
#include <getopt.h>
#include "stress_core.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: stress [--calls N] [--threads N] [--detector auto|idle|upcall|probe|watchdog|"
		"eager|all] [--seconds S] [--seed N] [--no-cancel] [--cancels N]\n");
}

int main(int argc, char **argv)
{
	struct stress_opts o = { .calls = 10000000, .threads = 4, .seconds = 0, .seed = 1,
				 .max_errors_shown = 20 };
	int only = -1;
	static const struct option longopts[] = {
		{ "calls", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "detector", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'r' },
		{ "no-cancel", no_argument, NULL, 'n' },
		{ "cancels", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:t:d:s:r:nx:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o.calls = atol(optarg);
			break;
		case 't':
			o.threads = atoi(optarg);
			break;
		case 'd':
			if (strcmp(optarg, "all") == 0) {
				only = -1;
				break;
			}
			only = -2;
			for (int i = 0; i < 6; i++)
				if (strcmp(optarg, stress_det_names[i]) == 0)
					only = i;
			if (only == -2) {
				fprintf(stderr, "stress: unknown detector %s\n", optarg);
				usage(stderr);
				return 2;
			}
			break;
		case 's':
			o.seconds = atof(optarg);
			break;
		case 'r':
			o.seed = (unsigned)atol(optarg);
			break;
		case 'n':
			o.no_cancel = 1;
			break;
		case 'x':
			o.cancel_rate = atoi(optarg);
			if (o.cancel_rate < 0 || o.cancel_rate > 56) {
				fprintf(stderr, "stress: --cancels takes 0..56\n");
				return 2;
			}
			o.no_cancel = o.cancel_rate == 0;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o.calls <= 0 || o.threads < 1 || o.threads > STRESS_MAX_THREADS || o.seconds < 0) {
		usage(stderr);
		return 2;
	}
	printf("stress: %ld calls per detector from %d threads%s", o.calls, o.threads,
	       o.seconds > 0 ? "" : "\n");
	if (o.seconds > 0)
		printf(", at most %.0f s per detector\n", o.seconds);
	fflush(stdout);
	long errors = 0;
	struct stress_totals t[6];
	for (int d = 0; d < 6; d++) {
		if (only >= 0 && d != only)
			continue;
		errors += stress_run(d, &o, &t[d]);
		stress_print(stdout, &t[d]);
		fflush(stdout);
	}
	printf("stress: %s\n", errors ? "FAILED" : "every completion accounted for once, bytes "
	       "balance");
	return errors ? 1 : 0;
}
