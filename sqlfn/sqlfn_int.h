/*
 * sqlfn's private seam: the SQLite API as this build sees it, and the
 * argument helpers every function file shares. Built into bvtool the API is
 * <sqlite3.h>'s; built as the loadable extension (BV_SQLFN_EXTENSION) every
 * sqlite3_* call goes through the routines table the loading library hands
 * to sqlite3_bvtoolsql_init (<sqlite3ext.h>), so the module works in a client
 * linked against any SQLite >= 3.38.
 */
#ifndef BV_SQLFN_INT_H
#define BV_SQLFN_INT_H

#ifdef BV_SQLFN_EXTENSION
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
#else
#include <sqlite3.h>
#endif

#include <stddef.h>

/* A logits argument: K floats, read in place when the BLOB is aligned for
 * float (SQLite's own copies are), else copied into small when they fit, or
 * into memory of sqlite3_malloc64. _release frees it. */
#define SQLFN_SMALL 1024
typedef struct sqlfn_logits {
	const float *z;
	float *own; /* small or from sqlite3_malloc64, when copied */
	int k;
	float small[SQLFN_SMALL];
} sqlfn_logits;

/* Reads argument v of function fn (named in messages, arg its 1-based
 * position) into out. 0 on success (k may be 0 for an empty BLOB only when
 * allow_empty); -1 with the SQL error set on ctx when v is NULL, not a
 * BLOB, not a multiple of 4 bytes, empty (unless allow_empty) or memory runs
 * out. */
int sqlfn_logits_get(sqlfn_logits *out, sqlite3_context *ctx, const char *fn, int arg,
		     sqlite3_value *v, int allow_empty);
void sqlfn_logits_release(sqlfn_logits *l);

/* A class argument (label or class index): 1 with *c set; 0 when v is NULL
 * or out of [0, k) (the result stays NULL); -1 with the error set when v is
 * not an integer. */
int sqlfn_class_get(int *c, sqlite3_context *ctx, const char *fn, int arg, sqlite3_value *v,
		    int k);

/* A temperature argument: 0 with *t set; -1 with the error set when v is
 * NULL, not a number, not finite or not > 0. */
int sqlfn_temp_get(double *t, sqlite3_context *ctx, const char *fn, int arg, sqlite3_value *v);

/* Sets "fn: <message>" as ctx's error. */
void sqlfn_error(sqlite3_context *ctx, const char *fn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The per-file registrations, called by bv_sqlfn_register. */
int sqlfn_scalar_register(sqlite3 *h);
int sqlfn_json_register(sqlite3 *h);
int sqlfn_aggregate_register(sqlite3 *h);
int sqlfn_vtab_register(sqlite3 *h);

#endif
