/*
 * Checkpoints: a model's spec, shapes, parameters and buffers (batch norm's
 * running statistics) in one versioned binary
 * file (layout in nn.h), written atomically and checked with a CRC-32 on load.
 * A checkpoint is untrusted input (docs/security.md): it is read through
 * bv_read_file (a regular file, no more than its size), every count is checked
 * against the file's length, the shape and class count against fixed limits
 * before a model is built, and the values must be finite (running variances
 * also >= 0), so damage is refused by name instead of surfacing as a diverged
 * training.
 */
#include "nn.h"

#include "internal.h"
#include "bvmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const unsigned char ckpt_magic[8] = {'B', 'V', 'C', 'K', 'P', 'T', 0, 0};

int bv_ckpt_save(const bv_model *m, const char *path)
{
	bv_buf b;
	int rc;
	bv_buf_init(&b);
	bv_buf_append(&b, ckpt_magic, sizeof ckpt_magic);
	bv_buf_u32(&b, BV_CKPT_VERSION);
	bv_buf_u32(&b, (uint32_t)strlen(m->spec));
	bv_buf_append(&b, m->spec, strlen(m->spec));
	bv_buf_u32(&b, (uint32_t)m->in_shape.c);
	bv_buf_u32(&b, (uint32_t)m->in_shape.h);
	bv_buf_u32(&b, (uint32_t)m->in_shape.w);
	bv_buf_u32(&b, (uint32_t)m->n_classes);
	bv_buf_u64(&b, (uint64_t)m->n_params);
	bv_buf_f32(&b, m->params, m->n_params);
	bv_buf_u64(&b, (uint64_t)m->n_buffers);
	bv_buf_f32(&b, m->buffers, m->n_buffers);
	if (b.failed) {
		rc = bv_error_set(BV_ENOMEM, "out of memory writing '%s'", path);
		goto done;
	}
	bv_buf_u32(&b, (uint32_t)crc32(0L, b.data, (uInt)b.len));
	rc = b.failed ? bv_error_set(BV_ENOMEM, "out of memory writing '%s'", path)
		      : bv_write_file_atomic(path, b.data, b.len);
done:
	bv_buf_release(&b);
	return rc;
}

static uint32_t rd_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The largest input (values per sample) and class count a checkpoint may
 * declare; beyond them the header is damage, refused before a model is built. */
enum { CKPT_MAX_INPUT = 1 << 24, CKPT_MAX_CLASSES = 1 << 16 };

static const char *op_name(bv_op op)
{
	switch (op) {
	case BV_OP_LINEAR:
		return "linear";
	case BV_OP_CONV:
		return "conv";
	case BV_OP_BN:
		return "batch norm";
	default:
		return "layer";
	}
}

/* The k-th tensor of a node: weight and bias, or batch norm's scale and shift. */
static const char *param_name(const bv_node *nd, int k)
{
	if (nd->op == BV_OP_BN)
		return k == 0 ? "scale" : "shift";
	return k == 0 ? "weight" : "bias";
}

static const char *nonfinite_text(float v)
{
	return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

/* A CRC proves the bytes are those written, not that they are a model: every
 * parameter must be finite, batch norm's running means finite and its running
 * variances finite and >= 0. The message names the tensor, its layer (1-based
 * node) and the index within the tensor. */
static int check_values(const bv_model *m, const char *path)
{
	for (int i = 0; i < m->n_nodes; i++) {
		const bv_node *nd = &m->nodes[i];
		for (int k = 0; k < nd->n_params; k++) {
			const float *p = m->params + nd->param_off[k];
			size_t j = bv_first_nonfinite(p, nd->param_size[k]);
			if (j < nd->param_size[k])
				return bv_error_set(BV_EFORMAT,
						    "checkpoint '%s': the %s of layer %d (%s) holds a non-finite value (%s) at %zu; the file is damaged",
						    path, param_name(nd, k), i + 1, op_name(nd->op),
						    nonfinite_text(p[j]), j);
		}
		if (nd->op != BV_OP_BN)
			continue;
		const size_t c = (size_t)nd->out_shape.c;
		const float *mean = m->buffers + nd->buf_off, *var = mean + c;
		size_t j = bv_first_nonfinite(mean, c);
		if (j < c)
			return bv_error_set(BV_EFORMAT,
					    "checkpoint '%s': the running mean of layer %d (batch norm) holds a non-finite value (%s) at %zu; the file is damaged",
					    path, i + 1, nonfinite_text(mean[j]), j);
		if ((j = bv_first_nonfinite(var, c)) < c)
			return bv_error_set(BV_EFORMAT,
					    "checkpoint '%s': the running variance of layer %d (batch norm) holds a non-finite value (%s) at %zu; the file is damaged",
					    path, i + 1, nonfinite_text(var[j]), j);
		for (j = 0; j < c; j++)
			if (var[j] < 0)
				return bv_error_set(BV_EFORMAT,
						    "checkpoint '%s': the running variance of layer %d (batch norm) holds a negative value (%g) at %zu; the file is damaged",
						    path, i + 1, (double)var[j], j);
	}
	/* (every parameter belongs to a node; this catches any that would not) */
	size_t j = bv_first_nonfinite(m->params, m->n_params);
	if (j < m->n_params)
		return bv_error_set(BV_EFORMAT,
				    "checkpoint '%s': parameter %zu holds a non-finite value (%s); the file is damaged",
				    path, j, nonfinite_text(m->params[j]));
	return 0;
}

int bv_ckpt_load(bv_model **out, const char *path, const bv_shape *expect_in,
		 int expect_classes)
{
	unsigned char *data = NULL;
	size_t len = 0, pos = 0;
	bv_model *m = NULL;
	nn_plan *plan = NULL;
	char spec[128];
	int rc;
	*out = NULL;
	if ((rc = bv_read_file(&data, &len, path)) != 0)
		goto done;
	if (len < 8 + 8 || memcmp(data, ckpt_magic, 8) != 0) {
		rc = bv_error_set(BV_EFORMAT, "'%s' is not a bvtool checkpoint (bad magic)", path);
		goto done;
	}
	pos = 8;
	uint32_t version = rd_u32(data + pos);
	pos += 4;
	if (version < 1 || version > BV_CKPT_VERSION) {
		rc = bv_error_set(BV_EFORMAT, "'%s': checkpoint version %u (this bvtool reads 1 to %d)",
				  path, version, BV_CKPT_VERSION);
		goto done;
	}
	uint32_t spec_len = rd_u32(data + pos);
	pos += 4;
	if (spec_len >= sizeof spec || pos + spec_len + 16 + 8 + 4 > len) {
		rc = bv_error_set(BV_EFORMAT, "'%s': truncated checkpoint", path);
		goto done;
	}
	memcpy(spec, data + pos, spec_len);
	spec[spec_len] = '\0';
	pos += spec_len;
	/* a spec is printable ASCII without spaces: no NUL cuts it short, no
	 * control byte reaches a terminal through a message */
	for (uint32_t i = 0; i < spec_len; i++)
		if (spec[i] < 0x21 || spec[i] > 0x7e) {
			rc = bv_error_set(BV_EFORMAT,
					  "checkpoint '%s': its model spec holds byte 0x%02x at %u; the file is damaged",
					  path, (unsigned)(unsigned char)spec[i], (unsigned)i);
			goto done;
		}
	const uint32_t c = rd_u32(data + pos), h = rd_u32(data + pos + 4), w = rd_u32(data + pos + 8);
	const uint32_t classes = rd_u32(data + pos + 12);
	pos += 16;
	uint64_t n_params = (uint64_t)rd_u32(data + pos) | (uint64_t)rd_u32(data + pos + 4) << 32;
	pos += 8;
	/* version 1: params then the CRC; version 2: params, u64 n_buffers, buffers, CRC */
	uint64_t n_buffers = 0;
	size_t buf_pos = 0;
	if (n_params > (len - pos) / 4) {
		rc = bv_error_set(BV_EFORMAT, "'%s': truncated checkpoint", path);
		goto done;
	}
	if (version >= 2) {
		buf_pos = pos + n_params * 4 + 8;
		if (buf_pos + 4 > len) {
			rc = bv_error_set(BV_EFORMAT, "'%s': truncated checkpoint", path);
			goto done;
		}
		n_buffers = (uint64_t)rd_u32(data + buf_pos - 8) | (uint64_t)rd_u32(data + buf_pos - 4) << 32;
		if (n_buffers > (len - buf_pos) / 4 || buf_pos + n_buffers * 4 + 4 != len) {
			rc = bv_error_set(BV_EFORMAT, "'%s': truncated checkpoint", path);
			goto done;
		}
	} else if (pos + n_params * 4 + 4 != len) {
		rc = bv_error_set(BV_EFORMAT, "'%s': truncated checkpoint", path);
		goto done;
	}
	if (rd_u32(data + len - 4) != (uint32_t)crc32(0L, data, (uInt)(len - 4))) {
		rc = bv_error_set(BV_EFORMAT, "'%s': checkpoint is corrupt (CRC mismatch)", path);
		goto done;
	}
	/* the header's numbers, range-checked before they size anything */
	if (c < 1 || h < 1 || w < 1 || (uint64_t)c * h * w > CKPT_MAX_INPUT) {
		rc = bv_error_set(BV_EFORMAT,
				  "checkpoint '%s': input shape %ux%ux%u is out of range (at most %d values, each from 1); the file is damaged",
				  path, (unsigned)c, (unsigned)h, (unsigned)w, CKPT_MAX_INPUT);
		goto done;
	}
	if (classes < 1 || classes > CKPT_MAX_CLASSES) {
		rc = bv_error_set(BV_EFORMAT,
				  "checkpoint '%s': class count %u is out of range (expected 1 to %d); the file is damaged",
				  path, (unsigned)classes, CKPT_MAX_CLASSES);
		goto done;
	}
	const bv_shape in = {(int)c, (int)h, (int)w};
	const int n_classes = (int)classes;
	if (expect_classes > 0 && n_classes != expect_classes) {
		rc = bv_error_set(BV_EMISMATCH, "checkpoint '%s' has %d classes, the data has %d", path,
				  n_classes, expect_classes);
		goto done;
	}
	if (expect_in && (in.c != expect_in->c || in.h != expect_in->h || in.w != expect_in->w)) {
		rc = bv_error_set(BV_EMISMATCH,
				  "checkpoint '%s' takes %dx%dx%d inputs, the data has %dx%dx%d", path,
				  in.c, in.h, in.w, expect_in->c, expect_in->h, expect_in->w);
		goto done;
	}
	/* the stored counts against the spec's before the model is allocated:
	 * a spec within the limits can still ask for gigabytes */
	if ((rc = nn_model_plan(&plan, spec, in, n_classes)) != 0) {
		rc = bv_error_prefix(BV_EFORMAT, "'%s'", path);
		goto done;
	}
	if (plan->n_params != n_params) {
		rc = bv_error_set(BV_EFORMAT, "'%s': %llu parameters stored, spec '%s' has %zu", path,
				  (unsigned long long)n_params, spec, plan->n_params);
		goto done;
	}
	if (plan->n_buffers != n_buffers && !(version == 1 && plan->n_buffers == 0)) {
		rc = bv_error_set(BV_EFORMAT, "'%s': %llu buffers stored, spec '%s' has %zu", path,
				  (unsigned long long)n_buffers, spec, plan->n_buffers);
		goto done;
	}
	if ((rc = nn_model_from_plan(&m, plan, spec, in, n_classes)) != 0) {
		rc = bv_error_prefix(BV_EFORMAT, "'%s'", path);
		goto done;
	}
	memcpy(m->params, data + pos, n_params * 4); /* little-endian hosts only, checked in CMake */
	if (n_buffers)
		memcpy(m->buffers, data + buf_pos, n_buffers * 4);
	if ((rc = check_values(m, path)) != 0)
		goto done;
	*out = m;
	m = NULL;
done:
	bv_model_free(m);
	free(plan);
	free(data);
	return rc;
}
