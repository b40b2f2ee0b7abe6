/*
 * The header of a NumPy .npy array (npy.h): magic, version, header length and
 * the dict of dtype, order and shape, each checked, for bv_npy_open (npy.c)
 * and, on its own, for the fuzz target (bv_npy_parse_header); with the
 * messages that quote a header's bytes (npy_printable, bad_header) and
 * bv_npy_shape_text.
 *
 * The header is a Python dict literal; it is parsed here by a small scanner
 * for exactly the literals NumPy writes (strings, True/False, a tuple of
 * whole numbers) and skips a list (a structured descr) only to name it. It
 * never evaluates anything, and every byte it looks at is inside the header
 * length, which is capped (BV_NPY_MAX_HEADER) before the header is read.
 */
#include "npy_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* ---- messages ---------------------------------------------------------- */

/* s[0..n) for a message: printable ASCII kept, anything else as '?', at most
 * `cap - 1` bytes ("..." when cut), so that a crafted header or member name
 * can neither break the one-line message nor make it long. */
const char *npy_printable(char *out, size_t cap, const unsigned char *s, size_t n)
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
	npy_printable(text, sizeof text, d, n);
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
int npy_parse_prefix(bv_npy *a, const unsigned char *data, size_t len, size_t *total)
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
	if ((rc = npy_parse_prefix(a, data, len, &total)) != 0)
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
				npy_printable(k, sizeof k, key_text, key_len));
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
