/*
 * base: error buffer, atomic writes, checked number parsing.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "check.h"

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
	return bv_check_done();
}
