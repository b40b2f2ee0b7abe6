/*
 * How many CPUs this process may use: the default of `train --threads` and
 * `collect --jobs`. The smallest of the CPUs in its affinity mask (taskset,
 * numactl, a Slurm or MPI binding) and the CPU quota of its cgroup (a
 * container's --cpus, systemd's CPUQuota, Slurm's cgroup plugin), which the
 * kernel enforces by throttling: a process with 2 CPUs' worth of quota on a
 * 64-core node runs slower with 64 threads than with 2.
 *
 * cgroup v2 keeps the quota in cpu.max ("QUOTA PERIOD" or "max PERIOD"), v1 in
 * cpu.cfs_quota_us and cpu.cfs_period_us (-1 = none). Every cgroup from the
 * process's own (in /proc/self/cgroup) up to the root of the mount is read,
 * since a parent's quota binds its children too; inside a container the
 * process's path may not exist under the mount, whose root is then its own
 * cgroup. A missing, unreadable or odd file is no limit.
 */
#define _GNU_SOURCE
#include "base.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "123" at *s: its value in *out, *s moved past it; 0, or -1 when there are
 * no digits or too many (more than a quota can mean). */
static int parse_count(unsigned long long *out, const char **s)
{
	unsigned long long v = 0;
	const char *p = *s;
	int n = 0;
	while (*p >= '0' && *p <= '9') {
		if (++n > 18)
			return -1;
		v = v * 10 + (unsigned long long)(*p++ - '0');
	}
	if (n == 0)
		return -1;
	*out = v;
	*s = p;
	return 0;
}

static int is_end(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	return *s == '\0';
}

/* ceil(quota / period) CPUs, at least 1 and at most INT_MAX; 0 (no limit)
 * when either is 0 */
static int quota_cpus(unsigned long long quota, unsigned long long period)
{
	if (quota == 0 || period == 0)
		return 0;
	const unsigned long long n = quota / period + (quota % period != 0);
	return n > INT_MAX ? INT_MAX : (int)n;
}

int bv_cgroup_cpu_max(const char *text)
{
	unsigned long long quota, period;
	const char *s = text;
	if (strncmp(s, "max", 3) == 0 && (s[3] == ' ' || s[3] == '\t'))
		return 0;
	if (parse_count(&quota, &s) != 0 || (*s != ' ' && *s != '\t'))
		return 0;
	while (*s == ' ' || *s == '\t')
		s++;
	if (parse_count(&period, &s) != 0 || !is_end(s))
		return 0;
	return quota_cpus(quota, period);
}

int bv_cgroup_cfs_quota(const char *quota_text, const char *period_text)
{
	unsigned long long quota, period;
	const char *q = quota_text, *p = period_text;
	if (parse_count(&quota, &q) != 0 || !is_end(q)) /* "-1" (none) lands here too */
		return 0;
	if (parse_count(&period, &p) != 0 || !is_end(p))
		return 0;
	return quota_cpus(quota, period);
}

int bv_cgroup_path(char *out, size_t size, const char *proc_cgroup, const char *controller)
{
	const size_t clen = strlen(controller);
	for (const char *line = proc_cgroup; *line; ) {
		const char *end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		/* "ID:CONTROLLERS:PATH"; v2's line has ID 0 and no controllers */
		const char *c1 = memchr(line, ':', (size_t)(end - line));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		if (c2 && c2[1] == '/') {
			int match = 0;
			if (clen == 0)
				match = c2 == c1 + 1 && c1 - line == 1 && line[0] == '0';
			else
				for (const char *w = c1 + 1; w < c2 && !match; ) {
					const char *comma = memchr(w, ',', (size_t)(c2 - w));
					const char *wend = comma ? comma : c2;
					match = (size_t)(wend - w) == clen && memcmp(w, controller, clen) == 0;
					w = wend + 1;
				}
			const size_t n = (size_t)(end - c2 - 1);
			if (match && n < size) {
				memcpy(out, c2 + 1, n);
				out[n] = '\0';
				return 0;
			}
		}
		line = *end ? end + 1 : end;
	}
	return -1;
}

/* Up to size - 1 bytes of a small file (procfs and cgroupfs report size 0, so
 * bv_read_file's size bound does not fit them; this one is the buffer) into
 * buf, NUL-terminated; 0, or -1 if it cannot be opened or read. */
static int read_small(char *buf, size_t size, const char *path)
{
	int fd;
	size_t ignored, len = 0;
	if (bv_open_input(&fd, &ignored, path) != 0)
		return -1;
	while (len < size - 1) {
		ssize_t r = read(fd, buf + len, size - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	return len ? 0 : -1;
}

/* The smallest quota, in CPUs, of the cgroups from `path` up to the root of
 * the mount at `root`; 0 = none. v1 (files named) or v2 (cpu.max). */
static int cgroup_limit(const char *root, const char *path, int v1)
{
	char dir[2048], file[4096], a[128], b[128];
	int best = 0;
	if (strlen(path) >= sizeof dir)
		return 0;
	strcpy(dir, path);
	for (;;) {
		const char *sep = strcmp(dir, "/") == 0 ? "" : dir;
		int n = 0;
		if (v1) {
			snprintf(file, sizeof file, "%s%s/cpu.cfs_quota_us", root, sep);
			if (read_small(a, sizeof a, file) == 0) {
				snprintf(file, sizeof file, "%s%s/cpu.cfs_period_us", root, sep);
				if (read_small(b, sizeof b, file) == 0)
					n = bv_cgroup_cfs_quota(a, b);
			}
		} else {
			snprintf(file, sizeof file, "%s%s/cpu.max", root, sep);
			if (read_small(a, sizeof a, file) == 0)
				n = bv_cgroup_cpu_max(a);
		}
		if (n > 0 && (best == 0 || n < best))
			best = n;
		char *slash = strrchr(dir, '/');
		if (!slash || strcmp(dir, "/") == 0)
			break;
		if (slash == dir)
			dir[1] = '\0'; /* "/a" -> "/" */
		else
			*slash = '\0';
	}
	return best;
}

/* CPUs in the affinity mask, with a set sized to the kernel's (a fixed
 * cpu_set_t holds 1024 and fails with EINVAL on larger machines); 0 if unknown. */
static int affinity_cpus(void)
{
	for (int n = 1024; n <= (1 << 22); n *= 2) {
		cpu_set_t *set = CPU_ALLOC(n);
		const size_t size = CPU_ALLOC_SIZE(n);
		if (!set)
			return 0;
		if (sched_getaffinity(0, size, set) == 0) {
			const int count = CPU_COUNT_S(size, set);
			CPU_FREE(set);
			return count;
		}
		const int e = errno;
		CPU_FREE(set);
		if (e != EINVAL)
			return 0;
	}
	return 0;
}

static int min_limit(int a, int b)
{
	return a <= 0 ? b : b <= 0 ? a : a < b ? a : b;
}

int bv_cpus_available(void)
{
	/* the files' errors are no limit, not the caller's error */
	char saved[1024];
	const int saved_code = bv_error_code();
	snprintf(saved, sizeof saved, "%s", bv_error_last());

	int n = affinity_cpus();
	if (n <= 0) {
		const long online = sysconf(_SC_NPROCESSORS_ONLN);
		n = online > 0 && online < INT_MAX ? (int)online : 1;
	}
	char cg[16384], path[2048];
	if (read_small(cg, sizeof cg, "/proc/self/cgroup") != 0)
		cg[0] = '\0';
	n = min_limit(n, cgroup_limit("/sys/fs/cgroup",
				      bv_cgroup_path(path, sizeof path, cg, "") == 0 ? path : "/", 0));
	n = min_limit(n, cgroup_limit("/sys/fs/cgroup/cpu",
				      bv_cgroup_path(path, sizeof path, cg, "cpu") == 0 ? path : "/", 1));

	bv_error_set(saved_code, "%s", saved);
	return n > 0 ? n : 1;
}
