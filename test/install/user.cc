// user.cc - the installed headers from C++ (test/install-test.sh): every one of them, the
// functions linked with C names, the libevent adapter from its own library.
#include <laio.h>
#include <laio/sa.h>
#include <laio/rt.h>
#include <laio/event.h>
#include <cerrno>
#include <cstdio>
#include <unistd.h>
#include <sys/syscall.h>

static void on_done(void *, long, int, void *) {}

int main()
{
	struct sa_counters c;
	sa_counters(&c);                        // was a link error: sa.h had no extern "C"
	if (laio_syscall(SYS_getpid) != getpid())
		return 1;
	struct event_base *base = event_base_new();
	struct laio_event_ctx *ctx = base ? laio_event_attach(base) : nullptr;
	if (!ctx)
		return 2;
	if (laio_event_set(ctx, nullptr, on_done, nullptr) != -1 || errno != EINVAL)
		return 3;                       // a NULL handle is refused
	laio_event_detach(ctx);
	event_base_free(base);
	if (sa_call_class(SYS_getpid) < 0 || rt_nvp() != 0)
		return 4;
	std::printf("laio %s: C++ program ok\n", LAIO_VERSION);
	return 0;
}
