/*
 * Tests for train/data.c and train/bootstrap.c: IDX files written here (raw and
 * gzip, into a fresh directory under $BV_TMP) are loaded back and checked value
 * by value; every kind of bad input must fail with the right code and a message
 * naming the file; bootstrap draws are checked for determinism and the 63.2%
 * in-bag share. The real Fashion-MNIST, when installed, is loaded as well.
 */
#include "base.h"
#include "check.h"
#include "train.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char root[768];
static char written[256][1024]; /* files and directories to remove at the end */
static int n_written;

static void remember(const char *path)
{
	if (n_written < (int)BV_ARRAY_LEN(written))
		snprintf(written[n_written++], sizeof written[0], "%s", path);
}

static void be32_put(bv_buf *b, uint32_t v)
{
	unsigned char x[4] = {v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff};
	bv_buf_append(b, x, 4);
}

/* An IDX file: magic 0x0000 08 ndims, big-endian dims, payload. */
static void idx_build(bv_buf *b, int ndims, const int *dims, const unsigned char *payload, size_t n)
{
	bv_buf_init(b);
	be32_put(b, 0x800u | (unsigned)ndims);
	for (int i = 0; i < ndims; i++)
		be32_put(b, (uint32_t)dims[i]);
	bv_buf_append(b, payload, n);
}

static void gz_encode(bv_buf *out, const unsigned char *data, size_t n)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	bv_buf_init(out);
	if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return;
	size_t cap = deflateBound(&zs, (uLong)n) + 64;
	out->data = malloc(cap);
	out->cap = cap;
	zs.next_in = (unsigned char *)data;
	zs.avail_in = (uInt)n;
	zs.next_out = out->data;
	zs.avail_out = (uInt)cap;
	deflate(&zs, Z_FINISH);
	out->len = cap - zs.avail_out;
	deflateEnd(&zs);
}

static void put_file(const char *dir, const char *name, const void *data, size_t n)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	CHECK(bv_write_file_atomic(path, data, n) == 0, "write '%s': %s", path, bv_error_last());
	remember(path);
}

/* A fresh directory root/name. */
static void make_dir(char *dir, size_t cap, const char *name)
{
	snprintf(dir, cap, "%s/%s", root, name);
	CHECK(mkdir(dir, 0755) == 0, "mkdir '%s'", dir);
	remember(dir);
}

/* Deterministic, poorly compressible pixels and labels i % 10. */
static unsigned char pixel(int split, size_t i)
{
	uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(split * 97);
	h ^= h >> 13;
	h *= 0x5bd1e995u;
	h ^= h >> 15;
	return (unsigned char)h;
}

enum { F_TRAIN_IMG, F_TRAIN_LAB, F_TEST_IMG, F_TEST_LAB };
static const char *const file_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
					  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

typedef struct set {
	int n[2], rows, cols;
	bv_buf f[4]; /* the four files, raw IDX bytes */
} set;

static void set_build(set *s, int n_train, int n_test, int rows, int cols)
{
	memset(s, 0, sizeof *s);
	s->n[0] = n_train;
	s->n[1] = n_test;
	s->rows = rows;
	s->cols = cols;
	for (int sp = 0; sp < 2; sp++) {
		size_t np = (size_t)s->n[sp] * (size_t)(rows * cols);
		unsigned char *pix = malloc(np), *lab = malloc((size_t)s->n[sp]);
		for (size_t i = 0; i < np; i++)
			pix[i] = pixel(sp, i);
		for (int i = 0; i < s->n[sp]; i++)
			lab[i] = (unsigned char)(i % 10);
		int idims[3] = {s->n[sp], rows, cols}, ldims[1] = {s->n[sp]};
		idx_build(&s->f[2 * sp], 3, idims, pix, np);
		idx_build(&s->f[2 * sp + 1], 1, ldims, lab, (size_t)s->n[sp]);
		free(pix);
		free(lab);
	}
}

/* Write the set into root/name: file i gzipped when bit i of gz_mask is set. */
static void set_write(const set *s, char *dir, size_t cap, const char *name, unsigned gz_mask)
{
	char fname[128];
	make_dir(dir, cap, name);
	for (int i = 0; i < 4; i++) {
		if (gz_mask & (1u << i)) {
			bv_buf z;
			gz_encode(&z, s->f[i].data, s->f[i].len);
			snprintf(fname, sizeof fname, "%s.gz", file_names[i]);
			put_file(dir, fname, z.data, z.len);
			bv_buf_release(&z);
		} else {
			put_file(dir, file_names[i], s->f[i].data, s->f[i].len);
		}
	}
}

static void set_release(set *s)
{
	for (int i = 0; i < 4; i++)
		bv_buf_release(&s->f[i]);
}

/* Expect bv_data_load(spec) to fail with `code` and a message holding `needle`. */
static void expect_fail(const char *spec, int code, const char *needle, const char *what)
{
	bv_data d;
	bv_error_clear();
	int rc = bv_data_load(&d, spec);
	CHECK(rc == code, "%s: got rc %d want %d (%s)", what, rc, code, bv_error_last());
	CHECK(strstr(bv_error_last(), needle) != NULL, "%s: message '%s' does not name '%s'", what,
	      bv_error_last(), needle);
	CHECK(d.train.x == NULL && d.test.x == NULL && d.train.n == 0, "%s: data left behind", what);
	printf("  %-28s -> %s\n", what, bv_error_last());
}

static void test_round_trip(void)
{
	set s;
	char dir[1024], spec[1100];
	set_build(&s, 50, 20, 5, 7);
	/* images gzipped, labels raw: each file on its own */
	const unsigned masks[2] = {0x0, 0x5};
	for (int m = 0; m < 2; m++) {
		set_write(&s, dir, sizeof dir, m ? "ok_gz" : "ok_raw", masks[m]);
		snprintf(spec, sizeof spec, "%s:%s", m ? "mnist" : "idx", dir);
		bv_data d;
		int rc = bv_data_load(&d, spec);
		CHECK(rc == 0, "load '%s': %s", spec, bv_error_last());
		if (rc)
			continue;
		CHECK(d.train.n == 50 && d.test.n == 20, "counts %d %d", d.train.n, d.test.n);
		CHECK(d.shape.c == 1 && d.shape.h == 5 && d.shape.w == 7, "shape %d %d %d", d.shape.c,
		      d.shape.h, d.shape.w);
		CHECK(d.n_classes == 10, "n_classes %d", d.n_classes);
		CHECK(strcmp(d.name, m ? "mnist" : "idx") == 0, "name '%s'", d.name);
		CHECK(strcmp(d.dir, dir) == 0, "dir '%s'", d.dir);

		/* the reference mean and std of the training pixels, computed naively */
		size_t np = 50 * 35;
		double sum = 0, ss = 0;
		for (size_t i = 0; i < np; i++)
			sum += pixel(0, i) / 255.0;
		double mean = sum / (double)np;
		for (size_t i = 0; i < np; i++)
			ss += (pixel(0, i) / 255.0 - mean) * (pixel(0, i) / 255.0 - mean);
		double sd = sqrt(ss / (double)np);
		CHECK_NEAR(d.mean[0], mean, 1e-6, "stored mean");
		CHECK_NEAR(d.std[0], sd, 1e-6, "stored std");

		double maxdiff = 0, zsum = 0, zss = 0;
		for (size_t i = 0; i < np; i++) {
			double want = (pixel(0, i) / 255.0 - mean) / sd;
			double diff = fabs(d.train.x[i] - want);
			maxdiff = diff > maxdiff ? diff : maxdiff;
			zsum += d.train.x[i];
		}
		for (size_t i = 0; i < np; i++)
			zss += ((double)d.train.x[i] - zsum / np) * ((double)d.train.x[i] - zsum / np);
		/* the test split uses the training statistics */
		for (size_t i = 0; i < 20 * 35; i++) {
			double want = (pixel(1, i) / 255.0 - mean) / sd;
			double diff = fabs(d.test.x[i] - want);
			maxdiff = diff > maxdiff ? diff : maxdiff;
		}
		CHECK(maxdiff < 1e-5, "pixel values: max diff %.3g", maxdiff);
		CHECK_NEAR(zsum / np, 0.0, 1e-5, "normalised train mean");
		CHECK_NEAR(sqrt(zss / np), 1.0, 1e-5, "normalised train std");
		int lab_ok = 1;
		for (int i = 0; i < 50; i++)
			lab_ok &= d.train.y[i] == i % 10;
		for (int i = 0; i < 20; i++)
			lab_ok &= d.test.y[i] == i % 10;
		CHECK(lab_ok, "labels differ");
		printf("  %s: max pixel diff %.3g, mean %.4f std %.4f\n", m ? "gzip" : "raw", maxdiff,
		       d.mean[0], d.std[0]);

		float first = d.train.x[0], mean0 = d.mean[0];
		bv_data_truncate_train(&d, 10);
		CHECK(d.train.n == 10 && d.test.n == 20, "truncate: %d %d", d.train.n, d.test.n);
		CHECK(d.train.x[0] == first && d.mean[0] == mean0, "truncate changed values");
		bv_data_release(&d);
		CHECK(d.train.x == NULL && d.train.n == 0 && d.name[0] == '\0', "release left data");
		bv_data_release(&d); /* twice: on a zeroed struct */
	}

	/* a trailing slash on the directory is the same directory */
	snprintf(spec, sizeof spec, "idx:%s/", dir);
	bv_data d;
	CHECK(bv_data_load(&d, spec) == 0 && strcmp(d.dir, dir) == 0, "trailing slash: %s",
	      bv_error_last());
	bv_data_release(&d);

	/* .gz is preferred when both exist */
	set_write(&s, dir, sizeof dir, "both", 0x0);
	{
		set s2;
		set_build(&s2, 30, 20, 5, 7);
		bv_buf z;
		gz_encode(&z, s2.f[F_TRAIN_IMG].data, s2.f[F_TRAIN_IMG].len);
		put_file(dir, "train-images-idx3-ubyte.gz", z.data, z.len);
		bv_buf_release(&z);
		gz_encode(&z, s2.f[F_TRAIN_LAB].data, s2.f[F_TRAIN_LAB].len);
		put_file(dir, "train-labels-idx1-ubyte.gz", z.data, z.len);
		bv_buf_release(&z);
		set_release(&s2);
	}
	snprintf(spec, sizeof spec, "idx:%s", dir);
	CHECK(bv_data_load(&d, spec) == 0 && d.train.n == 30, "gz preferred: n %d (%s)", d.train.n,
	      bv_error_last());
	bv_data_release(&d);
	set_release(&s);
}

static void test_idx_read(void)
{
	char dir[1024], path[1100];
	unsigned char pay[24], *out = NULL;
	int dims[4] = {-1, -1, -1, -1}, ndims = 0;
	for (int i = 0; i < 24; i++)
		pay[i] = (unsigned char)(i * 10);
	int d3[3] = {2, 3, 4};
	bv_buf b, z;
	idx_build(&b, 3, d3, pay, 24);
	gz_encode(&z, b.data, b.len);
	make_dir(dir, sizeof dir, "idx");
	/* gzip told by content: a gzip file without the .gz name, raw with it */
	put_file(dir, "gz-no-suffix", z.data, z.len);
	put_file(dir, "raw.gz", b.data, b.len);
	const char *names[2] = {"gz-no-suffix", "raw.gz"};
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[k]);
		int rc = bv_idx_read(&out, &ndims, dims, path);
		CHECK(rc == 0, "idx_read '%s': %s", path, bv_error_last());
		CHECK(ndims == 3 && dims[0] == 2 && dims[1] == 3 && dims[2] == 4 && dims[3] == 0,
		      "dims %d: %d %d %d %d", ndims, dims[0], dims[1], dims[2], dims[3]);
		CHECK(out && memcmp(out, pay, 24) == 0, "payload differs");
		free(out);
		out = NULL;
	}
	/* a multi-member gzip (two gzip files concatenated) reads as one */
	bv_buf cat, z1, z2;
	bv_buf_init(&cat);
	gz_encode(&z1, b.data, 20);
	gz_encode(&z2, b.data + 20, b.len - 20);
	bv_buf_append(&cat, z1.data, z1.len);
	bv_buf_append(&cat, z2.data, z2.len);
	put_file(dir, "multi.gz", cat.data, cat.len);
	snprintf(path, sizeof path, "%s/multi.gz", dir);
	CHECK(bv_idx_read(&out, &ndims, dims, path) == 0 && out && memcmp(out, pay, 24) == 0,
	      "multi-member gzip: %s", bv_error_last());
	free(out);
	out = NULL;
	/* a header that promises far more than the file holds allocates nothing big */
	int huge[3] = {2000000000, 1000, 1000};
	bv_buf h;
	idx_build(&h, 3, huge, pay, 24);
	put_file(dir, "huge", h.data, h.len);
	snprintf(path, sizeof path, "%s/huge", dir);
	CHECK_ERR(bv_idx_read(&out, &ndims, dims, path), BV_EFORMAT);
	CHECK(out == NULL && strstr(bv_error_last(), path), "huge: %s", bv_error_last());
	printf("  %-28s -> %s\n", "huge header", bv_error_last());
	bv_buf_release(&h);

	/* a gzip bomb: a header for 2x3x4 bytes, then 64 MiB of zeros in ~64 kB.
	 * Inflating stops one byte past the promise: the trailer's CRC is broken,
	 * so a reader that inflated the rest would report that instead. */
	{
		size_t big = 64u << 20;
		unsigned char *zeros = calloc(1, big);
		bv_buf bomb, zb;
		idx_build(&bomb, 3, d3, zeros, big);
		gz_encode(&zb, bomb.data, bomb.len);
		zb.data[zb.len - 8] ^= 0x01;
		put_file(dir, "bomb.gz", zb.data, zb.len);
		snprintf(path, sizeof path, "%s/bomb.gz", dir);
		CHECK_ERR(bv_idx_read(&out, &ndims, dims, path), BV_EFORMAT);
		char want[1200];
		snprintf(want, sizeof want, "cannot read '%s': more data than its header promises (24 bytes)", path);
		CHECK(out == NULL && strcmp(bv_error_last(), want) == 0, "bomb: %s", bv_error_last());
		printf("  %-28s -> %s (%zu-byte file)\n", "gzip bomb", bv_error_last(), zb.len);
		/* raw: the same message */
		put_file(dir, "raw-long", bomb.data, 16 + 24 + 1);
		snprintf(path, sizeof path, "%s/raw-long", dir);
		CHECK_ERR(bv_idx_read(&out, &ndims, dims, path), BV_EFORMAT);
		snprintf(want, sizeof want, "cannot read '%s': more data than its header promises (24 bytes)", path);
		CHECK(out == NULL && strcmp(bv_error_last(), want) == 0, "raw long: %s", bv_error_last());
		bv_buf_release(&zb);
		bv_buf_release(&bomb);
		free(zeros);
	}
	/* absurd dims: refused from the header alone, without inflating the data
	 * (whose CRC is broken again): a product that overflows 64 bits, one over
	 * the limit, a dim over INT_MAX */
	{
		const int over[3][3] = {{2000000000, 2000000000, 2000000000}, {60000, 65536, 65536}, {1, 1, 1}};
		const char *const needle[3] = {"header promises", "header promises", "dimension 2 is"};
		for (int k = 0; k < 3; k++) {
			bv_buf a, za;
			idx_build(&a, 3, over[k], pay, 24);
			if (k == 2) /* dimension 2 = 0x80000000 */
				memcpy(a.data + 8, "\x80\0\0\0", 4);
			size_t n_zero = 32u << 20;
			unsigned char *zeros = calloc(1, n_zero);
			bv_buf_append(&a, zeros, n_zero);
			free(zeros);
			gz_encode(&za, a.data, a.len);
			za.data[za.len - 8] ^= 0x01;
			char name[32];
			snprintf(name, sizeof name, "absurd%d.gz", k);
			put_file(dir, name, za.data, za.len);
			snprintf(path, sizeof path, "%s/%s", dir, name);
			CHECK_ERR(bv_idx_read(&out, &ndims, dims, path), BV_EFORMAT);
			CHECK(out == NULL && strstr(bv_error_last(), path) && strstr(bv_error_last(), needle[k]),
			      "absurd %d: %s", k, bv_error_last());
			printf("  %-28s -> %s\n", "absurd dims", bv_error_last());
			bv_buf_release(&a);
			bv_buf_release(&za);
		}
	}
	bv_buf_release(&cat);
	bv_buf_release(&z1);
	bv_buf_release(&z2);
	bv_buf_release(&b);
	bv_buf_release(&z);
}

static void test_errors(void)
{
	set s;
	char dir[1024], spec[1100], path[1100];
	set_build(&s, 200, 20, 8, 8);

	expect_fail("mnist", BV_EINVAL, "needs a directory: --data mnist:DIR", "mnist without dir");
	expect_fail("idx:", BV_EINVAL, "needs a directory", "idx with empty dir");
	expect_fail("svhn:/tmp", BV_EINVAL, "fashion-mnist", "unknown name");
	expect_fail("", BV_EINVAL, "unknown data", "empty spec");

	snprintf(spec, sizeof spec, "idx:%s/no-such-dir", root);
	snprintf(path, sizeof path, "%s/no-such-dir", root);
	expect_fail(spec, BV_EIO, path, "missing directory");
	CHECK(strstr(bv_error_last(), "does not exist") != NULL, "missing dir: %s", bv_error_last());

	/* missing file: every file but the test labels */
	make_dir(dir, sizeof dir, "missing_file");
	for (int i = 0; i < 3; i++)
		put_file(dir, file_names[i], s.f[i].data, s.f[i].len);
	snprintf(spec, sizeof spec, "idx:%s", dir);
	snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
	expect_fail(spec, BV_EIO, path, "missing file");

	/* truncated gzip, cut at several places: inside the gzip header, the
	 * deflate data, and the CRC/length trailer */
	{
		bv_buf z;
		gz_encode(&z, s.f[F_TRAIN_IMG].data, s.f[F_TRAIN_IMG].len);
		const size_t cuts[5] = {5, z.len / 2, z.len - 9, z.len - 4, z.len - 1};
		for (int k = 0; k < 5; k++) {
			char name[64];
			snprintf(name, sizeof name, "trunc_gz_%d", k);
			set_write(&s, dir, sizeof dir, name, 0x0);
			put_file(dir, "train-images-idx3-ubyte.gz", z.data, cuts[k]);
			snprintf(spec, sizeof spec, "idx:%s", dir);
			snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
			expect_fail(spec, BV_EFORMAT, path, "truncated gzip");
			CHECK(strstr(bv_error_last(), "truncated gzip stream") != NULL, "cut at %zu of %zu: %s",
			      cuts[k], z.len, bv_error_last());
		}

		/* corrupt gzip: bytes flipped in the middle */
		bv_buf bad;
		bv_buf_init(&bad);
		bv_buf_append(&bad, z.data, z.len);
		for (size_t i = bad.len / 2; i < bad.len / 2 + 4; i++)
			bad.data[i] ^= 0x5a;
		set_write(&s, dir, sizeof dir, "corrupt_gz", 0x0);
		put_file(dir, "train-images-idx3-ubyte.gz", bad.data, bad.len);
		snprintf(spec, sizeof spec, "idx:%s", dir);
		snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
		expect_fail(spec, BV_EFORMAT, path, "corrupt gzip");
		/* a flipped CRC alone: the data inflates, the check must still fail */
		bv_buf_release(&bad);
		bv_buf_init(&bad);
		bv_buf_append(&bad, z.data, z.len);
		bad.data[bad.len - 6] ^= 0x01;
		set_write(&s, dir, sizeof dir, "bad_crc_gz", 0x0);
		put_file(dir, "train-images-idx3-ubyte.gz", bad.data, bad.len);
		snprintf(spec, sizeof spec, "idx:%s", dir);
		snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
		expect_fail(spec, BV_EFORMAT, path, "bad gzip crc");
		bv_buf_release(&bad);
		bv_buf_release(&z);
	}

	/* wrong magic */
	{
		bv_buf b;
		bv_buf_init(&b);
		bv_buf_append(&b, s.f[F_TEST_IMG].data, s.f[F_TEST_IMG].len);
		memset(b.data, 0, 4);
		set_write(&s, dir, sizeof dir, "bad_magic", 0x0);
		put_file(dir, file_names[F_TEST_IMG], b.data, b.len);
		snprintf(spec, sizeof spec, "idx:%s", dir);
		snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
		expect_fail(spec, BV_EFORMAT, path, "wrong magic");
		CHECK(strstr(bv_error_last(), "bad magic 0x00000000") != NULL, "magic: %s", bv_error_last());
		bv_buf_release(&b);
	}

	/* images and labels swapped: valid IDX files, wrong number of dims */
	set_write(&s, dir, sizeof dir, "swapped", 0x0);
	put_file(dir, file_names[F_TRAIN_IMG], s.f[F_TRAIN_LAB].data, s.f[F_TRAIN_LAB].len);
	snprintf(spec, sizeof spec, "idx:%s", dir);
	snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
	expect_fail(spec, BV_EFORMAT, path, "labels as images");
	set_write(&s, dir, sizeof dir, "swapped2", 0x0);
	put_file(dir, file_names[F_TEST_LAB], s.f[F_TEST_IMG].data, s.f[F_TEST_IMG].len);
	snprintf(spec, sizeof spec, "idx:%s", dir);
	snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
	expect_fail(spec, BV_EFORMAT, path, "images as labels");

	/* image/label count mismatch: both files named */
	{
		set s2;
		set_build(&s2, 199, 20, 8, 8);
		set_write(&s, dir, sizeof dir, "count_mismatch", 0x3);
		char lname[64];
		snprintf(lname, sizeof lname, "%s.gz", file_names[F_TRAIN_LAB]);
		bv_buf z;
		gz_encode(&z, s2.f[F_TRAIN_LAB].data, s2.f[F_TRAIN_LAB].len);
		put_file(dir, lname, z.data, z.len);
		bv_buf_release(&z);
		snprintf(spec, sizeof spec, "idx:%s", dir);
		snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
		expect_fail(spec, BV_EFORMAT, path, "count mismatch");
		snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
		CHECK(strstr(bv_error_last(), path) != NULL, "count mismatch: labels file not named: %s",
		      bv_error_last());
		set_release(&s2);
	}

	/* label out of range: sample 7 gets label 10 */
	{
		bv_buf b;
		bv_buf_init(&b);
		bv_buf_append(&b, s.f[F_TRAIN_LAB].data, s.f[F_TRAIN_LAB].len);
		b.data[8 + 7] = 10;
		set_write(&s, dir, sizeof dir, "bad_label", 0x0);
		put_file(dir, file_names[F_TRAIN_LAB], b.data, b.len);
		snprintf(spec, sizeof spec, "idx:%s", dir);
		snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
		expect_fail(spec, BV_EFORMAT, path, "label out of range");
		CHECK(strstr(bv_error_last(), "sample 7") && strstr(bv_error_last(), "label 10"),
		      "label message: %s", bv_error_last());
		bv_buf_release(&b);
	}

	/* one image of 4097 x 4097 pixels: more than an image may have */
	{
		int big[3] = {1, 4097, 4097};
		size_t np = (size_t)big[1] * (size_t)big[2];
		unsigned char *zeros = calloc(1, np);
		bv_buf b, z;
		idx_build(&b, 3, big, zeros, np);
		gz_encode(&z, b.data, b.len);
		free(zeros);
		set_write(&s, dir, sizeof dir, "big_image", 0x0);
		put_file(dir, "train-images-idx3-ubyte.gz", z.data, z.len);
		snprintf(spec, sizeof spec, "idx:%s", dir);
		snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
		expect_fail(spec, BV_EFORMAT, path, "image too large");
		CHECK(strstr(bv_error_last(), "images of 4097x4097 pixels, more than the 16777216 bvtool takes"),
		      "big image: %s", bv_error_last());
		bv_buf_release(&b);
		bv_buf_release(&z);
	}

	/* truncated raw payload, and a payload with bytes to spare */
	set_write(&s, dir, sizeof dir, "trunc_raw", 0x0);
	put_file(dir, file_names[F_TRAIN_IMG], s.f[F_TRAIN_IMG].data, s.f[F_TRAIN_IMG].len - 3);
	snprintf(spec, sizeof spec, "idx:%s", dir);
	snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
	expect_fail(spec, BV_EFORMAT, path, "truncated raw payload");
	CHECK(strstr(bv_error_last(), "truncated: expected 12800 bytes, found 12797") != NULL,
	      "truncated raw: %s", bv_error_last());
	set_write(&s, dir, sizeof dir, "trunc_raw_hdr", 0x0);
	put_file(dir, file_names[F_TRAIN_IMG], s.f[F_TRAIN_IMG].data, 10);
	snprintf(spec, sizeof spec, "idx:%s", dir);
	snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
	expect_fail(spec, BV_EFORMAT, path, "truncated raw header");
	{
		bv_buf b;
		bv_buf_init(&b);
		bv_buf_append(&b, s.f[F_TEST_LAB].data, s.f[F_TEST_LAB].len);
		bv_buf_append(&b, "\0", 1);
		set_write(&s, dir, sizeof dir, "long_raw", 0x0);
		put_file(dir, file_names[F_TEST_LAB], b.data, b.len);
		snprintf(spec, sizeof spec, "idx:%s", dir);
		snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
		expect_fail(spec, BV_EFORMAT, path, "payload too long");
		bv_buf_release(&b);
	}
	/* a truncated gzip whose decoded payload is also short: still the gzip error */
	{
		bv_buf cut;
		bv_buf_init(&cut);
		bv_buf_append(&cut, s.f[F_TRAIN_IMG].data, s.f[F_TRAIN_IMG].len - 100);
		bv_buf z;
		gz_encode(&z, cut.data, cut.len);
		set_write(&s, dir, sizeof dir, "short_in_gz", 0x0);
		put_file(dir, "train-images-idx3-ubyte.gz", z.data, z.len);
		snprintf(spec, sizeof spec, "idx:%s", dir);
		snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
		expect_fail(spec, BV_EFORMAT, path, "short payload in gzip");
		CHECK(strstr(bv_error_last(), "expected 12800 bytes, found 12700") != NULL,
		      "short payload in gzip: %s", bv_error_last());
		bv_buf_release(&z);
		bv_buf_release(&cut);
	}
	set_release(&s);
}

static void test_bootstrap(void)
{
	enum { N = 10000 };
	int *idx = malloc(N * sizeof *idx), *counts = malloc(N * sizeof *counts);
	int *idx2 = malloc(N * sizeof *idx2), *counts2 = malloc(N * sizeof *counts2);

	bv_bootstrap_draw(idx, counts, N, 1);
	long sum = 0;
	int in_bag = 0, in_range = 1;
	for (int i = 0; i < N; i++) {
		sum += counts[i];
		in_bag += counts[i] > 0;
		in_range &= idx[i] >= 0 && idx[i] < N;
	}
	CHECK(sum == N, "counts sum to %ld, want %d", sum, N);
	CHECK(in_range, "index out of range");
	/* P(in bag) = 1 - (1 - 1/n)^n -> 1 - 1/e = 0.632 */
	CHECK_NEAR((double)in_bag / N, 0.632, 0.02, "in-bag share");
	printf("  bootstrap n=%d: %.4f in-bag\n", N, (double)in_bag / N);

	int recount_ok = 1;
	memset(counts2, 0, N * sizeof *counts2);
	for (int i = 0; i < N; i++)
		counts2[idx[i]]++;
	for (int i = 0; i < N; i++)
		recount_ok &= counts2[i] == counts[i];
	CHECK(recount_ok, "counts do not match idx");

	bv_bootstrap_draw(idx2, counts2, N, 1);
	CHECK(memcmp(idx, idx2, N * sizeof *idx) == 0 && memcmp(counts, counts2, N * sizeof *counts) == 0,
	      "same seed, different draw");
	bv_bootstrap_draw(idx2, NULL, N, 2);
	CHECK(memcmp(idx, idx2, N * sizeof *idx) != 0, "seeds 1 and 2 give the same draw");
	bv_bootstrap_draw(idx2, counts2, 0, 3); /* n = 0 draws nothing */

	free(idx);
	free(counts);
	free(idx2);
	free(counts2);
}

static void test_fashion_mnist(void)
{
	struct stat st;
	if (stat(BV_FASHION_MNIST_DIR, &st) != 0) {
		printf("skipped: %s not found (Debian package dataset-fashion-mnist)\n", BV_FASHION_MNIST_DIR);
		return;
	}
	bv_data d;
	double t0 = bv_now();
	int rc = bv_data_load(&d, "fashion-mnist");
	double t = bv_now() - t0;
	CHECK(rc == 0, "fashion-mnist: %s", bv_error_last());
	if (rc)
		return;
	printf("  fashion-mnist loaded in %.3f s: mean %.4f std %.4f\n", t, d.mean[0], d.std[0]);
	CHECK(d.train.n == 60000 && d.test.n == 10000, "counts %d %d", d.train.n, d.test.n);
	CHECK(d.shape.c == 1 && d.shape.h == 28 && d.shape.w == 28, "shape %d %d %d", d.shape.c,
	      d.shape.h, d.shape.w);
	CHECK(strcmp(d.dir, BV_FASHION_MNIST_DIR) == 0, "dir '%s'", d.dir);
	int per_class[10] = {0}, test_class[10] = {0}, in_range = 1;
	for (int i = 0; i < d.train.n; i++) {
		in_range &= d.train.y[i] >= 0 && d.train.y[i] < 10;
		if (d.train.y[i] >= 0 && d.train.y[i] < 10)
			per_class[d.train.y[i]]++;
	}
	for (int i = 0; i < d.test.n; i++) {
		in_range &= d.test.y[i] >= 0 && d.test.y[i] < 10;
		if (d.test.y[i] >= 0 && d.test.y[i] < 10)
			test_class[d.test.y[i]]++;
	}
	CHECK(in_range, "labels out of range");
	for (int k = 0; k < 10; k++)
		CHECK(per_class[k] == 6000 && test_class[k] == 1000, "class %d: %d train, %d test", k,
		      per_class[k], test_class[k]);
	/* the well-known Fashion-MNIST statistics */
	CHECK_NEAR(d.mean[0], 0.2860, 5e-4, "fashion-mnist mean");
	CHECK_NEAR(d.std[0], 0.3530, 5e-4, "fashion-mnist std");
	double zsum = 0;
	size_t np = (size_t)d.train.n * 784;
	for (size_t i = 0; i < np; i++)
		zsum += d.train.x[i];
	CHECK_NEAR(zsum / (double)np, 0.0, 1e-4, "fashion-mnist normalised mean");
	bv_data_release(&d);
}

int main(void)
{
	if (bv_check_tmpdir(root, sizeof root, "test_data") != 0)
		return 1;

	printf("round trip\n");
	test_round_trip();
	printf("idx_read\n");
	test_idx_read();
	printf("errors\n");
	test_errors();
	printf("bootstrap\n");
	test_bootstrap();
	printf("fashion-mnist\n");
	test_fashion_mnist();

	for (int i = n_written - 1; i >= 0; i--)
		remove(written[i]);
	rmdir(root);
	return bv_check_done();
}
