/*
 * The arguments of sqlfn's functions, checked once: logits BLOBs, class
 * indices and temperatures, with the SQL error every function gives for the
 * same mistake ("bv_softmax: argument 1 is NULL, not a logits BLOB").
 */
#include "sqlfn_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void sqlfn_error(sqlite3_context *ctx, const char *fn, const char *fmt, ...)
{
	char msg[256];
	int n = snprintf(msg, sizeof msg, "%s: ", fn);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof msg)
		vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	sqlite3_result_error(ctx, msg, -1);
}

static const char *type_name(int type)
{
	switch (type) {
	case SQLITE_INTEGER:
		return "an INTEGER";
	case SQLITE_FLOAT:
		return "a REAL";
	case SQLITE_TEXT:
		return "TEXT";
	case SQLITE_NULL:
		return "NULL";
	default:
		return "a BLOB";
	}
}

int sqlfn_logits_get(sqlfn_logits *out, sqlite3_context *ctx, const char *fn, int arg,
		     sqlite3_value *v, int allow_empty)
{
	out->z = out->own = out->small;
	out->k = 0;
	int type = sqlite3_value_type(v);
	if (type != SQLITE_BLOB) {
		sqlfn_error(ctx, fn, "argument %d is %s, not a logits BLOB", arg, type_name(type));
		return -1;
	}
	int bytes = sqlite3_value_bytes(v);
	const void *p = sqlite3_value_blob(v);
	if (bytes % 4 != 0) {
		sqlfn_error(ctx, fn, "argument %d is a BLOB of %d bytes, not a multiple of 4 (float32 logits)",
			    arg, bytes);
		return -1;
	}
	if (bytes == 0 && !allow_empty) {
		sqlfn_error(ctx, fn, "argument %d is an empty BLOB (no classes)", arg);
		return -1;
	}
	out->k = bytes / 4;
	/* little-endian host, checked by CMake */
	if ((uintptr_t)p % _Alignof(float) == 0 && bytes) {
		out->z = p;
		return 0;
	}
	if (out->k > SQLFN_SMALL) {
		out->own = sqlite3_malloc64(sizeof(float) * (sqlite3_uint64)out->k);
		if (!out->own) {
			out->own = out->small;
			sqlite3_result_error_nomem(ctx);
			return -1;
		}
	}
	if (bytes)
		memcpy(out->own, p, (size_t)bytes);
	out->z = out->own;
	return 0;
}

void sqlfn_logits_release(sqlfn_logits *l)
{
	if (l->own != l->small)
		sqlite3_free(l->own);
	l->z = l->own = l->small;
}

int sqlfn_class_get(int *c, sqlite3_context *ctx, const char *fn, int arg, sqlite3_value *v, int k)
{
	int type = sqlite3_value_type(v);
	if (type == SQLITE_NULL)
		return 0;
	sqlite3_int64 i;
	if (type == SQLITE_INTEGER) {
		i = sqlite3_value_int64(v);
	} else {
		double d = type == SQLITE_FLOAT ? sqlite3_value_double(v) : NAN;
		if (!(d == floor(d))) { /* NaN, a fraction, TEXT or a BLOB */
			sqlfn_error(ctx, fn, "argument %d is %s, not a class index (an integer)", arg,
				    type == SQLITE_FLOAT ? "a REAL with a fraction" : type_name(type));
			return -1;
		}
		if (d < 0 || d >= k) /* a whole number out of range, 1e300 and inf too */
			return 0;
		i = (sqlite3_int64)d;
	}
	if (i < 0 || i >= k)
		return 0;
	*c = (int)i;
	return 1;
}

int sqlfn_temp_get(double *t, sqlite3_context *ctx, const char *fn, int arg, sqlite3_value *v)
{
	int type = sqlite3_value_type(v);
	if (type != SQLITE_INTEGER && type != SQLITE_FLOAT) {
		sqlfn_error(ctx, fn, "argument %d (the temperature) is %s, not a number", arg,
			    type_name(type));
		return -1;
	}
	*t = sqlite3_value_double(v);
	if (!(*t > 0) || !isfinite(*t)) {
		sqlfn_error(ctx, fn, "argument %d (the temperature) is %g; it must be finite and > 0",
			    arg, *t);
		return -1;
	}
	return 0;
}
