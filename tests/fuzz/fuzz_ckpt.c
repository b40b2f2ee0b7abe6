/*
 * fuzz_ckpt: the checkpoint loader (bv_ckpt_load), and the model it builds.
 *
 * The first byte of an input is a mode, the rest the checkpoint file:
 *   bit 0  rewrite the last 4 bytes as the CRC-32 of the others, as an
 *          attacker would, so that mutations reach the header and the spec
 *          behind the CRC check
 *   bit 1  load it as the tool loads a teacher: expecting 1x4x4 inputs and 10
 *          classes (then run it on two samples)
 * A loaded model must hold what the file promised and only finite numbers
 * (docs/security.md: a checkpoint with NaN or Inf weights is refused, D15).
 */
#include "fuzz_common.h"

#include <math.h>
#include <zlib.h>

#include "nn.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	bv_nn_set_threads(1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512];
	unsigned char *file;
	bv_model *m = NULL;

	if (size < 1 || size > (1u << 22))
		return 0;
	const int mode = data[0];
	size_t len = size - 1;
	file = malloc(len ? len : 1);
	if (!file)
		abort();
	memcpy(file, data + 1, len);
	if ((mode & 1) && len >= 4) {
		uint32_t crc = (uint32_t)crc32(0L, file, (uInt)(len - 4));
		for (int i = 0; i < 4; i++)
			file[len - 4 + i] = (unsigned char)(crc >> (8 * i));
	}
	fz_path(path, sizeof path, "model.ckpt");
	fz_write(path, file, len);

	const bv_shape expect = {1, 4, 4};
	if (bv_ckpt_load(&m, path, mode & 2 ? &expect : NULL, mode & 2 ? 10 : 0) == 0) {
		if ((mode & 2) && (m->in_shape.c != 1 || m->in_shape.h != 4 || m->in_shape.w != 4 ||
				   m->n_classes != 10))
			fz_fail("bv_ckpt_load: the model does not have the expected shape", NULL);
		if (m->n_params * 4 > len || m->n_buffers * 4 > len)
			fz_fail("bv_ckpt_load: more numbers than the file holds", NULL);
		for (size_t i = 0; i < m->n_params; i++)
			if (!isfinite(m->params[i]))
				fz_fail("bv_ckpt_load: accepted a NaN or Inf weight (D15)", NULL);
		for (size_t i = 0; i < m->n_buffers; i++)
			if (!isfinite(m->buffers[i]))
				fz_fail("bv_ckpt_load: accepted a NaN or Inf buffer value (D15)", NULL);
		if (mode & 2) {
			float x[2 * 16], out[2 * 10];
			for (int i = 0; i < 32; i++)
				x[i] = (float)(i % 5) - 2.0f;
			bv_model_predict(m, out, x, 2, 2);
		}
		bv_model_free(m);
	}
	free(file);
	return 0;
}
