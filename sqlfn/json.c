/*
 * bv_logits_json(z) and bv_logits(json): a logits BLOB as a JSON array of
 * numbers and back, for display and for clients that cannot read float32.
 * Each float is written with the fewest significant digits (at most 9) that
 * read back to the same float, so bv_logits(bv_logits_json(z)) = z for
 * finite logits; NaN and the infinities, which JSON cannot hold, are written
 * as null, and null reads back as NaN. Parsing is jansson's.
 */
#include "sqlfn_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shortest "%.*g" of f that strtof reads back as f (9 digits always do;
 * subnormals may need fewer than 6). At most 15 characters: "-1.23456789e-38". */
static int format_float(char *buf, size_t size, float f)
{
	int n = 0;
	for (int digits = 1; digits <= 9; digits++) {
		n = snprintf(buf, size, "%.*g", digits, (double)f);
		if (strtof(buf, NULL) == f)
			break;
	}
	return n;
}

static void fn_logits_json(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlfn_logits z;
	if (sqlfn_logits_get(&z, ctx, "bv_logits_json", 1, argv[0], 1) != 0) {
		sqlfn_logits_release(&z);
		return;
	}
	/* ELEM bytes hold any element and its ", " (15 + 2, and the terminating
	 * NUL snprintf writes) */
	enum { ELEM = 24 };
	const size_t size = ELEM * (size_t)z.k + 3;
	char *out = sqlite3_malloc64(size);
	if (!out) {
		sqlite3_result_error_nomem(ctx);
		sqlfn_logits_release(&z);
		return;
	}
	size_t n = 0;
	out[n++] = '[';
	for (int c = 0; c < z.k; c++) {
		if (c) {
			out[n++] = ',';
			out[n++] = ' ';
		}
		if (isfinite(z.z[c]))
			n += (size_t)format_float(out + n, size - n, z.z[c]);
		else
			n += (size_t)snprintf(out + n, size - n, "null");
	}
	out[n++] = ']';
	sqlite3_result_text(ctx, out, (int)n, sqlite3_free);
	sqlfn_logits_release(&z);
}

static void fn_logits(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	static const char fn[] = "bv_logits";
	int type = sqlite3_value_type(argv[0]);
	if (type != SQLITE_TEXT) {
		sqlfn_error(ctx, fn, "argument 1 is not TEXT (a JSON array of numbers)");
		return;
	}
	const char *text = (const char *)sqlite3_value_text(argv[0]);
	size_t len = (size_t)sqlite3_value_bytes(argv[0]);
	json_error_t err;
	json_t *a = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &err);
	if (!a) {
		sqlfn_error(ctx, fn, "not JSON at character %d: %s", err.position, err.text);
		return;
	}
	if (!json_is_array(a)) {
		sqlfn_error(ctx, fn, "the JSON is not an array of numbers");
		json_decref(a);
		return;
	}
	size_t k = json_array_size(a);
	float *z = sqlite3_malloc64(sizeof(float) * (sqlite3_uint64)k + 1);
	if (!z) {
		sqlite3_result_error_nomem(ctx);
		json_decref(a);
		return;
	}
	for (size_t c = 0; c < k; c++) {
		json_t *v = json_array_get(a, c);
		if (json_is_null(v)) {
			z[c] = NAN;
		} else if (json_is_number(v)) {
			z[c] = (float)json_number_value(v);
			if (!isfinite(z[c])) {
				sqlfn_error(ctx, fn, "element %zu (%g) is out of float32's range", c,
					    json_number_value(v));
				goto fail;
			}
		} else {
			sqlfn_error(ctx, fn, "element %zu is not a number", c);
			goto fail;
		}
	}
	json_decref(a);
	sqlite3_result_blob64(ctx, z, sizeof(float) * (sqlite3_uint64)k, sqlite3_free);
	return;
fail:
	sqlite3_free(z);
	json_decref(a);
}

int sqlfn_json_register(sqlite3 *h)
{
	const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
	int rc = sqlite3_create_function_v2(h, "bv_logits_json", 1, flags, NULL, fn_logits_json,
					    NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function_v2(h, "bv_logits", 1, flags, NULL, fn_logits, NULL,
						NULL, NULL);
	return rc;
}
