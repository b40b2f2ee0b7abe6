/*
 * base: error buffer, atomic writes, checked number parsing, vectorised exp/log.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
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

	bv_buf b;
	bv_buf_init(&b);
	bv_buf_u32(&b, 0x01020304u);
	bv_buf_u64(&b, 0x0a0b0c0d0e0f1011ull);
	float f = 1.0f;
	bv_buf_f32(&b, &f, 1);
	const unsigned char want[] = {4, 3, 2, 1, 0x11, 0x10, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0, 0, 0x80, 0x3f};
	CHECK(b.len == sizeof want && memcmp(b.data, want, sizeof want) == 0, "little-endian encoding");
	bv_buf_release(&b);

	test_vmath();
	return bv_check_done();
}
