/*
 * base: error buffer, atomic writes, checked number parsing, vectorised exp/log,
 * the CPUs this process may use (affinity in a forked child, the cgroup parsers).
 */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "bvmath.h"
#include "check.h"

/* distance in units in the last place of want (of the least subnormal under it) */
static double ulps(double got, double want)
{
	const double u = nextafter(fabs(want), INFINITY) - fabs(want);
	return fabs(got - want) / u;
}

/* bv_vexp and bv_vlog against libm: random arguments over their whole range
 * (array lengths that leave remainders after any vector width), then the edges. */
static void test_vmath(void)
{
	enum { N = 100003 };
	double *x = malloc(sizeof(double) * N), *y = malloc(sizeof(double) * N);
	CHECK(x && y, "allocation");
	if (!x || !y)
		return;
	srand(7);
	for (int i = 0; i < N; i++) /* [-750, 712]: subnormal results, overflow, and small |x| */
		x[i] = i % 3 ? -750.0 + 1462.0 * rand() / RAND_MAX : 1e-3 * (rand() - RAND_MAX / 2) / RAND_MAX;
	memcpy(y, x, sizeof(double) * N);
	bv_vexp(y, N);
	double worst = 0;
	int wrong = 0;
	for (int i = 0; i < N; i++) {
		const double want = exp(x[i]);
		if (isinf(want) || want == 0)
			wrong += y[i] != want;
		else
			worst = fmax(worst, ulps(y[i], want));
	}
	CHECK(worst <= 2 && wrong == 0, "bv_vexp: %.2f ulps at worst (<= 2), %d wrong 0/inf", worst, wrong);
	printf("bv_vexp: %.2f ulps at worst over %d arguments\n", worst, N);

	for (int i = 0; i < N; i++) /* 1e-300 .. 1e300, and 1 + tiny (log near 0) */
		x[i] = i % 4 ? exp(-690.0 + 1380.0 * rand() / RAND_MAX) : 1.0 + 1e-6 * rand() / RAND_MAX;
	memcpy(y, x, sizeof(double) * N);
	bv_vlog(y, N);
	worst = 0;
	for (int i = 0; i < N; i++)
		worst = fmax(worst, ulps(y[i], log(x[i])));
	CHECK(worst <= 2, "bv_vlog: %.2f ulps at worst (<= 2)", worst);
	printf("bv_vlog: %.2f ulps at worst over %d arguments\n", worst, N);

	double e[] = {0.0, -0.0, 1.0, -745.2, -746.0, -1e4, -INFINITY, 709.78, 709.8, INFINITY, NAN};
	const size_t n_e = sizeof e / sizeof e[0];
	double want[sizeof e / sizeof e[0]];
	for (size_t i = 0; i < n_e; i++)
		want[i] = exp(e[i]);
	bv_vexp(e, n_e);
	for (size_t i = 0; i < n_e; i++)
		CHECK((isnan(want[i]) && isnan(e[i])) || e[i] == want[i] || ulps(e[i], want[i]) <= 2,
		      "bv_vexp edge %zu: got %.17g want %.17g", i, e[i], want[i]);
	double l[] = {1.0, 2.0, 0.5, 0x1.6a09e667f3bcdp+0, 0x1.6a09e667f3bccp+0, 1.7976931348623157e308,
		      2.2250738585072014e-308};
	const size_t n_l = sizeof l / sizeof l[0];
	double want_l[sizeof l / sizeof l[0]];
	for (size_t i = 0; i < n_l; i++)
		want_l[i] = log(l[i]);
	bv_vlog(l, n_l);
	for (size_t i = 0; i < n_l; i++)
		CHECK(l[i] == want_l[i] || ulps(l[i], want_l[i]) <= 2, "bv_vlog edge %zu: got %.17g want %.17g",
		      i, l[i], want_l[i]);
	CHECK(l[0] == 0.0, "log 1 is exactly 0");

	/* bv_first_nonfinite: none, then the first of two, in a later block */
	float *f = malloc(sizeof(float) * N);
	CHECK(f != NULL, "allocation");
	if (f) {
		for (int i = 0; i < N; i++)
			f[i] = (float)(i % 17) - 8.0f;
		CHECK(bv_first_nonfinite(f, N) == N, "all finite");
		f[N - 5] = INFINITY;
		f[9000] = NAN;
		CHECK(bv_first_nonfinite(f, N) == 9000, "first non-finite: %zu", bv_first_nonfinite(f, N));
		CHECK(bv_first_nonfinite(f, 9000) == 9000, "a prefix without it");
		f[9000] = -INFINITY;
		CHECK(bv_first_nonfinite(f, N) == 9000, "-inf found");
		free(f);
	}
	free(x);
	free(y);
}

/* Numbers are plain decimal, checked in full (docs/cli.md): an optional sign,
 * digits, for doubles an optional fraction and exponent; nothing else. */
static void test_parse_strict(void)
{
	static const char *const bad_double[] = {
		" 1", "1 ", "\t1", "1\n", "0x10", "0X1p3", "inf", "-inf", "infinity", "nan", "NaN",
		"nan(1)", "", "+", "-", ".", "e5", "1e", "1e+", "1.2.3", "1,5", "--1", "+-1", "1e5x",
		"1x", "0b1", "1_000", "\xc2\xa0" "1",
	};
	static const char *const bad_long[] = {
		" 1", "1 ", "0x10", "010x", "1.0", "1e3", "", "+", "-", "--1", "1x", "\n1", "inf",
	};
	double d;
	long l;
	for (size_t i = 0; i < BV_ARRAY_LEN(bad_double); i++) {
		int rc = bv_parse_double(&d, bad_double[i], -1e308, 1e308, "--x");
		CHECK(rc == BV_EINVAL, "double '%s' accepted (%g)", bad_double[i], d);
		char want[64];
		snprintf(want, sizeof want, "--x: expected a number, got '%s'", bad_double[i]);
		CHECK(rc != BV_EINVAL || strcmp(bv_error_last(), want) == 0, "'%s': %s", bad_double[i],
		      bv_error_last());
	}
	for (size_t i = 0; i < BV_ARRAY_LEN(bad_long); i++) {
		int rc = bv_parse_long(&l, bad_long[i], -1000000, 1000000, "--n");
		CHECK(rc == BV_EINVAL, "long '%s' accepted (%ld)", bad_long[i], l);
	}
	static const struct { const char *s; double v; } good_double[] = {
		{"1", 1}, {"0.05", 0.05}, {"1e-2", 1e-2}, {"1E-2", 1e-2}, {"2.5e+3", 2500}, {"-3", -3},
		{"+3", 3}, {".5", 0.5}, {"5.", 5}, {"007", 7}, {"1e0", 1},
	};
	for (size_t i = 0; i < BV_ARRAY_LEN(good_double); i++)
		CHECK(bv_parse_double(&d, good_double[i].s, -1e308, 1e308, "--x") == 0 &&
			      d == good_double[i].v,
		      "double '%s': %s (%g)", good_double[i].s, bv_error_last(), d);
	/* -0 is 0: no negative zero reaches a setting (or its fingerprint) */
	CHECK(bv_parse_double(&d, "-0", 0, 1, "--x") == 0 && d == 0 && !signbit(d), "-0 -> +0");
	CHECK(bv_parse_double(&d, "-0.0e5", 0, 1, "--x") == 0 && d == 0 && !signbit(d), "-0.0e5 -> +0");
	static const struct { const char *s; long v; } good_long[] = {
		{"0", 0}, {"-0", 0}, {"+7", 7}, {"42", 42}, {"-12", -12}, {"010", 10},
	};
	for (size_t i = 0; i < BV_ARRAY_LEN(good_long); i++)
		CHECK(bv_parse_long(&l, good_long[i].s, -1000000, 1000000, "--n") == 0 &&
			      l == good_long[i].v,
		      "long '%s': %s (%ld)", good_long[i].s, bv_error_last(), l);
	/* out of range names the range; over- and underflow are refused */
	CHECK_ERR(bv_parse_long(&l, "-1", 0, 10, "--n"), BV_EINVAL);
	CHECK(strcmp(bv_error_last(), "--n: -1 is out of range (0 to 10)") == 0, "%s", bv_error_last());
	CHECK_ERR(bv_parse_double(&d, "1e-400", -1, 1, "--x"), BV_EINVAL);
	CHECK_ERR(bv_parse_double(&d, "-1e400", -1e308, 1, "--x"), BV_EINVAL);
	/* NULL is an empty value */
	CHECK_ERR(bv_parse_double(&d, NULL, 0, 1, "--x"), BV_EINVAL);
	CHECK_ERR(bv_parse_long(&l, NULL, 0, 1, "--n"), BV_EINVAL);
}

/* Inputs must be regular files; outputs never replace anything else, and a
 * missing directory is named before any work (bv_check_output_dir). */
static void test_paths(const char *dir)
{
	char fifo[512], sub[512], file[512], link[512], path[600];
	unsigned char *data = NULL;
	size_t len = 0;
	int fd;
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	snprintf(sub, sizeof sub, "%s/sub", dir);
	snprintf(file, sizeof file, "%s/file", dir);
	snprintf(link, sizeof link, "%s/zero", dir);
	CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");
	CHECK(mkdir(sub, 0755) == 0, "mkdir");
	CHECK(symlink("/dev/zero", link) == 0, "symlink");
	CHECK(bv_write_file_atomic(file, "abc", 3) == 0, "write: %s", bv_error_last());

	const char *const not_regular[] = {fifo, sub, link};
	for (int i = 0; i < 3; i++) {
		char want[700];
		snprintf(want, sizeof want, "'%s' is not a regular file", not_regular[i]);
		CHECK_ERR(bv_read_file(&data, &len, not_regular[i]), BV_EIO);
		CHECK(strcmp(bv_error_last(), want) == 0 && data == NULL, "read: %s", bv_error_last());
		CHECK_ERR(bv_open_input(&fd, &len, not_regular[i]), BV_EIO);
		CHECK(fd == -1, "no descriptor left");
		snprintf(want, sizeof want, "'%s' is not a regular file; refusing to replace it",
			 not_regular[i]);
		CHECK_ERR(bv_check_output(not_regular[i]), BV_EIO);
		CHECK(strcmp(bv_error_last(), want) == 0, "check_output: %s", bv_error_last());
		CHECK_ERR(bv_write_file_atomic(not_regular[i], "x", 1), BV_EIO);
	}
	struct stat st;
	CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO is still a FIFO");
	CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link is still a link");
	CHECK(stat("/dev/zero", &st) == 0 && S_ISCHR(st.st_mode), "/dev/zero untouched");

	/* the temporary file of an atomic write is created, never opened through
	 * what stands at its name: a link planted there (the name is predictable)
	 * must not be written through, nor removed */
	{
		char victim[512], planted[700];
		snprintf(victim, sizeof victim, "%s/victim", dir);
		CHECK(bv_write_file_atomic(victim, "keep", 4) == 0, "victim: %s", bv_error_last());
		snprintf(path, sizeof path, "%s/out.bin", dir);
		snprintf(planted, sizeof planted, "%s.tmp%ld", path, (long)getpid());
		CHECK(symlink(victim, planted) == 0, "plant a link");
		CHECK(bv_write_file_atomic(path, "new!", 4) == 0, "write beside a planted link: %s", bv_error_last());
		CHECK(bv_read_file(&data, &len, victim) == 0 && len == 4 && memcmp(data, "keep", 4) == 0,
		      "the link's target was written through");
		free(data);
		CHECK(bv_read_file(&data, &len, path) == 0 && len == 4 && memcmp(data, "new!", 4) == 0,
		      "the output holds the new bytes");
		free(data);
		CHECK(lstat(planted, &st) == 0 && S_ISLNK(st.st_mode), "the planted link is left alone");
		unlink(planted);
		unlink(path);
		unlink(victim);
	}

	/* bv_check_output_dir: the directory that will hold the file */
	CHECK(bv_check_output_dir(file) == 0, "existing file: %s", bv_error_last());
	snprintf(path, sizeof path, "%s/new.bin", dir);
	CHECK(bv_check_output_dir(path) == 0, "new file: %s", bv_error_last());
	CHECK(bv_check_output_dir("relative-name") == 0, "a bare name is in '.': %s", bv_error_last());
	snprintf(path, sizeof path, "%s/missing/new.bin", dir);
	CHECK_ERR(bv_check_output_dir(path), BV_EIO);
	char want[1400];
	snprintf(want, sizeof want, "cannot write '%s': directory '%s/missing' does not exist", path, dir);
	CHECK(strcmp(bv_error_last(), want) == 0, "missing dir: %s", bv_error_last());
	snprintf(path, sizeof path, "%s/new.bin", file);
	CHECK_ERR(bv_check_output_dir(path), BV_EIO);
	snprintf(want, sizeof want, "cannot write '%s': '%s' is not a directory", path, file);
	CHECK(strcmp(bv_error_last(), want) == 0, "file as dir: %s", bv_error_last());
	unlink(fifo);
	unlink(link);
	unlink(file);
	rmdir(sub);
}

/* The cgroup parsers on the files' text: a quota rounds up to whole CPUs,
 * "max" and -1 are no limit (0), and so is anything they do not understand. */
static void test_cgroup_parsers(void)
{
	static const struct {
		const char *text;
		int want;
	} v2[] = {
		{"max 100000\n", 0}, {"150000 100000\n", 2}, {"50000 100000\n", 1},
		{"200000 100000", 2}, {"200001 100000\n", 3}, {"100000 100000\n", 1},
		{"6400000 100000\n", 64}, {"1 1000000\n", 1}, {"", 0}, {"garbage\n", 0},
		{"max\n", 0}, {"150000\n", 0}, {"0 100000\n", 0}, {"100000 0\n", 0},
		{"-50000 100000\n", 0}, {"150000 100000 7\n", 0}, {"1.5 1\n", 0},
		{"99999999999999999999 100000\n", 0}, {"150000 100000x\n", 0},
	};
	for (size_t i = 0; i < BV_ARRAY_LEN(v2); i++) {
		const int got = bv_cgroup_cpu_max(v2[i].text);
		CHECK(got == v2[i].want, "cpu.max '%s': %d CPUs, want %d", v2[i].text, got, v2[i].want);
	}
	static const struct {
		const char *quota, *period;
		int want;
	} v1[] = {
		{"-1\n", "100000\n", 0}, {"150000\n", "100000\n", 2}, {"50000\n", "100000\n", 1},
		{"300000\n", "100000\n", 3}, {"abc\n", "100000\n", 0}, {"150000\n", "\n", 0},
		{"150000\n", "0\n", 0}, {"-2\n", "100000\n", 0},
	};
	for (size_t i = 0; i < BV_ARRAY_LEN(v1); i++) {
		const int got = bv_cgroup_cfs_quota(v1[i].quota, v1[i].period);
		CHECK(got == v1[i].want, "cfs quota '%s' period '%s': %d CPUs, want %d", v1[i].quota,
		      v1[i].period, got, v1[i].want);
	}
	/* /proc/self/cgroup: v2's "0::PATH", v1's controller among a comma list */
	const char *hybrid = "12:cpuset:/\n4:cpu,cpuacct:/slurm/uid_0/job_7\n2:cpuacct:/x\n"
			     "1:name=systemd:/user.slice\n0::/user.slice/session-1.scope\n";
	char path[64];
	CHECK(bv_cgroup_path(path, sizeof path, hybrid, "") == 0 &&
		      strcmp(path, "/user.slice/session-1.scope") == 0,
	      "v2 path from a hybrid file");
	CHECK(bv_cgroup_path(path, sizeof path, hybrid, "cpu") == 0 &&
		      strcmp(path, "/slurm/uid_0/job_7") == 0,
	      "v1 cpu path: '%s'", path);
	CHECK(bv_cgroup_path(path, sizeof path, "3:cpuacct:/a\n1:name=systemd:/\n", "cpu") != 0,
	      "cpuacct is not cpu");
	CHECK(bv_cgroup_path(path, sizeof path, "0::/docker/abc", "") == 0 &&
		      strcmp(path, "/docker/abc") == 0,
	      "v2 path without a final newline");
	CHECK(bv_cgroup_path(path, sizeof path, "garbage\n::\n1::\n", "") != 0, "no v2 line");
	CHECK(bv_cgroup_path(path, 8, "0::/a/very/long/path\n", "") != 0, "too long for out");
}

/* bv_cpus_available in a child narrowed to k CPUs of its mask: the quota
 * (the same for both) may lower it, so it is min(k, the unnarrowed count). */
static int cpus_narrowed(int k)
{
	cpu_set_t mine, narrow;
	if (sched_getaffinity(0, sizeof mine, &mine) != 0 || CPU_COUNT(&mine) < k)
		return -1;
	CPU_ZERO(&narrow);
	for (int c = 0, have = 0; c < CPU_SETSIZE && have < k; c++)
		if (CPU_ISSET(c, &mine)) {
			CPU_SET(c, &narrow);
			have++;
		}
	fflush(NULL);
	const pid_t pid = fork();
	if (pid == 0) {
		if (sched_setaffinity(0, sizeof narrow, &narrow) != 0)
			_exit(255);
		const int n = bv_cpus_available();
		_exit(n > 0 && n < 255 ? n : 254);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -2;
	return WEXITSTATUS(status);
}

static void test_cpus(void)
{
	bv_error_set(BV_EFORMAT, "an earlier message");
	const int all = bv_cpus_available();
	CHECK(all >= 1, "bv_cpus_available: %d", all);
	CHECK(bv_error_code() == BV_EFORMAT && strcmp(bv_error_last(), "an earlier message") == 0,
	      "the caller's error is kept: %d '%s'", bv_error_code(), bv_error_last());
	cpu_set_t mine;
	CHECK(sched_getaffinity(0, sizeof mine, &mine) == 0 && all <= CPU_COUNT(&mine),
	      "%d CPUs, no more than the %d of the affinity mask", all, CPU_COUNT(&mine));
	printf("bv_cpus_available: %d (affinity mask %d)\n", all, CPU_COUNT(&mine));
	const int one = cpus_narrowed(1);
	CHECK(one == 1, "narrowed to 1 CPU: %d", one);
	if (CPU_COUNT(&mine) >= 2) {
		const int two = cpus_narrowed(2);
		CHECK(two == (all < 2 ? all : 2), "narrowed to 2 CPUs: %d, want %d", two,
		      all < 2 ? all : 2);
	}
}

int main(void)
{
	char path[512], dir[400];
	snprintf(dir, sizeof dir, "%s/base-%ld", getenv("BV_TMP") ? getenv("BV_TMP") : "/tmp", (long)getpid());
	mkdir(dir, 0755);

	CHECK(bv_error_set(BV_EIO, "cannot open '%s'", "x") == BV_EIO, "returns the code");
	CHECK(strcmp(bv_error_last(), "cannot open 'x'") == 0, "message: %s", bv_error_last());
	CHECK(bv_error_code() == BV_EIO, "code kept");

	/* atomic write: content round trip, no temp file left behind */
	snprintf(path, sizeof path, "%s/f.bin", dir);
	CHECK(bv_write_file_atomic(path, "hello", 5) == 0, "write: %s", bv_error_last());
	unsigned char *data;
	size_t len;
	CHECK(bv_read_file(&data, &len, path) == 0 && len == 5 && memcmp(data, "hello", 5) == 0,
	      "read back");
	free(data);
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	CHECK(access(tmp, F_OK) != 0, "temp file removed");
	/* a write into a missing directory fails and names the file */
	snprintf(path, sizeof path, "%s/missing/f.bin", dir);
	CHECK_ERR(bv_write_file_atomic(path, "x", 1), BV_EIO);
	CHECK(strstr(bv_error_last(), path) != NULL, "names the path: %s", bv_error_last());
	CHECK_ERR(bv_read_file(&data, &len, path), BV_EIO);

	double d;
	long l;
	CHECK(bv_parse_double(&d, "0.25", 0, 1, "--x") == 0 && d == 0.25, "parse 0.25");
	CHECK_ERR(bv_parse_double(&d, "abc", 0, 1, "--lr"), BV_EINVAL);
	CHECK(strcmp(bv_error_last(), "--lr: expected a number, got 'abc'") == 0, "%s", bv_error_last());
	CHECK_ERR(bv_parse_double(&d, "2", 0, 1, "--x"), BV_EINVAL);
	CHECK_ERR(bv_parse_double(&d, "nan", 0, 1, "--x"), BV_EINVAL);
	CHECK_ERR(bv_parse_double(&d, "1e999", 0, 1e308, "--x"), BV_EINVAL);
	CHECK_ERR(bv_parse_double(&d, "", 0, 1, "--x"), BV_EINVAL);
	CHECK(bv_parse_long(&l, "42", 0, 100, "--n") == 0 && l == 42, "parse 42");
	CHECK_ERR(bv_parse_long(&l, "4.5", 0, 100, "--n"), BV_EINVAL);
	CHECK_ERR(bv_parse_long(&l, "101", 0, 100, "--n"), BV_EINVAL);
	CHECK_ERR(bv_parse_long(&l, "99999999999999999999", 0, 100, "--n"), BV_EINVAL);
	test_parse_strict();

	bv_buf b;
	bv_buf_init(&b);
	bv_buf_u32(&b, 0x01020304u);
	bv_buf_u64(&b, 0x0a0b0c0d0e0f1011ull);
	float f = 1.0f;
	bv_buf_f32(&b, &f, 1);
	const unsigned char want[] = {4, 3, 2, 1, 0x11, 0x10, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0, 0, 0x80, 0x3f};
	CHECK(b.len == sizeof want && memcmp(b.data, want, sizeof want) == 0, "little-endian encoding");
	bv_buf_release(&b);

	test_paths(dir);
	test_vmath();
	test_cgroup_parsers();
	test_cpus();
	return bv_check_done();
}
