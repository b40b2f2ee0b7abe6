/*
 * fuzz_cifar: the CIFAR-10 / CIFAR-100 loader (bv_data_load "cifar10:DIR",
 * "cifar100:DIR"). Its files are fixed-size records (1 or 2 label bytes and
 * 3072 pixel bytes), each file 1 to the standard count of records.
 *
 * The first byte of an input is a mode, the rest one file of the data set:
 *   bit 0     cifar100 (train.bin, test.bin) instead of cifar10
 *             (data_batch_1..5.bin, test_batch.bin)
 *   bits 1-3  which of its files the rest is (modulo the number of files)
 *   bit 4     put the files in the tarball's folder (cifar-10-batches-bin,
 *             cifar-100-binary) under DIR instead of DIR itself
 *   bit 5     leave the chosen file out instead (a missing file)
 * The other files are valid, one record each, so a load is fast. A loaded
 * data set must have labels in [0, n_classes) and 3x32x32 samples.
 */
#include "fuzz_common.h"

#include "train.h"

enum { PIXELS = 3072 };

static const char *const c10_files[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
					 "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
static const char *const c100_files[2] = {"train.bin", "test.bin"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char rec[2 + PIXELS];
	char dir[512], sub[600], path[700], spec[600];
	bv_data d;

	if (size < 1 || size > (1u << 23))
		return 0;
	const int mode = data[0];
	const int c100 = mode & 1;
	const char *const *files = c100 ? c100_files : c10_files;
	const int n_files = c100 ? 2 : 6;
	const int which = ((mode >> 1) & 7) % n_files;
	const int label_bytes = c100 ? 2 : 1;

	fz_clear(fz_dir());
	fz_path(dir, sizeof dir, "data");
	mkdir(dir, 0700);
	if (mode & 16) {
		snprintf(sub, sizeof sub, "%s/%s", dir, c100 ? "cifar-100-binary" : "cifar-10-batches-bin");
		mkdir(sub, 0700);
	} else {
		snprintf(sub, sizeof sub, "%s", dir);
	}
	for (int f = 0; f < n_files; f++) {
		snprintf(path, sizeof path, "%s/%s", sub, files[f]);
		if (f == which) {
			if (!(mode & 32))
				fz_write(path, data + 1, size - 1);
			continue;
		}
		/* one valid record: labels f (coarse f too), pixels a ramp */
		rec[0] = (unsigned char)f;
		rec[1] = (unsigned char)f;
		for (int i = 0; i < PIXELS; i++)
			rec[label_bytes + i] = (unsigned char)(i * 7 + f);
		fz_write(path, rec, (size_t)label_bytes + PIXELS);
	}

	snprintf(spec, sizeof spec, "%s:%s", c100 ? "cifar100" : "cifar10", dir);
	memset(&d, 0, sizeof d);
	if (bv_data_load(&d, spec) == 0) {
		if (d.shape.c != 3 || d.shape.h != 32 || d.shape.w != 32)
			fz_fail("cifar: a loaded sample is not 3x32x32", NULL);
		for (int i = 0; i < d.train.n; i++)
			if (d.train.y[i] < 0 || d.train.y[i] >= d.n_classes)
				fz_fail("cifar: a training label outside [0, n_classes)", NULL);
		for (int i = 0; i < d.test.n; i++)
			if (d.test.y[i] < 0 || d.test.y[i] >= d.n_classes)
				fz_fail("cifar: a test label outside [0, n_classes)", NULL);
		/* every pixel was read (ASan checks the last one) */
		volatile float last = d.test.x[(size_t)d.test.n * PIXELS - 1];
		(void)last;
		float zero[3];
		bv_data_zero_value(zero, &d);
		bv_data_release(&d);
	}
	return 0;
}
