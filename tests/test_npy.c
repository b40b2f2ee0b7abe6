/*
 * Tests for interop/npy.c, npy_header.c and npy_write.c: NumPy's .npy and .npz read, .npy written.
 *
 *  1. Every array NumPy wrote into tests/fixtures/npy/ (gen.py) read back and
 *     checked value by value (float32 bits, int64s) against expected.txt, which
 *     NumPy wrote too (a.astype(np.float32) for the floats), whole and again in
 *     odd-sized chunks; a few also against the formulas gen.py uses, so that
 *     the comparison does not rest on expected.txt alone.
 *  2. Every refused fixture (byte order, kinds, truncated, trailing bytes,
 *     Fortran order, beyond int64) and a table of headers written here (each
 *     accepted form and each malformed one) with the code and message each
 *     must give, one line naming the file.
 *  3. .npz: members stored and deflated, a missing member, not a zip, a member
 *     with a bad CRC, the split at the last ".npz:".
 *  4. Arrays larger than the conversion buffer (float64, float16 with all of
 *     its 65536 bit patterns against a naive decoder, int32, a uint64 beyond
 *     int64 in the second buffer), read in uneven chunks; a file that shrinks
 *     between open and read; FIFOs and directories.
 *  5. The writer: round trips, NumPy's np.load of what it wrote (byte for byte
 *     what np.save writes; skipped, saying so, without /usr/bin/python3 and
 *     numpy), and no file left on any failure.
 */
#include "check.h"
#include "npy.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[768];
static const char *fixtures;

static const char *fx(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/npy/%s", fixtures, name);
	return out;
}

static const char *tmp_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", root, name);
	return out;
}

static void put_bytes(const char *path, const void *data, size_t n)
{
	CHECK(bv_write_file_atomic(path, data, n) == 0, "write '%s': %s", path, bv_error_last());
}

static unsigned char *slurp(const char *path, size_t *n)
{
	unsigned char *data = NULL;
	if (bv_read_file(&data, n, path) != 0) {
		CHECK(0, "read '%s': %s", path, bv_error_last());
		return NULL;
	}
	return data;
}

static double fval(int64_t i)
{
	return (double)(i * 37 % 101 - 50) / 8.0;
}

static int64_t ival(int64_t i)
{
	return i * 37 % 101 - 50;
}

static uint32_t f32_bits(float f)
{
	uint32_t b;
	memcpy(&b, &f, 4);
	return b;
}

/* The call failed with `code` and a one-line message holding `name` and `sub`. */
static void check_refused(int rc, int code, const char *name, const char *sub, const char *what)
{
	const char *msg = bv_error_last();
	CHECK(rc == code, "%s: rc %d, want %d (%s)", what, rc, code, msg);
	CHECK(strstr(msg, name) != NULL, "%s: the message does not name '%s': %s", what, name, msg);
	CHECK(strstr(msg, sub) != NULL, "%s: the message lacks \"%s\": %s", what, sub, msg);
	CHECK(strchr(msg, '\n') == NULL, "%s: the message is not one line: %s", what, msg);
}

/* Open `path`, expect a refusal; nothing stays open. */
static void refuse_open(const char *path, int code, const char *name, const char *sub)
{
	bv_npy a;
	int rc = bv_npy_open(&a, path);
	check_refused(rc, code, name, sub, path);
	CHECK(a.priv == NULL, "'%s': refused but left open", path);
	bv_npy_close(&a);
}

/* ---- 1. the fixtures against expected.txt -------------------------------- */

enum { MAX_VALUES = 4096 };

typedef struct expected {
	char name[128];
	char kind;
	int ndim;
	int64_t shape[BV_NPY_MAX_DIMS];
	int64_t n;
	uint32_t fbits[MAX_VALUES];
	int64_t ivals[MAX_VALUES];
} expected;

/* One line of expected.txt into e; 0 at the end of the file, -1 when malformed. */
static int read_expected(FILE *f, expected *e)
{
	char shape[256];
	if (fscanf(f, "%127s %c %255s", e->name, &e->kind, shape) != 3)
		return 0;
	e->ndim = 0;
	if (strcmp(shape, "-") != 0) {
		for (char *tok = strtok(shape, ","); tok; tok = strtok(NULL, ","))
			if (e->ndim < BV_NPY_MAX_DIMS)
				e->shape[e->ndim++] = strtoll(tok, NULL, 10);
	}
	e->n = 1;
	for (int i = 0; i < e->ndim; i++)
		e->n *= e->shape[i];
	if (e->n > MAX_VALUES)
		return -1;
	for (int64_t i = 0; i < e->n; i++) {
		if (e->kind == 'f') {
			unsigned v;
			if (fscanf(f, "%x", &v) != 1)
				return -1;
			e->fbits[i] = v;
		} else if (fscanf(f, "%" SCNd64, &e->ivals[i]) != 1) {
			return -1;
		}
	}
	return 1;
}

/* Read all of `a` in chunks of the sizes `chunks` cycles through. */
static int read_chunked(bv_npy *a, void *out, const int *chunks, int n_chunks)
{
	int k = 0;
	while (a->pos < a->count) {
		int64_t m = chunks[k++ % n_chunks];
		if (m > a->count - a->pos)
			m = a->count - a->pos;
		int rc = a->kind == 'f' ? bv_npy_read_f32(a, (float *)out + a->pos, m)
					: bv_npy_read_i64(a, (int64_t *)out + a->pos, m);
		if (rc)
			return rc;
	}
	return 0;
}

static void check_one(const expected *e)
{
	char path[2048];
	bv_npy a;
	static float f[MAX_VALUES], f2[MAX_VALUES];
	static int64_t v[MAX_VALUES], v2[MAX_VALUES];

	fx(path, sizeof path, e->name);
	int rc = bv_npy_open(&a, path);
	CHECK(rc == 0, "open '%s': %s", path, bv_error_last());
	if (rc)
		return;
	CHECK(a.ndim == e->ndim && a.count == e->n,
	      "'%s': ndim %d count %" PRId64 ", want %d and %" PRId64, e->name, a.ndim, a.count,
	      e->ndim, e->n);
	for (int i = 0; i < e->ndim && i < a.ndim; i++)
		CHECK(a.shape[i] == e->shape[i], "'%s': dim %d is %" PRId64 ", want %" PRId64,
		      e->name, i, a.shape[i], e->shape[i]);
	CHECK((a.kind == 'f') == (e->kind == 'f'), "'%s': kind '%c'", e->name, a.kind);
	int bad = 0;
	if (e->kind == 'f') {
		/* the wrong kind first: refused, and nothing consumed */
		check_refused(bv_npy_read_i64(&a, v, e->n ? 1 : 0), BV_EINVAL, e->name,
			      "expected integers", "integers from floats");
		rc = bv_npy_read_f32(&a, f, e->n);
		CHECK(rc == 0, "read '%s': %s", e->name, bv_error_last());
		for (int64_t i = 0; i < e->n && rc == 0; i++)
			if (f32_bits(f[i]) != e->fbits[i] && bad++ < 3)
				CHECK(0, "'%s'[%" PRId64 "]: bits 0x%08x, want 0x%08x", e->name, i,
				      f32_bits(f[i]), e->fbits[i]);
	} else {
		check_refused(bv_npy_read_f32(&a, f, e->n ? 1 : 0), BV_EINVAL, e->name,
			      "expected floats", "floats from integers");
		rc = bv_npy_read_i64(&a, v, e->n);
		CHECK(rc == 0, "read '%s': %s", e->name, bv_error_last());
		for (int64_t i = 0; i < e->n && rc == 0; i++)
			if (v[i] != e->ivals[i] && bad++ < 3)
				CHECK(0, "'%s'[%" PRId64 "]: %" PRId64 ", want %" PRId64, e->name,
				      i, v[i], e->ivals[i]);
	}
	CHECK(bad == 0, "'%s': %d values differ", e->name, bad);
	CHECK(a.pos == a.count, "'%s': pos %" PRId64 " after reading all", e->name, a.pos);
	/* nothing past the end */
	check_refused(e->kind == 'f' ? bv_npy_read_f32(&a, f, 1) : bv_npy_read_i64(&a, v, 1),
		      BV_EINVAL, e->name, "1 elements asked at element", "a read past the end");
	bv_npy_close(&a);
	bv_npy_close(&a);

	/* odd-sized chunks give the same */
	static const int chunks[] = {1, 3, 7, 2, 13, 1, 64};
	rc = bv_npy_open(&a, path);
	if (rc == 0)
		rc = read_chunked(&a, e->kind == 'f' ? (void *)f2 : (void *)v2, chunks,
				  (int)BV_ARRAY_LEN(chunks));
	CHECK(rc == 0, "chunked '%s': %s", e->name, bv_error_last());
	if (rc == 0)
		CHECK(e->kind == 'f' ? memcmp(f, f2, (size_t)e->n * 4) == 0
				     : memcmp(v, v2, (size_t)e->n * 8) == 0,
		      "'%s': chunked reads differ from one read", e->name);
	bv_npy_close(&a);
}

static void test_fixtures(void)
{
	char path[2048];
	static expected e;
	int n = 0, rc;
	FILE *f = fopen(fx(path, sizeof path, "expected.txt"), "r");
	if (!f) {
		CHECK(0, "cannot open '%s' (regenerate with tests/fixtures/npy/gen.py)", path);
		return;
	}
	while ((rc = read_expected(f, &e)) == 1) {
		check_one(&e);
		n++;
	}
	CHECK(rc == 0, "'%s': line %d is malformed", path, n + 1);
	fclose(f);
	/* every kind of fixture gen.py writes is there */
	CHECK(n >= 42, "'%s': %d arrays, expected at least 42", path, n);
	printf("fixtures: %d arrays checked value by value\n", n);
}

/* The formulas, independently of expected.txt. */
static void test_formulas(void)
{
	char path[2048];
	bv_npy a;
	float f[24];
	int64_t v[20];
	static const char *const floats[] = {"f2.npy", "f4.npy", "f8.npy",
					     "v2.npy", "d3.npy", "v3_f2.npy"};
	for (size_t k = 0; k < BV_ARRAY_LEN(floats); k++) {
		int rc = bv_npy_open(&a, fx(path, sizeof path, floats[k]));
		CHECK(rc == 0 && a.count <= 24, "open '%s': %s", path, bv_error_last());
		if (rc)
			continue;
		rc = bv_npy_read_f32(&a, f, a.count);
		CHECK(rc == 0, "read '%s': %s", path, bv_error_last());
		for (int64_t i = 0; i < a.count && rc == 0; i++)
			CHECK(f[i] == (float)fval(i), "'%s'[%" PRId64 "] = %g, want %g", floats[k],
			      i, f[i], fval(i));
		bv_npy_close(&a);
	}
	static const char *const ints[] = {"i1.npy", "i2.npy", "i4.npy", "i8.npy", "v3.npy",
					   "u1.npy", "u2.npy", "u4.npy", "u8.npy", "b1.npy"};
	for (size_t k = 0; k < BV_ARRAY_LEN(ints); k++) {
		int rc = bv_npy_open(&a, fx(path, sizeof path, ints[k]));
		CHECK(rc == 0 && a.count <= 20, "open '%s': %s", path, bv_error_last());
		if (rc)
			continue;
		rc = bv_npy_read_i64(&a, v, a.count);
		CHECK(rc == 0, "read '%s': %s", path, bv_error_last());
		for (int64_t i = 0; i < a.count && rc == 0; i++) {
			const int64_t want = ints[k][0] == 'b'   ? i % 3 == 0
					     : ints[k][0] == 'u' ? ival(i) + 50
								 : ival(i);
			CHECK(v[i] == want, "'%s'[%" PRId64 "] = %" PRId64 ", want %" PRId64,
			      ints[k], i, v[i], want);
		}
		bv_npy_close(&a);
	}
	/* the header fields */
	CHECK(bv_npy_open(&a, fx(path, sizeof path, "v2.npy")) == 0 && a.major == 2 &&
		      a.minor == 0 && strcmp(a.descr, "<f4") == 0 && a.itemsize == 4 &&
		      a.kind == 'f' && !a.fortran_order,
	      "v2.npy: version %d.%d descr '%s'", a.major, a.minor, a.descr);
	bv_npy_close(&a);
	CHECK(bv_npy_open(&a, fx(path, sizeof path, "v3.npy")) == 0 && a.major == 3 &&
		      strcmp(a.descr, "<i8") == 0,
	      "v3.npy: version %d descr '%s'", a.major, a.descr);
	bv_npy_close(&a);
	CHECK(bv_npy_open(&a, fx(path, sizeof path, "b1.npy")) == 0 && a.kind == 'b' &&
		      strcmp(a.descr, "|b1") == 0,
	      "b1.npy: kind '%c' descr '%s'", a.kind, a.descr);
	bv_npy_close(&a);
	CHECK(bv_npy_open(&a, fx(path, sizeof path, "fortran1d.npy")) == 0 && a.fortran_order == 1,
	      "fortran1d.npy: fortran_order %d (%s)", a.fortran_order, bv_error_last());
	bv_npy_close(&a);
	CHECK(bv_npy_open(&a, fx(path, sizeof path, "scalar.npy")) == 0 && a.ndim == 0 &&
		      a.count == 1,
	      "scalar.npy: ndim %d count %" PRId64, a.ndim, a.count);
	bv_npy_close(&a);
}

/* ---- 2. refusals --------------------------------------------------------- */

static void test_refused_fixtures(void)
{
	static const struct {
		const char *name;
		int code;
		const char *sub;
	} cases[] = {
		{"be_f4.npy", BV_EFORMAT, "dtype '>f4' is big-endian"},
		{"be_i8.npy", BV_EFORMAT, "dtype '>i8' is big-endian"},
		{"c8.npy", BV_EFORMAT,
		 "dtype '<c8' is not supported (expected float16/32/64 logits or integer "
		 "labels)"},
		{"structured.npy", BV_EFORMAT,
		 "a structured dtype (descr is a list) is not supported"},
		{"object.npy", BV_EFORMAT, "dtype '|O' is not supported"},
		{"S3.npy", BV_EFORMAT, "dtype '|S3' is not supported"},
		{"U2.npy", BV_EFORMAT, "dtype '<U2' is not supported"},
		{"M8.npy", BV_EFORMAT, "dtype '<M8[D]' is not supported"},
		{"m8.npy", BV_EFORMAT, "dtype '<m8[s]' is not supported"},
		{"f16.npy", BV_EFORMAT, "dtype '<f16' is not supported"},
		{"fortran2d.npy", BV_EFORMAT, "np.ascontiguousarray"},
		{"trunc.npy", BV_EFORMAT,
		 "truncated: 44 data bytes, expected 48 for shape (3, 4) of '<f4'"},
		{"trailing.npy", BV_EFORMAT, "trailing bytes: 51 data bytes, expected 48"},
		{"expected.txt", BV_EFORMAT, "not an .npy file (bad magic)"},
		{"no-such.npy", BV_EIO, "cannot open"},
	};
	char path[2048];
	for (size_t k = 0; k < BV_ARRAY_LEN(cases); k++)
		refuse_open(fx(path, sizeof path, cases[k].name), cases[k].code, path,
			    cases[k].sub);

	/* beyond int64: refused when read, naming the element */
	bv_npy a;
	int64_t v[4] = {7, 7, 7, 7};
	int rc = bv_npy_open(&a, fx(path, sizeof path, "u8_big.npy"));
	CHECK(rc == 0, "open u8_big.npy: %s", bv_error_last());
	if (rc == 0) {
		check_refused(bv_npy_read_i64(&a, v, 4), BV_EFORMAT, path,
			      "element 2 is 9223372036854775808, beyond int64", "u8_big.npy");
		CHECK(v[0] == 0 && v[1] == 0 && v[3] == 0,
		      "u8_big.npy: the output is not cleared on failure");
		check_refused(bv_npy_read_i64(&a, v, 1), BV_EIO, path, "an earlier read failed",
			      "after a failure");
	}
	bv_npy_close(&a);
}

/* An .npy with the dict text `dict` (padded with spaces and a '\n' unless raw)
 * and n bytes of data, as format version `major`. */
static void make_npy(const char *path, int major, const char *dict, int raw, const void *data,
		     size_t n)
{
	bv_buf b;
	bv_buf_init(&b);
	bv_buf_append(&b, "\x93NUMPY", 6);
	const unsigned char ver[2] = {(unsigned char)major, 0};
	bv_buf_append(&b, ver, 2);
	size_t dlen = strlen(dict), prefix = major == 1 ? 10 : 12;
	size_t hlen = raw ? dlen : dlen + 1 + (64 - (prefix + dlen + 1) % 64) % 64;
	unsigned char len[4] = {(unsigned char)hlen, (unsigned char)(hlen >> 8),
				(unsigned char)(hlen >> 16), (unsigned char)(hlen >> 24)};
	bv_buf_append(&b, len, major == 1 ? 2 : 4);
	bv_buf_append(&b, dict, dlen);
	for (size_t i = dlen; !raw && i + 1 < hlen; i++)
		bv_buf_append(&b, " ", 1);
	if (!raw)
		bv_buf_append(&b, "\n", 1);
	bv_buf_append(&b, data, n);
	CHECK(!b.failed, "out of memory");
	put_bytes(path, b.data, b.len);
	bv_buf_release(&b);
}

static void test_headers(void)
{
	char path[2048];
	const float four[4] = {1.5f, -2, 0.25f, 8};
	const int64_t i8[4] = {-1, 2, -3, 4};
	const unsigned char bytes[8] = {1, 0, 255, 7, 0, 1, 1, 0};

	/* accepted forms: each must read back its data */
	static const struct {
		const char *dict;
		int major;
		const char *descr;
		int ndim;
		int64_t d0;
	} ok[] = {
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 1, "<f4", 1, 4},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4), }", 1, "<f4", 1, 4},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2,), }", 1, "<f4", 2, 2},
		{"{'shape': (4,), 'descr': '=f4', 'fortran_order': False}", 1, "=f4", 1, 4},
		{"{\"fortran_order\": False, \"shape\": (4,), \"descr\": \"<f4\"}", 2, "<f4", 1, 4},
		{"{ 'descr' : '<f4' ,\n 'fortran_order' : True ,\t'shape' : ( 4 , ) ,\n}", 1, "<f4",
		 1, 4},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4L,), }", 1, "<f4", 1, 4},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 4), }", 3,
		 "<f4", 8, 1},
		{"{'descr': '=i8', 'fortran_order': False, 'shape': (4,), }", 1, "=i8", 1, 4},
		{"{'descr': '<i1', 'fortran_order': False, 'shape': (8,), }", 1, "<i1", 1, 8},
		{"{'descr': '>u1', 'fortran_order': False, 'shape': (8,), }", 1, ">u1", 1, 8},
		{"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4), }", 2, "|u1", 2, 2},
	};
	for (size_t k = 0; k < BV_ARRAY_LEN(ok); k++) {
		bv_npy a;
		float f[8];
		int64_t v[8];
		tmp_path(path, sizeof path, "ok.npy");
		const int fl = ok[k].descr[1] == 'f', one = ok[k].descr[2] == '1';
		make_npy(path, ok[k].major, ok[k].dict, 0,
			 fl    ? (const void *)four
			 : one ? (const void *)bytes
			       : (const void *)i8,
			 fl    ? sizeof four
			 : one ? sizeof bytes
			       : sizeof i8);
		int rc = bv_npy_open(&a, path);
		CHECK(rc == 0, "header %zu (%s): %s", k, ok[k].dict, bv_error_last());
		if (rc)
			continue;
		CHECK(strcmp(a.descr, ok[k].descr) == 0 && a.ndim == ok[k].ndim &&
			      a.shape[0] == ok[k].d0 && a.major == ok[k].major,
		      "header %zu: descr '%s' ndim %d", k, a.descr, a.ndim);
		if (fl) {
			rc = bv_npy_read_f32(&a, f, 4);
			CHECK(rc == 0 && memcmp(f, four, sizeof four) == 0, "header %zu: data (%s)",
			      k, bv_error_last());
		} else if (one) {
			rc = bv_npy_read_i64(&a, v, 8);
			const int sgn = ok[k].descr[1] == 'i';
			CHECK(rc == 0 && v[0] == 1 && v[2] == (sgn ? -1 : 255) && v[3] == 7 &&
				      v[7] == 0,
			      "header %zu: data %" PRId64 " %" PRId64 " (%s)", k, v[0], v[2],
			      bv_error_last());
		} else {
			rc = bv_npy_read_i64(&a, v, 4);
			CHECK(rc == 0 && memcmp(v, i8, sizeof i8) == 0, "header %zu: data (%s)", k,
			      bv_error_last());
		}
		bv_npy_close(&a);
	}

	/* malformed or unsupported: BV_EFORMAT and the message */
	static const struct {
		const char *dict;
		int major;
		const char *sub;
	} bad[] = {
		{"{'descr': '<f4', 'fortran_order': False}", 1, "bad header: no 'shape' key"},
		{"{'descr': '<f4', 'shape': (4,)}", 1, "bad header: no 'fortran_order' key"},
		{"{'fortran_order': False, 'shape': (4,)}", 1, "bad header: no 'descr' key"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", 1,
		 "unknown key 'x'"},
		{"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", 1,
		 "the key 'descr' twice"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': [4]}", 1,
		 "'shape' is not a tuple"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': 4}", 1,
		 "'shape' is not a tuple"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,)}", 1,
		 "a negative dimension"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,,)}", 1,
		 "expected a dimension at byte"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (,)}", 1,
		 "expected a dimension"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (04,)}", 1, "leading zero"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4.0,)}", 1,
		 "expected ',' or ')' in 'shape'"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 4)}",
		 1, "more than 8 dimensions"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", 1,
		 "shape (4294967296, 4294967296) holds more than 2^63 - 1 elements"},
		{"{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,)}", 1,
		 "is more than 2^63 - 1 bytes"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775808,)}", 1,
		 "a dimension beyond 2^63 - 1"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4L,)}", 3,
		 "expected ',' or ')'"},
		{"{'descr': '<f4', 'fortran_order': 0, 'shape': (4,)}", 1,
		 "'fortran_order' is not True or False"},
		{"{'descr': '<f4', 'fortran_order': Truex, 'shape': (4,)}", 1,
		 "'fortran_order' is not True or False"},
		{"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", 1,
		 "save a C-ordered one"},
		{"{'descr': 4, 'fortran_order': False, 'shape': (4,)}", 1,
		 "'descr' is neither a string nor a list"},
		{"{'descr': '<f4\\n', 'fortran_order': False, 'shape': (4,)}", 1,
		 "an escape or line break"},
		{"{'descr': '<f4, 'fortran_order': False, 'shape': (4,)}", 1,
		 "expected ',' or '}'"},
		{"{'descr' '<f4', 'fortran_order': False, 'shape': (4,)}", 1,
		 "expected ':' after a key"},
		{"{4: '<f4', 'fortran_order': False, 'shape': (4,)}", 1,
		 "expected a quoted string"},
		{"{'descr': '<f4' 'fortran_order': False, 'shape': (4,)}", 1,
		 "expected ',' or '}'"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} x", 1,
		 "only padding after the dict"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,)", 1,
		 "expected ',' or '}'"},
		{"('descr', '<f4')", 1, "expected '{'"},
		{"{'descr': [('a', '<f4'], 'fortran_order': False, 'shape': (4,)}", 1,
		 "a matching bracket"},
		{"{'descr': [('a', '<f4')", 1, "a list that does not end"},
		{"{'descr': '|f4', 'fortran_order': False, 'shape': (1,)}", 1,
		 "dtype '|f4' has no byte order"},
		{"{'descr': '<f3', 'fortran_order': False, 'shape': (1,)}", 1,
		 "dtype '<f3' is not supported"},
		{"{'descr': '<i3', 'fortran_order': False, 'shape': (1,)}", 1,
		 "dtype '<i3' is not supported"},
		{"{'descr': '<b2', 'fortran_order': False, 'shape': (1,)}", 1,
		 "dtype '<b2' is not supported"},
		{"{'descr': 'f4', 'fortran_order': False, 'shape': (1,)}", 1,
		 "dtype 'f4' is not supported"},
		{"{'descr': '<f4\x01', 'fortran_order': False, 'shape': (1,)}", 1,
		 "dtype '<f4?' is not supported"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\x07", 1,
		 "found byte 0x07"},
	};
	for (size_t k = 0; k < BV_ARRAY_LEN(bad); k++) {
		char what[64];
		snprintf(what, sizeof what, "bad header %zu", k);
		tmp_path(path, sizeof path, "bad.npy");
		make_npy(path, bad[k].major, bad[k].dict, 0, four, sizeof four);
		bv_npy a;
		check_refused(bv_npy_open(&a, path), BV_EFORMAT, path, bad[k].sub, what);
		CHECK(a.priv == NULL, "%s: left open", what);
		bv_npy_close(&a);
	}

	/* no newline at the end; a newline then spaces is fine */
	tmp_path(path, sizeof path, "raw.npy");
	make_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}   ", 1, four,
		 sizeof four);
	refuse_open(path, BV_EFORMAT, path, "bad header: it does not end with a newline");
	make_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}\n   ", 1, four,
		 sizeof four);
	bv_npy a;
	CHECK(bv_npy_open(&a, path) == 0 && a.count == 4, "a newline before the padding: %s",
	      bv_error_last());
	bv_npy_close(&a);

	/* the prefix: magic, version, length */
	unsigned char pre[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 4, 0, 0, 0};
	tmp_path(path, sizeof path, "pre.npy");
	put_bytes(path, pre, 10);
	refuse_open(path, BV_EFORMAT, path,
		    "unsupported .npy format version 4.0 (expected 1.0, 2.0 or 3.0)");
	pre[6] = 1;
	pre[7] = 1;
	put_bytes(path, pre, 10);
	refuse_open(path, BV_EFORMAT, path, "unsupported .npy format version 1.1");
	put_bytes(path, pre, 0);
	refuse_open(path, BV_EFORMAT, path, "not an .npy file (empty)");
	put_bytes(path, pre, 4);
	refuse_open(path, BV_EFORMAT, path, "truncated header (4 bytes)");
	pre[6] = 2;
	pre[7] = 0;
	put_bytes(path, pre, 11);
	refuse_open(path, BV_EFORMAT, path, "truncated header (11 bytes)");
	pre[6] = 1;
	pre[8] = 100; /* a 100-byte dict in a 10-byte file */
	put_bytes(path, pre, 10);
	refuse_open(path, BV_EFORMAT, path, "truncated header (10 of 110 bytes)");
	pre[6] = 2;
	pre[8] = 0x71; /* 70001 = 0x11171 */
	pre[9] = 0x11;
	pre[10] = 0x01;
	pre[11] = 0;
	put_bytes(path, pre, 12);
	refuse_open(path, BV_EFORMAT, path, "bad header: 70001 bytes long, more than 65536");
	memcpy(pre, "PK\3\4", 4);
	put_bytes(path, pre, 12);
	refuse_open(path, BV_EFORMAT, path, "not an .npy file (bad magic)");

	/* a header of the largest length allowed: fine */
	size_t big = BV_NPY_MAX_HEADER;
	char *dict = malloc(big + 1);
	if (dict) {
		int n = snprintf(dict, big + 1,
				 "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}");
		memset(dict + n, ' ', big - (size_t)n - 1);
		dict[big - 1] = '\n';
		dict[big] = '\0';
		make_npy(path, 2, dict, 1, four, sizeof four);
		CHECK(bv_npy_open(&a, path) == 0 && a.count == 4, "a %zu-byte header: %s", big,
		      bv_error_last());
		bv_npy_close(&a);
		free(dict);
	}

	/* bv_npy_parse_header on bytes */
	size_t n, off = 99;
	unsigned char *data = slurp(fx(path, sizeof path, "f4.npy"), &n);
	if (data) {
		CHECK(bv_npy_parse_header(&a, data, n, &off, "mem") == 0 && off == 128 &&
			      a.count == 20 && strcmp(a.where, "mem") == 0,
		      "parse_header: offset %zu (%s)", off, bv_error_last());
		CHECK(bv_npy_parse_header(&a, data, 128, &off, "mem") == 0 && off == 128,
		      "parse_header: header only");
		check_refused(bv_npy_parse_header(&a, data, 127, &off, "mem"), BV_EFORMAT, "mem",
			      "truncated header (127 of 128 bytes)", "parse_header, short");
		free(data);
	}
}

/* ---- 3. .npz -------------------------------------------------------------- */

static void test_npz(void)
{
	char path[4096], p2[2048], dir[1024];
	bv_npy a;

	/* a missing member: the archive's members named */
	fx(p2, sizeof p2, "stored.npz");
	snprintf(path, sizeof path, "%s:nope", p2);
	refuse_open(path, BV_EIO, p2,
		    "has no member 'nope' (members: logits, labels, half, scalar, m4, m5, ... 7 in "
		    "all)");
	snprintf(path, sizeof path, "%s:logits.npy", p2);
	CHECK(bv_npy_open(&a, path) == 0 && a.count == 12, "'logits.npy' by its full name: %s",
	      bv_error_last());
	bv_npy_close(&a);
	fx(p2, sizeof p2, "odd.npz");
	snprintf(path, sizeof path, "%s:x", p2); /* x.npy holds no array */
	refuse_open(path, BV_EFORMAT, path, "not an .npy file (bad magic)");
	snprintf(path, sizeof path, "%s:raw", p2);
	refuse_open(path, BV_EIO, p2, "has no member 'raw' (members: raw.bin, x)");
	/* not a zip; no such archive */
	fx(p2, sizeof p2, "f4.npy");
	tmp_path(dir, sizeof dir, "notzip.npz");
	size_t n;
	unsigned char *data = slurp(p2, &n);
	if (data) {
		put_bytes(dir, data, n);
		free(data);
	}
	snprintf(path, sizeof path, "%s:a", dir);
	refuse_open(path, BV_EFORMAT, dir, "is not a zip archive");
	tmp_path(dir, sizeof dir, "none.npz");
	snprintf(path, sizeof path, "%s:a", dir);
	refuse_open(path, BV_EIO, dir, "cannot open");

	/* the split is at the last ".npz:": a directory named "d.npz:x" */
	tmp_path(dir, sizeof dir, "d.npz:x");
	CHECK(mkdir(dir, 0755) == 0, "mkdir '%s'", dir);
	data = slurp(fx(p2, sizeof p2, "deflated.npz"), &n);
	snprintf(p2, sizeof p2, "%s/s.npz", dir);
	if (data)
		put_bytes(p2, data, n);
	snprintf(path, sizeof path, "%s:labels", p2);
	int64_t v[20];
	CHECK(bv_npy_open(&a, path) == 0 && bv_npy_read_i64(&a, v, 20) == 0 && v[19] == ival(19),
	      "'%s': %s", path, bv_error_last());
	bv_npy_close(&a);
	/* "x.npz:" ends in ':' with no member: a plain file of that name */
	tmp_path(p2, sizeof p2, "plain.npz:");
	char f4[2048];
	unsigned char *f4data = slurp(fx(f4, sizeof f4, "f4.npy"), &n);
	if (f4data)
		put_bytes(p2, f4data, n);
	CHECK(bv_npy_open(&a, p2) == 0 && a.count == 20, "'%s' as a plain file: %s", p2,
	      bv_error_last());
	bv_npy_close(&a);
	free(f4data);

	/* a member whose data does not match its CRC: refused when read to its end */
	if (data) {
		/* the bytes of deflated.npz are compressed; corrupt a stored member instead */
		free(data);
		data = slurp(fx(p2, sizeof p2, "stored.npz"), &n);
	}
	if (data) {
		float want[12];
		for (int i = 0; i < 12; i++)
			want[i] = (float)fval(i);
		unsigned char *at = NULL;
		for (size_t i = 0; !at && i + sizeof want <= n; i++)
			if (memcmp(data + i, want, sizeof want) == 0)
				at = data + i;
		CHECK(at != NULL, "the logits of stored.npz are not stored as they are");
		if (at) {
			at[20] ^= 0x40;
			tmp_path(p2, sizeof p2, "crc.npz");
			put_bytes(p2, data, n);
			snprintf(path, sizeof path, "%s:logits", p2);
			float f[12];
			int rc = bv_npy_open(&a, path);
			CHECK(rc == 0, "'%s': the header is intact: %s", path, bv_error_last());
			if (rc == 0) {
				CHECK(bv_npy_read_f32(&a, f, 6) == 0,
				      "the first half, before the CRC: %s", bv_error_last());
				check_refused(bv_npy_read_f32(&a, f + 6, 6), BV_EFORMAT, path,
					      "CRC", "a bad CRC");
				CHECK(f[6] == 0 && f[11] == 0 && a.pos == 6,
				      "the output is cleared and pos kept on a CRC failure (pos "
				      "%" PRId64 ")",
				      a.pos);
			}
			bv_npy_close(&a);
		}
		free(data);
	}
}

/* ---- 4. large arrays, short reads, special files -------------------------- */

/* float16 the long way: (-1)^s (e == 0 ? m 2^-24 : (1 + m/1024) 2^(e-15)) */
static double half_naive(unsigned h)
{
	const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	double v;
	if (e == 31)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexp(m, -24);
	else
		v = ldexp(1.0 + m / 1024.0, e - 15);
	return s ? -v : v;
}

static void test_large(void)
{
	char path[2048];
	bv_npy a;
	static const int chunks[] = {1, 99999, 131072, 131073, 7, 262145};

	/* float64, through the writer; more than one conversion buffer */
	enum { N8 = 300000 };
	double *d = malloc(N8 * sizeof *d);
	float *f = malloc(600000 * sizeof *f);
	int64_t *v = malloc(N8 * sizeof *v);
	if (!d || !f || !v) {
		CHECK(0, "out of memory");
		goto done;
	}
	for (int i = 0; i < N8; i++)
		d[i] = fval(i) * (1.0 + 1e-9 * i) + 1e-12 * i; /* not exact in float32 */
	tmp_path(path, sizeof path, "big8.npy");
	const int64_t shape8[2] = {N8 / 3, 3};
	CHECK(bv_npy_write(path, "<f8", 2, shape8, d) == 0, "write '%s': %s", path,
	      bv_error_last());
	int rc = bv_npy_open(&a, path);
	if (rc == 0)
		rc = read_chunked(&a, f, chunks, (int)BV_ARRAY_LEN(chunks));
	CHECK(rc == 0, "'%s': %s", path, bv_error_last());
	int bad = 0;
	for (int i = 0; i < N8 && rc == 0; i++)
		bad += f[i] != (float)d[i];
	CHECK(bad == 0, "'%s': %d of %d values differ from the cast", path, bad, N8);
	bv_npy_close(&a);

	/* float16: every bit pattern, nine times over */
	enum { N2 = 9 * 65536 };
	uint16_t *h = malloc(N2 * sizeof *h);
	if (h) {
		for (int i = 0; i < N2; i++)
			h[i] = (uint16_t)(i * 40503u); /* odd: a permutation of each 65536 */
		tmp_path(path, sizeof path, "big2.npy");
		make_npy(path, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (9, 65536), }",
			 0, h, N2 * sizeof *h);
		rc = bv_npy_open(&a, path);
		if (rc == 0)
			rc = read_chunked(&a, f, chunks, (int)BV_ARRAY_LEN(chunks));
		CHECK(rc == 0, "'%s': %s", path, bv_error_last());
		bad = 0;
		for (int i = 0; i < N2 && rc == 0; i++) {
			const double want = half_naive(h[i]);
			const int sign = h[i] >> 15;
			const int ok = isnan(want)
					       ? isnan(f[i]) && !!signbit(f[i]) == sign
					       : (double)f[i] == want && !!signbit(f[i]) == sign;
			if (!ok && bad++ < 3)
				CHECK(0, "float16 0x%04x: %a, want %a", h[i], f[i], want);
		}
		CHECK(bad == 0, "'%s': %d float16 values wrong", path, bad);
		bv_npy_close(&a);
		free(h);
	}

	/* int32, and a uint64 beyond int64 in the second buffer */
	int32_t *i4 = malloc(N8 * sizeof *i4);
	uint64_t *u8 = malloc(N8 * sizeof *u8);
	if (i4 && u8) {
		for (int i = 0; i < N8; i++) {
			i4[i] = (int32_t)(i * 2654435761u);
			u8[i] = (uint64_t)i * 1000003u;
		}
		tmp_path(path, sizeof path, "big4.npy");
		make_npy(path, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (300000,), }",
			 0, i4, N8 * sizeof *i4);
		rc = bv_npy_open(&a, path);
		if (rc == 0)
			rc = read_chunked(&a, v, chunks, (int)BV_ARRAY_LEN(chunks));
		CHECK(rc == 0, "'%s': %s", path, bv_error_last());
		bad = 0;
		for (int i = 0; i < N8 && rc == 0; i++)
			bad += v[i] != i4[i];
		CHECK(bad == 0, "'%s': %d values differ", path, bad);
		bv_npy_close(&a);

		u8[200000] = (uint64_t)1 << 63;
		tmp_path(path, sizeof path, "bigu8.npy");
		make_npy(path, 1, "{'descr': '<u8', 'fortran_order': False, 'shape': (300000,), }",
			 0, u8, N8 * sizeof *u8);
		rc = bv_npy_open(&a, path);
		CHECK(rc == 0, "'%s': %s", path, bv_error_last());
		if (rc == 0) {
			CHECK(bv_npy_read_i64(&a, v, 150000) == 0 &&
				      v[149999] == 149999 * 1000003LL,
			      "'%s': the first 150000 (%s)", path, bv_error_last());
			check_refused(bv_npy_read_i64(&a, v, 150000), BV_EFORMAT, path,
				      "element 200000 is 9223372036854775808, beyond int64",
				      "a uint64 in the second buffer");
		}
		bv_npy_close(&a);
	}
	free(i4);
	free(u8);

	/* a file that shrinks between open and read: an error, the output cleared */
	static const char *const shrink[] = {"f4.npy", "f2.npy", "i8.npy", "u2.npy"};
	for (size_t k = 0; k < BV_ARRAY_LEN(shrink); k++) {
		char src[2048];
		size_t n;
		unsigned char *data = slurp(fx(src, sizeof src, shrink[k]), &n);
		if (!data)
			continue;
		tmp_path(path, sizeof path, "shrink.npy");
		put_bytes(path, data, n);
		free(data);
		rc = bv_npy_open(&a, path);
		CHECK(rc == 0, "'%s': %s", path, bv_error_last());
		if (rc)
			continue;
		CHECK(truncate(path, (off_t)n - 10) == 0, "truncate '%s'", path);
		memset(f, 0x7f, 20 * sizeof *f);
		memset(v, 0x7f, 20 * sizeof *v);
		rc = a.kind == 'f' ? bv_npy_read_f32(&a, f, 20) : bv_npy_read_i64(&a, v, 20);
		check_refused(rc, BV_EIO, path, "ended 10 bytes early", shrink[k]);
		int cleared = 1;
		for (int i = 0; i < 20; i++)
			cleared &= a.kind == 'f' ? f32_bits(f[i]) == 0 : v[i] == 0;
		CHECK(cleared, "%s: the output is not cleared after a short read", shrink[k]);
		bv_npy_close(&a);
	}

	/* a FIFO and a directory are not read */
	tmp_path(path, sizeof path, "fifo.npy");
	CHECK(mkfifo(path, 0600) == 0, "mkfifo '%s'", path);
	refuse_open(path, BV_EIO, path, "is not a regular file");
	tmp_path(path, sizeof path, "fifo.npz");
	CHECK(mkfifo(path, 0600) == 0, "mkfifo '%s'", path);
	char member[2100];
	snprintf(member, sizeof member, "%s:a", path);
	refuse_open(member, BV_EIO, path, "is not a regular file");
	refuse_open(root, BV_EIO, root, "is not a regular file");
done:
	free(d);
	free(f);
	free(v);
}

/* ---- 5. the writer ------------------------------------------------------- */

/* The names in root, sorted, joined by spaces (to see what a writer left). */
static void list_dir(char *out, size_t cap, const char *dir)
{
	struct dirent **ents;
	size_t k = 0;
	out[0] = '\0';
	int n = scandir(dir, &ents, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.' && k < cap)
			k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? " " : "",
					      ents[i]->d_name);
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
}

static const char *python_numpy(void)
{
	static const char *const cands[] = {"/usr/bin/python3", "python3"};
	for (size_t k = 0; k < BV_ARRAY_LEN(cands); k++) {
		char cmd[256];
		snprintf(cmd, sizeof cmd, "%s -c 'import numpy' >/dev/null 2>&1", cands[k]);
		if (system(cmd) == 0)
			return cands[k];
	}
	return NULL;
}

static void test_writer(void)
{
	char path[2048], dir[1024], list[1024];
	bv_npy a;
	bv_npy_writer w;

	/* round trips, put in pieces */
	static const struct {
		const char *descr, *name;
		int ndim;
		int64_t shape[3];
	} rt[] = {
		{"<f4", "w_f4.npy", 2, {3, 4}},    {"<f8", "w_f8.npy", 3, {2, 3, 4}},
		{"<i8", "w_i8.npy", 1, {5}},       {"<f4", "w_0d.npy", 0, {0}},
		{"<i8", "w_empty.npy", 2, {3, 0}}, {"<f4", "w_long.npy", 1, {1000}},
	};
	for (size_t k = 0; k < BV_ARRAY_LEN(rt); k++) {
		float f[1000], fb[1000];
		double d[1000];
		int64_t v[1000], vb[1000];
		for (int i = 0; i < 1000; i++) {
			f[i] = (float)fval(i);
			d[i] = fval(i) + 1e-10 * i;
			v[i] = ival(i) * 1000000007LL;
		}
		tmp_path(path, sizeof path, rt[k].name);
		int rc = bv_npy_writer_open(&w, path, rt[k].descr, rt[k].ndim, rt[k].shape);
		CHECK(rc == 0, "writer '%s': %s", path, bv_error_last());
		if (rc)
			continue;
		const char *src = rt[k].descr[1] == 'i'   ? (const char *)v
				  : rt[k].descr[2] == '8' ? (const char *)d
							  : (const char *)f;
		const int64_t count = w.count;
		for (int64_t at = 0; at < count && rc == 0;) {
			int64_t m = at % 2 ? 3 : 1;
			if (m > count - at)
				m = count - at;
			rc = bv_npy_writer_put(&w, src + at * w.itemsize, m);
			at += m;
		}
		CHECK(rc == 0 && access(path, F_OK) != 0, "'%s' exists before the commit", path);
		rc = rc ? rc : bv_npy_writer_commit(&w);
		CHECK(rc == 0, "commit '%s': %s", path, bv_error_last());
		bv_npy_writer_abort(&w); /* after a commit: nothing */
		CHECK(access(path, F_OK) == 0, "'%s' gone after an abort following its commit",
		      path);

		size_t n, off;
		unsigned char *data = slurp(path, &n);
		if (data) {
			CHECK(bv_npy_parse_header(&a, data, n, &off, path) == 0 && off % 64 == 0 &&
				      data[off - 1] == '\n',
			      "'%s': data at %zu (%s)", path, off, bv_error_last());
			free(data);
		}
		rc = bv_npy_open(&a, path);
		CHECK(rc == 0 && a.ndim == rt[k].ndim && a.count == count &&
			      strcmp(a.descr, rt[k].descr) == 0,
		      "reopen '%s': %s", path, bv_error_last());
		if (rc == 0) {
			if (rt[k].descr[1] == 'f') {
				rc = bv_npy_read_f32(&a, fb, count);
				for (int64_t i = 0; i < count && rc == 0; i++)
					CHECK(fb[i] == (rt[k].descr[2] == '8' ? (float)d[i] : f[i]),
					      "'%s'[%" PRId64 "]", path, i);
			} else {
				rc = bv_npy_read_i64(&a, vb, count);
				CHECK(rc == 0 && memcmp(vb, v, (size_t)count * 8) == 0,
				      "'%s': values", path);
			}
			CHECK(rc == 0, "read '%s': %s", path, bv_error_last());
		}
		bv_npy_close(&a);
	}

	/* NumPy reads it, and np.save writes the same bytes */
	const char *py = python_numpy();
	if (!py) {
		printf("note: no python3 with numpy: skipping the np.load check of the writer's "
		       "files\n");
	} else {
		char cmd[8192];
		snprintf(cmd, sizeof cmd,
			 "%s -c '\n"
			 "import io, sys, numpy as np\n"
			 "d = sys.argv[1]\n"
			 "i = np.arange(1000)\n"
			 "f = (i * 37 %% 101 - 50) / 8.0\n"
			 "want = {\"w_f4\": f[:12].astype(\"<f4\").reshape(3, 4),\n"
			 "        \"w_f8\": (f + 1e-10 * i)[:24].reshape(2, 3, 4),\n"
			 "        \"w_i8\": (i * 37 %% 101 - 50)[:5] * 1000000007,\n"
			 "        \"w_0d\": np.array(f[0], dtype=\"<f4\"),\n"
			 "        \"w_empty\": np.zeros((3, 0), dtype=\"<i8\"),\n"
			 "        \"w_long\": f.astype(\"<f4\")}\n"
			 "for name, w in want.items():\n"
			 "    p = d + \"/\" + name + \".npy\"\n"
			 "    a = np.load(p)\n"
			 "    assert a.dtype == w.dtype and a.shape == w.shape, (name, a.dtype, "
			 "a.shape)\n"
			 "    assert (a == w).all(), name\n"
			 "    b = io.BytesIO(); np.save(b, w)\n"
			 "    assert open(p, \"rb\").read() == b.getvalue(), name + \": not the "
			 "bytes of np.save\"\n"
			 "print(\"numpy: %%d files loaded and equal to np.save%%s\" %% (len(want), "
			 "chr(39) + \"s\"))\n"
			 "' '%s'",
			 py, root);
		int rc = system(cmd);
		CHECK(rc == 0, "numpy could not load or match the writer's files (status %d)", rc);
	}

	/* failures leave nothing behind */
	tmp_path(dir, sizeof dir, "wfail");
	CHECK(mkdir(dir, 0755) == 0, "mkdir '%s'", dir);
	const int64_t shape[1] = {4};
	const float four[4] = {1, 2, 3, 4};
	snprintf(path, sizeof path, "%s/no/such/dir/x.npy", dir);
	check_refused(bv_npy_write(path, "<f4", 1, shape, four), BV_EIO, path, "does not exist",
		      "no directory");
	snprintf(path, sizeof path, "%s/x.npy", dir);
	check_refused(bv_npy_write(path, "<f2", 1, shape, four), BV_EINVAL, path,
		      "dtype '<f2' (expected '<f4', '<f8' or '<i8')",
		      "a dtype the writer does not write");
	const int64_t neg[1] = {-1};
	check_refused(bv_npy_write(path, "<f4", 1, neg, four), BV_EINVAL, path, "dimension 0 is -1",
		      "a negative shape");
	check_refused(bv_npy_write(path, "<f4", 9, shape, four), BV_EINVAL, path, "9 dimensions",
		      "too many dimensions");
	check_refused(bv_npy_write(dir, "<f4", 1, shape, four), BV_EIO, dir,
		      "is not a regular file", "a directory");

	CHECK(bv_npy_writer_open(&w, path, "<f4", 1, shape) == 0, "open: %s", bv_error_last());
	CHECK(bv_npy_writer_put(&w, four, 3) == 0, "put 3: %s", bv_error_last());
	check_refused(bv_npy_writer_commit(&w), BV_EINVAL, path, "3 of 4 elements put",
		      "an early commit");
	check_refused(bv_npy_writer_put(&w, four, 1), BV_EINVAL, path, "not open",
		      "a put after the abort");
	list_dir(list, sizeof list, dir);
	CHECK(list[0] == '\0', "an early commit left: %s", list);

	CHECK(bv_npy_writer_open(&w, path, "<f4", 1, shape) == 0, "open: %s", bv_error_last());
	check_refused(bv_npy_writer_put(&w, four, 5), BV_EINVAL, path,
		      "5 elements put at element 0 of 4", "a put past the end");
	check_refused(bv_npy_writer_commit(&w), BV_EINVAL, path, "not open",
		      "a commit after the abort");
	list_dir(list, sizeof list, dir);
	CHECK(list[0] == '\0', "a put past the end left: %s", list);

	/* an abort leaves an existing file as it was */
	CHECK(bv_npy_write(path, "<f4", 1, shape, four) == 0, "write '%s': %s", path,
	      bv_error_last());
	const float other[4] = {9, 9, 9, 9};
	CHECK(bv_npy_writer_open(&w, path, "<f4", 1, shape) == 0 &&
		      bv_npy_writer_put(&w, other, 4) == 0,
	      "open: %s", bv_error_last());
	bv_npy_writer_abort(&w);
	bv_npy_writer_abort(&w);
	bv_npy_writer_abort(NULL);
	float back[4] = {0};
	CHECK(bv_npy_open(&a, path) == 0 && bv_npy_read_f32(&a, back, 4) == 0 &&
		      memcmp(back, four, sizeof four) == 0,
	      "'%s' changed by an aborted writer (%s)", path, bv_error_last());
	bv_npy_close(&a);
	list_dir(list, sizeof list, dir);
	CHECK(strcmp(list, "x.npy") == 0, "after the abort: %s", list);
}

static void test_misc(void)
{
	char s[64];
	const int64_t shape[3] = {3, 4, 5};
	CHECK(strcmp(bv_npy_shape_text(s, sizeof s, 0, shape), "()") == 0, "0-d: %s", s);
	CHECK(strcmp(bv_npy_shape_text(s, sizeof s, 1, shape), "(3,)") == 0, "1-d: %s", s);
	CHECK(strcmp(bv_npy_shape_text(s, sizeof s, 3, shape), "(3, 4, 5)") == 0, "3-d: %s", s);
	CHECK(strlen(bv_npy_shape_text(s, 5, 3, shape)) == 4, "cut: %s", s);

	bv_npy a;
	float f[1];
	bv_npy_close(NULL);
	memset(&a, 0, sizeof a);
	snprintf(a.where, sizeof a.where, "closed.npy");
	check_refused(bv_npy_read_f32(&a, f, 1), BV_EINVAL, "closed.npy", "not open",
		      "a read when closed");
	char *long_path = malloc(1300);
	if (long_path) {
		memset(long_path, 'a', 1299);
		long_path[1299] = '\0';
		check_refused(bv_npy_open(&a, long_path), BV_EINVAL, "aaaa", "path longer than",
			      "a long path");
		free(long_path);
	}
}

int main(void)
{
	fixtures = getenv("BV_FIXTURES");
	if (!fixtures) {
		CHECK(0, "BV_FIXTURES is not set (run through ctest, or set it to tests/fixtures)");
		return bv_check_done();
	}
	if (bv_check_tmpdir(root, sizeof root, "npy") != 0)
		return 1;
	test_fixtures();
	test_formulas();
	test_refused_fixtures();
	test_headers();
	test_npz();
	test_large();
	test_writer();
	test_misc();

	char cmd[1100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		printf("note: could not remove %s\n", root);
	return bv_check_done();
}
