/*
 * The CIFAR-10/100 binary batches (https://www.cs.toronto.edu/~kriz/cifar.html):
 * fixed-size records (label byte(s), then 1024 R, 1024 G, 1024 B bytes), each
 * file read whole (bv_read_file: a regular file, no more than its size) and its
 * size and every label checked; the pixels keep their CHW order and are
 * normalised per channel with the training set's channel mean and std.
 * bv_data_load (data.c) calls data_load_cifar.
 */
#include "data_int.h"

#include "base.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CIFAR_PIXELS = 3 * 32 * 32, CIFAR_MAX_FILES = 5 };

/* The layout of one CIFAR variant (https://www.cs.toronto.edu/~kriz/cifar.html). */
typedef struct cifar_kind {
	const char *name;
	const char *subdir;            /* the folder the tarball unpacks to */
	int label_bytes;               /* 1 (label) or 2 (coarse, fine): the last one is used */
	int n_classes;
	int n_coarse;                  /* classes of the first label byte when there are two */
	int n_train_files;
	const char *train[CIFAR_MAX_FILES];
	int train_records;             /* per training file in the standard set */
	const char *test;
	int test_records;
} cifar_kind;

static const cifar_kind cifar10 = {
	"cifar10", "cifar-10-batches-bin", 1, 10, 0, 5,
	{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
	 "data_batch_5.bin"},
	10000, "test_batch.bin", 10000,
};

static const cifar_kind cifar100 = {
	"cifar100", "cifar-100-binary", 2, 100, 20, 1, {"train.bin"}, 50000, "test.bin", 10000,
};

/* One CIFAR file held whole in memory. */
typedef struct cifar_file {
	char path[1024];
	unsigned char *data; /* (n, label_bytes + 3072) */
	int n;               /* records */
} cifar_file;

/* Read DIR/NAME and check its size and every label. A file holds 1 to
 * max_records records: fewer than the standard count is a subset (tests, quick
 * runs), more is not a file of this data set. */
static int cifar_read(cifar_file *f, const cifar_kind *k, const char *dir, const char *name,
		      int max_records)
{
	size_t rec = (size_t)k->label_bytes + CIFAR_PIXELS, len = 0, n;
	int rc;

	f->data = NULL;
	f->n = 0;
	snprintf(f->path, sizeof f->path, "%s/%s", dir, name);
	rc = bv_read_file(&f->data, &len, f->path);
	if (rc)
		return rc;
	if (len % rec != 0) {
		rc = bv_error_set(BV_EFORMAT,
				  "cannot read '%s': %zu bytes is not a whole number of %zu-byte records",
				  f->path, len, rec);
		goto done;
	}
	n = len / rec;
	if (n == 0) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': empty file (expected %zu-byte records)",
				  f->path, rec);
		goto done;
	}
	if (n > (size_t)max_records) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': %zu records (expected at most %d)", f->path,
				  n, max_records);
		goto done;
	}
	f->n = (int)n;
	for (int i = 0; i < f->n; i++) {
		const unsigned char *r = f->data + (size_t)i * rec;
		int label = r[k->label_bytes - 1];
		if (k->label_bytes == 2 && r[0] >= k->n_coarse) {
			rc = bv_error_set(BV_EFORMAT,
					  "cannot read '%s': record %d has coarse label %d (expected 0 to %d)",
					  f->path, i, r[0], k->n_coarse - 1);
			goto done;
		}
		if (label >= k->n_classes) {
			rc = bv_error_set(BV_EFORMAT, "cannot read '%s': record %d has label %d (expected 0 to %d)",
					  f->path, i, label, k->n_classes - 1);
			goto done;
		}
	}
done:
	if (rc) {
		free(f->data);
		f->data = NULL;
		f->n = 0;
	}
	return rc;
}

/* Gather the records of `files` into a split: labels, and pixels mapped per
 * channel through lut (byte -> normalised float). */
static int cifar_split(bv_split *out, const cifar_kind *k, const cifar_file *files, int n_files,
		       const float lut[3][256])
{
	size_t rec = (size_t)k->label_bytes + CIFAR_PIXELS;
	int n = 0, row = 0;

	for (int f = 0; f < n_files; f++)
		n += files[f].n;
	out->x = malloc((size_t)n * CIFAR_PIXELS * sizeof *out->x);
	out->y = malloc((size_t)n * sizeof *out->y);
	if (!out->x || !out->y) {
		free(out->x);
		free(out->y);
		out->x = NULL;
		out->y = NULL;
		return bv_error_set(BV_ENOMEM, "out of memory for %d samples of %d pixels", n, CIFAR_PIXELS);
	}
	out->n = n;
	for (int f = 0; f < n_files; f++) {
		for (int i = 0; i < files[f].n; i++, row++) {
			const unsigned char *r = files[f].data + (size_t)i * rec;
			const unsigned char *pix = r + k->label_bytes;
			float *x = out->x + (size_t)row * CIFAR_PIXELS;
			out->y[row] = r[k->label_bytes - 1];
			for (int c = 0; c < 3; c++)
				for (int j = 0; j < 1024; j++)
					x[c * 1024 + j] = lut[c][pix[c * 1024 + j]];
		}
	}
	return 0;
}

static int load_cifar(bv_data *d, const cifar_kind *k)
{
	cifar_file tr[CIFAR_MAX_FILES], te;
	size_t rec = (size_t)k->label_bytes + CIFAR_PIXELS;
	float lut[3][256];
	char sub[sizeof d->dir];
	struct stat st;
	int rc = 0, n_tr = 0, total = 0;

	memset(tr, 0, sizeof tr);
	memset(&te, 0, sizeof te);
	/* DIR may be the parent of the unpacked tarball's folder or that folder */
	if (snprintf(sub, sizeof sub, "%s/%s", d->dir, k->subdir) < (int)sizeof sub &&
	    stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
		char first[sizeof d->dir + 64];
		snprintf(first, sizeof first, "%s/%s", d->dir, k->train[0]);
		if (stat(first, &st) != 0)
			strcpy(d->dir, sub);
	}

	for (; n_tr < k->n_train_files; n_tr++) {
		rc = cifar_read(&tr[n_tr], k, d->dir, k->train[n_tr], k->train_records);
		if (rc)
			goto done;
		total += tr[n_tr].n;
	}
	rc = cifar_read(&te, k, d->dir, k->test, k->test_records);
	if (rc)
		goto done;

	/* Per-channel mean and std of the training pixels in [0,1] units, from
	 * byte histograms: exact in double, one pass over the bytes. */
	for (int c = 0; c < 3; c++) {
		size_t hist[256] = {0};
		double n = (double)total * 1024.0, sum = 0, ss = 0, mean, sd;
		for (int f = 0; f < n_tr; f++)
			for (int i = 0; i < tr[f].n; i++) {
				const unsigned char *p = tr[f].data + (size_t)i * rec + k->label_bytes + c * 1024;
				for (int j = 0; j < 1024; j++)
					hist[p[j]]++;
			}
		for (int v = 0; v < 256; v++)
			sum += (double)hist[v] * (v / 255.0);
		mean = sum / n;
		for (int v = 0; v < 256; v++)
			ss += (double)hist[v] * (v / 255.0 - mean) * (v / 255.0 - mean);
		sd = sqrt(ss / n);
		/* a constant channel has no spread; centre it and leave the scale */
		if (!(sd > 1e-12))
			sd = 1.0;
		for (int v = 0; v < 256; v++)
			lut[c][v] = (float)((v / 255.0 - mean) / sd);
		d->mean[c] = (float)mean;
		d->std[c] = (float)sd;
	}

	d->shape.c = 3;
	d->shape.h = 32;
	d->shape.w = 32;
	rc = cifar_split(&d->train, k, tr, n_tr, (const float(*)[256])lut);
	if (rc)
		goto done;
	rc = cifar_split(&d->test, k, &te, 1, (const float(*)[256])lut);
done:
	for (int f = 0; f < n_tr; f++)
		free(tr[f].data);
	free(te.data);
	return rc;
}

int data_load_cifar(bv_data *d, int hundred)
{
	const cifar_kind *k = hundred ? &cifar100 : &cifar10;
	d->n_classes = k->n_classes;
	return load_cifar(d, k);
}
