/*
 * Data sets: IDX files (MNIST, Fashion-MNIST) and the CIFAR-10/100 binary
 * batches, read into normalised float32 rows.
 *
 * bv_data_load parses a "NAME[:DIR]" spec. For IDX data it finds the four IDX
 * files in DIR (each raw or gzip-compressed, `.gz` tried first), checks every
 * header, count and label, and converts the pixels to (x / 255 - mean) / std
 * with the mean and standard deviation of all training pixels. bv_idx_read is
 * the one place that reads an IDX file; it reads the file whole (bv_read_file:
 * a regular file, no more than its size), tells gzip from raw by the first two
 * bytes and inflates straight into the payload buffer, so a truncated or
 * corrupt stream is an error and never a short read. The header is untrusted:
 * its dims are range-checked before anything is allocated, the buffer grows
 * only as the data lasts, and inflating stops one byte past the payload the
 * header promises (a gzip bomb is refused there, never inflated to its end).
 *
 * The CIFAR-10/100 binary batches are cifar.c's (data_int.h).
 */
#include "train.h"

#include "data_int.h"

#include "base.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---- reading a byte stream, raw or gzip -------------------------------- */

/* A source of decoded bytes over a file already held in memory. */
typedef struct src {
	const char *path;
	const unsigned char *data; /* (len) the file as stored */
	size_t len, pos;           /* raw only: read position */
	int gz;                    /* 1: data is gzip, decoded through zs */
	int zs_ready;              /* zs needs inflateEnd */
	int done;                  /* gzip: the last member ended */
	z_stream zs;
} src;

static int src_open(src *s, const char *path, const unsigned char *data, size_t len)
{
	memset(s, 0, sizeof *s);
	s->path = path;
	s->data = data;
	s->len = len;
	s->gz = len >= 2 && data[0] == 0x1f && data[1] == 0x8b;
	if (!s->gz)
		return 0;
	/* 16 + MAX_WBITS: a gzip wrapper (header, CRC-32 and length checked) */
	if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
		return bv_error_set(BV_ENOMEM, "out of memory reading '%s'", path);
	s->zs_ready = 1;
	s->zs.next_in = (unsigned char *)data;
	s->zs.avail_in = (uInt)len;
	if ((size_t)s->zs.avail_in != len)
		return bv_error_set(BV_EFORMAT, "cannot read '%s': gzip file too large", path);
	return 0;
}

static void src_close(src *s)
{
	if (s->zs_ready)
		inflateEnd(&s->zs);
	s->zs_ready = 0;
}

/* An upper bound on the bytes still to come: deflate expands at most 1032:1. */
static uint64_t src_bound(const src *s)
{
	if (!s->gz)
		return s->len - s->pos;
	if (s->done)
		return 0;
	return (uint64_t)s->zs.avail_in * 1032u + 65536u;
}

/* Read up to n bytes into buf; *got is short only at the end of the data. A
 * gzip stream that stops early or fails its checks is BV_EFORMAT. */
static int src_read(src *s, unsigned char *buf, size_t n, size_t *got)
{
	*got = 0;
	if (!s->gz) {
		size_t k = s->len - s->pos < n ? s->len - s->pos : n;
		memcpy(buf, s->data + s->pos, k);
		s->pos += k;
		*got = k;
		return 0;
	}
	while (*got < n && !s->done) {
		size_t want = n - *got < (1u << 30) ? n - *got : (1u << 30);
		s->zs.next_out = buf + *got;
		s->zs.avail_out = (uInt)want;
		int z = inflate(&s->zs, Z_NO_FLUSH);
		*got += want - s->zs.avail_out;
		if (z == Z_OK)
			continue;
		if (z == Z_STREAM_END) {
			/* gzip files may hold several members, one after another */
			if (s->zs.avail_in == 0) {
				s->done = 1;
			} else if (s->zs.avail_in >= 2 && s->zs.next_in[0] == 0x1f &&
				   s->zs.next_in[1] == 0x8b) {
				if (inflateReset(&s->zs) != Z_OK)
					return bv_error_set(BV_EFORMAT, "cannot read '%s': corrupt gzip stream",
							    s->path);
			} else {
				return bv_error_set(BV_EFORMAT,
						    "cannot read '%s': corrupt gzip stream (trailing garbage)",
						    s->path);
			}
			continue;
		}
		if (z == Z_BUF_ERROR && s->zs.avail_in == 0)
			return bv_error_set(BV_EFORMAT, "cannot read '%s': truncated gzip stream", s->path);
		if (z == Z_MEM_ERROR)
			return bv_error_set(BV_ENOMEM, "out of memory reading '%s'", s->path);
		return bv_error_set(BV_EFORMAT, "cannot read '%s': corrupt gzip stream (%s)", s->path,
				    s->zs.msg ? s->zs.msg : "inflate failed");
	}
	return 0;
}

/* Read to the end, counting the bytes (the stream is still fully checked). */
static int src_skip(src *s, size_t *count)
{
	unsigned char scratch[65536];
	size_t got;
	int rc;
	*count = 0;
	do {
		rc = src_read(s, scratch, sizeof scratch, &got);
		if (rc)
			return rc;
		*count += got;
	} while (got == sizeof scratch);
	return 0;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- IDX files ----------------------------------------------------------- */

/* The most payload bytes an IDX header may promise: 4 GiB (MNIST's training
 * images are 47 MB); a larger promise is refused before anything is read. */
#define BV_IDX_MAX_BYTES ((size_t)1 << 32)
/* The most pixels of one image (4096 x 4096), so that a sample's size fits
 * the int dimensions of the model. */
#define IDX_MAX_PIXELS (1 << 24)
/* The payload buffer starts at 16 MiB and doubles while the data lasts. */
#define IDX_FIRST_CHUNK ((size_t)16 << 20)

int bv_idx_read(unsigned char **out, int *out_ndims, int dims[4], const char *path)
{
	unsigned char *file = NULL, *payload = NULL;
	size_t file_len = 0, got = 0, size = 1, extra = 0;
	unsigned char hdr[16];
	src s;
	int rc, ndims;

	*out = NULL;
	*out_ndims = 0;
	memset(&s, 0, sizeof s);
	rc = bv_read_file(&file, &file_len, path);
	if (rc)
		goto done;
	rc = src_open(&s, path, file, file_len);
	if (rc)
		goto done;

	/* magic: two zero bytes, the element type (0x08 = unsigned byte), ndims */
	rc = src_read(&s, hdr, 4, &got);
	if (rc)
		goto done;
	if (got < 4) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': truncated: expected a 4-byte header, found %zu bytes",
				  path, got);
		goto done;
	}
	if (hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || hdr[3] < 1 || hdr[3] > 4) {
		rc = bv_error_set(BV_EFORMAT,
				  "cannot read '%s': bad magic 0x%08x (expected 0x00000803 images or 0x00000801 labels)",
				  path, (unsigned)be32(hdr));
		goto done;
	}
	ndims = hdr[3];
	rc = src_read(&s, hdr, 4 * (size_t)ndims, &got);
	if (rc)
		goto done;
	if (got < 4 * (size_t)ndims) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': truncated: expected a %d-byte header, found %zu bytes",
				  path, 4 + 4 * ndims, 4 + got);
		goto done;
	}
	for (int i = 0; i < 4; i++)
		dims[i] = 0;
	int over = 0, empty = 0;
	for (int i = 0; i < ndims; i++) {
		uint32_t d = be32(hdr + 4 * i);
		if (d > INT_MAX) {
			rc = bv_error_set(BV_EFORMAT, "cannot read '%s': dimension %d is %u, too large", path,
					  i + 1, (unsigned)d);
			goto done;
		}
		dims[i] = (int)d;
		empty |= d == 0;
	}
	/* Range-checked before anything is allocated or inflated; a product over
	 * the limit (which might overflow) is never formed. */
	for (int i = 0; i < ndims && !empty && !over; i++) {
		if (size > BV_IDX_MAX_BYTES / (size_t)dims[i])
			over = 1;
		else
			size *= (size_t)dims[i];
	}
	if (empty)
		size = 0;
	if (over) {
		char shape[64];
		int n = 0;
		for (int i = 0; i < ndims; i++)
			n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%d", i ? " x " : "", dims[i]);
		rc = bv_error_set(BV_EFORMAT,
				  "cannot read '%s': its header promises %s bytes, more than the %llu bvtool reads",
				  path, shape, (unsigned long long)BV_IDX_MAX_BYTES);
		goto done;
	}

	/* Never allocate more than the file can hold: a lying header is reported
	 * as truncated, with the real count (the rest is shorter than the promise,
	 * so counting it is bounded by the promise). */
	if ((uint64_t)size > src_bound(&s)) {
		rc = src_skip(&s, &extra);
		if (rc)
			goto done;
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': truncated: expected %zu bytes, found %zu", path,
				  size, extra);
		goto done;
	}
	/* The buffer grows with what the data holds, never ahead of it by more
	 * than 2x, so a header that promises more than the stream has costs no
	 * more memory than the stream. */
	size_t cap = size < IDX_FIRST_CHUNK ? size : IDX_FIRST_CHUNK, have = 0;
	payload = malloc(cap ? cap : 1);
	if (!payload) {
		rc = bv_error_set(BV_ENOMEM, "out of memory reading '%s' (%zu bytes)", path, cap);
		goto done;
	}
	while (have < size) {
		if (have == cap) {
			size_t ncap = cap > size / 2 ? size : 2 * cap;
			unsigned char *p = realloc(payload, ncap);
			if (!p) {
				rc = bv_error_set(BV_ENOMEM, "out of memory reading '%s' (%zu bytes)", path, ncap);
				goto done;
			}
			payload = p;
			cap = ncap;
		}
		rc = src_read(&s, payload + have, cap - have, &got);
		if (rc)
			goto done;
		have += got;
		if (have < cap)
			break; /* the end of the data */
	}
	if (have < size) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': truncated: expected %zu bytes, found %zu", path,
				  size, have);
		goto done;
	}
	/* One byte more must be the end: the rest is never inflated (a gzip bomb
	 * stops here), and at the end the gzip trailer has been checked. */
	rc = src_read(&s, hdr, 1, &got);
	if (rc)
		goto done;
	if (got > 0) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': more data than its header promises (%zu bytes)",
				  path, size);
		goto done;
	}
	*out = payload;
	*out_ndims = ndims;
	payload = NULL;
done:
	src_close(&s);
	free(payload);
	free(file);
	return rc;
}

/* ---- data sets ----------------------------------------------------------- */

/* Find DIR/NAME.gz, else DIR/NAME; path receives the one found. */
static int find_idx(char *path, size_t cap, const char *dir, const char *name)
{
	struct stat st;
	int err;
	snprintf(path, cap, "%s/%s.gz", dir, name);
	if (stat(path, &st) == 0)
		return 0;
	snprintf(path, cap, "%s/%s", dir, name);
	if (stat(path, &st) == 0)
		return 0;
	err = errno;
	return bv_error_set(BV_EIO, "cannot open '%s.gz' or '%s': %s", path, path, strerror(err));
}

/* One split's raw bytes, before normalisation. */
typedef struct raw_split {
	unsigned char *pix; /* (n, rows*cols) */
	int n, rows, cols;
	int *y;             /* (n) */
} raw_split;

static int read_split(raw_split *out, const char *dir, const char *images, const char *labels,
		      int n_classes)
{
	char ipath[1024], lpath[1024];
	unsigned char *lab = NULL;
	int idims[4], ldims[4], indims, lndims, rc;

	memset(out, 0, sizeof *out);
	rc = find_idx(ipath, sizeof ipath, dir, images);
	if (rc)
		goto done;
	rc = find_idx(lpath, sizeof lpath, dir, labels);
	if (rc)
		goto done;
	rc = bv_idx_read(&out->pix, &indims, idims, ipath);
	if (rc)
		goto done;
	if (indims != 3) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': bad magic 0x%08x (expected 0x00000803 images)",
				  ipath, 0x800u | (unsigned)indims);
		goto done;
	}
	if (idims[0] < 1 || idims[1] < 1 || idims[2] < 1) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': empty data set (%d images of %dx%d)", ipath,
				  idims[0], idims[1], idims[2]);
		goto done;
	}
	if ((size_t)idims[1] * (size_t)idims[2] > IDX_MAX_PIXELS) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': images of %dx%d pixels, more than the %d bvtool takes",
				  ipath, idims[1], idims[2], IDX_MAX_PIXELS);
		goto done;
	}
	rc = bv_idx_read(&lab, &lndims, ldims, lpath);
	if (rc)
		goto done;
	if (lndims != 1) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': bad magic 0x%08x (expected 0x00000801 labels)",
				  lpath, 0x800u | (unsigned)lndims);
		goto done;
	}
	if (ldims[0] != idims[0]) {
		rc = bv_error_set(BV_EFORMAT, "image and label counts differ: '%s' has %d images, '%s' has %d labels",
				  ipath, idims[0], lpath, ldims[0]);
		goto done;
	}
	out->n = idims[0];
	out->rows = idims[1];
	out->cols = idims[2];
	out->y = malloc((size_t)out->n * sizeof *out->y);
	if (!out->y) {
		rc = bv_error_set(BV_ENOMEM, "out of memory reading '%s'", lpath);
		goto done;
	}
	for (int i = 0; i < out->n; i++) {
		if (lab[i] >= n_classes) {
			rc = bv_error_set(BV_EFORMAT, "cannot read '%s': sample %d has label %d (expected 0 to %d)",
					  lpath, i, lab[i], n_classes - 1);
			goto done;
		}
		out->y[i] = lab[i];
	}
done:
	free(lab);
	if (rc) {
		free(out->pix);
		free(out->y);
		memset(out, 0, sizeof *out);
	}
	return rc;
}

/* Map each byte value to its normalised float: ((v / 255) - mean) / std. */
static int normalise(bv_split *out, raw_split *r, const float lut[256])
{
	size_t d = (size_t)r->rows * (size_t)r->cols, total = (size_t)r->n * d;
	out->x = malloc(total * sizeof *out->x);
	if (!out->x)
		return bv_error_set(BV_ENOMEM, "out of memory for %d samples of %zu pixels", r->n, d);
	for (size_t i = 0; i < total; i++)
		out->x[i] = lut[r->pix[i]];
	out->y = r->y;
	out->n = r->n;
	r->y = NULL;
	return 0;
}

static int load_idx(bv_data *d)
{
	raw_split tr, te;
	double count[256] = {0}, n = 0, sum = 0, ss = 0, mean, sd;
	float lut[256];
	int rc;

	memset(&tr, 0, sizeof tr);
	memset(&te, 0, sizeof te);
	rc = read_split(&tr, d->dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", d->n_classes);
	if (rc)
		goto done;
	rc = read_split(&te, d->dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", d->n_classes);
	if (rc)
		goto done;
	if (te.rows != tr.rows || te.cols != tr.cols) {
		rc = bv_error_set(BV_EFORMAT,
				  "image sizes differ: '%s/train-images-idx3-ubyte' has %dx%d, '%s/t10k-images-idx3-ubyte' has %dx%d",
				  d->dir, tr.rows, tr.cols, d->dir, te.rows, te.cols);
		goto done;
	}

	/* Mean and std of all training pixels in [0,1] units, from a byte
	 * histogram: exact in double, one pass over the bytes. */
	size_t total = (size_t)tr.n * (size_t)tr.rows * (size_t)tr.cols;
	{
		size_t hist[256] = {0};
		for (size_t i = 0; i < total; i++)
			hist[tr.pix[i]]++;
		for (int v = 0; v < 256; v++)
			count[v] = (double)hist[v];
	}
	for (int v = 0; v < 256; v++) {
		n += count[v];
		sum += count[v] * (v / 255.0);
	}
	mean = sum / n;
	for (int v = 0; v < 256; v++)
		ss += count[v] * (v / 255.0 - mean) * (v / 255.0 - mean);
	sd = sqrt(ss / n);
	/* A constant image set has no spread; centre it and leave the scale. */
	if (!(sd > 1e-12))
		sd = 1.0;
	for (int v = 0; v < 256; v++)
		lut[v] = (float)((v / 255.0 - mean) / sd);

	d->shape.c = 1;
	d->shape.h = tr.rows;
	d->shape.w = tr.cols;
	d->mean[0] = (float)mean;
	d->std[0] = (float)sd;
	rc = normalise(&d->train, &tr, lut);
	if (rc)
		goto done;
	rc = normalise(&d->test, &te, lut);
	if (rc)
		goto done;
done:
	free(tr.pix);
	free(tr.y);
	free(te.pix);
	free(te.y);
	return rc;
}

void bv_data_zero_value(float *out, const bv_data *d)
{
	for (int c = 0; c < d->shape.c && c < 3; c++)
		out[c] = d->std[c] > 0 ? -d->mean[c] / d->std[c] : 0.0f;
}

int bv_data_load(bv_data *out, const char *spec)
{
	static const char *const names[] = {"fashion-mnist", "mnist", "idx", "cifar10", "cifar100"};
	const char *colon = strchr(spec, ':');
	size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
	const char *dir = colon ? colon + 1 : NULL;
	struct stat st;
	int rc = 0, known = 0;

	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < BV_ARRAY_LEN(names); i++)
		if (strlen(names[i]) == name_len && strncmp(spec, names[i], name_len) == 0)
			known = 1;
	if (!known) {
		rc = bv_error_set(BV_EINVAL,
				  "unknown data '%.*s' (expected fashion-mnist[:DIR], mnist:DIR, idx:DIR, "
				  "cifar10:DIR or cifar100:DIR)",
				  (int)name_len, spec);
		goto done;
	}
	memcpy(out->name, spec, name_len);
	out->name[name_len] = '\0';
	if (!dir || !*dir) {
		if (strcmp(out->name, "fashion-mnist") != 0) {
			rc = bv_error_set(BV_EINVAL, "data '%s' needs a directory: --data %s:DIR", out->name,
					  out->name);
			goto done;
		}
		dir = BV_FASHION_MNIST_DIR;
	}
	if (strlen(dir) >= sizeof out->dir) {
		rc = bv_error_set(BV_EINVAL, "data directory '%s' is too long", dir);
		goto done;
	}
	strcpy(out->dir, dir);
	/* "dir/" and "dir" name the same files; keep messages free of "//" */
	for (size_t k = strlen(out->dir); k > 1 && out->dir[k - 1] == '/'; k--)
		out->dir[k - 1] = '\0';
	if (stat(out->dir, &st) != 0) {
		rc = bv_error_set(BV_EIO, "data directory '%s' does not exist", out->dir);
		goto done;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = bv_error_set(BV_EIO, "data directory '%s' is not a directory", out->dir);
		goto done;
	}
	if (strcmp(out->name, "cifar10") == 0 || strcmp(out->name, "cifar100") == 0) {
		rc = data_load_cifar(out, strcmp(out->name, "cifar100") == 0);
	} else {
		out->n_classes = 10;
		rc = load_idx(out);
	}
done:
	if (rc)
		bv_data_release(out);
	return rc;
}

void bv_data_release(bv_data *d)
{
	free(d->train.x);
	free(d->train.y);
	free(d->test.x);
	free(d->test.y);
	memset(d, 0, sizeof *d);
}

void bv_data_truncate_train(bv_data *d, int n)
{
	/* Only the count changes: the rows stay allocated and the normalisation
	 * stays that of the full training set. */
	if (n >= 0 && n < d->train.n)
		d->train.n = n;
}
