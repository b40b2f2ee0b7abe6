/*
 * Writing a NumPy .npy array (npy.h): a format 1.0 header byte for byte as
 * NumPy writes it, then the elements, streamed by the caller, into a fresh
 * temporary beside the target that a commit fsyncs and renames into place and
 * an abort removes (bv_npy_writer_*; bv_npy_write for a whole array at once).
 */
#include "npy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- writing ----------------------------------------------------------- */

int bv_npy_writer_open(bv_npy_writer *w, const char *path, const char *descr, int ndim,
		       const int64_t *shape)
{
	char dict[512], shape_text[256];
	unsigned char head[PREFIX_MAX + sizeof dict + 64];
	int rc, fd = -1;
	FILE *f = NULL;

	memset(w, 0, sizeof *w);
	if (strlen(path) >= sizeof w->path)
		return bv_error_set(BV_EINVAL,
				    "cannot write '%.80s...': path longer than %zu bytes", path,
				    sizeof w->path - 1);
	snprintf(w->path, sizeof w->path, "%s", path);
	if (strcmp(descr, "<f4") == 0 || strcmp(descr, "<f8") == 0 || strcmp(descr, "<i8") == 0)
		w->itemsize = descr[2] - '0';
	else
		return bv_error_set(
			BV_EINVAL, "cannot write '%s': dtype '%s' (expected '<f4', '<f8' or '<i8')",
			path, descr);
	snprintf(w->descr, sizeof w->descr, "%s", descr);
	if (ndim < 0 || ndim > BV_NPY_MAX_DIMS)
		return bv_error_set(BV_EINVAL, "cannot write '%s': %d dimensions (expected 0..%d)",
				    path, ndim, BV_NPY_MAX_DIMS);
	int64_t count = 1;
	int zero = 0;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return bv_error_set(BV_EINVAL,
					    "cannot write '%s': dimension %d is %" PRId64, path, i,
					    shape[i]);
		zero |= shape[i] == 0;
	}
	for (int i = 0; i < ndim && !zero; i++) {
		if (count > INT64_MAX / 8 / shape[i])
			return bv_error_set(BV_EINVAL, "cannot write '%s': shape too large", path);
		count *= shape[i];
	}
	w->count = zero ? 0 : count;
	if ((rc = bv_check_output(path)) != 0 || (rc = bv_check_output_dir(path)) != 0)
		return rc;

	/* NumPy's own header, byte for byte: the dict, spaces, '\n', the data
	 * starting at a multiple of 64 (format.py's _wrap_header) */
	int dlen = snprintf(dict, sizeof dict,
			    "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
			    bv_npy_shape_text(shape_text, sizeof shape_text, ndim, shape));
	const size_t pad = 64 - (10 + (size_t)dlen + 1) % 64;
	const size_t hlen = (size_t)dlen + pad + 1;
	memcpy(head, npy_magic, 6);
	head[6] = 1;
	head[7] = 0;
	head[8] = (unsigned char)(hlen & 0xff);
	head[9] = (unsigned char)(hlen >> 8);
	memcpy(head + 10, dict, (size_t)dlen);
	memset(head + 10 + dlen, ' ', pad);
	head[10 + hlen - 1] = '\n';

	/* a fresh temporary beside path (O_EXCL, O_NOFOLLOW: never one someone
	 * planted); a name that is taken is skipped and left alone */
	for (int k = 0; fd < 0 && k < 100; k++) {
		snprintf(w->tmp, sizeof w->tmp, "%s.tmp%ld.%d", path, (long)getpid(), k);
		fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			return bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
	}
	if (fd < 0)
		return bv_error_set(BV_EIO, "cannot write '%s': no free temporary name beside it",
				    path);
	if (!(f = fdopen(fd, "wb"))) {
		rc = bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
		close(fd);
		unlink(w->tmp);
		return rc;
	}
	if (fwrite(head, 1, 10 + hlen, f) != 10 + hlen) {
		rc = bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
		fclose(f);
		unlink(w->tmp);
		return rc;
	}
	w->f = f;
	w->pos = 0;
	return 0;
}

int bv_npy_writer_put(bv_npy_writer *w, const void *data, int64_t n)
{
	if (!w->f)
		return bv_error_set(BV_EINVAL, "cannot write '%s': not open", w->path);
	if (n < 0 || n > w->count - w->pos) {
		int rc = bv_error_set(BV_EINVAL,
				      "cannot write '%s': %" PRId64
				      " elements put at element %" PRId64 " of %" PRId64,
				      w->path, n, w->pos, w->count);
		bv_npy_writer_abort(w);
		return rc;
	}
	const size_t bytes = (size_t)n * (size_t)w->itemsize;
	if (bytes && fwrite(data, 1, bytes, w->f) != bytes) {
		int rc = bv_error_set(BV_EIO, "cannot write '%s': %s", w->path, strerror(errno));
		bv_npy_writer_abort(w);
		return rc;
	}
	w->pos += n;
	return 0;
}

int bv_npy_writer_commit(bv_npy_writer *w)
{
	int rc = 0;
	if (!w->f)
		return bv_error_set(BV_EINVAL, "cannot write '%s': not open", w->path);
	if (w->pos != w->count) {
		rc = bv_error_set(BV_EINVAL,
				  "cannot write '%s': %" PRId64 " of %" PRId64 " elements put",
				  w->path, w->pos, w->count);
		bv_npy_writer_abort(w);
		return rc;
	}
	FILE *f = w->f;
	w->f = NULL;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		rc = bv_error_set(BV_EIO, "cannot write '%s': %s", w->path, strerror(errno));
		fclose(f);
	} else if (fclose(f) != 0) {
		rc = bv_error_set(BV_EIO, "cannot write '%s': %s", w->path, strerror(errno));
	} else if (rename(w->tmp, w->path) != 0) {
		rc = bv_error_set(BV_EIO, "cannot write '%s': %s", w->path, strerror(errno));
	}
	if (rc)
		unlink(w->tmp);
	return rc;
}

void bv_npy_writer_abort(bv_npy_writer *w)
{
	if (!w || !w->f)
		return;
	fclose(w->f);
	w->f = NULL;
	unlink(w->tmp);
}

int bv_npy_write(const char *path, const char *descr, int ndim, const int64_t *shape,
		 const void *data)
{
	bv_npy_writer w;
	int rc = bv_npy_writer_open(&w, path, descr, ndim, shape);
	if (rc == 0)
		rc = bv_npy_writer_put(&w, data, w.count);
	if (rc == 0)
		rc = bv_npy_writer_commit(&w);
	bv_npy_writer_abort(&w);
	return rc;
}
