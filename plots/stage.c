/*
 * bvtool plot's files on disk: the staging directory that bv_plot_write
 * (plot.c) writes every figure's data file and script into, inside the output
 * directory, and the commit that later renames them, with the images the
 * caller drew there, into place (bv_plot_commit) -- or removes the staging
 * directory (bv_plot_result_release). Staging directories this host's killed
 * bvtool processes left behind are removed on the way.
 */
#include "plot_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the output directory ------------------------------------------------------- */

/* mkdir -p dir */
static int make_dirs(const char *dir)
{
	size_t len = strlen(dir);
	char *p = malloc(len + 1);
	int rc = 0;
	if (!p)
		return bv_error_set(BV_ENOMEM, "out of memory");
	memcpy(p, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char keep = p[i];
		p[i] = '\0';
		struct stat sb;
		if (mkdir(p, 0777) != 0 && errno != EEXIST) {
			rc = bv_error_set(BV_EIO, "cannot create the output directory '%s': %s", dir, strerror(errno));
			break;
		}
		if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			rc = bv_error_set(BV_EIO, "cannot create the output directory '%s': '%s' is not a directory", dir,
					  p);
			break;
		}
		p[i] = keep;
	}
	free(p);
	return rc;
}

/* dir/name + ext on the heap (NULL when out of memory), without a doubled slash */
static char *join(const char *dir, const char *name, const char *ext)
{
	size_t dl = strlen(dir);
	char *path = malloc(dl + strlen(name) + strlen(ext) + 2);
	if (path)
		sprintf(path, "%s%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name, ext);
	return path;
}

/* b as the file dir/name + ext, written atomically (declared in plot_int.h) */
int plot_write_buf(const char *dir, const char *name, const char *ext, const bv_buf *b)
{
	char *path = join(dir, name, ext);
	if (!path)
		return bv_error_set(BV_ENOMEM, "out of memory");
	int rc = bv_write_file_atomic(path, b->data ? (const void *)b->data : "", b->len);
	free(path);
	return rc;
}

/* ---- the staging directory ------------------------------------------------------- */

#define STAGE_PREFIX ".bvtool-plot.tmp."

/* this host's name as a file-name word: letters, digits and '-' */
static void host_word(char *out, size_t size)
{
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	size_t n = 0;
	for (const char *p = host; *p && n + 1 < size && n < 64; p++)
		out[n++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ? *p : '-';
	if (n == 0 && size > 1)
		out[n++] = '-';
	out[n] = '\0';
}

/* Called for an entry of a directory walk_dir walks: fd is the directory's
 * descriptor (for the *at calls), name the entry's. */
typedef void (*entry_fn)(int fd, const char *name, const void *arg);

/* Open the directory name in parent (a descriptor, or AT_FDCWD), with `flags`
 * added to O_RDONLY | O_DIRECTORY | O_CLOEXEC, and call fn on each of its
 * entries but . and .., which fn may remove. 0, or -1 (fn never called) when
 * the directory cannot be opened. */
static int walk_dir(int parent, const char *name, int flags, entry_fn fn, const void *arg)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			fn(fd, e->d_name, arg);
	closedir(d);
	return 0;
}

/* Remove the entry name of directory fd: a file, or else an empty directory. */
static void remove_entry(int fd, const char *name, const void *arg)
{
	if (unlinkat(fd, name, 0) != 0)
		unlinkat(fd, name, AT_REMOVEDIR);
}

/* Remove the directory name in parent (a descriptor) and the files in it, never
 * following a link: a staging directory holds only files bvtool and its
 * gnuplot wrote. An entry that cannot go (a non-empty subdirectory) stays. */
static void remove_stage_at(int parent, const char *name)
{
	if (walk_dir(parent, name, O_NOFOLLOW, remove_entry, NULL) == 0)
		unlinkat(parent, name, AT_REMOVEDIR);
}

/* Remove the staging directory at path. */
static void remove_stage(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *parent = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup(".");
	if (!parent)
		return;
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		remove_stage_at(fd, slash ? slash + 1 : path);
		close(fd);
	}
	free(parent);
}

/* Remove the entry n of directory fd when it is the staging directory of a
 * bvtool process of this host (arg: its host_word) that no longer runs. */
static void remove_if_stale(int fd, const char *n, const void *arg)
{
	const char *host = arg;
	const size_t pl = strlen(STAGE_PREFIX), hl = strlen(host);
	if (strncmp(n, STAGE_PREFIX, pl) != 0 || strncmp(n + pl, host, hl) != 0 || n[pl + hl] != '.')
		return;
	char *end;
	errno = 0;
	long pid = strtol(n + pl + hl + 1, &end, 10);
	if (*end || errno || pid <= 0 || pid > INT_MAX || pid == (long)getpid())
		return;
	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		remove_stage_at(fd, n);
}

/* Remove the staging directories of this host's bvtool processes that no
 * longer run (killed outright); another host's, or a live one's, stay. */
static void remove_stale_stages(const char *dir, const char *host)
{
	walk_dir(AT_FDCWD, dir, 0, remove_if_stale, host);
}

/* create dir and the staging directory of this process in it: *out (heap)
 * (declared in plot_int.h) */
int plot_make_stage(char **out, const char *dir)
{
	char host[80], name[128];
	int rc = make_dirs(dir);
	if (rc)
		return rc;
	host_word(host, sizeof host);
	remove_stale_stages(dir, host);
	snprintf(name, sizeof name, STAGE_PREFIX "%s.%ld", host, (long)getpid());
	char *path = join(dir, name, "");
	if (!path)
		return bv_error_set(BV_ENOMEM, "out of memory");
	remove_stage(path); /* a stale one of an earlier process with this pid */
	if (mkdir(path, 0700) != 0) {
		rc = bv_error_set(BV_EIO, "cannot write into the output directory '%s': %s", dir, strerror(errno));
		free(path);
		return rc;
	}
	*out = path;
	return 0;
}

/* ---- the commit ------------------------------------------------------------------- */

/* One step of the commit: rename src to dst, or (src NULL) remove dst. */
typedef struct move {
	char *src, *dst;
	int image; /* src is an image gnuplot wrote: synced before the rename */
} move;

static void add_move(move *m, int *n, int *oom, char *src, int want_src, char *dst, int image)
{
	*oom |= !dst || (want_src && !src);
	m[*n] = (move){.src = src, .dst = dst, .image = image};
	(*n)++;
}

/* src (when given) a regular file, synced if an image; dst absent or a regular file */
static int check_move(const move *m, const char *dir)
{
	struct stat sb;
	if (m->src) {
		if (lstat(m->src, &sb) != 0 || !S_ISREG(sb.st_mode)) {
			const char *base = strrchr(m->src, '/');
			return bv_error_set(BV_EIO, "gnuplot drew no '%s' for '%s'", base ? base + 1 : m->src, dir);
		}
		if (m->image) {
			int fd = open(m->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			int bad = fd < 0 || fsync(fd) != 0;
			if (fd >= 0)
				close(fd);
			if (bad)
				return bv_error_set(BV_EIO, "cannot write '%s': %s", m->dst, strerror(errno));
		}
	}
	return bv_check_output(m->dst);
}

int bv_plot_commit(bv_plot_result *r, const char *dir, int images)
{
	move m[3 * 2 * BV_PLOT_MAX_FIGURES];
	int n = 0, oom = 0, rc = 0;
	char ext[12];
	if (!r->stage)
		return bv_error_set(BV_ESTATE, "plot: nothing to commit into '%s'", dir);
	snprintf(ext, sizeof ext, ".%s", r->format);
	for (int i = 0; i < r->n_figures; i++) {
		const char *name = r->figures[i].name;
		add_move(m, &n, &oom, join(r->stage, name, ".dat"), 1, join(dir, name, ".dat"), 0);
		add_move(m, &n, &oom, join(r->stage, name, ".gp"), 1, join(dir, name, ".gp"), 0);
		/* without images an older one goes: it would show other data than the new script */
		add_move(m, &n, &oom, images ? join(r->stage, name, ext) : NULL, images, join(dir, name, ext), 1);
	}
	for (int i = 0; i < r->n_skipped; i++) {
		const char *name = r->skipped[i].name;
		add_move(m, &n, &oom, NULL, 0, join(dir, name, ".dat"), 0);
		add_move(m, &n, &oom, NULL, 0, join(dir, name, ".gp"), 0);
		add_move(m, &n, &oom, NULL, 0, join(dir, name, ext), 0);
	}
	if (oom) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	/* every check before the first change: a refusal leaves dir as it was */
	for (int i = 0; i < n; i++)
		if ((rc = check_move(&m[i], dir)) != 0)
			goto done;
	for (int i = 0; i < n; i++) {
		if (m[i].src ? rename(m[i].src, m[i].dst) != 0 : unlink(m[i].dst) != 0 && errno != ENOENT) {
			rc = bv_error_set(BV_EIO, "cannot write '%s': %s", m[i].dst, strerror(errno));
			goto done;
		}
	}
	bv_plot_result_release(r);
done:
	for (int i = 0; i < n; i++) {
		free(m[i].src);
		free(m[i].dst);
	}
	return rc;
}

void bv_plot_result_release(bv_plot_result *r)
{
	if (!r->stage)
		return;
	remove_stage(r->stage);
	free(r->stage);
	r->stage = NULL;
}
