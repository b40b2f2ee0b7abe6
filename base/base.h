/*
 * base: what every layer of bvtool shares and nothing else.
 *
 * Error reporting follows libgit2 and SQLite: a function returns 0 or a
 * negative BV_E* code, and leaves a one-line message (lowercase, no full stop,
 * the subject quoted) in a per-thread buffer that the CLI prints as
 * "bvtool: <message>". Also here: atomic file writes (temp file + rename) and
 * a monotonic clock, used by nn, train, db and cli alike.
 */
#ifndef BV_BASE_H
#define BV_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Error codes. The CLI maps each to a documented exit status (docs/cli.md). */
enum {
	BV_OK = 0,
	BV_EINVAL = -1,    /* a bad argument or option value */
	BV_EIO = -2,       /* a file cannot be opened, read or written */
	BV_EFORMAT = -3,   /* a file is not what it should be (magic, size, range) */
	BV_ENOMEM = -4,    /* out of memory */
	BV_EDIVERGED = -5, /* training produced NaN or Inf */
	BV_EDB = -6,       /* the database refused an operation */
	BV_EMISMATCH = -7, /* two things that must agree do not (spec, classes, config) */
	BV_EINTR = -8,     /* interrupted by a signal */
	BV_EPARTIAL = -9,  /* done in part (e.g. plot scripts written, gnuplot missing) */
	BV_ESTATE = -10,   /* the operation needs a step that has not run yet */
};

/* Set the calling thread's error message (printf-style); returns `code` so that
 * callers can write `return bv_error_set(BV_EIO, "cannot open '%s'", path);`. */
int bv_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the calling thread's message: "<prefix>: <old message>"; returns code. */
int bv_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's last message ("" when none). */
const char *bv_error_last(void);
/* The last code passed to bv_error_set on this thread. */
int bv_error_code(void);
void bv_error_clear(void);

/* Write `size` bytes to `path` atomically: a temporary file in the same
 * directory, fsync, then rename over `path`. On failure `path` is untouched.
 * `path` must be absent or a regular file (bv_check_output). */
int bv_write_file_atomic(const char *path, const void *data, size_t size);

/* A growable byte buffer, for building a file in memory before an atomic write. */
typedef struct bv_buf {
	unsigned char *data;
	size_t len, cap;
	int failed; /* set once an allocation failed; later appends do nothing */
} bv_buf;
void bv_buf_init(bv_buf *b);
void bv_buf_release(bv_buf *b);
void bv_buf_append(bv_buf *b, const void *data, size_t n);
void bv_buf_u32(bv_buf *b, uint32_t v); /* little-endian */
void bv_buf_u64(bv_buf *b, uint64_t v); /* little-endian */
void bv_buf_f32(bv_buf *b, const float *v, size_t n); /* little-endian */

/* Read a whole file into memory (caller frees *out). The file must be a
 * regular file (bv_open_input) and no more than its size is read. */
int bv_read_file(unsigned char **out, size_t *out_len, const char *path);

/*
 * Untrusted paths (docs/security.md). Inputs must be regular files: a FIFO, a
 * device, a socket or a directory is refused, so that a crafted path can
 * neither hang a read nor feed it without end. bv_open_input opens `path`
 * read-only (non-blocking while it checks, so that a FIFO does not block the
 * open itself) and returns its descriptor (blocking again, close-on-exec) and
 * the size fstat gives. Errors: BV_EIO "cannot open 'x': ..." or
 * "'x' is not a regular file".
 */
int bv_open_input(int *out_fd, size_t *out_size, const char *path);
/* Refuses (BV_EIO) an output path that exists and is not a regular file: a
 * device, a FIFO, a directory is never replaced by an atomic write. A missing
 * path, or a symbolic link to a regular file, is fine. */
int bv_check_output(const char *path);
/* Refuses (BV_EIO) an output path whose directory does not exist or is not a
 * directory: "cannot write 'd/x': directory 'd' does not exist", so that a
 * command can name a bad output path before it spends time on its work. */
int bv_check_output_dir(const char *path);

/* Seconds from a monotonic clock. */
double bv_now(void);

/* Number parsing with end-pointer and range checks, for flags and spec strings.
 * `what` names the flag or field in the error message. */
int bv_parse_double(double *out, const char *s, double lo, double hi, const char *what);
int bv_parse_long(long *out, const char *s, long lo, long hi, const char *what);

/* The shortest text of v that reads back (strtod) as exactly v: %g's 6
 * significant digits when they suffice (so "0.01", "4"), up to 17. Settings and
 * temperatures are written this way, so that two values that differ are never
 * shown or stored alike. */
void bv_number_format(char *out, size_t size, double v);

/* ---- the CPUs this process may use (base/cpus.c) ----------------------- */

/* The CPUs this process may use, at least 1: the smallest of the CPUs in its
 * affinity mask (however many the machine has) and the CPU quota, rounded up,
 * of its cgroup and the cgroups above it (v2's cpu.max, v1's
 * cpu.cfs_quota_us / cpu.cfs_period_us). A missing or odd file is no limit.
 * Leaves the calling thread's error message as it was. */
int bv_cpus_available(void);
/* The parsers behind it, pure functions on the files' text. A cgroup v2
 * cpu.max, "QUOTA PERIOD" or "max PERIOD": ceil(QUOTA / PERIOD) CPUs, 0 for no
 * limit (also for text it does not understand). */
int bv_cgroup_cpu_max(const char *text);
/* The same for v1's cpu.cfs_quota_us ("-1" = none) and cpu.cfs_period_us. */
int bv_cgroup_cfs_quota(const char *quota, const char *period);
/* The path of the cgroup of `controller` ("cpu" for v1, "" for v2's "0::PATH")
 * in the text of /proc/self/cgroup, into out (size bytes); 0, or -1 when no
 * line names it. */
int bv_cgroup_path(char *out, size_t size, const char *proc_cgroup, const char *controller);

#define BV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the names of the methods ------------------------------------------ */

/* The methods of a run, by name, listed once for every layer: "teacher",
 * "ce", "kd", "wsl", "kd-filter", in the order messages list them. nn's
 * training methods (bv_method) and db's run methods (bv_run_method) are enums
 * of their own layers; both name them from this list. */
enum { BV_N_METHOD_NAMES = 5 };
extern const char *const bv_method_names[BV_N_METHOD_NAMES];

#endif
