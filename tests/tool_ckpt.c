/*
 * Test helper: write a freshly initialised checkpoint of a given spec, input
 * shape and class count, so CLI tests can hand bvtool a mismatched teacher;
 * optionally with one parameter or buffer (batch norm's running statistics)
 * set to a value such as nan, inf or -1; or patch a u32 of an existing
 * checkpoint's header. Either way the CRC is valid, so that only bvtool's
 * range checks can refuse the file.
 *   tool_ckpt OUT SPEC C H W CLASSES [param|buffer INDEX VALUE]
 *   tool_ckpt --patch FILE OFFSET U32
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nn.h"

static int usage(void)
{
	fprintf(stderr, "usage: tool_ckpt OUT SPEC C H W CLASSES [param|buffer INDEX VALUE]\n"
			"       tool_ckpt --patch FILE OFFSET U32\n");
	return 2;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Overwrite the u32 at `offset` and recompute the trailing CRC-32. */
static int patch(const char *path, const char *offset, const char *value)
{
	unsigned char *data = NULL;
	size_t len = 0;
	unsigned long off = strtoul(offset, NULL, 0);
	uint32_t v = (uint32_t)strtoul(value, NULL, 0);
	int rc = bv_read_file(&data, &len, path);
	if (rc == 0 && (len < 4 || off + 4 > len - 4))
		rc = bv_error_set(BV_EINVAL, "offset %lu is outside the %zu-byte '%s'", off, len, path);
	if (rc == 0) {
		put_u32(data + off, v);
		put_u32(data + len - 4, (uint32_t)crc32(0L, data, (uInt)(len - 4)));
		rc = bv_write_file_atomic(path, data, len);
	}
	free(data);
	if (rc)
		fprintf(stderr, "tool_ckpt: %s\n", bv_error_last());
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	bv_model *m = NULL;
	if (argc == 5 && strcmp(argv[1], "--patch") == 0)
		return patch(argv[2], argv[3], argv[4]);
	if (argc != 7 && argc != 10)
		return usage();
	bv_shape in = {atoi(argv[3]), atoi(argv[4]), atoi(argv[5])};
	if (bv_model_new(&m, argv[2], in, atoi(argv[6])) != 0)
		goto fail;
	bv_model_init(m, 1);
	if (argc == 10) {
		const int buffer = strcmp(argv[7], "buffer") == 0;
		size_t i = strtoul(argv[8], NULL, 10), n = buffer ? m->n_buffers : m->n_params;
		if (!buffer && strcmp(argv[7], "param") != 0) {
			bv_model_free(m);
			return usage();
		}
		if (i >= n) {
			bv_error_set(BV_EINVAL, "%s %zu: the model has %zu", argv[7], i, n);
			goto fail;
		}
		(buffer ? m->buffers : m->params)[i] = strtof(argv[9], NULL);
	}
	if (bv_ckpt_save(m, argv[1]) != 0)
		goto fail;
	bv_model_free(m);
	return 0;
fail:
	fprintf(stderr, "tool_ckpt: %s\n", bv_error_last());
	bv_model_free(m);
	return 1;
}
