/*
 * vp.c - virtual processors: starting and stopping the runtime, configuration, statistics.
 *
 * Each VP is a kernel thread (pthread) that makes itself a scheduler-activations VP with
 * sa_create(), its mailbox's upcall entry being rt_upcall() on an upcall stack of its own. It
 * is the VP's first activation; later activations (after a call blocked) wear its TLS, so
 * rt_tls_vp names the VP whichever kernel thread runs it. The thread saves its own context
 * (`home`) and enters the idle loop on the upcall stack; rt_shutdown() makes the idle loop
 * resume `home`, and the pthread returns.
 *
 * A block detector may look at a VP's mailbox, and at its threads' mailboxes, at any time
 * until the VP is destroyed: thread structures are pooled, never freed. A VP is taken down by
 * its own kernel thread (sa_destroy, then sa_free: rt_shutdown() has waited for every user
 * thread, so no call of the VP is still in the background), and only then is its memory freed.
 * rt_init() after rt_shutdown() makes new VPs and reuses the pooled thread structures.
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stddef.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rt-internal.h"

#define RT_UPCALL_STACK_SIZE (256 * 1024)
#define RT_DEFAULT_IDLE_SPIN_NS 20000
#define RT_MIN_QUANTUM_US 50 /* below it the ticker and the signals would take the CPU */

_Static_assert((int)RT_DETECT_AUTO == (int)SA_DETECT_AUTO &&
	       (int)RT_DETECT_UPCALL == (int)SA_DETECT_UPCALL &&
	       (int)RT_DETECT_PROBE == (int)SA_DETECT_PROBE &&
	       (int)RT_DETECT_WATCHDOG == (int)SA_DETECT_WATCHDOG &&
	       (int)RT_DETECT_EAGER == (int)SA_DETECT_EAGER &&
	       (int)RT_DETECT_IDLE == (int)SA_DETECT_IDLE, "detector numbers");
_Static_assert(offsetof(struct rt_thread, tm) == 0, "a mailbox pointer is a thread pointer");
_Static_assert(offsetof(struct rt_vp, mb) == 0, "a mailbox pointer is a VP pointer");
_Static_assert(offsetof(struct sa_context, rsp) == 48 && offsetof(struct sa_context, rip) == 56 &&
	       offsetof(struct sa_context, mxcsr) == 64 && offsetof(struct sa_context, fpucw) == 68,
	       "switch.S context layout");

struct rt_global rt_g;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int detector;
static int cgroup; /* rt_config.cgroup */

static void futex_wait(uint32_t *w, uint32_t val, long ns)
{
	struct timespec ts = { ns / 1000000000L, ns % 1000000000L };
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, ns ? &ts : NULL, NULL, 0);
}

static void futex_wake(uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void vp_start(void *arg)
{
	struct rt_vp *vp = arg;
	rt_san_upcall_enter(&vp->san);
	rt_san_on_stack(vp->upcall_stack, vp->upcall_stack_size);
	rt_vp_idle(vp);
}

static void *vp_main(void *arg)
{
	struct rt_vp *vp = arg;
	rt_tls_vp = vp;
	vp->mb.sa_func = rt_upcall;
	vp->mb.sa_stack = vp->upcall_stack;
	vp->mb.sa_stacksize = vp->upcall_stack_size;
	vp->mb.sa_udata = vp;
	vp->mb.sa_notify_fd = -1;
	if (vp->tl)
		vp->mb.sa_flags |= SA_TIMESTAMP; /* blocked calls' spans end when they finished */
	if (rt_g.quantum_ns) {
		/* before sa_create(): the mask recorded then is the one every later runner of
		   this VP wears */
		rt_preempt_unblock();
	}
	int err = 0;
	bool created = sa_create(&vp->mb) == 0;
	if (!created || (detector != RT_DETECT_AUTO && sa_set_detector(&vp->mb, detector) < 0) ||
	    (cgroup != 0 && sa_set_cgroup(&vp->mb, cgroup > 0) < 0))
		err = errno ? errno : EAGAIN;
	if (err && created) {
		sa_destroy(&vp->mb);
		sa_free(&vp->mb);
	}
	__atomic_store_n(&vp->init_err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&vp->init_done, 1, __ATOMIC_RELEASE);
	futex_wake(&vp->init_done);
	if (err)
		return NULL;
	rt_san_fiber_current(&vp->san_home);
	if (rt_g.trace) {
		char how[1536];
		sa_trace_detector_setup(how, sizeof how, &vp->mb, detector);
		rt_trace(vp, "virtual processor up (sa_create); detector %s", how);
	}
	/* from here the VP schedules; rt_shutdown() brings it back here, maybe on another kernel
	   thread wearing this one's TLS (the pthread exits on that one) */
	sa_save_and_run(&vp->home, vp_start, vp, vp->upcall_stack + vp->upcall_stack_size);
	sa_destroy(&vp->mb);
	sa_free(&vp->mb);
	return NULL;
}

static void vp_free(struct rt_vp *vp)
{
	sa_tl_buf_free(vp->tl);
	rt_san_fiber_free(&vp->san);
	rt_stack_free(&vp->upcall);
	free(vp);
}

static int vp_new(int id, struct rt_vp **out)
{
	struct rt_vp *vp = aligned_alloc(64, (sizeof(*vp) + 63) & ~(size_t)63);
	if (!vp)
		return ENOMEM;
	memset(vp, 0, sizeof(*vp));
	vp->id = id;
	int e = rt_stack_alloc(&vp->upcall, RT_UPCALL_STACK_SIZE);
	if (e) {
		free(vp);
		return e;
	}
	vp->upcall_stack = vp->upcall.lo;
	vp->upcall_stack_size = vp->upcall.size;
	rt_vp_queues_init(vp);
	*out = vp;
	return 0;
}

/* Stop the first `started` VPs, join their threads and free every VP of vps[0..n). */
static void vp_stop_all(struct rt_vp **vps, int started, int n)
{
	for (int i = 0; i < started; i++) {
		__atomic_store_n(&vps[i]->stop, true, __ATOMIC_RELEASE);
		sa_wakeup(&vps[i]->mb);
	}
	for (int i = 0; i < started; i++)
		pthread_join(vps[i]->pthread, NULL);
	for (int i = 0; i < n; i++)
		if (vps[i])
			vp_free(vps[i]);
	free(vps);
}

int rt_init_config(const struct rt_config *cfg)
{
	struct rt_config c = cfg ? *cfg : (struct rt_config){ 0 };
	if (c.detector < RT_DETECT_AUTO || c.detector > RT_DETECT_IDLE || c.cgroup < -1 ||
	    c.cgroup > 1)
		return EINVAL;
	if (!sa_detector_available(c.detector, NULL))
		return ENOTSUP;
	if (c.nvp <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c.nvp = n > 0 ? (int)n : 1;
	}
	if (c.stack_size == 0)
		c.stack_size = RT_DEFAULT_STACK_SIZE;
	if (c.stack_size < 4096)
		return EINVAL;
	if (c.quantum_us == 0) {
		const char *q = getenv("RT_QUANTUM_US");
		if (q && *q) {
			char *end;
			unsigned long v = strtoul(q, &end, 10);
			if (*end || v > 60000000ul)
				return EINVAL;
			c.quantum_us = (unsigned)v;
		}
	}
	if (c.quantum_us && c.quantum_us < RT_MIN_QUANTUM_US)
		return EINVAL;

	pthread_mutex_lock(&init_lock);
	if (rt_g.running) {
		pthread_mutex_unlock(&init_lock);
		return EBUSY;
	}
	struct rt_vp **vps = calloc((size_t)c.nvp, sizeof(*vps));
	int err = vps ? 0 : ENOMEM;
	for (int i = 0; i < c.nvp && !err; i++)
		err = vp_new(i, &vps[i]);
	if (err) {
		if (vps)
			vp_stop_all(vps, 0, c.nvp);
		pthread_mutex_unlock(&init_lock);
		return err;
	}
	rt_g.vps = vps;
	rt_g.nvp = c.nvp;
	rt_g.stack_size = rt_page_round(c.stack_size);
	rt_g.idle_spin_ns = c.idle_spin_ns ? c.idle_spin_ns : RT_DEFAULT_IDLE_SPIN_NS;
	rt_g.live = 0;
	rt_g.spawned = 0;
	rt_g.trace = c.trace || sa_trace_env_on("RT_TRACE");
	if (rt_g.trace)
		sa_trace_stdout_lines();
	const char *tf = c.trace_file && *c.trace_file ? c.trace_file : getenv("RT_TRACE_FILE");
	rt_g.tl_file = tf && *tf ? sa_tl_open(tf, "rt") : NULL;
	for (int i = 0; i < c.nvp && rt_g.tl_file; i++)
		vps[i]->tl = sa_tl_buf_new(rt_g.tl_file);
	rt_g.traced = rt_g.trace || rt_g.tl_file;
	detector = c.detector;
	cgroup = c.cgroup;
	__atomic_store_n(&rt_g.quantum_ns, (uint64_t)c.quantum_us * 1000u, __ATOMIC_RELAXED);
	if (rt_g.quantum_ns && (err = rt_preempt_prepare()) != 0) {
		__atomic_store_n(&rt_g.quantum_ns, 0, __ATOMIC_RELAXED);
		vp_stop_all(vps, 0, c.nvp);
		rt_g.vps = NULL;
		rt_g.nvp = 0;
		pthread_mutex_unlock(&init_lock);
		return err;
	}

	int started = 0;
	for (; started < c.nvp; started++) {
		struct rt_vp *vp = vps[started];
		if ((err = pthread_create(&vp->pthread, NULL, vp_main, vp)) != 0)
			break;
		while (!__atomic_load_n(&vp->init_done, __ATOMIC_ACQUIRE))
			futex_wait(&vp->init_done, 0, 0);
		if ((err = vp->init_err) != 0) {
			pthread_join(vp->pthread, NULL); /* it has returned; not counted as started */
			break;
		}
	}
	if (!err && rt_g.quantum_ns)
		err = rt_preempt_start();
	if (err) {
		/* a VP whose sa_create() failed has returned already: join it with the others */
		vp_stop_all(vps, started, c.nvp);
		rt_g.vps = NULL;
		rt_g.nvp = 0;
		__atomic_store_n(&rt_g.quantum_ns, 0, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&init_lock);
		return err;
	}
	__atomic_store_n(&rt_g.running, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&init_lock);
	return 0;
}

/* Programs built against 0.1 pass a struct rt_config that ends with trace_file: they are linked
 * to rt_init_config@LAIO_0.1, which reads only that much. */
__attribute__((visibility("default"))) int rt_init_config_v01(const struct rt_config *cfg);
__asm__(".symver rt_init_config_v01, rt_init_config@LAIO_0.1");
int rt_init_config_v01(const struct rt_config *cfg)
{
	struct rt_config all = { 0 };
	if (cfg)
		memcpy(&all, cfg, offsetof(struct rt_config, cgroup));
	return rt_init_config(cfg ? &all : NULL);
}

int rt_init(int nvp)
{
	struct rt_config c = { .nvp = nvp };
	return rt_init_config(&c);
}

int rt_shutdown(void)
{
	if (rt_vp_self())
		return EDEADLK;
	pthread_mutex_lock(&init_lock);
	if (!rt_g.running) {
		pthread_mutex_unlock(&init_lock);
		return EINVAL;
	}
	for (;;) {
		uint32_t seq = __atomic_load_n(&rt_g.live_zero, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&rt_g.live, __ATOMIC_ACQUIRE) == 0)
			break;
		futex_wait(&rt_g.live_zero, seq, 100 * 1000 * 1000L);
	}
	__atomic_store_n(&rt_g.running, false, __ATOMIC_RELEASE);
	if (rt_g.quantum_ns)
		rt_preempt_stop(); /* the ticker reads the VPs */
	vp_stop_all(rt_g.vps, rt_g.nvp, rt_g.nvp); /* the VPs read rt_g until they have stopped */
	rt_g.vps = NULL;
	rt_g.nvp = 0;
	__atomic_store_n(&rt_g.quantum_ns, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&init_lock);
	return 0;
}

int rt_nvp(void)
{
	return __atomic_load_n(&rt_g.running, __ATOMIC_ACQUIRE) ? rt_g.nvp : 0;
}

int rt_vp_id(void)
{
	struct rt_vp *vp = rt_vp_self();
	return vp && vp->cur ? vp->id : -1;
}

/* Programs built against 0.1 pass a struct rt_stats that ends with preempt_signals: they are
 * linked to rt_stats@LAIO_0.1, which fills only that much. */
__attribute__((visibility("default"))) void rt_stats_v01(struct rt_stats *st);
__asm__(".symver rt_stats_v01, rt_stats@LAIO_0.1");
void rt_stats_v01(struct rt_stats *st)
{
	struct rt_stats all;
	rt_stats(&all);
	memcpy(st, &all, offsetof(struct rt_stats, preempt_depth));
}

void rt_stats(struct rt_stats *st)
{
	/* no lock: a user thread may ask while rt_shutdown() waits for it (VPs are freed only
	   after every user thread has finished) */
	memset(st, 0, sizeof(*st));
	st->spawned = __atomic_load_n(&rt_g.spawned, __ATOMIC_RELAXED);
	for (int i = 0; i < rt_g.nvp; i++) {
		struct rt_vp *vp = rt_g.vps[i];
#define ADD(f) st->f += __atomic_load_n(&vp->st.f, __ATOMIC_RELAXED)
		ADD(switches);
		ADD(upcalls_blocked);
		ADD(upcalls_unblocked);
		ADD(completions);
		ADD(polled);
		ADD(steals);
		ADD(parks);
		ADD(preemptions);
		ADD(preempt_signals);
#undef ADD
	}
	st->preempt_depth = __atomic_load_n(&rt_g.preempt_depth, __ATOMIC_RELAXED);
}
