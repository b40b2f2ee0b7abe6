/*
 * Tests for the CIFAR-10/100 readers in train/data.c and for train/augment.c.
 *
 * CIFAR files are written here in the real binary layout (label byte(s), then
 * 1024 R, 1024 G, 1024 B bytes per record) with the standard names, a few
 * records each, into a fresh directory under $BV_TMP, loaded back and checked
 * value by value against a naive per-channel normalisation; every kind of bad
 * input must fail with the right code and a message naming the file.
 * Augmentation is checked on constructed images with a scripted generator (the
 * offsets and the flip chosen by the test), against a naive reference with the
 * documented draw order, and statistically over many mt19937 draws. With
 * BV_CIFAR10_DIR set, the real CIFAR-10 is loaded as well.
 */
#include "base.h"
#include "check.h"
#include "train.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gsl/gsl_rng.h>

enum { PIX = 3072 };

static char root[768];
static char written[256][1024]; /* files and directories to remove at the end */
static int n_written;

static void remember(const char *path)
{
	for (int i = 0; i < n_written; i++)
		if (strcmp(written[i], path) == 0)
			return;
	if (n_written < (int)BV_ARRAY_LEN(written))
		snprintf(written[n_written++], sizeof written[0], "%s", path);
}

static void put_file(const char *dir, const char *name, const void *data, size_t n)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	CHECK(bv_write_file_atomic(path, data, n) == 0, "write '%s': %s", path, bv_error_last());
	remember(path);
}

static void make_dir(char *dir, size_t cap, const char *parent, const char *name)
{
	snprintf(dir, cap, "%s/%s", parent, name);
	CHECK(mkdir(dir, 0755) == 0, "mkdir '%s'", dir);
	remember(dir);
}

/* Deterministic pixels with a different distribution per channel (R in
 * [0,127], G in [64,255], B in [0,255]), so per-channel statistics differ. */
static unsigned char pixel(int file, int rec, int j)
{
	uint32_t h = (uint32_t)(rec * 3072 + j) * 2654435761u ^ (uint32_t)(file * 7919);
	h ^= h >> 13;
	h *= 0x5bd1e995u;
	h ^= h >> 15;
	int c = j / 1024;
	if (c == 0)
		return (unsigned char)(h % 128);
	if (c == 1)
		return (unsigned char)(64 + h % 192);
	return (unsigned char)h;
}

/* The label of record `rec` of file `file` (fine label for CIFAR-100). */
static int label_of(int file, int rec, int n_classes)
{
	return (rec * 7 + file * 3 + (n_classes == 100 ? 92 : 0)) % n_classes;
}

/* One CIFAR file: n records of label_bytes + 3072 bytes. */
static void cifar_build(bv_buf *b, int file, int n, int label_bytes, int n_classes)
{
	bv_buf_init(b);
	for (int r = 0; r < n; r++) {
		unsigned char lab[2];
		int fine = label_of(file, r, n_classes);
		lab[0] = (unsigned char)(label_bytes == 2 ? fine / 5 : fine); /* coarse: 20 groups of 5 */
		lab[1] = (unsigned char)fine;
		bv_buf_append(b, lab, (size_t)label_bytes);
		for (int j = 0; j < PIX; j++) {
			unsigned char p = pixel(file, r, j);
			bv_buf_append(b, &p, 1);
		}
	}
}

/* The standard files of a set, the records per file and the test file last. */
typedef struct layout {
	const char *spec_name;
	int label_bytes, n_classes, n_files;
	const char *files[6];
	int n[6];
} layout;

static const layout c10 = {
	"cifar10", 1, 10, 6,
	{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
	 "data_batch_5.bin", "test_batch.bin"},
	{3, 4, 2, 5, 1, 4},
};
static const layout c100 = {"cifar100", 2, 100, 2, {"train.bin", "test.bin"}, {9, 3}};

/* Write every file of the layout into dir; file `skip` (-1: none) is left out. */
static void layout_write(const layout *l, const char *dir, int skip)
{
	for (int f = 0; f < l->n_files; f++) {
		if (f == skip)
			continue;
		bv_buf b;
		cifar_build(&b, f, l->n[f], l->label_bytes, l->n_classes);
		put_file(dir, l->files[f], b.data, b.len);
		bv_buf_release(&b);
	}
}

/* Expect bv_data_load(spec) to fail with `code` and a message holding `needle`. */
static void expect_fail(const char *spec, int code, const char *needle, const char *what)
{
	bv_data d;
	bv_error_clear();
	int rc = bv_data_load(&d, spec);
	CHECK(rc == code, "%s: got rc %d want %d (%s)", what, rc, code, bv_error_last());
	CHECK(strstr(bv_error_last(), needle) != NULL, "%s: message '%s' does not hold '%s'", what,
	      bv_error_last(), needle);
	CHECK(d.train.x == NULL && d.test.x == NULL && d.train.n == 0, "%s: data left behind", what);
	printf("  %-30s -> %s\n", what, bv_error_last());
}

/* Load the layout from spec and check everything against the generator. */
static void check_layout(const layout *l, const char *spec, const char *want_dir)
{
	bv_data d;
	int rc = bv_data_load(&d, spec);
	CHECK(rc == 0, "load '%s': %s", spec, bv_error_last());
	if (rc)
		return;
	int n_train = 0, n_test = l->n[l->n_files - 1];
	for (int f = 0; f < l->n_files - 1; f++)
		n_train += l->n[f];
	CHECK(strcmp(d.name, l->spec_name) == 0, "name '%s'", d.name);
	CHECK(strcmp(d.dir, want_dir) == 0, "dir '%s' want '%s'", d.dir, want_dir);
	CHECK(d.train.n == n_train && d.test.n == n_test, "%s counts %d %d want %d %d", l->spec_name,
	      d.train.n, d.test.n, n_train, n_test);
	CHECK(d.shape.c == 3 && d.shape.h == 32 && d.shape.w == 32, "shape %d %d %d", d.shape.c,
	      d.shape.h, d.shape.w);
	CHECK(d.n_classes == l->n_classes, "n_classes %d", d.n_classes);
	if (d.train.n != n_train || d.test.n != n_test) {
		bv_data_release(&d);
		return;
	}

	/* the reference per-channel mean and std of the training pixels, naively */
	double mean[3], sd[3];
	for (int c = 0; c < 3; c++) {
		double sum = 0, ss = 0, cnt = 0;
		for (int f = 0; f < l->n_files - 1; f++)
			for (int r = 0; r < l->n[f]; r++)
				for (int j = c * 1024; j < (c + 1) * 1024; j++) {
					sum += pixel(f, r, j) / 255.0;
					cnt++;
				}
		mean[c] = sum / cnt;
		for (int f = 0; f < l->n_files - 1; f++)
			for (int r = 0; r < l->n[f]; r++)
				for (int j = c * 1024; j < (c + 1) * 1024; j++)
					ss += (pixel(f, r, j) / 255.0 - mean[c]) * (pixel(f, r, j) / 255.0 - mean[c]);
		sd[c] = sqrt(ss / cnt);
		CHECK_NEAR(d.mean[c], mean[c], 1e-6, "stored channel mean");
		CHECK_NEAR(d.std[c], sd[c], 1e-6, "stored channel std");
	}
	CHECK(fabs(mean[0] - mean[1]) > 0.1, "the generator's channels should differ");

	/* values and labels, train in file order then test, with train statistics */
	double maxdiff = 0;
	int lab_ok = 1, row = 0;
	for (int f = 0; f < l->n_files; f++) {
		int test = f == l->n_files - 1;
		const bv_split *sp = test ? &d.test : &d.train;
		if (test)
			row = 0;
		for (int r = 0; r < l->n[f]; r++, row++) {
			lab_ok &= sp->y[row] == label_of(f, r, l->n_classes);
			for (int j = 0; j < PIX; j++) {
				int c = j / 1024;
				double want = (pixel(f, r, j) / 255.0 - mean[c]) / sd[c];
				double diff = fabs(sp->x[(size_t)row * PIX + j] - want);
				maxdiff = diff > maxdiff ? diff : maxdiff;
			}
		}
	}
	CHECK(maxdiff < 1e-5, "%s pixel values: max diff %.3g", l->spec_name, maxdiff);
	CHECK(lab_ok, "%s labels differ", l->spec_name);

	/* normalised training channels: mean 0, std 1 */
	for (int c = 0; c < 3; c++) {
		double zsum = 0, zss = 0, cnt = (double)d.train.n * 1024;
		for (int i = 0; i < d.train.n; i++)
			for (int j = c * 1024; j < (c + 1) * 1024; j++)
				zsum += d.train.x[(size_t)i * PIX + j];
		for (int i = 0; i < d.train.n; i++)
			for (int j = c * 1024; j < (c + 1) * 1024; j++) {
				double z = d.train.x[(size_t)i * PIX + j] - zsum / cnt;
				zss += z * z;
			}
		CHECK_NEAR(zsum / cnt, 0.0, 1e-5, "normalised channel mean");
		CHECK_NEAR(sqrt(zss / cnt), 1.0, 1e-5, "normalised channel std");
	}

	/* the normalised value of a raw 0 pixel */
	float zero[3];
	bv_data_zero_value(zero, &d);
	for (int c = 0; c < 3; c++)
		CHECK_NEAR(zero[c], -mean[c] / sd[c], 1e-5, "zero value");
	printf("  %s: %d+%d records, max pixel diff %.3g, mean %.4f %.4f %.4f std %.4f %.4f %.4f\n",
	       l->spec_name, d.train.n, d.test.n, maxdiff, d.mean[0], d.mean[1], d.mean[2], d.std[0],
	       d.std[1], d.std[2]);
	bv_data_release(&d);
}

static void test_round_trip(void)
{
	char dir[1024], parent[1024], spec[1100];

	/* the files directly in DIR */
	make_dir(dir, sizeof dir, root, "c10_flat");
	layout_write(&c10, dir, -1);
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	check_layout(&c10, spec, dir);
	snprintf(spec, sizeof spec, "cifar10:%s/", dir);
	check_layout(&c10, spec, dir);

	/* DIR is the parent of the tarball's folder */
	make_dir(parent, sizeof parent, root, "c10_parent");
	make_dir(dir, sizeof dir, parent, "cifar-10-batches-bin");
	layout_write(&c10, dir, -1);
	snprintf(spec, sizeof spec, "cifar10:%s", parent);
	check_layout(&c10, spec, dir);
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	check_layout(&c10, spec, dir);

	make_dir(dir, sizeof dir, root, "c100_flat");
	layout_write(&c100, dir, -1);
	snprintf(spec, sizeof spec, "cifar100:%s", dir);
	check_layout(&c100, spec, dir);
	make_dir(parent, sizeof parent, root, "c100_parent");
	make_dir(dir, sizeof dir, parent, "cifar-100-binary");
	layout_write(&c100, dir, -1);
	snprintf(spec, sizeof spec, "cifar100:%s", parent);
	check_layout(&c100, spec, dir);

	/* the sets above hold the top labels, which must be accepted */
	CHECK(label_of(0, 1, 100) == 99 && label_of(3, 0, 10) == 9, "label generator");

	/* truncate keeps the normalisation */
	bv_data d;
	snprintf(spec, sizeof spec, "cifar100:%s", parent);
	if (bv_data_load(&d, spec) == 0) {
		float m0 = d.mean[0], x0 = d.train.x[5];
		bv_data_truncate_train(&d, 2);
		CHECK(d.train.n == 2 && d.mean[0] == m0 && d.train.x[5] == x0, "truncate");
		bv_data_release(&d);
	}
}

/* A copy of the set in root/name with file `f` replaced by (data, n). */
static void with_file(char *dir, size_t cap, const layout *l, const char *name, int f,
		      const void *data, size_t n)
{
	make_dir(dir, cap, root, name);
	layout_write(l, dir, f);
	put_file(dir, l->files[f], data, n);
}

static void test_errors(void)
{
	char dir[1024], spec[1100], path[1100];
	bv_buf b;

	expect_fail("cifar10", BV_EINVAL, "needs a directory: --data cifar10:DIR", "cifar10 without dir");
	expect_fail("cifar100:", BV_EINVAL, "needs a directory: --data cifar100:DIR",
		    "cifar100 with empty dir");
	expect_fail("cifar:/tmp", BV_EINVAL, "cifar10:DIR or cifar100:DIR", "unknown name");
	expect_fail("cifar10x:/tmp", BV_EINVAL, "unknown data 'cifar10x'", "unknown name (prefix)");

	snprintf(spec, sizeof spec, "cifar10:%s/no-such-dir", root);
	snprintf(path, sizeof path, "'%s/no-such-dir' does not exist", root);
	expect_fail(spec, BV_EIO, path, "missing directory");

	/* a missing file: a training batch, then the test batch */
	make_dir(dir, sizeof dir, root, "miss_batch3");
	layout_write(&c10, dir, 2);
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	snprintf(path, sizeof path, "'%s/data_batch_3.bin'", dir);
	expect_fail(spec, BV_EIO, path, "missing data_batch_3.bin");
	make_dir(dir, sizeof dir, root, "miss_test");
	layout_write(&c100, dir, 1);
	snprintf(spec, sizeof spec, "cifar100:%s", dir);
	snprintf(path, sizeof path, "'%s/test.bin'", dir);
	expect_fail(spec, BV_EIO, path, "missing test.bin");
	/* CIFAR-10 files read as CIFAR-100: train.bin is not there */
	make_dir(dir, sizeof dir, root, "c10_as_c100");
	layout_write(&c10, dir, -1);
	snprintf(spec, sizeof spec, "cifar100:%s", dir);
	snprintf(path, sizeof path, "'%s/train.bin'", dir);
	expect_fail(spec, BV_EIO, path, "cifar10 files as cifar100");

	/* a size that is not a whole number of records: one byte too many, too few */
	cifar_build(&b, 1, c10.n[1], 1, 10);
	bv_buf_append(&b, "x", 1);
	with_file(dir, sizeof dir, &c10, "size_long", 1, b.data, b.len);
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	snprintf(path, sizeof path, "'%s/data_batch_2.bin': 12293 bytes is not a whole number of 3073-byte records",
		 dir);
	expect_fail(spec, BV_EFORMAT, path, "size not a multiple (10)");
	with_file(dir, sizeof dir, &c10, "size_short", 5, b.data, 3073 * 2 - 1);
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	snprintf(path, sizeof path, "'%s/test_batch.bin': 6145 bytes is not a whole number of 3073-byte records",
		 dir);
	expect_fail(spec, BV_EFORMAT, path, "short test batch");
	bv_buf_release(&b);
	/* CIFAR-10 records (3073 bytes) where CIFAR-100 records (3074) belong */
	cifar_build(&b, 0, 5, 1, 10);
	with_file(dir, sizeof dir, &c100, "size_c100", 0, b.data, b.len);
	snprintf(spec, sizeof spec, "cifar100:%s", dir);
	snprintf(path, sizeof path, "'%s/train.bin': 15365 bytes is not a whole number of 3074-byte records",
		 dir);
	expect_fail(spec, BV_EFORMAT, path, "size not a multiple (100)");
	bv_buf_release(&b);

	/* a wrong record count: an empty file, and one more record than the standard file */
	with_file(dir, sizeof dir, &c10, "empty", 3, "", 0);
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	snprintf(path, sizeof path, "'%s/data_batch_4.bin': empty file", dir);
	expect_fail(spec, BV_EFORMAT, path, "empty batch");
	{
		size_t rec = 3073, n = 10001;
		unsigned char *big = calloc(n, rec);
		with_file(dir, sizeof dir, &c10, "too_many", 5, big, n * rec);
		free(big);
		snprintf(spec, sizeof spec, "cifar10:%s", dir);
		snprintf(path, sizeof path, "'%s/test_batch.bin': 10001 records (expected at most 10000)", dir);
		expect_fail(spec, BV_EFORMAT, path, "10001 test records");
	}

	/* labels out of range: CIFAR-10 label 10; CIFAR-100 fine 100; coarse 20 */
	cifar_build(&b, 3, c10.n[3], 1, 10);
	b.data[2 * 3073] = 10;
	with_file(dir, sizeof dir, &c10, "bad_label10", 3, b.data, b.len);
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	snprintf(path, sizeof path, "'%s/data_batch_4.bin': record 2 has label 10 (expected 0 to 9)", dir);
	expect_fail(spec, BV_EFORMAT, path, "cifar10 label 10");
	b.data[2 * 3073] = 255;
	with_file(dir, sizeof dir, &c10, "bad_label255", 3, b.data, b.len);
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	snprintf(path, sizeof path, "'%s/data_batch_4.bin': record 2 has label 255 (expected 0 to 9)", dir);
	expect_fail(spec, BV_EFORMAT, path, "cifar10 label 255");
	bv_buf_release(&b);
	cifar_build(&b, 1, c100.n[1], 2, 100);
	b.data[1 * 3074 + 1] = 100;
	with_file(dir, sizeof dir, &c100, "bad_fine", 1, b.data, b.len);
	snprintf(spec, sizeof spec, "cifar100:%s", dir);
	snprintf(path, sizeof path, "'%s/test.bin': record 1 has label 100 (expected 0 to 99)", dir);
	expect_fail(spec, BV_EFORMAT, path, "cifar100 fine label 100");
	bv_buf_release(&b);
	cifar_build(&b, 0, c100.n[0], 2, 100);
	b.data[4 * 3074] = 20;
	with_file(dir, sizeof dir, &c100, "bad_coarse", 0, b.data, b.len);
	snprintf(spec, sizeof spec, "cifar100:%s", dir);
	snprintf(path, sizeof path, "'%s/train.bin': record 4 has coarse label 20 (expected 0 to 19)", dir);
	expect_fail(spec, BV_EFORMAT, path, "cifar100 coarse label 20");
	bv_buf_release(&b);
}

/* ---- augmentation --------------------------------------------------------- */

/* A scripted generator: returns the queued values in order, so a test chooses
 * each draw. gsl_rng_uniform_int(r, n) returns v / (range / n), so the value
 * k * (range / n) draws k. */
typedef struct script {
	unsigned long v[256];
	int n, pos;
} script;

static void script_set(void *state, unsigned long seed)
{
	(void)seed;
	memset(state, 0, sizeof(script));
}

static unsigned long script_get(void *state)
{
	script *s = state;
	return s->pos < s->n ? s->v[s->pos++] : 0;
}

static double script_get_double(void *state)
{
	return (double)script_get(state) / 4294967296.0;
}

static const gsl_rng_type script_type = {"script", 0xffffffffUL, 0, sizeof(script), script_set,
					 script_get, script_get_double};

/* Queue a draw of k from gsl_rng_uniform_int(r, n). */
static void script_push(gsl_rng *r, unsigned long k, unsigned long n)
{
	script *s = gsl_rng_state(r);
	if (s->n < (int)BV_ARRAY_LEN(s->v))
		s->v[s->n++] = k * (0xffffffffUL / n);
}

/* Queue one sample's draws, in the documented order: oy, ox, flip. */
static void script_sample(gsl_rng *r, int pad, int oy, int ox, int flip)
{
	script_push(r, (unsigned long)oy, (unsigned long)(2 * pad + 1));
	script_push(r, (unsigned long)ox, (unsigned long)(2 * pad + 1));
	script_push(r, (unsigned long)flip, 2);
}

static int script_used(gsl_rng *r)
{
	script *s = gsl_rng_state(r);
	return s->pos;
}

/* The naive definition: out[c][i][j] = padded[c][oy + i][ox + (flip ? W-1-j : j)]. */
static float ref_pixel(const float *in, bv_shape s, int pad, const float *pv, int c, int i, int j,
		       int oy, int ox, int flip)
{
	int sy = oy + i - pad, sx = ox + (flip ? s.w - 1 - j : j) - pad;
	if (sy < 0 || sy >= s.h || sx < 0 || sx >= s.w)
		return pv ? pv[c] : 0.0f;
	return in[((size_t)c * s.h + sy) * s.w + sx];
}

static void fill_ramp(float *x, size_t n, float base)
{
	for (size_t i = 0; i < n; i++)
		x[i] = base + (float)i * 0.25f;
}

static void test_augment_constructed(void)
{
	const bv_shape s = {3, 5, 7}; /* non-square, so a transpose would show */
	const size_t d = bv_shape_size(s);
	float in[3 * 5 * 7 * 2], out[3 * 5 * 7 * 2];
	gsl_rng *r = gsl_rng_alloc(&script_type);

	/* pad 0, no flip: the identity (and pad 0 still takes three draws a sample) */
	fill_ramp(in, 2 * d, 1.0f);
	script_sample(r, 0, 0, 0, 0);
	script_sample(r, 0, 0, 0, 0);
	memset(out, 0, sizeof out);
	bv_augment_crop_flip(out, in, 2, s, 0, NULL, r);
	CHECK(memcmp(out, in, 2 * d * sizeof *in) == 0, "pad 0, no flip is not the identity");
	CHECK(script_used(r) == 6, "pad 0: %d draws for 2 samples, want 6", script_used(r));

	/* flip only: every row mirrored, channels and rows in place */
	gsl_rng_set(r, 0);
	script_sample(r, 0, 0, 0, 1);
	bv_augment_crop_flip(out, in, 1, s, 0, NULL, r);
	int ok = 1;
	for (int c = 0; c < s.c; c++)
		for (int i = 0; i < s.h; i++)
			for (int j = 0; j < s.w; j++)
				ok &= out[((size_t)c * s.h + i) * s.w + j] ==
				      in[((size_t)c * s.h + i) * s.w + (s.w - 1 - j)];
	CHECK(ok, "flip: rows not mirrored");
	/* centred crop (oy = ox = pad) with pad 3 and flip: the same mirror */
	gsl_rng_set(r, 0);
	script_sample(r, 3, 3, 3, 1);
	float out2[3 * 5 * 7];
	bv_augment_crop_flip(out2, in, 1, s, 3, NULL, r);
	CHECK(memcmp(out2, out, d * sizeof *out) == 0, "centred crop + flip differs from the mirror");

	/* a single bright pixel at (c 1, y 2, x 5) moves by (pad - oy, pad - ox) */
	const int py = 2, px = 5, pad = 4;
	struct {
		int oy, ox, flip;
	} cases[] = {{4, 4, 0}, {0, 0, 0}, {8, 8, 0}, {1, 6, 0}, {6, 1, 0}, {1, 6, 1}, {3, 7, 1}, {4, 8, 0}};
	for (size_t k = 0; k < BV_ARRAY_LEN(cases); k++) {
		memset(in, 0, d * sizeof *in);
		in[((size_t)1 * s.h + py) * s.w + px] = 1.0f;
		gsl_rng_set(r, 0);
		script_sample(r, pad, cases[k].oy, cases[k].ox, cases[k].flip);
		bv_augment_crop_flip(out, in, 1, s, pad, NULL, r);
		int wi = py + pad - cases[k].oy, wj = px + pad - cases[k].ox;
		if (cases[k].flip)
			wj = s.w - 1 - wj;
		int inside = wi >= 0 && wi < s.h && wj >= 0 && wj < s.w;
		int n_bright = 0, at = -1;
		for (size_t i = 0; i < d; i++)
			if (out[i] != 0.0f) {
				n_bright++;
				at = (int)i;
			}
		int want = inside ? (1 * s.h + wi) * s.w + wj : -1;
		CHECK(n_bright == (inside ? 1 : 0) && at == want,
		      "bright pixel, offsets (%d, %d) flip %d: %d bright, at %d, want at %d", cases[k].oy,
		      cases[k].ox, cases[k].flip, n_bright, at, want);
	}

	/* the padding value, per channel; NULL pads with 0 */
	const float pv[3] = {-1.5f, 2.25f, -0.75f};
	fill_ramp(in, d, 10.0f);
	for (int use = 0; use < 2; use++) {
		gsl_rng_set(r, 0);
		script_sample(r, 2, 0, 4, 0); /* shifted down 2, left 2 */
		bv_augment_crop_flip(out, in, 1, s, 2, use ? pv : NULL, r);
		int pad_ok = 1, img_ok = 1;
		for (int c = 0; c < s.c; c++)
			for (int i = 0; i < s.h; i++)
				for (int j = 0; j < s.w; j++) {
					float v = out[((size_t)c * s.h + i) * s.w + j];
					if (i < 2 || j >= s.w - 2)
						pad_ok &= v == (use ? pv[c] : 0.0f);
					else
						img_ok &= v == in[((size_t)c * s.h + i - 2) * s.w + j + 2];
				}
		CHECK(pad_ok, "padding value (%s) not used", use ? "per channel" : "NULL");
		CHECK(img_ok, "image part of the shifted crop differs");
	}
	/* offsets beyond the image: the whole crop is padding */
	{
		const bv_shape t = {2, 3, 3};
		float a[18], o[18];
		fill_ramp(a, 18, 1.0f);
		gsl_rng_set(r, 0);
		script_sample(r, 4, 0, 8, 1);
		bv_augment_crop_flip(o, a, 1, t, 4, pv, r);
		int all_pad = 1;
		for (int i = 0; i < 18; i++)
			all_pad &= o[i] == pv[i / 9];
		CHECK(all_pad, "crop outside the image is not all padding");
	}
	gsl_rng_free(r);
}

/* The function against the naive definition, with draws taken from a clone
 * of the generator in the documented order; seeds; and the draw statistics
 * recovered from the output alone. */
static void test_augment_random(void)
{
	const bv_shape s = {2, 8, 8};
	const int pad = 4, n = 4000;
	const size_t d = bv_shape_size(s);
	const float pv[2] = {-7.0f, -9.0f};
	float *in = malloc((size_t)n * d * sizeof *in), *out = malloc((size_t)n * d * sizeof *out);
	float *out2 = malloc((size_t)n * d * sizeof *out2);

	/* every pixel a distinct positive value: index + 1 */
	for (size_t i = 0; i < (size_t)n * d; i++)
		in[i] = (float)(i % d + 1);

	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(r, 42);
	gsl_rng *ref = gsl_rng_clone(r);
	bv_augment_crop_flip(out, in, n, s, pad, pv, r);
	double maxdiff = 0;
	for (int k = 0; k < n; k++) {
		int oy = (int)gsl_rng_uniform_int(ref, 2 * pad + 1);
		int ox = (int)gsl_rng_uniform_int(ref, 2 * pad + 1);
		int flip = (int)gsl_rng_uniform_int(ref, 2);
		for (int c = 0; c < s.c; c++)
			for (int i = 0; i < s.h; i++)
				for (int j = 0; j < s.w; j++) {
					float want = ref_pixel(in + (size_t)k * d, s, pad, pv, c, i, j, oy, ox, flip);
					double diff = fabs(out[(size_t)k * d + ((size_t)c * s.h + i) * s.w + j] - want);
					maxdiff = diff > maxdiff ? diff : maxdiff;
				}
	}
	CHECK(maxdiff == 0, "against the naive reference: max diff %.3g", maxdiff);
	CHECK(gsl_rng_get(r) == gsl_rng_get(ref), "the function took a different number of draws");
	gsl_rng_free(ref);

	/* same seed: identical; another seed: different */
	gsl_rng_set(r, 42);
	bv_augment_crop_flip(out2, in, n, s, pad, pv, r);
	CHECK(memcmp(out, out2, (size_t)n * d * sizeof *out) == 0, "seed 42 twice gives different output");
	gsl_rng_set(r, 43);
	bv_augment_crop_flip(out2, in, n, s, pad, pv, r);
	CHECK(memcmp(out, out2, (size_t)n * d * sizeof *out) != 0, "seeds 42 and 43 give the same output");

	/* recover each sample's offsets and flip from the output: an 8x8 window
	 * offset by at most 4 always overlaps the image by 4x4 or more */
	int hist_y[9] = {0}, hist_x[9] = {0}, flips = 0, recovered = 0;
	for (int k = 0; k < n; k++) {
		const float *o = out + (size_t)k * d; /* channel 0 */
		int found = 0;
		for (int i = 0; i < s.h && !found; i++)
			for (int j = 0; j + 1 < s.w && !found; j++) {
				float a = o[i * s.w + j], b = o[i * s.w + j + 1];
				if (a <= 0 || b <= 0)
					continue;
				int src = (int)a - 1, sy = src / s.w, sx = src % s.w;
				int flip = b < a;
				int oy = sy + pad - i, ox = sx + pad - (flip ? s.w - 1 - j : j);
				if (oy >= 0 && oy <= 2 * pad && ox >= 0 && ox <= 2 * pad) {
					hist_y[oy]++;
					hist_x[ox]++;
					flips += flip;
					recovered++;
				}
				found = 1;
			}
	}
	CHECK(recovered == n, "offsets recovered for %d of %d samples", recovered, n);
	int covered = 1;
	for (int v = 0; v <= 2 * pad; v++) {
		covered &= hist_y[v] > 0 && hist_x[v] > 0;
		/* uniform over 9 values: 444 each, sd about 20 */
		CHECK(fabs(hist_y[v] - n / 9.0) < 120 && fabs(hist_x[v] - n / 9.0) < 120,
		      "offset %d drawn %d (y) %d (x) times of %d", v, hist_y[v], hist_x[v], n);
	}
	CHECK(covered, "offsets do not cover [0, %d]", 2 * pad);
	CHECK_NEAR((double)flips / n, 0.5, 0.04, "share flipped");
	printf("  %d samples: offsets y %d..%d per value, flipped %.3f\n", n, hist_y[0], hist_y[8],
	       (double)flips / n);

	gsl_rng_free(r);
	free(in);
	free(out);
	free(out2);
}

static void test_augment_parse(void)
{
	int a = -1;
	CHECK(bv_augment_parse(&a, "none", "--augment") == 0 && a == BV_AUG_NONE, "parse none");
	CHECK(bv_augment_parse(&a, "crop-flip", "--augment") == 0 && a == BV_AUG_CROP_FLIP,
	      "parse crop-flip");
	CHECK_ERR(bv_augment_parse(&a, "flip", "--augment"), BV_EINVAL);
	CHECK(strcmp(bv_error_last(), "--augment: unknown augmentation 'flip' (expected none or crop-flip)") == 0,
	      "message: %s", bv_error_last());
	CHECK_ERR(bv_augment_parse(&a, "", "--augment"), BV_EINVAL);
	CHECK(strcmp(bv_augment_name(BV_AUG_NONE), "none") == 0 &&
	      strcmp(bv_augment_name(BV_AUG_CROP_FLIP), "crop-flip") == 0 &&
	      strcmp(bv_augment_name(7), "?") == 0, "names");
}

/* The real CIFAR-10, when BV_CIFAR10_DIR names it. */
static void test_real_cifar10(void)
{
	const char *dir = getenv("BV_CIFAR10_DIR");
	char spec[1100];
	if (!dir || !*dir) {
		printf("skipped: BV_CIFAR10_DIR not set\n");
		return;
	}
	snprintf(spec, sizeof spec, "cifar10:%s", dir);
	bv_data d;
	double t0 = bv_now();
	int rc = bv_data_load(&d, spec);
	CHECK(rc == 0, "%s: %s", spec, bv_error_last());
	if (rc)
		return;
	printf("  cifar10 loaded in %.3f s\n", bv_now() - t0);
	CHECK(d.train.n == 50000 && d.test.n == 10000, "counts %d %d", d.train.n, d.test.n);
	/* the well-known CIFAR-10 channel statistics */
	const double mean[3] = {0.4914, 0.4822, 0.4465}, sd[3] = {0.2470, 0.2435, 0.2616};
	for (int c = 0; c < 3; c++) {
		CHECK_NEAR(d.mean[c], mean[c], 5e-4, "cifar10 channel mean");
		CHECK_NEAR(d.std[c], sd[c], 5e-4, "cifar10 channel std");
	}
	bv_data_release(&d);
}

int main(void)
{
	if (bv_check_tmpdir(root, sizeof root, "test_cifar") != 0)
		return 1;

	printf("round trip\n");
	test_round_trip();
	printf("errors\n");
	test_errors();
	printf("augmentation\n");
	test_augment_constructed();
	test_augment_random();
	test_augment_parse();
	printf("cifar10\n");
	test_real_cifar10();

	/* files first, then directories, deepest last made first */
	for (int i = n_written - 1; i >= 0; i--)
		remove(written[i]);
	rmdir(root);
	return bv_check_done();
}
