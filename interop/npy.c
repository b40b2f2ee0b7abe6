/*
 * NumPy's .npy arrays, alone or as members of an .npz archive (libzip), read
 * sequentially in chunks the caller chooses, and written atomically (npy.h is
 * the contract).
 *
 * The header is a Python dict literal; it is parsed here by a small scanner
 * for exactly the literals NumPy writes (strings, True/False, a tuple of
 * whole numbers) and skips a list (a structured descr) only to name it. It
 * never evaluates anything, and every byte it looks at is inside the header
 * length, which is capped (BV_NPY_MAX_HEADER) before the header is read.
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
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#define BUF_BYTES (1u << 20) /* the conversion buffer of a non-direct dtype */
#define PREFIX_MAX 12        /* magic (6), version (2), header length (2 or 4) */
#define MAX_LISTED 6         /* members named when an .npz has no such member */

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* ---- messages ---------------------------------------------------------- */

/* s[0..n) for a message: printable ASCII kept, anything else as '?', at most
 * `cap - 1` bytes ("..." when cut), so that a crafted header or member name
 * can neither break the one-line message nor make it long. */
static const char *printable(char *out, size_t cap, const unsigned char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < cap; i++) {
		if (k + 4 >= cap && i + 1 < n) {
			memcpy(out + k, "...", 3);
			k += 3;
			break;
		}
		out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	}
	out[k] = '\0';
	return out;
}

static int bad_header(const char *where, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int bad_header(const char *where, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return bv_error_set(BV_EFORMAT, "'%s': bad header: %s", where, msg);
}

const char *bv_npy_shape_text(char *out, size_t size, int ndim, const int64_t *shape)
{
	size_t k = 0;
	if (size == 0)
		return out;
	out[0] = '\0';
	/* Python's repr of a tuple: (), (5,), (3, 4) */
	k += (size_t)snprintf(out + k, size - k, "(");
	for (int i = 0; i < ndim && k < size; i++)
		k += (size_t)snprintf(out + k, size - k, "%s%" PRId64, i ? ", " : "", shape[i]);
	if (k < size)
		snprintf(out + k, size - k, ndim == 1 ? ",)" : ")");
	return out;
}

/* ---- the header -------------------------------------------------------- */

/* A cursor over the header's dict text. */
typedef struct scan {
	const unsigned char *p, *start, *end;
	const char *where;
} scan;

static void skip_ws(scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* "unexpected 'x' at byte 12" / "... byte 0x07 ..." / "... end of the header" */
static int unexpected(scan *s, const char *wanted)
{
	size_t at = (size_t)(s->p - s->start);
	if (s->p >= s->end)
		return bad_header(s->where, "expected %s, found the end of the header", wanted);
	if (*s->p >= 0x20 && *s->p < 0x7f)
		return bad_header(s->where, "expected %s at byte %zu of the dict, found '%c'",
				  wanted, at, *s->p);
	return bad_header(s->where, "expected %s at byte %zu of the dict, found byte 0x%02x",
			  wanted, at, *s->p);
}

static int expect_char(scan *s, char c, const char *wanted)
{
	skip_ws(s);
	if (s->p >= s->end || *s->p != (unsigned char)c)
		return unexpected(s, wanted);
	s->p++;
	return 0;
}

/* A Python string literal without escapes ('...' or "..."): its body. */
static int scan_string(scan *s, const unsigned char **out, size_t *out_len)
{
	skip_ws(s);
	if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
		return unexpected(s, "a quoted string");
	const unsigned char q = *s->p++;
	const unsigned char *b = s->p;
	while (s->p < s->end && *s->p != q) {
		if (*s->p == '\\' || *s->p == '\n' || *s->p == '\r')
			return bad_header(
				s->where,
				"an escape or line break in a string at byte %zu of the dict",
				(size_t)(s->p - s->start));
		s->p++;
	}
	if (s->p >= s->end)
		return bad_header(s->where, "a string that does not end");
	*out = b;
	*out_len = (size_t)(s->p - b);
	s->p++;
	return 0;
}

/* Skip a list, tuple or dict literal (a structured descr) to its closing
 * bracket, strings included; nested 64 deep at most. */
static int skip_brackets(scan *s)
{
	char stack[64];
	int depth = 0;
	do {
		if (s->p >= s->end)
			return bad_header(s->where, "a list that does not end");
		const unsigned char c = *s->p;
		if (c == '\'' || c == '"') {
			const unsigned char *b;
			size_t n;
			int rc = scan_string(s, &b, &n);
			if (rc)
				return rc;
			continue;
		}
		if (c == '[' || c == '(' || c == '{') {
			if (depth == (int)sizeof stack)
				return bad_header(s->where, "brackets nested too deep");
			stack[depth++] = c == '[' ? ']' : c == '(' ? ')' : '}';
		} else if (c == ']' || c == ')' || c == '}') {
			if (depth == 0 || stack[depth - 1] != (char)c)
				return unexpected(s, "a matching bracket");
			depth--;
		}
		s->p++;
	} while (depth > 0);
	return 0;
}

/* A whole number >= 0 of the shape tuple (Python 2's "3L" too, in 1.0 and 2.0). */
static int scan_dim(scan *s, int major, int64_t *out)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == '-')
		return bad_header(s->where, "a negative dimension in 'shape'");
	if (s->p >= s->end || *s->p < '0' || *s->p > '9')
		return unexpected(s, "a dimension");
	if (*s->p == '0' && s->p + 1 < s->end && s->p[1] >= '0' && s->p[1] <= '9')
		return bad_header(s->where, "a dimension with a leading zero");
	uint64_t v = 0;
	while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
		const unsigned d = (unsigned)(*s->p - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return bad_header(s->where, "a dimension beyond 2^63 - 1 in 'shape'");
		v = v * 10 + d;
		s->p++;
	}
	if (major <= 2 && s->p < s->end && (*s->p == 'L' || *s->p == 'l'))
		s->p++;
	*out = (int64_t)v;
	return 0;
}

/* "(" ")" | "(" dim [","] ")" | "(" dim ("," dim)+ [","] ")" */
static int scan_shape(scan *s, int major, int *ndim, int64_t *shape)
{
	int rc;
	skip_ws(s);
	if (s->p >= s->end || *s->p != '(')
		return bad_header(s->where, "'shape' is not a tuple");
	s->p++;
	*ndim = 0;
	skip_ws(s);
	if (s->p < s->end && *s->p == ')') {
		s->p++;
		return 0;
	}
	for (;;) {
		int64_t d = 0;
		if ((rc = scan_dim(s, major, &d)) != 0)
			return rc;
		if (*ndim == BV_NPY_MAX_DIMS)
			return bad_header(s->where, "'shape' has more than %d dimensions",
					  BV_NPY_MAX_DIMS);
		shape[(*ndim)++] = d;
		skip_ws(s);
		if (s->p < s->end && *s->p == ')') {
			s->p++;
			return 0;
		}
		if ((rc = expect_char(s, ',', "',' or ')' in 'shape'")) != 0)
			return rc;
		skip_ws(s);
		if (s->p < s->end && *s->p == ')') {
			s->p++;
			return 0;
		}
	}
}

/* The descr string: [<=|>] kind size, for the kinds bvtool reads. */
static int check_descr(bv_npy *a, const unsigned char *d, size_t n)
{
	char text[48];
	printable(text, sizeof text, d, n);
	const char order = n > 0 ? (char)d[0] : 0;
	const char kind = n > 1 ? (char)d[1] : 0;
	int size = 0;
	if (n == 3 && d[2] >= '1' && d[2] <= '9')
		size = d[2] - '0';
	const int known = (order == '<' || order == '>' || order == '=' || order == '|') &&
			  ((kind == 'f' && (size == 2 || size == 4 || size == 8)) ||
			   ((kind == 'i' || kind == 'u') &&
			    (size == 1 || size == 2 || size == 4 || size == 8)) ||
			   (kind == 'b' && size == 1));
	if (!known)
		return bv_error_set(BV_EFORMAT,
				    "'%s': dtype '%s' is not supported (expected float16/32/64 "
				    "logits or integer labels)",
				    a->where, text);
	/* the byte order of one byte does not matter; '|' ("not applicable") is
	 * NumPy's for those, '=' is native, and this machine is little-endian */
	if (size > 1 && order == '>')
		return bv_error_set(
			BV_EFORMAT,
			"'%s': dtype '%s' is big-endian; save it little-endian (a.astype('<%c%d'))",
			a->where, text, kind, size);
	if (size > 1 && order == '|')
		return bv_error_set(BV_EFORMAT,
				    "'%s': dtype '%s' has no byte order (expected '<%c%d')",
				    a->where, text, kind, size);
	memcpy(a->descr, d, n);
	a->descr[n] = '\0';
	a->kind = kind;
	a->itemsize = size;
	return 0;
}

/* Magic, version and header length: the header's total size (prefix + dict). */
static int parse_prefix(bv_npy *a, const unsigned char *data, size_t len, size_t *total)
{
	const size_t m = len < sizeof npy_magic ? len : sizeof npy_magic;
	if (len == 0)
		return bv_error_set(BV_EFORMAT, "'%s': not an .npy file (empty)", a->where);
	if (memcmp(data, npy_magic, m) != 0)
		return bv_error_set(BV_EFORMAT, "'%s': not an .npy file (bad magic)", a->where);
	if (len < 8)
		return bv_error_set(BV_EFORMAT, "'%s': truncated header (%zu bytes)", a->where,
				    len);
	a->major = data[6];
	a->minor = data[7];
	if ((a->major != 1 && a->major != 2 && a->major != 3) || a->minor != 0)
		return bv_error_set(
			BV_EFORMAT,
			"'%s': unsupported .npy format version %d.%d (expected 1.0, 2.0 or 3.0)",
			a->where, a->major, a->minor);
	const size_t prefix = a->major == 1 ? 10 : 12;
	if (len < prefix)
		return bv_error_set(BV_EFORMAT, "'%s': truncated header (%zu bytes)", a->where,
				    len);
	uint32_t hlen = (uint32_t)data[8] | (uint32_t)data[9] << 8;
	if (a->major >= 2)
		hlen |= (uint32_t)data[10] << 16 | (uint32_t)data[11] << 24;
	if (hlen > BV_NPY_MAX_HEADER)
		return bad_header(a->where, "%" PRIu32 " bytes long, more than %d", hlen,
				  BV_NPY_MAX_HEADER);
	*total = prefix + hlen;
	return 0;
}

/* The keys of the header dict, all three required (as NumPy requires them) */
enum { KEY_DESCR, KEY_ORDER, KEY_SHAPE };
static const char *const header_keys[3] = {"descr", "fortran_order", "shape"};

int bv_npy_parse_header(bv_npy *a, const unsigned char *data, size_t len, size_t *data_offset,
			const char *where)
{
	size_t total;
	int rc, seen[3] = {0, 0, 0};
	const unsigned char *descr = NULL;
	size_t descr_len = 0;
	int structured = 0;

	if (where != a->where)
		snprintf(a->where, sizeof a->where, "%s", where);
	a->major = a->minor = 0;
	a->kind = 0;
	a->itemsize = 0;
	a->descr[0] = '\0';
	a->fortran_order = 0;
	a->ndim = 0;
	a->count = 0;
	*data_offset = 0;
	if ((rc = parse_prefix(a, data, len, &total)) != 0)
		return rc;
	if (len < total)
		return bv_error_set(BV_EFORMAT, "'%s': truncated header (%zu of %zu bytes)",
				    a->where, len, total);

	scan s = {data + (a->major == 1 ? 10 : 12), data + (a->major == 1 ? 10 : 12), data + total,
		  a->where};
	if ((rc = expect_char(&s, '{', "'{'")) != 0)
		return rc;
	for (;;) {
		const unsigned char *key_text;
		size_t key_len;
		skip_ws(&s);
		if (s.p < s.end && *s.p == '}') {
			s.p++;
			break;
		}
		if ((rc = scan_string(&s, &key_text, &key_len)) != 0)
			return rc;
		if ((rc = expect_char(&s, ':', "':' after a key")) != 0)
			return rc;
		int key = -1;
		for (int k = 0; k < 3; k++)
			if (key_len == strlen(header_keys[k]) &&
			    memcmp(key_text, header_keys[k], key_len) == 0)
				key = k;
		if (key < 0) {
			char k[48];
			return bad_header(
				a->where,
				"unknown key '%s' (expected 'descr', 'fortran_order', 'shape')",
				printable(k, sizeof k, key_text, key_len));
		}
		if (seen[key])
			return bad_header(a->where, "the key '%s' twice", header_keys[key]);
		seen[key] = 1;
		skip_ws(&s);
		if (key == KEY_DESCR) {
			if (s.p < s.end && *s.p == '[') {
				structured = 1;
				if ((rc = skip_brackets(&s)) != 0)
					return rc;
			} else if (s.p < s.end && (*s.p == '\'' || *s.p == '"')) {
				if ((rc = scan_string(&s, &descr, &descr_len)) != 0)
					return rc;
			} else {
				return bad_header(a->where,
						  "'descr' is neither a string nor a list");
			}
		} else if (key == KEY_ORDER) {
			const size_t left = (size_t)(s.end - s.p);
			if (left >= 4 && memcmp(s.p, "True", 4) == 0) {
				a->fortran_order = 1;
				s.p += 4;
			} else if (left >= 5 && memcmp(s.p, "False", 5) == 0) {
				a->fortran_order = 0;
				s.p += 5;
			} else {
				return bad_header(a->where, "'fortran_order' is not True or False");
			}
			/* "Truex" is a name, not True */
			if (s.p < s.end && (*s.p == '_' || (*s.p >= '0' && *s.p <= '9') ||
					    ((*s.p | 0x20) >= 'a' && (*s.p | 0x20) <= 'z')))
				return bad_header(a->where, "'fortran_order' is not True or False");
		} else {
			if ((rc = scan_shape(&s, a->major, &a->ndim, a->shape)) != 0)
				return rc;
		}
		skip_ws(&s);
		if (s.p < s.end && *s.p == '}') {
			s.p++;
			break;
		}
		if ((rc = expect_char(&s, ',', "',' or '}'")) != 0)
			return rc;
	}
	/* then only the padding: spaces and the newline NumPy ends the header with */
	int newline = 0;
	for (; s.p < s.end; s.p++) {
		if (*s.p == '\n')
			newline = 1;
		else if (*s.p != ' ' && *s.p != '\t' && *s.p != '\r')
			return unexpected(&s, "only padding after the dict");
	}
	if (!newline)
		return bad_header(a->where, "it does not end with a newline");
	for (int k = 0; k < 3; k++)
		if (!seen[k])
			return bad_header(a->where, "no '%s' key", header_keys[k]);

	if (structured)
		return bv_error_set(
			BV_EFORMAT,
			"'%s': a structured dtype (descr is a list) is not supported (expected "
			"float16/32/64 logits or integer labels)",
			a->where);
	if ((rc = check_descr(a, descr, descr_len)) != 0)
		return rc;
	char shape_text[256];
	if (a->fortran_order && a->ndim >= 2)
		return bv_error_set(
			BV_EFORMAT,
			"'%s': a Fortran-ordered array of shape %s is not supported; save a "
			"C-ordered "
			"one (np.save(path, np.ascontiguousarray(a)))",
			a->where,
			bv_npy_shape_text(shape_text, sizeof shape_text, a->ndim, a->shape));
	/* count = prod(shape) (1 for a 0-d array, 0 when any dimension is 0) */
	int64_t count = 1;
	int zero = 0;
	for (int i = 0; i < a->ndim; i++)
		zero |= a->shape[i] == 0;
	for (int i = 0; i < a->ndim && !zero; i++) {
		if (count > INT64_MAX / a->shape[i])
			return bad_header(a->where, "shape %s holds more than 2^63 - 1 elements",
					  bv_npy_shape_text(shape_text, sizeof shape_text, a->ndim,
							    a->shape));
		count *= a->shape[i];
	}
	if (zero)
		count = 0;
	if (count > (INT64_MAX - (int64_t)total) / a->itemsize)
		return bad_header(
			a->where, "shape %s of '%s' is more than 2^63 - 1 bytes",
			bv_npy_shape_text(shape_text, sizeof shape_text, a->ndim, a->shape),
			a->descr);
	a->count = count;
	*data_offset = total;
	return 0;
}

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
				      printable(text, sizeof text,
						(const unsigned char *)(name ? name : "?"), len));
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
		rc = bv_error_set(
			BV_EIO, "'%s' has no member '%s' (members: %s)", archive,
			printable(text, sizeof text, (const unsigned char *)member, strlen(member)),
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
	if ((rc = parse_prefix(a, hdr, got, &total)) != 0)
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

int bv_npy_read_f32(bv_npy *a, float *out, int64_t n)
{
	int rc = read_check(a, n, 1);
	if (rc || n == 0)
		return rc;
	npy_src *s = a->priv;
	if (a->itemsize == 4) {
		rc = src_read(s, a->where, out, (size_t)n * 4);
	} else {
		const size_t per = BUF_BYTES / (size_t)a->itemsize;
		for (int64_t done = 0; done < n && rc == 0;) {
			const size_t m = (size_t)(n - done) < per ? (size_t)(n - done) : per;
			if ((rc = src_read(s, a->where, s->buf, m * (size_t)a->itemsize)) != 0)
				break;
			float *o = out + done;
			if (a->itemsize == 2) {
				for (size_t i = 0; i < m; i++) {
					uint16_t h;
					memcpy(&h, s->buf + 2 * i, 2);
					o[i] = half_to_float(h);
				}
			} else {
				/* to nearest; past FLT_MAX, inf (IEC 60559, C11 Annex F) */
				for (size_t i = 0; i < m; i++) {
					double d;
					memcpy(&d, s->buf + 8 * i, 8);
					o[i] = (float)d;
				}
			}
			done += (int64_t)m;
		}
	}
	if (rc == 0)
		rc = read_end(a, s, n);
	if (rc) {
		s->failed = 1;
		memset(out, 0, (size_t)n * sizeof *out);
		return rc;
	}
	a->pos += n;
	return 0;
}

/* m elements of an integer dtype from buf into o; element index base + i in messages */
static int convert_int(bv_npy *a, int64_t *o, const unsigned char *buf, size_t m, int64_t base)
{
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
	int rc = read_check(a, n, 0);
	if (rc || n == 0)
		return rc;
	npy_src *s = a->priv;
	if (a->kind == 'i' && a->itemsize == 8) {
		rc = src_read(s, a->where, out, (size_t)n * 8);
	} else {
		const size_t per = BUF_BYTES / (size_t)a->itemsize;
		for (int64_t done = 0; done < n && rc == 0;) {
			const size_t m = (size_t)(n - done) < per ? (size_t)(n - done) : per;
			if ((rc = src_read(s, a->where, s->buf, m * (size_t)a->itemsize)) != 0)
				break;
			rc = convert_int(a, out + done, s->buf, m, a->pos + done);
			done += (int64_t)m;
		}
	}
	if (rc == 0)
		rc = read_end(a, s, n);
	if (rc) {
		s->failed = 1;
		memset(out, 0, (size_t)n * sizeof *out);
		return rc;
	}
	a->pos += n;
	return 0;
}

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
