/* gen.c - workload generator: a file set with a realistic size mix (most files a few KiB, a
 * Pareto tail of hundreds of KiB) and Zipf popularity, plus a request trace.
 * usage: gen DIR TOTAL_MIB TRACE_LEN [SEED]
 * Writes DIR/dNN/fNNNNNN.html and DIR/trace.txt (one URL path a line). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned long long rng_state;
static double urand(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static double nrand(void)
{
	return sqrt(-2 * log(urand())) * cos(2 * M_PI * urand());
}

/* 88 %: lognormal, median 4 KiB; 12 %: Pareto from 32 KiB (alpha 1.1), at most 1 MiB */
static long file_size(void)
{
	double s;
	if (urand() < 0.88)
		s = exp(log(4096.0) + 1.0 * nrand());
	else
		s = 32768.0 / pow(urand(), 1 / 1.1);
	if (s < 64)
		s = 64;
	if (s > 1048576)
		s = 1048576;
	return (long)s;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: gen DIR TOTAL_MIB TRACE_LEN [SEED]\n");
		return 2;
	}
	const char *dir = argv[1];
	long long total = atoll(argv[2]) << 20;
	long trace_len = atol(argv[3]);
	rng_state = argc > 4 ? strtoull(argv[4], NULL, 10) : 42;
	mkdir(dir, 0755);

	long cap = 1024, n = 0;
	long *size = malloc(sizeof *size * (size_t)cap);
	long long sum = 0;
	while (sum < total) {
		if (n == cap)
			size = realloc(size, sizeof *size * (size_t)(cap *= 2));
		size[n] = file_size();
		sum += size[n++];
	}
	static char block[1 << 20];
	for (size_t i = 0; i < sizeof block; i++)
		block[i] = (char)('a' + (urand() * 26));
	char path[4096];
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/d%02ld", dir, i % 64);
		mkdir(path, 0755);
		snprintf(path, sizeof path, "%s/d%02ld/f%06ld.html", dir, i % 64, i);
		FILE *f = fopen(path, "w");
		if (!f) {
			perror(path);
			return 1;
		}
		long off = (long)(urand() * 4096); /* different content per file */
		fwrite(block + off, 1, (size_t)size[i], f);
		fclose(f);
	}
	/* Zipf (alpha 0.9) over a random permutation of the files */
	long *perm = malloc(sizeof *perm * (size_t)n);
	double *cdf = malloc(sizeof *cdf * (size_t)n);
	for (long i = 0; i < n; i++)
		perm[i] = i;
	for (long i = n - 1; i > 0; i--) {
		long j = (long)(urand() * (double)(i + 1));
		long t = perm[i]; perm[i] = perm[j]; perm[j] = t;
	}
	double acc = 0;
	for (long i = 0; i < n; i++)
		cdf[i] = (acc += 1.0 / pow((double)(i + 1), 0.9));
	snprintf(path, sizeof path, "%s/trace.txt", dir);
	FILE *t = fopen(path, "w");
	long long tbytes = 0;
	for (long k = 0; k < trace_len; k++) {
		double u = urand() * acc;
		long lo = 0, hi = n - 1;
		while (lo < hi) {
			long mid = (lo + hi) / 2;
			if (cdf[mid] < u) lo = mid + 1; else hi = mid;
		}
		long f = perm[lo];
		tbytes += size[f];
		fprintf(t, "/d%02ld/f%06ld.html\n", f % 64, f);
	}
	fclose(t);
	printf("gen %s: %ld files, %.1f MiB, mean %.1f KiB; trace %ld requests, mean %.1f KiB\n", dir, n,
	       sum / 1048576.0, sum / 1024.0 / (double)n, trace_len, tbytes / 1024.0 / (double)trace_len);
	return 0;
}
