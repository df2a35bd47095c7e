/* cgroup-internal.h - what cgroup.c and cgroup_find.c share. */
#ifndef KS_CGROUP_INTERNAL_H
#define KS_CGROUP_INTERNAL_H

#include <sys/types.h>
#include "cgroup.h"

#define CG_PATH 1024
#define CG_BASE 768 /* a base path: room left for the names below it */

/* The base cgroup found by cg_locate(). */
struct cg_where {
	char base[CG_BASE]; /* its directory */
	int v2;             /* in the unified hierarchy (else v1 'cpu') */
	int cpu;            /* the cpu controller is used (v2: '+cpu' in subtree_control) */
};

enum cg_owner { CG_FOREIGN, CG_SELF, CG_ALIVE, CG_DEAD };

int cg_locate(enum ks_cg_want want, struct cg_where *w, char *why, size_t len);
int cg_has_word(const char *list, const char *word, char sep);
ssize_t cg_read_file(const char *path, char *buf, size_t len);
int cg_write_file(const char *path, const char *s);
int cg_start_time(pid_t pid, unsigned long long *start);
unsigned long cg_pidns(void);
enum cg_owner cg_owner_of(const char *name, unsigned long ns, pid_t self, unsigned long long self_start);
void cg_each_subdir(const char *dir, const char *prefix,
		    void (*fn)(const char *path, const char *name, void *arg), void *arg);

#endif
