/* test_cgroup.c - one cpu cgroup per VP (kernel-shim/cgroup.c, vpgroup.c): where it can be used
 * and why not, threads moved in and back, a SCHED_IDLE thread that runs when its group's normal
 * thread sleeps beside a CPU hog, nothing left behind (exit, kill -9, fork), the enclosing
 * cgroup's limits still applying; through the library, the VP's standbys and runner in its
 * group, the runner moving with the VP, the switch, and the fall-back without the right. The v2 path runs in threaded mode without the cpu controller where
 * 'cpu' is bound to a v1 hierarchy (the moves and the clean-up, not the scheduling). */
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "test-util.h"
#include "../kernel-shim/cgroup.h"

static const char *want_name[] = { "auto", "v1", "v2", "v2 without the cpu controller" };

/* Init in the wanted hierarchy, or skip saying why it cannot be used here. */
static void need_cg(enum ks_cg_want want)
{
	const char *why;
	if (geteuid() != 0)
		cr_skip_test("not root: per-VP cgroups need root or a delegated cgroup v2 subtree");
	if (!ks_cg_init_as(1, want, &why))
		cr_skip_test("per-VP cgroups (%s) cannot be used here: %s", want_name[want], why);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* The path of thread tid in the hierarchy in use, from /proc/self/task/TID/cgroup. */
static void task_cgroup(pid_t tid, const char *ctl, char *out, size_t len)
{
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/self/task/%d/cgroup", (int)tid);
	FILE *f = fopen(path, "re");
	out[0] = 0;
	while (f && fgets(line, sizeof line, f)) {
		char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
		if (!p)
			continue;
		*p = 0;
		line[strcspn(line, ":")] = 0;
		int v2 = strcmp(line, "0") == 0 && c[1] == 0, match = 0;
		if (strcmp(ctl, "") == 0)
			match = v2;
		else
			for (char *save, *w = strtok_r(c + 1, ",", &save); w; w = strtok_r(NULL, ",", &save))
				match |= strcmp(w, ctl) == 0;
		if (match) {
			p[1 + strcspn(p + 1, "\n")] = 0;
			snprintf(out, len, "%s", p + 1);
		}
	}
	if (f)
		fclose(f);
}

static void cpu_cgroup(pid_t tid, char *out, size_t len)
{
	task_cgroup(tid, strcmp(ks_cg_mode(), "v2") == 0 ? "" : "cpu", out, len);
}

/* Is the cgroup path (as /proc shows it) the directory's? */
static int path_is_dir(const char *cgpath, const char *dir)
{
	size_t n = strlen(cgpath), m = strlen(dir);
	return strcmp(cgpath, "/") != 0 && n <= m && strcmp(dir + m - n, cgpath) == 0;
}

/* Is tid listed in the directory's tasks / cgroup.threads? */
static int listed(const char *dir, pid_t tid)
{
	char path[1200];
	int t, found = 0;
	snprintf(path, sizeof path, "%s/%s", dir, strcmp(ks_cg_mode(), "v2") == 0 ? "cgroup.threads" : "tasks");
	FILE *f = fopen(path, "re");
	while (f && fscanf(f, "%d", &t) == 1)
		found |= t == tid;
	if (f)
		fclose(f);
	return found;
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* A thread that waits until told to end. */
struct parked { pthread_t t; pid_t tid; int p[2]; };
static void *parked_main(void *a)
{
	struct parked *k = a;
	char c;
	__atomic_store_n(&k->tid, gettid_(), __ATOMIC_RELEASE);
	cr_expect_eq(read(k->p[0], &c, 1), 1);
	return NULL;
}
static void park(struct parked *k)
{
	k->tid = 0;
	make_pipe(k->p);
	cr_assert_eq(pthread_create(&k->t, NULL, parked_main, k), 0);
	while (!__atomic_load_n(&k->tid, __ATOMIC_ACQUIRE))
		sched_yield();
}
static void unpark(struct parked *k)
{
	cr_expect_eq(write(k->p[1], "x", 1), 1);
	pthread_join(k->t, NULL);
	close(k->p[0]);
	close(k->p[1]);
}

Test(cgroup, disabled_says_so)
{
	const char *why;
	cr_assert_eq(ks_cg_init(0, &why), 0);
	cr_expect(strstr(why, "disabled") != NULL, "%s", why);
	cr_expect_str_eq(ks_cg_mode(), "off");
	errno = 0;
	cr_expect_null(ks_cg_new());
	cr_expect_eq(errno, ENODEV);
	cr_expect_eq(ks_cg_leave(0), -EBADF);
}

Test(cgroup, in_use_as_root)
{
	const char *why;
	need_cg(KS_CG_AUTO);
	cr_assert_eq(ks_cg_init(1, &why), 1, "a second call keeps the first decision");
	cr_expect(strcmp(ks_cg_mode(), "v1") == 0 || strcmp(ks_cg_mode(), "v2") == 0);
	cr_log_info("in use: %s", why);
	char prefix[1100];
	snprintf(prefix, sizeof prefix, "%s/laio.", ks_cg_base_dir());
	cr_expect(strncmp(ks_cg_proc_dir(), prefix, strlen(prefix)) == 0,
		  "%s is not nested under the base %s", ks_cg_proc_dir(), ks_cg_base_dir());
	cr_expect(exists(ks_cg_proc_dir()));
}

static int is_threaded(const char *dir)
{
	char path[1200], buf[64] = "";
	snprintf(path, sizeof path, "%s/cgroup.type", dir);
	FILE *f = fopen(path, "r");
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = 0;
		fclose(f);
	}
	return strcmp(buf, "threaded\n") == 0;
}

static void enter_and_leave(enum ks_cg_want want)
{
	need_cg(want);
	struct parked k;
	char base[1024], now[1024], mem_before[1024], mem_now[1024];
	park(&k);
	cpu_cgroup(k.tid, base, sizeof base);
	task_cgroup(k.tid, "memory", mem_before, sizeof mem_before);
	struct ks_cg *g = ks_cg_new();
	cr_assert_not_null(g, "ks_cg_new: %s", strerror(errno));
	cr_expect(exists(ks_cg_dir(g)));
	if (strcmp(ks_cg_mode(), "v2") == 0) {
		cr_expect(is_threaded(ks_cg_proc_dir()), "%s is not threaded", ks_cg_proc_dir());
		cr_expect(is_threaded(ks_cg_dir(g)), "%s is not threaded", ks_cg_dir(g));
	}
	cr_assert_eq(ks_cg_enter(g, k.tid), 0);
	cpu_cgroup(k.tid, now, sizeof now);
	cr_expect(path_is_dir(now, ks_cg_dir(g)), "in %s, not in %s", now, ks_cg_dir(g));
	cr_expect(listed(ks_cg_dir(g), k.tid));
	task_cgroup(k.tid, "memory", mem_now, sizeof mem_now);
	cr_expect_str_eq(mem_now, mem_before, "the memory cgroup is not touched");
	cr_assert_eq(ks_cg_leave(k.tid), 0);
	cpu_cgroup(k.tid, now, sizeof now);
	cr_expect_str_eq(now, base, "back in the base");
	cr_expect(!listed(ks_cg_dir(g), k.tid));
	unpark(&k);
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", ks_cg_dir(g));
	ks_cg_free(g);
	cr_expect(!exists(dir));
	cr_expect_str_eq(ks_cg_proc_dir(), "", "the last VP removed the process's directory");
}

Test(cgroup, enter_and_leave_v1) { enter_and_leave(KS_CG_V1); }
Test(cgroup, enter_and_leave_v2) { enter_and_leave(KS_CG_V2_NOCPU); }
Test(cgroup, enter_and_leave_v2_cpu) { enter_and_leave(KS_CG_V2); }

/* The hot path: the kernel's errno, and errno itself untouched. */
Test(cgroup, enter_errors_leave_errno_alone)
{
	need_cg(KS_CG_AUTO);
	struct ks_cg *g = ks_cg_new();
	cr_assert_not_null(g);
	errno = 12345;
	cr_expect_eq(ks_cg_enter(g, 0x3fffffff), -ESRCH);
	cr_expect_eq(ks_cg_leave(0x3fffffff), -ESRCH);
	cr_expect_eq(errno, 12345);
	cr_expect_eq(ks_cg_enter(g, 0), 0, "0: the calling thread");
	cr_expect(listed(ks_cg_dir(g), gettid_()));
	cr_expect_eq(ks_cg_leave(0), 0);
	ks_cg_free(g);
}

/* The process's directory weighs one thread of the process's nice value per VP group. */
Test(cgroup, process_weight_follows_vp_count)
{
	errno = 0;
	if (getpriority(PRIO_PROCESS, 0) != 0 || errno)
		cr_skip_test("the suite does not run at nice 0");
	need_cg(KS_CG_AUTO);
	int v2 = strcmp(ks_cg_mode(), "v2") == 0;
	char path[1200], buf[64];
	struct ks_cg *a = ks_cg_new(), *b = ks_cg_new();
	cr_assert(a && b);
	snprintf(path, sizeof path, "%s/%s", ks_cg_proc_dir(), v2 ? "cpu.weight" : "cpu.shares");
	FILE *f = fopen(path, "r");
	cr_assert(f && fgets(buf, sizeof buf, f));
	fclose(f);
	cr_expect_eq(atol(buf), v2 ? 200 : 2 * 1024, "%s: %s", path, buf);
	ks_cg_free(a);
	ks_cg_free(b);
}

/* The property the project needs: with a CPU hog pinned on the same CPU in the base cgroup, a
 * SCHED_IDLE thread runs once the normal thread of its group sleeps. Only "it ran" is checked. */
static int in_call, idle_stop; /* __atomic: the two threads' flags */
static int idle_pipe[2];
static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof s, &s);
}
static void *idle_main(void *a)
{
	struct sched_param sp = { 0 };
	cr_expect_eq(ks_cg_enter(a, 0), 0);
	pin(0);
	cr_expect_eq(sched_setscheduler(0, SCHED_IDLE, &sp), 0);
	while (!__atomic_load_n(&idle_stop, __ATOMIC_RELAXED))
		if (__atomic_load_n(&in_call, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&in_call, 0, __ATOMIC_RELAXED);
			cr_expect_eq(write(idle_pipe[1], "x", 1), 1);
		}
	return NULL;
}

Test(cgroup, idle_thread_runs_beside_hog, .timeout = 120)
{
	need_cg(KS_CG_AUTO);
	pid_t hog = fork();
	if (hog == 0) {
		pin(0);
		alarm(100);
		for (volatile unsigned long x = 0;; x++)
			;
	}
	struct ks_cg *g = ks_cg_new();
	cr_assert_not_null(g);
	make_pipe(idle_pipe);
	pin(0);
	cr_assert_eq(ks_cg_enter(g, 0), 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, idle_main, g), 0);
	int ran = 0;
	char c;
	for (int i = 0; i < 20; i++) {
		__atomic_store_n(&in_call, 1, __ATOMIC_RELEASE);
		ran += read(idle_pipe[0], &c, 1) == 1; /* sleeps until the idle thread ran */
		usleep(1000);
	}
	__atomic_store_n(&idle_stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	kill(hog, SIGKILL);
	waitpid(hog, NULL, 0);
	cr_expect_eq(ran, 20);
	cr_expect_eq(ks_cg_leave(0), 0);
	ks_cg_free(g);
}

/* A child that sets up groups, sends its process directory's path (or "!" and why it could not),
 * then does what `how` says. */
enum child_end { END_EXIT, END_PAUSE };
static pid_t child_with_groups(enum ks_cg_want want, enum child_end how, char *dir, size_t len)
{
	int p[2];
	SKIP_FORK_UNDER_TSAN();
	make_pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		struct parked k;
		const char *why;
		char msg[2048];
		if (!ks_cg_init_as(1, want, &why)) {
			snprintf(msg, sizeof msg, "!%s", why);
			_exit(write(p[1], msg, strlen(msg) + 1) < 0 ? 4 : 2);
		}
		struct ks_cg *a = ks_cg_new(), *b = ks_cg_new();
		park(&k);
		if (!a || !b || ks_cg_enter(a, k.tid) || ks_cg_enter(b, 0))
			_exit(3);
		if (write(p[1], ks_cg_proc_dir(), strlen(ks_cg_proc_dir()) + 1) < 0)
			_exit(4);
		if (how == END_PAUSE)
			pause();
		exit(0); /* threads still in the groups: ks_cg_fini moves them out */
	}
	close(p[1]); /* a child that dies early ends the read */
	ssize_t n = read(p[0], dir, len);
	close(p[0]);
	if (n > 0 && dir[0] == '!') {
		waitpid(pid, NULL, 0);
		cr_skip_test("per-VP cgroups (%s) cannot be used here: %s", want_name[want], dir + 1);
	}
	cr_assert_gt(n, 0, "the child could not set up its groups");
	return pid;
}

static void nothing_left_after_exit(enum ks_cg_want want)
{
	need_cg(want);
	char dir[1100];
	int st;
	pid_t pid = child_with_groups(want, END_EXIT, dir, sizeof dir);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_expect(!exists(dir), "%s left behind", dir);
}

Test(cgroup, nothing_left_after_exit_v1) { nothing_left_after_exit(KS_CG_V1); }
Test(cgroup, nothing_left_after_exit_v2) { nothing_left_after_exit(KS_CG_V2_NOCPU); }

static void mkdir_named(char *out, size_t len, const char *base, unsigned long ns, int pid,
			unsigned long long start)
{
	snprintf(out, len, "%s/laio.%lu.%d.%llu", base, ns, pid, start);
	cr_assert_eq(mkdir(out, 0755), 0, "%s: %s", out, strerror(errno));
}

static unsigned long long start_of(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long s = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	cr_assert(f && fgets(buf, sizeof buf, f));
	fclose(f);
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	cr_assert(p && sscanf(p + 1, "%llu", &s) == 1);
	return s;
}

/* kill -9 leaves the directories (nothing runs at a crash); the next init removes them, and
 * those of a pid now used by another program; it keeps a living process's and names it cannot
 * judge (another pid namespace). */
static void swept_after_kill(enum ks_cg_want want)
{
	char dir[1100], reused[1200], alive[1200], foreign[1200], base[1100];
	struct stat ns;
	int st;
	if (geteuid() != 0)
		cr_skip_test("not root: per-VP cgroups need root or a delegated cgroup v2 subtree");
	/* this process does not decide: every ks_cg_init() here is a fresh process's */
	cr_assert_eq(stat("/proc/self/ns/pid", &ns), 0);
	pid_t pid = child_with_groups(want, END_PAUSE, dir, sizeof dir);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(exists(dir), "a crash cannot clean up");
	snprintf(base, sizeof base, "%s", dir);
	*strrchr(base, '/') = 0;
	mkdir_named(reused, sizeof reused, base, ns.st_ino, getppid(), start_of(getppid()) + 1);
	mkdir_named(alive, sizeof alive, base, ns.st_ino, getppid(), start_of(getppid()));
	mkdir_named(foreign, sizeof foreign, base, ns.st_ino + 1, pid, 1);
	pid_t again = fork();
	if (again == 0)
		exit(ks_cg_init_as(1, want, NULL) ? 0 : 1);
	cr_assert_eq(waitpid(again, &st, 0), again);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_expect(!exists(dir), "%s of the killed process is left", dir);
	cr_expect(!exists(reused), "%s of a reused pid is left", reused);
	cr_expect(exists(alive), "%s of a living process was removed", alive);
	cr_expect(exists(foreign), "%s of another pid namespace was removed", foreign);
	rmdir(alive);
	rmdir(foreign);
}

Test(cgroup, swept_after_kill_v1) { swept_after_kill(KS_CG_V1); }
Test(cgroup, swept_after_kill_v2) { swept_after_kill(KS_CG_V2_NOCPU); }

/* The child of a fork lives in the parent's VP group: it goes back to the base, leaves the
 * parent's directories alone, makes its own and removes them at its exit. */
static void fork_child(enum ks_cg_want want)
{
	need_cg(want);
	char base[1024], parent_dir[1100], parent_vp[1200];
	struct ks_cg *g = ks_cg_new();
	cr_assert_not_null(g);
	cpu_cgroup(gettid_(), base, sizeof base);
	cr_assert_eq(ks_cg_enter(g, 0), 0);
	snprintf(parent_dir, sizeof parent_dir, "%s", ks_cg_proc_dir());
	snprintf(parent_vp, sizeof parent_vp, "%s", ks_cg_dir(g));
	int p[2];
	make_pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		char now[1024];
		ks_cg_atfork_child();
		cpu_cgroup(gettid_(), now, sizeof now);
		int bad = strcmp(now, base) != 0;
		bad |= (strcmp(ks_cg_proc_dir(), "") != 0) << 1;
		ks_cg_free(g);
		bad |= !exists(parent_vp) << 2;
		struct ks_cg *mine = ks_cg_new();
		bad |= (!mine || strcmp(ks_cg_proc_dir(), parent_dir) == 0) << 3;
		bad |= (mine && ks_cg_enter(mine, 0) != 0) << 4;
		if (write(p[1], ks_cg_proc_dir(), strlen(ks_cg_proc_dir()) + 1) < 0)
			bad |= 1 << 5;
		exit(bad);
	}
	char child_dir[1100] = "";
	int st;
	close(p[1]);
	cr_expect_gt(read(p[0], child_dir, sizeof child_dir), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x (bits: not in base, "
		  "kept the parent's directory, removed it, no own directory, enter failed)", st);
	cr_expect(exists(parent_dir) && exists(parent_vp), "the child removed the parent's directories");
	cr_expect(child_dir[0] && !exists(child_dir), "the child left %s", child_dir);
	cr_expect(listed(parent_vp, gettid_()), "the parent stays in its group");
	cr_expect_eq(ks_cg_leave(0), 0);
	ks_cg_free(g);
	cr_expect(!exists(parent_dir));
}

Test(cgroup, fork_child_v1) { fork_child(KS_CG_V1); }
Test(cgroup, fork_child_v2) { fork_child(KS_CG_V2_NOCPU); }

/* Without root and without a delegated subtree: not used, and it says why. */
Test(cgroup, nobody_gets_a_reason)
{
	if (geteuid() != 0)
		cr_skip_test("not root: cannot become nobody");
	int p[2];
	make_pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		const char *why = "";
		if (setgid(65534) || setuid(65534))
			_exit(9);
		int r = ks_cg_init(1, &why);
		if (write(p[1], why, strlen(why) + 1) < 0 || ks_cg_new() != NULL)
			_exit(8);
		_exit(r + (strcmp(ks_cg_mode(), "off") != 0) * 2);
	}
	char why[2048] = "";
	int st;
	close(p[1]);
	cr_expect_gt(read(p[0], why, sizeof why), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "as nobody: status %#x, %s", st, why);
	cr_expect(strstr(why, "no right") || strstr(why, "cannot"), "the reason: %s", why);
	cr_log_info("as nobody: %s", why);
}

static void set_file(const char *dir, const char *file, const char *v)
{
	char path[1400];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(v, f);
		fclose(f);
	}
}

/* The mount point of a hierarchy from /proc/self/mounts: fstype, and an option it must have. */
static int mount_of(const char *fstype, const char *opt, char *out, size_t len)
{
	char line[1024];
	int found = 0;
	FILE *f = fopen("/proc/self/mounts", "re");
	while (f && fgets(line, sizeof line, f)) {
		char m[512], type[64], opts[512];
		if (sscanf(line, "%*s %511s %63s %511s", m, type, opts) == 3 && strcmp(type, fstype) == 0 &&
		    (!opt || strstr(opts, opt))) {
			snprintf(out, len, "%s", m);
			found = 1;
		}
	}
	if (f)
		fclose(f);
	return found;
}

/* v2: a base with a populated domain child cannot be a threaded domain; the kernel refuses,
 * and the reason says so. */
Test(cgroup, v2_base_with_domain_children_says_why)
{
	char mnt[512], path[512], b[1100], dom[1200], pid_s[32], why[2048] = "";
	int p[2], st;
	if (geteuid() != 0)
		cr_skip_test("not root: cannot make v2 cgroups");
	task_cgroup(gettid_(), "", path, sizeof path);
	if (!mount_of("cgroup2", NULL, mnt, sizeof mnt) || !path[0])
		cr_skip_test("no cgroup v2 hierarchy here");
	snprintf(b, sizeof b, "%s%s/laio-test-dom.%d", mnt, strcmp(path, "/") ? path : "", (int)getpid());
	snprintf(dom, sizeof dom, "%s/dom", b);
	cr_assert(mkdir(b, 0755) == 0 && mkdir(dom, 0755) == 0, "%s: %s", b, strerror(errno));
	pid_t sleeper = fork();
	if (sleeper == 0) {
		pause();
		_exit(0);
	}
	snprintf(pid_s, sizeof pid_s, "%d", (int)sleeper);
	set_file(dom, "cgroup.procs", pid_s);
	make_pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		const char *w;
		snprintf(pid_s, sizeof pid_s, "%d", (int)getpid());
		set_file(b, "cgroup.procs", pid_s);
		int r = ks_cg_init_as(1, KS_CG_V2_NOCPU, &w);
		_exit(write(p[1], w, strlen(w) + 1) < 0 ? 3 : r);
	}
	close(p[1]);
	cr_expect_gt(read(p[0], why, sizeof why), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	kill(sleeper, SIGKILL);
	waitpid(sleeper, NULL, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, why);
	cr_expect(strstr(why, "threaded domain") != NULL, "the reason: %s", why);
	cr_log_info("%s", why);
	cr_expect_eq(rmdir(dom), 0);
	cr_expect_eq(rmdir(b), 0);
}

/* The v1 'memory' hierarchy of the process (mount point and path), or skip. */
static void memory_cgroup(char *dir, size_t len)
{
	char mnt[512] = "", path[512];
	task_cgroup(gettid_(), "memory", path, sizeof path);
	if (!mount_of("cgroup", "memory", mnt, sizeof mnt) || !path[0])
		cr_skip_test("no cgroup v1 memory hierarchy here");
	snprintf(dir, len, "%s%s/laio-test-mem.%d", mnt, strcmp(path, "/") ? path : "", (int)getpid());
}

static void *eat_memory(void *a)
{
	size_t n = 256u << 20;
	char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	(void)a;
	if (m != MAP_FAILED)
		memset(m, 1, n);
	return NULL;
}

/* A memory limit on the cgroup around the process still holds for a thread in a VP group. On
 * v1, 'memory' is a hierarchy of its own that the groups do not touch; the VP groups nest under
 * the process's cpu cgroup. */
Test(cgroup, enclosing_memory_limit_holds, .timeout = 120)
{
	need_cg(KS_CG_V1);
	SKIP_FORK_UNDER_TSAN();
	char mem[1100], prefix[1100];
	memory_cgroup(mem, sizeof mem);
	snprintf(prefix, sizeof prefix, "%s/laio.", ks_cg_base_dir());
	cr_expect(strncmp(ks_cg_proc_dir(), prefix, strlen(prefix)) == 0, "the groups nest in the base");
	cr_assert_eq(mkdir(mem, 0755), 0, "%s: %s", mem, strerror(errno));
	set_file(mem, "memory.limit_in_bytes", "67108864");
	set_file(mem, "memory.memsw.limit_in_bytes", "67108864");
	pid_t pid = fork();
	if (pid == 0) {
		char self[32];
		snprintf(self, sizeof self, "%d", (int)getpid());
		set_file(mem, "cgroup.procs", self);
		struct ks_cg *g = ks_cg_new();
		pthread_t t;
		if (!g || pthread_create(&t, NULL, eat_memory, NULL))
			_exit(3);
		/* the thread may be running already: enter it at once, eat_memory takes a while */
		ks_cg_enter(g, 0);
		pthread_join(t, NULL);
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x: not killed at the limit", st);
	cr_expect_eq(rmdir(mem), 0, "%s: %s", mem, strerror(errno));
}

/* ---- the library: each VP's runner, its idle standbys and its claimer in a group of its own */

/* The calling thread's VP (made by a first call) has a group, or the test is skipped saying
 * why not. Its directory as /proc shows it goes to grp. */
static void need_vp_group(char *grp, size_t len)
{
	struct laio_stats st;
	struct laio_config on = { .cgroup = 1 };
	if (geteuid() != 0)
		cr_skip_test("not root: per-VP cgroups need root or a delegated cgroup v2 subtree");
	/* from the start: no shared standby is started for the VP before it has its group */
	cr_assert_eq(setenv("LAIO_CGROUP", "1", 1), 0);
	cr_assert_eq(laio_init(&on), 0);
	laio_stats(&st);
	if (strcmp(st.cgroup, "off") == 0)
		cr_skip_test("no cpu cgroup for the VP here: %s", st.cgroup_why);
	cpu_cgroup(gettid_(), grp, len);
	cr_assert(strstr(grp, "/laio.") && strstr(grp, "/vp"), "the runner is in %s", grp);
}

static int sched_idle_tid(pid_t tid)
{
	return syscall(SYS_sched_getscheduler, tid) == SCHED_IDLE;
}

/* Threads of the process at SCHED_IDLE in grp (in), and elsewhere (out). */
static void idle_threads(const char *grp, int *in, int *out)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	char cg[1024];
	*in = *out = 0;
	while (d && (e = readdir(d)) != NULL) {
		pid_t tid = atoi(e->d_name);
		if (tid <= 0 || !sched_idle_tid(tid))
			continue;
		cpu_cgroup(tid, cg, sizeof cg);
		if (strcmp(cg, grp) == 0)
			++*in;
		else
			++*out;
	}
	if (d)
		closedir(d);
}

/* A blocked read handed off: its handle, after checking EINPROGRESS. */
static void *block_read(int fd, char *b)
{
	errno = 0;
	cr_assert_eq(laio_syscall(SYS_read, fd, b, 1), -1);
	cr_assert_eq(errno, EINPROGRESS);
	return laio_gethandle();
}

static void reap(void *h)
{
	struct laio_completion c;
	struct timespec ts = { 10, 0 };
	cr_assert_eq(laio_poll(&c, 1, &ts), 1);
	cr_expect_eq(c.laio_handle, h);
}

Test(vp_group, standbys_and_runner_in_it, .timeout = 60)
{
	char grp[1024], now[1024], base[1024];
	int p[2], in = 0, out = 0;
	char b;
	need_vp_group(grp, sizeof grp);
	snprintf(base, sizeof base, "%s", grp);
	*strstr(base, "/laio.") = 0;
	if (!base[0])
		snprintf(base, sizeof base, "/");
	/* the standbys start on their own: wait (bounded by the timeout) until both are in */
	for (int cpus = (int)sysconf(_SC_NPROCESSORS_CONF); in < cpus; usleep(1000))
		idle_threads(grp, &in, &out);
	cr_expect_eq(out, 0, "a SCHED_IDLE thread outside the VP's group %s", grp);
	make_pipe(p);
	pid_t before = gettid_();
	void *h = block_read(p[0], &b);
	pid_t after = gettid_();
	cr_expect_neq(after, before, "the flow goes on on the claimer");
	cpu_cgroup(after, now, sizeof now);
	cr_expect_str_eq(now, grp, "the new runner is in the VP's group");
	cr_assert_eq(write(p[1], "x", 1), 1);
	reap(h);
	/* the completion is queued after T6, where the blocked activation left */
	cpu_cgroup(before, now, sizeof now);
	cr_expect_str_eq(now, base, "the blocked activation went back to %s", base);
}

/* Off through the configuration: the thread stays in its cgroup, and laio_stats says why. */
Test(vp_group, off_by_configuration)
{
	struct laio_config c = { .cgroup = -1 };
	struct laio_stats st;
	char before[1024], now[1024], b;
	int p[2];
	make_pipe(p);
	task_cgroup(gettid_(), "cpu", before, sizeof before);
	cr_assert_eq(laio_init(&c), 0);
	laio_stats(&st);
	cr_expect_str_eq(st.cgroup, "off");
	cr_expect(strstr(st.cgroup_why, "configuration") != NULL, "%s", st.cgroup_why);
	void *h = block_read(p[0], &b);
	task_cgroup(gettid_(), "cpu", now, sizeof now);
	cr_expect_str_eq(now, before);
	cr_assert_eq(write(p[1], "x", 1), 1);
	reap(h);
	c.cgroup = 2;
	cr_expect_eq(laio_init(&c), -1, "cgroup is -1, 0 or 1");
	cr_expect_eq(errno, EINVAL);
}

/* Off unless LAIO_CGROUP=1 or the configuration turns it on. */
Test(vp_group, off_by_default)
{
	struct laio_stats st;
	cr_assert_eq(unsetenv("LAIO_CGROUP"), 0);
	cr_assert_gt(laio_syscall(SYS_getpid), 0);
	laio_stats(&st);
	cr_expect_str_eq(st.cgroup, "off");
	cr_expect(strstr(st.cgroup_why, "LAIO_CGROUP") != NULL, "%s", st.cgroup_why);
}

Test(vp_group, on_by_environment)
{
	struct laio_stats st;
	if (geteuid() != 0)
		cr_skip_test("not root: per-VP cgroups need root or a delegated cgroup v2 subtree");
	cr_assert_eq(setenv("LAIO_CGROUP", "1", 1), 0);
	cr_assert_gt(laio_syscall(SYS_getpid), 0);
	laio_stats(&st);
	if (strcmp(st.cgroup, "off") == 0)
		cr_expect(strstr(st.cgroup_why, "LAIO_CGROUP") == NULL, "%s", st.cgroup_why);
	else
		cr_expect(strstr(st.cgroup_why, "one cpu cgroup per VP") != NULL, "%s", st.cgroup_why);
}

/* A child with a blocked call in flight: sends its process directory, then exits, or pauses. */
static pid_t laio_child(enum child_end how, char *dir, size_t len)
{
	int p[2], q[2];
	SKIP_FORK_UNDER_TSAN();
	make_pipe(p);
	make_pipe(q);
	pid_t pid = fork();
	if (pid == 0) {
		struct laio_stats st;
		struct laio_config on = { .cgroup = 1 };
		char b, msg[1200];
		laio_init(&on);
		laio_stats(&st);
		if (strcmp(st.cgroup, "off") == 0) {
			snprintf(msg, sizeof msg, "!%s", st.cgroup_why);
			_exit(write(p[1], msg, strlen(msg) + 1) < 0 ? 4 : 2);
		}
		if (laio_syscall(SYS_read, q[0], &b, 1) != -1 || errno != EINPROGRESS)
			_exit(3);
		snprintf(msg, sizeof msg, "%s", ks_cg_proc_dir());
		if (write(p[1], msg, strlen(msg) + 1) < 0)
			_exit(4);
		if (how == END_PAUSE)
			pause();
		exit(0);
	}
	close(p[1]);
	ssize_t n = read(p[0], dir, len);
	close(p[0]);
	if (n > 0 && dir[0] == '!') {
		waitpid(pid, NULL, 0);
		cr_skip_test("no cpu cgroup for the VP here: %s", dir + 1);
	}
	cr_assert_gt(n, 0, "the child could not block a call in its group");
	return pid;
}

Test(vp_group, nothing_left_after_exit_kill_and_next_start, .timeout = 60)
{
	char dir[1200], dir2[1200];
	int st;
	if (geteuid() != 0)
		cr_skip_test("not root: per-VP cgroups need root or a delegated cgroup v2 subtree");
	pid_t pid = laio_child(END_EXIT, dir, sizeof dir);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	cr_expect(!exists(dir), "%s left after exit", dir);
	pid = laio_child(END_PAUSE, dir, sizeof dir);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(exists(dir), "a crash cannot clean up");
	pid = laio_child(END_EXIT, dir2, sizeof dir2); /* the next start sweeps */
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(!exists(dir), "%s of the killed process left after the next start", dir);
	cr_expect(!exists(dir2), "%s left after exit", dir2);
}

/* A fork child: back in the base, a group of its own for its VP, removed at its exit; the
 * parent's stays. */
Test(vp_group, fork_child, .timeout = 60)
{
	char grp[1024], parent_dir[1200], child_dir[1200] = "", base[1024];
	int p[2], st;
	SKIP_FORK_UNDER_TSAN();
	need_vp_group(grp, sizeof grp);
	snprintf(parent_dir, sizeof parent_dir, "%s", ks_cg_proc_dir());
	snprintf(base, sizeof base, "%s", grp);
	*strstr(base, "/laio.") = 0;
	make_pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		char now[1024], b;
		int q[2], bad = 0;
		cpu_cgroup(gettid_(), now, sizeof now);
		bad |= strcmp(now, base[0] ? base : "/") != 0;
		if (pipe(q) || laio_syscall(SYS_read, q[0], &b, 1) != -1 || errno != EINPROGRESS)
			bad |= 2;
		cpu_cgroup(gettid_(), now, sizeof now);
		bad |= (strstr(now, "/laio.") == NULL || strcmp(now, grp) == 0) << 2;
		if (write(p[1], ks_cg_proc_dir(), strlen(ks_cg_proc_dir()) + 1) < 0)
			bad |= 8;
		exit(bad);
	}
	close(p[1]);
	cr_expect_gt(read(p[0], child_dir, sizeof child_dir), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x (bits: not in the base, "
		  "no hand-off, no group of its own, no directory)", st);
	cr_expect(child_dir[0] && strcmp(child_dir, parent_dir) != 0, "the child's directory: %s",
		  child_dir);
	cr_expect(!exists(child_dir), "the child left %s", child_dir);
	cr_expect(exists(parent_dir), "the child removed the parent's %s", parent_dir);
	char now[1024];
	cpu_cgroup(gettid_(), now, sizeof now);
	cr_expect_str_eq(now, grp, "the parent's runner stays in its group");
}

/* As nobody without a delegated subtree: no group, the reason, and blocked calls still go to
 * the background (the shared standbys and the backstop). */
Test(vp_group, nobody_falls_back, .timeout = 60)
{
	int p[2], st;
	char why[2048] = "";
	if (geteuid() != 0)
		cr_skip_test("not root: cannot become nobody");
	SKIP_FORK_UNDER_TSAN();
	make_pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		struct laio_stats s;
		int q[2], bad = 0;
		char b;
		struct laio_config on = { .cgroup = 1 };
		if (setgid(65534) || setuid(65534))
			_exit(9);
		if (laio_init(&on) || pipe(q) || laio_syscall(SYS_read, q[0], &b, 1) != -1 ||
		    errno != EINPROGRESS)
			bad |= 1;
		laio_stats(&s);
		bad |= (strcmp(s.cgroup, "off") != 0) << 1;
		if (write(p[1], s.cgroup_why, strlen(s.cgroup_why) + 1) < 0)
			bad |= 4;
		_exit(bad);
	}
	close(p[1]);
	cr_expect_gt(read(p[0], why, sizeof why), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "as nobody: status %#x (bits: no hand-off, "
		  "a group), %s", st, why);
	cr_expect(strstr(why, "no right") || strstr(why, "cannot"), "the reason: %s", why);
	cr_log_info("as nobody: %s", why);
}

/* A thread that ends takes its VP's group with it: its standbys leave, the last one out removes
 * the directory (and the process's, the last VP group gone). The thread says why it had none. */
static void *vp_thread(void *a)
{
	char *dir = a;
	struct laio_stats st;
	struct laio_config on = { .cgroup = 1 };
	int p[2];
	char b;
	laio_init(&on);
	laio_stats(&st);
	if (strcmp(st.cgroup, "off") == 0) {
		snprintf(dir, 1200, "!%s", st.cgroup_why);
		return NULL;
	}
	snprintf(dir, 1200, "%s", ks_cg_proc_dir());
	make_pipe(p);
	void *h = block_read(p[0], &b);
	cr_assert_eq(write(p[1], "x", 1), 1);
	reap(h);
	return NULL;
}

Test(vp_group, goes_with_its_thread, .timeout = 60)
{
	static char dir[1200];
	pthread_t t;
	if (geteuid() != 0)
		cr_skip_test("not root: per-VP cgroups need root or a delegated cgroup v2 subtree");
	cr_assert_eq(pthread_create(&t, NULL, vp_thread, dir), 0);
	pthread_join(t, NULL);
	if (dir[0] == '!')
		cr_skip_test("no cpu cgroup for the VP here: %s", dir + 1);
	/* the standbys leave on their own once woken: wait (bounded by the timeout) */
	while (exists(dir))
		usleep(1000);
	cr_expect_str_eq(ks_cg_proc_dir(), "");
}
