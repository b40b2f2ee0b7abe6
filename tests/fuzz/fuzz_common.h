/*
 * What every fuzz target shares: a private temporary directory per process
 * (under /dev/shm when it exists, so that SQLite's syncs cost nothing), writing
 * an input to a file there, emptying it between inputs, reading a seed file
 * and failing a property check. The targets reach bvtool only through the
 * path-based API the tool itself uses: an input becomes a file, then the
 * reader is called on the file's path.
 */
#ifndef BV_FUZZ_COMMON_H
#define BV_FUZZ_COMMON_H

#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_root[256];

static int fz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

/* Remove everything inside dir (dir itself stays). */
static inline void fz_clear(const char *dir)
{
	nftw(dir, fz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void fz_cleanup(void)
{
	if (fz_root[0]) {
		fz_clear(fz_root);
		rmdir(fz_root);
	}
}

/* The process's private directory, made on first use and removed at exit. */
static inline const char *fz_dir(void)
{
	if (!fz_root[0]) {
		struct stat st;
		const char *base = getenv("BV_FUZZ_TMP");
		if (!base)
			base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
		snprintf(fz_root, sizeof fz_root, "%s/bvfuzz.XXXXXX", base);
		if (!mkdtemp(fz_root)) {
			perror("fuzz: mkdtemp");
			abort();
		}
		atexit(fz_cleanup);
	}
	return fz_root;
}

/* dir/name into out (the caller's buffer of `cap` bytes). */
static inline const char *fz_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", fz_dir(), name);
	return out;
}

static inline void fz_write(const char *path, const void *data, size_t size)
{
	FILE *f = fopen(path, "wb");
	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
		perror(path);
		abort();
	}
}

/* A whole file into memory (aborts when it cannot be read: seeds are ours). */
static inline unsigned char *fz_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	if (!f) {
		perror(path);
		abort();
	}
	for (;;) {
		if (n == cap) {
			cap = cap ? 2 * cap : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* A broken property: say which, then abort, so libFuzzer saves the input. */
static inline void fz_fail(const char *what, const char *detail)
{
	/* to descriptor 2 itself: fuzz_opts points stderr at /dev/null */
	dprintf(2, "fuzz: property violated: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

#endif
