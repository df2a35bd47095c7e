/*
 * cgroup.c - one cpu cgroup per virtual processor, nested under the process's own cgroup.
 *
 * The tree (cgroup.h): <base>/laio.<pidns>.<pid>.<starttime>/vp<N>. The name says whose the
 * directory is: a later process finds the pid gone, or alive with another start time (reused),
 * and removes it. Names of another pid namespace are left alone: their pids mean nothing here.
 *
 * v1 ('cpu' hierarchy): directories and 'tasks' files; root only (the hierarchy is root's).
 * v2 (unified): threads of one process may sit in different cgroups only inside a threaded
 * subtree, so the process's directory and the VP groups are made 'threaded', which turns the
 * base into a threaded domain: it can then have no populated domain children (the kernel
 * refuses with EOPNOTSUPP when it has some, or domain controllers enabled in its
 * cgroup.subtree_control), and its own processes keep running in it. '+cpu' is added to the
 * base's cgroup.subtree_control (cpu is a threaded controller, allowed beside the base's own
 * processes) and to the process directory's. Needs root or a delegated base (write access to its
 * cgroup.procs, cgroup.threads and cgroup.subtree_control).
 *
 * Weights: a VP group has the kernel's default weight; the process's directory weighs as many
 * threads of the process's nice value as it holds VP groups, so that the process's threads
 * together get the CPU they got in the base (CFS spreads a group's weight over the CPUs it has
 * runnable threads on).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cgroup-internal.h"

struct ks_cg {
	int fd;             /* its 'tasks' / 'cgroup.threads', open for writing */
	unsigned gen;       /* cg.gen when made: another one in a fork child */
	int gone;           /* ks_cg_fini() removed its directory (it stays in cg.list: its owner
			       frees it) */
	struct ks_cg *next; /* in cg.list */
	char dir[CG_PATH + 16];
};

static struct {
	pthread_mutex_t lock;  /* new, free, fini; the fields below but base_fd's use */
	int decided, on;
	struct cg_where where;
	const char *tidfile;   /* "tasks" (v1) or "cgroup.threads" (v2) */
	int base_fd;           /* the base's tidfile, open for writing, kept for the process's life */
	unsigned gen;          /* bumped by ks_cg_atfork_child() */
	int dir_made;          /* the process's directory exists */
	int added_cpu;         /* v2: this process wrote '+cpu' to the base's subtree_control */
	int atexit_done;
	unsigned nvp, next_id;
	long nice_weight;      /* CFS weight of the process's nice value at ks_cg_init() */
	struct ks_cg *list;
	char dir[CG_PATH];
	char why[CG_PATH + 256];
} cg = { .lock = PTHREAD_MUTEX_INITIALIZER, .base_fd = -1 };

/* CFS's weight of each nice value, -20..19 (the kernel's sched_prio_to_weight). */
static const long nice_weights[40] = {
	88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
	9548,  7620,  6100,  4904,  3906,  3121,  2501,  1991,  1586,  1277,
	1024,  820,   655,   526,   423,   335,   272,   215,   172,   137,
	110,   87,    70,    56,    45,    36,    29,    23,    18,    15,
};

/* write(2) without touching errno: the hand-off runs it on a thread wearing another's TLS. */
static long raw_write(int fd, const void *buf, size_t n)
{
	long r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"((long)SYS_write), "D"((long)fd), "S"(buf), "d"(n)
			 : "rcx", "r11", "memory");
	return r;
}

static long raw_gettid(void)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"((long)SYS_gettid) : "rcx", "r11", "memory");
	return r;
}

/* A descriptor kept for the process's life, moved to the top of the descriptor table: the
 * program's open() still gets the lowest free number, as without the groups. Where the top is
 * taken or the limit is low, it stays where it is. */
static int keep_high(int fd)
{
	struct rlimit rl;
	if (fd < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 256)
		return fd;
	long top = rl.rlim_cur > 1L << 20 ? 1L << 20 : (long)rl.rlim_cur;
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, (int)(top - 64));
	if (hi < 0)
		return fd;
	close(fd);
	return hi;
}

/* Write tid in decimal to fd: the kernel moves that thread (0: the writer) into the cgroup. */
static int write_tid(int fd, pid_t tid)
{
	char rev[16], buf[16];
	size_t n = 0, k = 0;
	unsigned long v = tid < 0 ? -(unsigned long)tid : (unsigned long)tid;
	do
		rev[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	if (tid < 0)
		buf[k++] = '-';
	while (n)
		buf[k++] = rev[--n];
	long r = raw_write(fd, buf, k);
	return r < 0 ? (int)r : 0;
}

int ks_cg_enter(struct ks_cg *g, pid_t tid)
{
	return write_tid(g->fd, tid);
}

int ks_cg_leave(pid_t tid)
{
	return write_tid(cg.base_fd, tid);
}

const char *ks_cg_mode(void)
{
	return !cg.on ? "off" : cg.where.v2 ? "v2" : "v1";
}

const char *ks_cg_base_dir(void)
{
	return cg.on ? cg.where.base : "";
}

const char *ks_cg_proc_dir(void)
{
	return cg.on && cg.dir_made ? cg.dir : "";
}

const char *ks_cg_dir(const struct ks_cg *g)
{
	return g->dir;
}

static int file_in(const char *dir, const char *file, const char *s)
{
	char path[CG_PATH + 96];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	return cg_write_file(path, s);
}

/* Move every thread listed in dir's tidfile to the base. */
static void empty_group(const char *dir)
{
	char path[CG_PATH + 96];
	snprintf(path, sizeof path, "%s/%s", dir, cg.tidfile);
	FILE *f = fopen(path, "re");
	int tid;
	while (f && fscanf(f, "%d", &tid) == 1)
		write_tid(cg.base_fd, tid);
	if (f)
		fclose(f);
}

/* Empty and remove one cgroup directory; a thread moved in meanwhile (a hand-off on another
 * thread) makes rmdir fail with EBUSY: empty it again. 0 or -errno. */
static int remove_group(const char *dir)
{
	for (int tries = 0; tries < 8; tries++) {
		empty_group(dir);
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			break;
	}
	return -errno;
}

static void remove_group_cb(const char *path, const char *name, void *arg)
{
	(void)name;
	(void)arg;
	remove_group(path);
}

/* A process directory and its VP groups. */
static int remove_tree(const char *dir)
{
	cg_each_subdir(dir, "", remove_group_cb, NULL);
	return remove_group(dir);
}

static void count_cb(const char *path, const char *name, void *arg)
{
	(void)path;
	(void)name;
	++*(int *)arg;
}

/* v2: take back the '+cpu' this process added to the base, unless the base has a child
 * directory left (another process's, which may rely on it by now). */
static void drop_cpu(void)
{
	int children = 0;
	if (!cg.added_cpu)
		return;
	cg_each_subdir(cg.where.base, "", count_cb, &children);
	if (!children)
		file_in(cg.where.base, "cgroup.subtree_control", "-cpu");
	cg.added_cpu = 0;
}

struct sweep {
	unsigned long ns;
	pid_t self;
	unsigned long long start;
};

static void sweep_cb(const char *path, const char *name, void *arg)
{
	struct sweep *s = arg;
	enum cg_owner o = cg_owner_of(name, s->ns, s->self, s->start);
	/* CG_SELF: left by this process's previous program (execve keeps pid and start time) */
	if (o == CG_DEAD || o == CG_SELF)
		remove_tree(path);
}

/* The cpu weight of a process directory holding n VP groups. */
static void set_weight(unsigned n)
{
	char v[32];
	long w = cg.nice_weight * (long)(n ? n : 1);
	if (!cg.where.cpu)
		return;
	if (cg.where.v2) {
		w = (w * 100 + 512) / 1024;
		snprintf(v, sizeof v, "%ld", w < 1 ? 1 : w > 10000 ? 10000 : w);
		file_in(cg.dir, "cpu.weight", v);
	} else {
		snprintf(v, sizeof v, "%ld", w < 2 ? 2 : w > 262144 ? 262144 : w);
		file_in(cg.dir, "cpu.shares", v);
	}
}

static int name_proc_dir(void)
{
	unsigned long long start;
	int r = cg_start_time(getpid(), &start);
	if (r)
		return r;
	snprintf(cg.dir, sizeof cg.dir, "%s/laio.%lu.%d.%llu", cg.where.base, cg_pidns(),
		 (int)getpid(), start);
	return 0;
}

/* v2: a cgroup made threaded, with the cpu controller for its children. */
static int v2_threaded(const char *dir, int parent_of_groups)
{
	int r = file_in(dir, "cgroup.type", "threaded");
	if (!r && parent_of_groups && cg.where.cpu)
		r = file_in(dir, "cgroup.subtree_control", "+cpu");
	return r;
}

/* v2: '+cpu' in the base's subtree_control, unless it is there. */
static int v2_base_cpu(void)
{
	char path[CG_PATH + 64], buf[512];
	if (!cg.where.cpu)
		return 0;
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", cg.where.base);
	if (cg_read_file(path, buf, sizeof buf) >= 0 && cg_has_word(buf, "cpu", ' '))
		return 0;
	int r = cg_write_file(path, "+cpu");
	if (!r)
		cg.added_cpu = 1;
	return r;
}

/* The process's directory, with the lock held. 0 or -errno; what failed in cg.why. */
static int make_proc_dir(void)
{
	int r = name_proc_dir();
	if (!r && cg.where.v2 && (r = v2_base_cpu()) != 0)
		snprintf(cg.why, sizeof cg.why, "cgroup v2: cannot enable the cpu controller in %s/"
			 "cgroup.subtree_control (%s)", cg.where.base, strerror(-r));
	if (!r && mkdir(cg.dir, 0755) != 0) {
		r = -errno;
		snprintf(cg.why, sizeof cg.why, "cannot create %s (%s)", cg.dir, strerror(-r));
	}
	if (!r && cg.where.v2 && (r = v2_threaded(cg.dir, 1)) != 0) {
		snprintf(cg.why, sizeof cg.why, "cgroup v2: %s cannot be a threaded domain (%s): it "
			 "has populated domain children or domain controllers enabled", cg.where.base,
			 strerror(-r));
		rmdir(cg.dir);
	}
	if (r) {
		drop_cpu();
		return r;
	}
	cg.dir_made = 1;
	set_weight(cg.nvp);
	return 0;
}

static void remove_proc_dir(void)
{
	if (cg.dir_made)
		remove_tree(cg.dir);
	cg.dir_made = 0;
	drop_cpu();
}

/* The base's tidfile, open for good; writing the calling thread's tid to it (a move to where it
 * already is) checks the kernel's permission rules for moves back. 0, or the reason in cg.why. */
static int open_base(void)
{
	char path[CG_PATH + 96];
	snprintf(path, sizeof path, "%s/%s", cg.where.base, cg.tidfile);
	cg.base_fd = keep_high(open(path, O_WRONLY | O_CLOEXEC));
	int r = cg.base_fd < 0 ? -errno : write_tid(cg.base_fd, (pid_t)raw_gettid());
	if (!r)
		return 0;
	snprintf(cg.why, sizeof cg.why, "%s: no right to move threads in %s (%s): %s", ks_cg_mode(),
		 path, strerror(-r), cg.where.v2 ? "not root, and the cgroup is not delegated to "
		 "this user" : "cgroup v1 needs root");
	if (cg.base_fd >= 0)
		close(cg.base_fd);
	cg.base_fd = -1;
	return -1;
}

static void sweep_dead(void)
{
	struct sweep s = { cg_pidns(), getpid(), 0 };
	if (cg_start_time(s.self, &s.start) == 0)
		cg_each_subdir(cg.where.base, "laio.", sweep_cb, &s);
}

/* With the base found: check the right to move threads, sweep, make the process's directory. */
static void start(void)
{
	cg.on = 1; /* ks_cg_mode() names the hierarchy in open_base()'s reason */
	cg.tidfile = cg.where.v2 ? "cgroup.threads" : "tasks";
	int nice = getpriority(PRIO_PROCESS, 0);
	cg.nice_weight = nice_weights[(nice < -20 ? -20 : nice > 19 ? 19 : nice) + 20];
	if (open_base() == 0) {
		sweep_dead();
		if (make_proc_dir() != 0) {
			close(cg.base_fd);
			cg.base_fd = -1;
		}
	}
	cg.on = cg.base_fd >= 0;
}

int ks_cg_init_as(int enable, enum ks_cg_want want, const char **why)
{
	pthread_mutex_lock(&cg.lock);
	if (cg.decided) {
		pthread_mutex_unlock(&cg.lock);
		if (why)
			*why = cg.why;
		return cg.on;
	}
	cg.decided = 1;
	if (!enable)
		snprintf(cg.why, sizeof cg.why, "disabled (LAIO_CGROUP=0 or the configuration)");
	else if (cg_locate(want, &cg.where, cg.why, sizeof cg.why) == 0)
		start(); /* sets cg.on, or says why not in cg.why */
	if (cg.on) {
		snprintf(cg.why, sizeof cg.why, "cgroup %s%s: one cpu cgroup per VP under %s",
			 ks_cg_mode(), cg.where.cpu ? "" : " (without the cpu controller)", cg.dir);
		if (!cg.atexit_done)
			cg.atexit_done = atexit(ks_cg_fini) == 0;
	}
	pthread_mutex_unlock(&cg.lock);
	if (why)
		*why = cg.why;
	return cg.on;
}

int ks_cg_init(int enable, const char **why)
{
	return ks_cg_init_as(enable, KS_CG_AUTO, why);
}

/* A VP group's directory and open tidfile, with the lock held. 0 or -errno. */
static int make_group(struct ks_cg *g)
{
	int r = cg.dir_made ? 0 : make_proc_dir();
	if (r)
		return r;
	snprintf(g->dir, sizeof g->dir, "%s/vp%u", cg.dir, cg.next_id++);
	if (mkdir(g->dir, 0755) != 0)
		return -errno;
	if (cg.where.v2)
		r = v2_threaded(g->dir, 0);
	if (!r) {
		char path[CG_PATH + 96];
		snprintf(path, sizeof path, "%s/%s", g->dir, cg.tidfile);
		g->fd = keep_high(open(path, O_WRONLY | O_CLOEXEC));
		r = g->fd < 0 ? -errno : 0;
	}
	if (r)
		rmdir(g->dir);
	return r;
}

struct ks_cg *ks_cg_new(void)
{
	struct ks_cg *g = calloc(1, sizeof *g);
	int r = g ? 0 : -ENOMEM;
	pthread_mutex_lock(&cg.lock);
	if (!r && !cg.on)
		r = -ENODEV;
	if (!r)
		r = make_group(g);
	if (!r) {
		g->gen = cg.gen;
		g->next = cg.list;
		cg.list = g;
		set_weight(++cg.nvp);
	} else if (cg.on && cg.dir_made && cg.nvp == 0) {
		remove_proc_dir(); /* made for this group: the last VP removes it */
	}
	pthread_mutex_unlock(&cg.lock);
	if (r) {
		free(g);
		errno = -r;
		return NULL;
	}
	return g;
}

static void unlink_group(struct ks_cg *g)
{
	for (struct ks_cg **p = &cg.list; *p; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			return;
		}
}

void ks_cg_free(struct ks_cg *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&cg.lock);
	if (g->gen == cg.gen)
		unlink_group(g);
	if (g->gen == cg.gen && !g->gone) {
		remove_group(g->dir);
		if (--cg.nvp == 0)
			remove_proc_dir();
		else
			set_weight(cg.nvp);
	}
	pthread_mutex_unlock(&cg.lock);
	close(g->fd);
	free(g);
}

void ks_cg_fini(void)
{
	pthread_mutex_lock(&cg.lock);
	if (cg.on) {
		/* the descriptors stay open: a hand-off on another thread may still write to them,
		 * and a number closed here could name another file by then */
		for (struct ks_cg *g = cg.list; g; g = g->next)
			if (!g->gone) {
				remove_group(g->dir);
				g->gone = 1;
			}
		cg.nvp = 0;
		remove_proc_dir();
	}
	pthread_mutex_unlock(&cg.lock);
}

void ks_cg_atfork_child(void)
{
	if (!cg.on)
		return;
	write_tid(cg.base_fd, (pid_t)raw_gettid());
	/* only this thread exists: a lock another thread of the parent held is free now */
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	cg.lock = fresh;
	cg.gen++;
	cg.list = NULL;
	cg.nvp = 0;
	cg.next_id = 0;
	cg.dir_made = 0;
	cg.added_cpu = 0;
}
