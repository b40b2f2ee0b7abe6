/*
 * fuzz_npy: the NumPy reader of interop/ (npy_header.c, npy.c): bv_npy_parse_header on the
 * input's bytes, then bv_npy_open on the input written as a file and reads of
 * the whole array in uneven chunks. An input that starts with "PK" is also
 * written as an .npz and opened as "in.npz:a" (the seeds' member) and as
 * "in.npz:zz" (missing: the members are listed).
 *
 * Properties checked (a failure aborts, so libFuzzer keeps the input):
 *  - every refusal leaves a one-line message and nothing open;
 *  - a plain file that opens is exactly header + count * itemsize bytes, and
 *    bv_npy_parse_header on its bytes agrees (offset, dtype, count); a header
 *    that parses over a file of exactly that size opens;
 *  - reading to the end stops at count; a read of the wrong kind or past the
 *    end is refused.
 * Arrays of more than 64 MB of data (only an .npz member can claim one that
 * is there) are opened but not read.
 */
#include "fuzz_common.h"

#include "npy.h"

enum { CHUNK = 65536 };
#define MAX_DATA_BYTES (64ll << 20)

static void one_line(int rc, const char *what)
{
	const char *msg = bv_error_last();
	if (rc < 0 && (msg[0] == '\0' || strchr(msg, '\n')))
		fz_fail("a refusal without a one-line message", what);
}

static void read_all(bv_npy *a, const char *what)
{
	static float f[CHUNK];
	static int64_t v[CHUNK];
	static const int64_t sizes[] = {1, 7, CHUNK, 3, 1000};
	int rc = 0, k = 0;

	if ((int64_t)a->itemsize * a->count > MAX_DATA_BYTES)
		return;
	/* the wrong kind is refused, even for nothing */
	rc = a->kind == 'f' ? bv_npy_read_i64(a, v, 0) : bv_npy_read_f32(a, f, 0);
	if (rc != BV_EINVAL)
		fz_fail("a read of the wrong kind was not refused", what);
	while (a->pos < a->count) {
		int64_t m = sizes[k++ % (int)BV_ARRAY_LEN(sizes)];
		if (m > a->count - a->pos)
			m = a->count - a->pos;
		const int64_t before = a->pos;
		rc = a->kind == 'f' ? bv_npy_read_f32(a, f, m) : bv_npy_read_i64(a, v, m);
		if (rc) {
			/* a uint64 beyond int64, a bool byte, a bad CRC: refused, stop */
			one_line(rc, what);
			if (a->pos != before)
				fz_fail("a failed read moved pos", what);
			return;
		}
		if (a->pos != before + m)
			fz_fail("a read did not move pos by its count", what);
		for (int64_t i = 0; a->kind == 'b' && i < m; i++)
			if (v[i] != 0 && v[i] != 1)
				fz_fail("a bool read as neither 0 nor 1", what);
	}
	rc = a->kind == 'f' ? bv_npy_read_f32(a, f, 1) : bv_npy_read_i64(a, v, 1);
	if (rc != BV_EINVAL)
		fz_fail("a read past the end was not refused", what);
}

static void open_read(const char *path, bv_npy *a, int *rc)
{
	*rc = bv_npy_open(a, path);
	one_line(*rc, path);
	if (*rc) {
		if (a->priv)
			fz_fail("a refused open left the array open", path);
		return;
	}
	read_all(a, path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512], member[600];
	bv_npy a, h;
	size_t off = 0;
	int rc;

	if (size > (1u << 20))
		return 0;
	fz_clear(fz_dir());

	const int parsed = bv_npy_parse_header(&h, data, size, &off, "mem");
	one_line(parsed, "bv_npy_parse_header");
	if (parsed == 0 &&
	    (off > size || h.count < 0 || h.itemsize < 1 || h.ndim < 0 || h.ndim > BV_NPY_MAX_DIMS))
		fz_fail("bv_npy_parse_header: fields out of range", NULL);

	fz_path(path, sizeof path, "in.npy");
	fz_write(path, data, size);
	open_read(path, &a, &rc);
	if (rc == 0) {
		if (parsed != 0)
			fz_fail("an array opened whose header does not parse", NULL);
		if (off + (uint64_t)a.count * (uint64_t)a.itemsize != size)
			fz_fail("an array opened whose file is not header + data", NULL);
		if (h.count != a.count || h.itemsize != a.itemsize || h.ndim != a.ndim ||
		    strcmp(h.descr, a.descr) != 0)
			fz_fail("bv_npy_open and bv_npy_parse_header disagree", NULL);
	} else if (parsed == 0 && off + (uint64_t)h.count * (uint64_t)h.itemsize == size) {
		fz_fail("a header that parses over a file of its size did not open",
			bv_error_last());
	}
	bv_npy_close(&a);
	bv_npy_close(&a);

	if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
		fz_path(path, sizeof path, "in.npz");
		fz_write(path, data, size);
		snprintf(member, sizeof member, "%s:a", path);
		open_read(member, &a, &rc);
		bv_npy_close(&a);
		snprintf(member, sizeof member, "%s:zz", path);
		open_read(member, &a, &rc);
		bv_npy_close(&a);
	}
	return 0;
}
