/*
 * cgroup_find.c - where the calling thread's cpu cgroup lives, and whose the laio.* directories
 * in it are. Runs at ks_cg_init() and when a VP group is made: plain libc, errno free to change.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cgroup-internal.h"

/* Is word one of the sep-separated items of list? */
int cg_has_word(const char *list, const char *word, char sep)
{
	size_t n = strlen(word);
	for (const char *p = list; p && *p; p = strchr(p, sep), p = p ? p + 1 : NULL)
		if (strncmp(p, word, n) == 0 && (p[n] == sep || p[n] == 0 || p[n] == '\n' || p[n] == ' '))
			return 1;
	return 0;
}

/* The small text file at path into buf (NUL-terminated): its length or -errno. */
ssize_t cg_read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = 0;
	return n;
}

/* Write s to the file at path: 0 or -errno. */
int cg_write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	return n < 0 ? -e : 0;
}

/* The calling thread's path in one hierarchy, from /proc/thread-self/cgroup (lines
 * "id:controllers:path"): v1, the line whose controllers include 'cpu'; v2, the "0::" line.
 * 0, or -ENOENT when there is no such line. */
static int cgroup_line(int v1, char *path, size_t len)
{
	FILE *f = fopen("/proc/thread-self/cgroup", "re");
	char line[4096];
	int r = -ENOENT;
	while (f && r && fgets(line, sizeof line, f)) {
		char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
		if (!p)
			continue;
		*p = 0;
		int match = v1 ? cg_has_word(c + 1, "cpu", ',') : strcmp(line, "0:") == 0;
		if (match) {
			p[1 + strcspn(p + 1, "\n")] = 0;
			snprintf(path, len, "%s", p + 1);
			r = 0;
		}
	}
	if (f)
		fclose(f);
	return r;
}

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++)
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	*o = 0;
}

/* Does this mount (root of the hierarchy it shows, mount point) show cgpath? Then its directory. */
static int mount_shows(const char *root, const char *mnt, const char *cgpath, char *out, size_t len)
{
	size_t n = strcmp(root, "/") == 0 ? 0 : strlen(root);
	if (strncmp(cgpath, root, n) != 0 || (cgpath[n] != '/' && cgpath[n] != 0))
		return 0;
	int w = snprintf(out, len, "%s%s", mnt, cgpath + n);
	if (w > 0 && (size_t)w < len && w > 1 && out[w - 1] == '/')
		out[w - 1] = 0;
	return w > 0 && (size_t)w < len;
}

/* The directory of cgpath under a mount of the hierarchy (v1: a 'cgroup' mount with the cpu
 * controller; v2: 'cgroup2'), from /proc/self/mountinfo ("id parent dev root mountpoint opts
 * [tags] - fstype source superopts"). 0 or -ENOENT. */
static int mount_dir(int v1, const char *cgpath, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int r = -ENOENT;
	while (f && r && fgets(line, sizeof line, f)) {
		char *fld[32], *save = NULL;
		int n = 0;
		for (char *t = strtok_r(line, " \n", &save); t && n < 32; t = strtok_r(NULL, " \n", &save))
			fld[n++] = t;
		int dash = 5;
		while (dash < n && strcmp(fld[dash], "-") != 0)
			dash++;
		if (dash + 3 >= n)
			continue;
		const char *fstype = fld[dash + 1], *superopts = fld[dash + 3];
		int match = v1 ? strcmp(fstype, "cgroup") == 0 && cg_has_word(superopts, "cpu", ',')
			       : strcmp(fstype, "cgroup2") == 0;
		if (!match)
			continue;
		unescape(fld[3]);
		unescape(fld[4]);
		if (mount_shows(fld[3], fld[4], cgpath, out, len))
			r = 0;
	}
	if (f)
		fclose(f);
	return r;
}

/* v2: can the base take threaded children with the cpu controller? 0, or a reason in why. */
static int v2_usable(const char *base, int need_cpu, char *why, size_t len)
{
	char path[CG_PATH], buf[512];
	snprintf(path, sizeof path, "%s/cgroup.threads", base);
	if (access(path, F_OK) != 0) {
		snprintf(why, len, "cgroup v2 without threaded mode (a kernel before 4.14)");
		return -1;
	}
	snprintf(path, sizeof path, "%s/cgroup.controllers", base);
	if (need_cpu && (cg_read_file(path, buf, sizeof buf) < 0 || !cg_has_word(buf, "cpu", ' '))) {
		char v1[CG_PATH];
		if (cgroup_line(1, v1, sizeof v1) == 0)
			snprintf(why, len, "no cpu controller in cgroup v2: it is bound to a cgroup v1 "
				 "hierarchy");
		else
			snprintf(why, len, "cgroup v2: the cpu controller is not available in %s (not "
				 "enabled in its parent's cgroup.subtree_control)", base);
		return -1;
	}
	return 0;
}

int cg_locate(enum ks_cg_want want, struct cg_where *w, char *why, size_t len)
{
	char cgpath[CG_PATH];
	if (want == KS_CG_AUTO || want == KS_CG_V1) {
		if (cgroup_line(1, cgpath, sizeof cgpath) == 0) {
			if (mount_dir(1, cgpath, w->base, sizeof w->base) == 0) {
				w->v2 = 0;
				w->cpu = 1;
				return 0;
			}
			snprintf(why, len, "cgroup v1: the cpu cgroup %s is not mounted here", cgpath);
			return -1;
		}
		if (want == KS_CG_V1) {
			snprintf(why, len, "no cgroup v1 hierarchy with the cpu controller");
			return -1;
		}
	}
	if (cgroup_line(0, cgpath, sizeof cgpath) != 0) {
		snprintf(why, len, "no cgroup v2 hierarchy, and no cgroup v1 one with the cpu controller");
		return -1;
	}
	if (mount_dir(0, cgpath, w->base, sizeof w->base) != 0) {
		snprintf(why, len, "cgroup v2: the cgroup %s is not mounted here", cgpath);
		return -1;
	}
	w->v2 = 1;
	w->cpu = want != KS_CG_V2_NOCPU;
	return v2_usable(w->base, w->cpu, why, len);
}

/* A process's identity: its pid and start time (clock ticks after boot, /proc/PID/stat field
 * 22): a pid reused by a later process has another start time. 0 or -errno. */
int cg_start_time(pid_t pid, unsigned long long *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	ssize_t n = cg_read_file(path, buf, sizeof buf);
	if (n < 0)
		return (int)n;
	char *p = strrchr(buf, ')'); /* the command name may hold blanks and parentheses */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", start) != 1)
		return -EINVAL;
	return 0;
}

/* The pid namespace the pids in directory names are numbers of. */
unsigned long cg_pidns(void)
{
	struct stat st;
	return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* Whose is a laio.<pidns>.<pid>.<start> directory? */
enum cg_owner cg_owner_of(const char *name, unsigned long ns, pid_t self, unsigned long long self_start)
{
	unsigned long dns;
	int pid, used = 0;
	unsigned long long start, now;
	if (sscanf(name, "laio.%lu.%d.%llu%n", &dns, &pid, &start, &used) != 3 ||
	    name[used] != 0 || dns != ns)
		return CG_FOREIGN; /* not a name of ours, or pids of another namespace: cannot tell */
	if (pid == self && start == self_start)
		return CG_SELF;
	int r = cg_start_time(pid, &now);
	if (r == -ENOENT || r == -ESRCH || (r == 0 && now != start))
		return CG_DEAD;
	return CG_ALIVE;
}

/* Call fn(dir/name, arg) for each subdirectory of dir whose name starts with prefix. */
void cg_each_subdir(const char *dir, const char *prefix, void (*fn)(const char *, const char *, void *),
		    void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[CG_PATH];
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_type != DT_DIR || strncmp(e->d_name, prefix, strlen(prefix)) != 0 ||
		    strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		fn(path, e->d_name, arg);
	}
	if (d)
		closedir(d);
}
