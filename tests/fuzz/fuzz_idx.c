/*
 * fuzz_idx: the IDX reader (bv_idx_read) and the IDX data-set loader
 * (bv_data_load "idx:DIR"), raw and gzip.
 *
 * The first byte of an input is a mode, the rest the file:
 *   bit 0  name the file *.gz (the reader goes by content, the loader tries
 *          NAME.gz first)
 *   bit 1  gzip the rest here before writing it, so that mutations of the
 *          IDX bytes reach the parser through the gzip path too
 *   bit 2  also load it as a data set: the file is one of the four IDX files
 *          of idx:DIR (bits 3-4 pick which), the other three valid and tiny
 * A successful read must return dimensions whose product is the payload it
 * promised (checked below).
 */
#include "fuzz_common.h"

#include <zlib.h>

#include "train.h"

static const char *const ds_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
					"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

/* A valid IDX file: n images of 2x2 (ndims 3) or n labels (ndims 1). */
static size_t valid_idx(unsigned char *out, int images, int n)
{
	size_t len = 0;
	out[len++] = 0;
	out[len++] = 0;
	out[len++] = 0x08;
	out[len++] = images ? 3 : 1;
	int dims[3] = {n, 2, 2};
	for (int i = 0; i < (images ? 3 : 1); i++) {
		out[len++] = 0;
		out[len++] = 0;
		out[len++] = 0;
		out[len++] = (unsigned char)dims[i];
	}
	for (int i = 0; i < (images ? n * 4 : n); i++)
		out[len++] = (unsigned char)(images ? i * 37 : i % 10);
	return len;
}

static unsigned char *gzip(const unsigned char *data, size_t size, size_t *out_len)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	size_t cap = deflateBound(&zs, size) + 32;
	unsigned char *out = malloc(cap);
	if (!out)
		abort();
	zs.next_in = (unsigned char *)data;
	zs.avail_in = (uInt)size;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		abort();
	*out_len = zs.total_out;
	deflateEnd(&zs);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512], dir[512];
	unsigned char *gz = NULL, *payload = NULL;
	int ndims = 0, dims[4];

	if (size < 1 || size > (1u << 22))
		return 0;
	const int mode = data[0];
	const unsigned char *file = data + 1;
	size_t len = size - 1;
	if (mode & 2) {
		gz = gzip(file, len, &len);
		file = gz;
	}

	fz_clear(fz_dir());
	fz_path(path, sizeof path, mode & 1 ? "f.gz" : "f");
	fz_write(path, file, len);
	if (bv_idx_read(&payload, &ndims, dims, path) == 0) {
		size_t n = 1;
		if (ndims < 1 || ndims > 4)
			fz_fail("bv_idx_read: ndims out of 1..4", NULL);
		for (int i = 0; i < ndims; i++)
			n *= (size_t)dims[i];
		/* the raw file holds the header and exactly the payload */
		const int is_gz = len >= 2 && file[0] == 0x1f && file[1] == 0x8b;
		if (!is_gz && len != 4 + 4 * (size_t)ndims + n)
			fz_fail("bv_idx_read: accepted a file whose size is not header + payload", NULL);
		if (n > 0)
			payload[n - 1] ^= 1; /* the payload is as long as promised (ASan checks) */
		free(payload);
	}

	if (mode & 4) {
		const int which = (mode >> 3) & 3;
		unsigned char valid[64];
		bv_data d;
		fz_path(dir, sizeof dir, "ds");
		mkdir(dir, 0700);
		for (int i = 0; i < 4; i++) {
			snprintf(path, sizeof path, "%s/%s%s", dir, ds_names[i], i == which && (mode & 1) ? ".gz" : "");
			if (i == which)
				fz_write(path, file, len);
			else
				fz_write(path, valid, valid_idx(valid, i % 2 == 0, i < 2 ? 3 : 2));
		}
		char spec[600];
		snprintf(spec, sizeof spec, "idx:%s", dir);
		memset(&d, 0, sizeof d);
		if (bv_data_load(&d, spec) == 0) {
			for (int i = 0; i < d.train.n; i++)
				if (d.train.y[i] < 0 || d.train.y[i] >= d.n_classes)
					fz_fail("idx data set: a training label outside [0, n_classes)", NULL);
			for (int i = 0; i < d.test.n; i++)
				if (d.test.y[i] < 0 || d.test.y[i] >= d.n_classes)
					fz_fail("idx data set: a test label outside [0, n_classes)", NULL);
			float zero[3];
			bv_data_zero_value(zero, &d);
			if (d.train.n > 1)
				bv_data_truncate_train(&d, d.train.n - 1);
			bv_data_release(&d);
		}
	}
	free(gz);
	return 0;
}
