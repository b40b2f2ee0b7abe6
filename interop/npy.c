/*
 * Reading NumPy's .npy arrays, alone or as members of an .npz archive
 * (libzip), sequentially in chunks the caller chooses (npy.h is the contract).
 * The header is checked by npy_header.c; writing is npy_write.c.
 *
 * Reading: '<f4' (and '<i8') go straight from read()/zip_fread into the
 * caller's buffer, the path the importer takes for gigabytes of logits; every
 * other dtype passes through one bounded conversion buffer (BUF_BYTES), so
 * that memory stays the same whatever the array's size. The data size is
 * checked against the file (or the member's uncompressed size) at open, so a
 * truncated array is refused before any element is read; a read that still
 * comes up short (the file changed) is an error, and the caller's buffer is
 * zeroed rather than left half-filled. The last read of an .npz member also
 * asks for one byte more: libzip checks the member's CRC and size there.
 */
#include "npy_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#define BUF_BYTES (1u << 20) /* the conversion buffer of a non-direct dtype */
#define MAX_LISTED 6         /* members named when an .npz has no such member */

/* ---- reading ----------------------------------------------------------- */

/* What an open bv_npy holds in priv. */
typedef struct npy_src {
	int fd;    /* a plain .npy file, or -1 */
	zip_t *za; /* an .npz archive and its member */
	zip_file_t *zf;
	unsigned char *buf; /* (BUF_BYTES) conversion buffer; NULL for the direct dtypes */
	int failed;         /* a read failed: every later read fails too */
} npy_src;

static void src_free(npy_src *s)
{
	if (!s)
		return;
	if (s->zf)
		zip_fclose(s->zf);
	if (s->za)
		zip_discard(s->za); /* read-only: nothing to write back */
	if (s->fd >= 0)
		close(s->fd);
	free(s->buf);
	free(s);
}

/* A failed zip_fread: the disk's failure is BV_EIO; a bad CRC, a corrupt
 * deflate stream or a size that does not add up is the archive's (BV_EFORMAT). */
static int zip_read_error(zip_file_t *zf, const char *where)
{
	const int ze = zip_error_code_zip(zip_file_get_error(zf));
	return bv_error_set(ze == ZIP_ER_READ || ze == ZIP_ER_SEEK ? BV_EIO : BV_EFORMAT,
			    "cannot read '%s': %s", where, zip_file_strerror(zf));
}

/* Exactly n bytes into dst, or an error naming the file. */
static int src_read(npy_src *s, const char *where, void *dst, size_t n)
{
	unsigned char *p = dst;
	while (n > 0) {
		if (s->zf) {
			zip_int64_t r = zip_fread(s->zf, p, n);
			if (r < 0)
				return zip_read_error(s->zf, where);
			if (r == 0)
				return bv_error_set(
					BV_EIO,
					"cannot read '%s': the member ended %zu bytes early", where,
					n);
			p += r;
			n -= (size_t)r;
		} else {
			ssize_t r = read(s->fd, p, n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return bv_error_set(BV_EIO, "cannot read '%s': %s", where,
						    strerror(errno));
			if (r == 0)
				return bv_error_set(BV_EIO,
						    "cannot read '%s': the file ended %zu bytes "
						    "early (changed while read?)",
						    where, n);
			p += r;
			n -= (size_t)r;
		}
	}
	return 0;
}

/* The ".npz:" a path "dir/f.npz:member" is split at (the last one), or NULL. */
static const char *npz_split(const char *path)
{
	const char *at = NULL;
	for (const char *p = strstr(path, ".npz:"); p; p = strstr(p + 1, ".npz:"))
		at = p;
	return at && at[5] ? at : NULL;
}

/* "a, b, c, d, e, f, ... 12 in all": the members of an archive, without ".npy" as
 * np.load(...).files names them. */
static void list_members(char *out, size_t cap, zip_t *za)
{
	const zip_int64_t n = zip_get_num_entries(za, 0);
	size_t k = 0;
	out[0] = '\0';
	for (zip_int64_t i = 0; i < n && i < MAX_LISTED && k < cap; i++) {
		const char *name = zip_get_name(za, (zip_uint64_t)i, 0);
		char text[64];
		size_t len = name ? strlen(name) : 0;
		if (len > 4 && strcmp(name + len - 4, ".npy") == 0)
			len -= 4;
		k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? ", " : "",
				      npy_printable(text, sizeof text,
						    (const unsigned char *)(name ? name : "?"),
						    len));
	}
	if (n == 0 && cap > 6)
		snprintf(out, cap, "none");
	else if (n > MAX_LISTED && k < cap)
		snprintf(out + k, cap - k, ", ... %" PRId64 " in all", (int64_t)n);
}

/* Open the member of "f.npz:member" (member, or member.npy): its size in *size. */
static int open_member(npy_src *s, const char *path, const char *split, uint64_t *size)
{
	const size_t alen = (size_t)(split - path) + 4;
	const char *member = split + 5;
	char *archive = NULL, *alt = NULL;
	int fd = -1, err = 0, rc = 0;
	zip_error_t ze;

	if (!(archive = malloc(alen + 1)) || !(alt = malloc(strlen(member) + 5))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory opening '%s'", path);
		goto done;
	}
	memcpy(archive, path, alen);
	archive[alen] = '\0';
	sprintf(alt, "%s.npy", member);
	/* a regular file only (a FIFO would hang libzip's reads) */
	if ((rc = bv_open_input(&fd, &(size_t){0}, archive)) != 0)
		goto done;
	if (!(s->za = zip_fdopen(fd, ZIP_RDONLY, &err))) {
		zip_error_init_with_code(&ze, err);
		if (err == ZIP_ER_NOZIP)
			rc = bv_error_set(BV_EFORMAT, "'%s' is not a zip archive (an .npz)",
					  archive);
		else if (err == ZIP_ER_INCONS || err == ZIP_ER_COMPNOTSUPP ||
			 err == ZIP_ER_ENCRNOTSUPP)
			rc = bv_error_set(BV_EFORMAT, "'%s': bad zip archive: %s", archive,
					  zip_error_strerror(&ze));
		else
			rc = bv_error_set(err == ZIP_ER_MEMORY ? BV_ENOMEM : BV_EIO,
					  "cannot open '%s': %s", archive, zip_error_strerror(&ze));
		zip_error_fini(&ze);
		goto done;
	}
	fd = -1; /* the archive's now */
	zip_int64_t idx = zip_name_locate(s->za, member, 0);
	if (idx < 0)
		idx = zip_name_locate(s->za, alt, 0);
	if (idx < 0) {
		char list[320], text[80];
		list_members(list, sizeof list, s->za);
		rc = bv_error_set(BV_EIO, "'%s' has no member '%s' (members: %s)", archive,
				  npy_printable(text, sizeof text, (const unsigned char *)member,
						strlen(member)),
				  list);
		goto done;
	}
	zip_stat_t st;
	zip_stat_init(&st);
	if (zip_stat_index(s->za, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
		rc = bv_error_set(BV_EFORMAT, "'%s': bad zip archive: %s", path,
				  zip_strerror(s->za));
		goto done;
	}
	if (!(s->zf = zip_fopen_index(s->za, (zip_uint64_t)idx, 0))) {
		rc = bv_error_set(BV_EFORMAT, "cannot read '%s': %s", path, zip_strerror(s->za));
		goto done;
	}
	*size = st.size;
done:
	if (fd >= 0)
		close(fd);
	free(archive);
	free(alt);
	return rc;
}

int bv_npy_open(bv_npy *a, const char *path)
{
	unsigned char *hdr = NULL;
	uint64_t avail = 0;
	size_t got, total, offset;
	int rc = 0;
	npy_src *s;

	memset(a, 0, sizeof *a);
	if (strlen(path) >= sizeof a->where) {
		memcpy(a->where, path, sizeof a->where - 1); /* cut, for messages */
		return bv_error_set(BV_EINVAL, "cannot open '%.80s...': path longer than %zu bytes",
				    path, sizeof a->where - 1);
	}
	snprintf(a->where, sizeof a->where, "%s", path);
	if (!(s = calloc(1, sizeof *s)))
		return bv_error_set(BV_ENOMEM, "out of memory opening '%s'", path);
	s->fd = -1;
	const char *split = npz_split(path);
	if (split) {
		if ((rc = open_member(s, path, split, &avail)) != 0)
			goto done;
	} else {
		size_t size;
		if ((rc = bv_open_input(&s->fd, &size, path)) != 0)
			goto done;
		avail = size;
	}

	/* magic, version, length: 10 bytes, 12 from version 2.0 */
	if (!(hdr = malloc(PREFIX_MAX + BV_NPY_MAX_HEADER))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory opening '%s'", path);
		goto done;
	}
	got = avail < 10 ? (size_t)avail : 10;
	if ((rc = src_read(s, path, hdr, got)) != 0)
		goto done;
	if (got == 10 && hdr[6] >= 2 && avail > 10) {
		const size_t more = avail >= 12 ? 2 : 1;
		if ((rc = src_read(s, path, hdr + 10, more)) != 0)
			goto done;
		got += more;
	}
	if ((rc = npy_parse_prefix(a, hdr, got, &total)) != 0)
		goto done;
	if (total > avail) {
		rc = bv_error_set(BV_EFORMAT, "'%s': truncated header (%" PRIu64 " of %zu bytes)",
				  path, avail, total);
		goto done;
	}
	if ((rc = src_read(s, path, hdr + got, total - got)) != 0)
		goto done;
	if ((rc = bv_npy_parse_header(a, hdr, total, &offset, path)) != 0)
		goto done;

	const uint64_t want = (uint64_t)a->count * (uint64_t)a->itemsize, have = avail - total;
	if (have != want) {
		char shape[256];
		rc = bv_error_set(BV_EFORMAT,
				  "'%s': %s: %" PRIu64 " data bytes, expected %" PRIu64
				  " for shape %s of '%s'",
				  path, have < want ? "truncated" : "trailing bytes", have, want,
				  bv_npy_shape_text(shape, sizeof shape, a->ndim, a->shape),
				  a->descr);
		goto done;
	}
	const int direct = strcmp(a->descr + 1, "f4") == 0 || strcmp(a->descr + 1, "i8") == 0;
	if (!direct && !(s->buf = malloc(BUF_BYTES))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory opening '%s'", path);
		goto done;
	}
	a->pos = 0;
	a->priv = s;
	s = NULL;
done:
	free(hdr);
	src_free(s);
	if (rc) {
		/* nothing open, and no header fields that look valid */
		char where[sizeof a->where];
		memcpy(where, a->where, sizeof where);
		memset(a, 0, sizeof *a);
		memcpy(a->where, where, sizeof where);
	}
	return rc;
}

void bv_npy_close(bv_npy *a)
{
	if (!a || !a->priv)
		return;
	src_free(a->priv);
	a->priv = NULL;
}

/* float16 bits -> float32, exactly: normals rebiased, subnormals normalised,
 * inf and NaN (payload kept) carried over. */
static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu,
		 bits;
	if (exp == 0x1f)
		bits = sign | 0x7f800000u | mant << 13;
	else if (exp != 0)
		bits = sign | (exp + 112) << 23 | mant << 13; /* 112 = 127 - 15 */
	else if (mant == 0)
		bits = sign;
	else {
		/* mant * 2^-24 = 1.f * 2^(p - 24), p the top bit of mant; float exponent p + 103 */
		uint32_t e = 113;
		while (!(mant & 0x400u)) {
			mant <<= 1;
			e--;
		}
		bits = sign | e << 23 | (mant & 0x3ffu) << 13;
	}
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* The checks every read makes; 1 when there is nothing to read. */
static int read_check(bv_npy *a, int64_t n, int want_float)
{
	if (!a->priv)
		return bv_error_set(BV_EINVAL, "cannot read '%s': not open", a->where);
	npy_src *s = a->priv;
	if (s->failed)
		return bv_error_set(BV_EIO, "cannot read '%s': an earlier read failed", a->where);
	if (want_float && a->kind != 'f')
		return bv_error_set(BV_EINVAL, "'%s' holds %s, expected floats", a->where,
				    a->descr);
	if (!want_float && a->kind == 'f')
		return bv_error_set(BV_EINVAL, "'%s' holds %s, expected integers", a->where,
				    a->descr);
	if (n < 0 || n > a->count - a->pos)
		return bv_error_set(BV_EINVAL,
				    "cannot read '%s': %" PRId64
				    " elements asked at element %" PRId64 " of %" PRId64,
				    a->where, n, a->pos, a->count);
	return 0;
}

/* After the last element of an .npz member (n more bring pos to count):
 * libzip checks the CRC and the size when its stream reaches the end, which
 * takes one more read. */
static int read_end(bv_npy *a, npy_src *s, int64_t n)
{
	unsigned char extra;
	if (!s->zf || a->pos + n != a->count)
		return 0;
	zip_int64_t r = zip_fread(s->zf, &extra, 1);
	if (r < 0)
		return zip_read_error(s->zf, a->where);
	if (r > 0)
		return bv_error_set(BV_EFORMAT, "'%s': the member holds more data than its size",
				    a->where);
	return 0;
}

/* float16 or float64 elements of buf as float32 */
static int convert_float(bv_npy *a, void *out, const unsigned char *buf, size_t m, int64_t base)
{
	float *o = out;
	(void)base;
	if (a->itemsize == 2) {
		for (size_t i = 0; i < m; i++) {
			uint16_t h;
			memcpy(&h, buf + 2 * i, 2);
			o[i] = half_to_float(h);
		}
	} else {
		/* to nearest; past FLT_MAX, inf (IEC 60559, C11 Annex F) */
		for (size_t i = 0; i < m; i++) {
			double d;
			memcpy(&d, buf + 8 * i, 8);
			o[i] = (float)d;
		}
	}
	return 0;
}

/* The next n elements into out (elements of out_size bytes): read straight
 * into it when `direct` (the dtype is out's own), else through the bounded
 * buffer and `convert`. A failed read leaves out zeroed and the array failed. */
static int read_elements(bv_npy *a, void *out, size_t out_size, int64_t n, int direct,
			 int (*convert)(bv_npy *, void *, const unsigned char *, size_t, int64_t))
{
	npy_src *s = a->priv;
	int rc = 0;
	if (direct) {
		rc = src_read(s, a->where, out, (size_t)n * out_size);
	} else {
		const size_t per = BUF_BYTES / (size_t)a->itemsize;
		for (int64_t done = 0; done < n && rc == 0;) {
			const size_t m = (size_t)(n - done) < per ? (size_t)(n - done) : per;
			if ((rc = src_read(s, a->where, s->buf, m * (size_t)a->itemsize)) != 0)
				break;
			rc = convert(a, (unsigned char *)out + (size_t)done * out_size, s->buf, m,
				     a->pos + done);
			done += (int64_t)m;
		}
	}
	if (rc == 0)
		rc = read_end(a, s, n);
	if (rc) {
		s->failed = 1;
		memset(out, 0, (size_t)n * out_size);
		return rc;
	}
	a->pos += n;
	return 0;
}

int bv_npy_read_f32(bv_npy *a, float *out, int64_t n)
{
	const int rc = read_check(a, n, 1);
	if (rc || n == 0)
		return rc;
	return read_elements(a, out, sizeof *out, n, a->itemsize == 4, convert_float);
}

/* m elements of an integer dtype from buf into o; element index base + i in messages */
static int convert_int(bv_npy *a, void *out, const unsigned char *buf, size_t m, int64_t base)
{
	int64_t *o = out;
	const int size = a->itemsize;
	if (a->kind == 'b') {
		for (size_t i = 0; i < m; i++) {
			if (buf[i] > 1)
				return bv_error_set(BV_EFORMAT,
						    "'%s': element %" PRId64
						    " of '%s' is the byte %u, not 0 or 1",
						    a->where, base + (int64_t)i, a->descr, buf[i]);
			o[i] = buf[i];
		}
	} else if (a->kind == 'i') {
		for (size_t i = 0; i < m; i++) {
			if (size == 1) {
				o[i] = (int8_t)buf[i];
			} else if (size == 2) {
				int16_t v;
				memcpy(&v, buf + 2 * i, 2);
				o[i] = v;
			} else if (size == 4) {
				int32_t v;
				memcpy(&v, buf + 4 * i, 4);
				o[i] = v;
			} else {
				memcpy(&o[i], buf + 8 * i, 8);
			}
		}
	} else {
		for (size_t i = 0; i < m; i++) {
			if (size == 1) {
				o[i] = buf[i];
			} else if (size == 2) {
				uint16_t v;
				memcpy(&v, buf + 2 * i, 2);
				o[i] = v;
			} else if (size == 4) {
				uint32_t v;
				memcpy(&v, buf + 4 * i, 4);
				o[i] = v;
			} else {
				uint64_t v;
				memcpy(&v, buf + 8 * i, 8);
				if (v > (uint64_t)INT64_MAX)
					return bv_error_set(BV_EFORMAT,
							    "'%s': element %" PRId64 " is %" PRIu64
							    ", beyond int64's %" PRId64,
							    a->where, base + (int64_t)i, v,
							    INT64_MAX);
				o[i] = (int64_t)v;
			}
		}
	}
	return 0;
}

int bv_npy_read_i64(bv_npy *a, int64_t *out, int64_t n)
{
	const int rc = read_check(a, n, 0);
	if (rc || n == 0)
		return rc;
	return read_elements(a, out, sizeof *out, n, a->kind == 'i' && a->itemsize == 8,
			     convert_int);
}
