/*
 * npy: NumPy's .npy arrays, alone or as members of an .npz archive, read and
 * written for the import/export layout (docs/import.md).
 *
 * Reading: format versions 1.0, 2.0 and 3.0 (NumPy's format.py, "Format
 * Version 1.0" ff.); a header dict with 'descr', 'fortran_order' and 'shape'.
 * Data types: little-endian (or '|', or '=' on this little-endian machine)
 * floats '<f2', '<f4', '<f8', read as float32 (f2 exactly, f8 rounded to
 * nearest), and integers of any width ('i1'..'i8', 'u1'..'u8', '|b1'), read
 * as int64. A big-endian, complex, structured, object or string dtype is
 * refused. fortran_order True is accepted for 0-d and 1-d arrays (the same
 * bytes) and refused for more dimensions. The data must be exactly
 * prod(shape) x itemsize bytes: a truncated file or member, or trailing
 * bytes, is refused before any element is read.
 *
 * A path "dir/f.npz:member" addresses the member "member" (or "member.npy")
 * of a zip archive read through libzip (stored or deflated); a path that
 * does not end in ".npz:<something>" is a plain .npy file.
 *
 * Elements are read sequentially, in chunks the caller chooses, so that an
 * (E, N, K) array is never in memory at once. Every failure is a BV_E* code
 * with a one-line message naming the file (and member):
 *   BV_EIO      the file or member is missing or cannot be read
 *   BV_EFORMAT  not an .npy (bad magic, version, header), truncated,
 *               unsupported dtype or order, not a zip archive
 *   BV_EINVAL   a read of a kind the dtype does not hold (floats as integers)
 */
#ifndef BV_NPY_H
#define BV_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define BV_NPY_MAX_DIMS 8
#define BV_NPY_MAX_HEADER 65536 /* header bytes refused beyond this */

typedef struct bv_npy {
	char where[1200];       /* the path as given, for messages */
	int major, minor;       /* format version */
	char kind;              /* 'f' float, 'i' signed, 'u' unsigned, 'b' bool */
	int itemsize;           /* bytes per element */
	char descr[16];         /* as in the header, e.g. "<f4" */
	int fortran_order;
	int ndim;
	int64_t shape[BV_NPY_MAX_DIMS];
	int64_t count;          /* prod(shape): elements in the array */
	int64_t pos;            /* elements read so far */
	void *priv;             /* the file or zip member; NULL once closed */
} bv_npy;

/* Open `path` (an .npy, or "f.npz:member"), read and check its header and its
 * data size. On error nothing stays open. */
int bv_npy_open(bv_npy *a, const char *path);
/* The next n elements (pos..pos+n, n <= count - pos) as float32 / int64.
 * float32 from a float dtype only; int64 from an integer or bool dtype only
 * (BV_EINVAL "'x.npy' holds <descr>, expected integers"). */
int bv_npy_read_f32(bv_npy *a, float *out, int64_t n);
int bv_npy_read_i64(bv_npy *a, int64_t *out, int64_t n);
void bv_npy_close(bv_npy *a); /* NULL-safe, idempotent */

/* "(3, 4)": a shape for messages. */
const char *bv_npy_shape_text(char *out, size_t size, int ndim, const int64_t *shape);

/* Parse an .npy header from `data` (the first len bytes of a file): fills the
 * header fields of a (not priv, pos) and *data_offset, the byte where the data
 * starts. `where` names the file in messages. The parser the reader uses, on
 * its own for the fuzz target. */
int bv_npy_parse_header(bv_npy *a, const unsigned char *data, size_t len, size_t *data_offset,
			const char *where);

/*
 * Writing: a format 1.0 .npy of '<f4', '<f8' or '<i8' (descr), C order,
 * written atomically (a temporary file beside path, fsync, rename; on any
 * failure path is untouched and the temporary removed). Streaming: open with
 * the whole shape, put the elements in order (any number of puts), commit;
 * a commit before count elements are put is BV_EINVAL and aborts.
 */
typedef struct bv_npy_writer {
	char path[1200];
	char tmp[1240];
	char descr[8];
	int itemsize;
	int64_t count, pos;
	void *f;                /* FILE *; NULL once committed or aborted */
} bv_npy_writer;

int bv_npy_writer_open(bv_npy_writer *w, const char *path, const char *descr, int ndim,
		       const int64_t *shape);
int bv_npy_writer_put(bv_npy_writer *w, const void *data, int64_t n); /* n elements of descr */
int bv_npy_writer_commit(bv_npy_writer *w);
void bv_npy_writer_abort(bv_npy_writer *w); /* NULL-safe, idempotent */
/* The whole array at once: open, put, commit. */
int bv_npy_write(const char *path, const char *descr, int ndim, const int64_t *shape,
		 const void *data);

#endif
