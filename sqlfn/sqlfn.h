/*
 * sqlfn: bvtool's SQL functions, for any SQLite connection. One
 * implementation built twice: into bvtool (db/ registers it on every
 * connection it opens) and into the loadable extension build/bvtool_sql.so
 * (sqlite3_bvtoolsql_init, for the sqlite3 shell, Python and every other
 * SQLite client). docs/sql.md is the reference for the functions:
 *   scalars over a logits BLOB (K little-endian float32): bv_nclasses,
 *   bv_argmax, bv_logit, bv_softmax, bv_log_softmax, bv_ce, bv_entropy,
 *   bv_kl, bv_soft_ce, bv_wsl_weight, bv_logits_json, bv_logits;
 *   aggregates over the replicas of one sample: bv_bias, bv_variance,
 *   bv_loss (SPEC.md's Heskes decomposition), bv_geomean;
 *   the virtual table bv_predictions: the predictions view, streamed from
 *   the snapshots and in sample order when a GROUP BY asks for it.
 * The formulas are math/'s; this layer turns SQL values into its arguments.
 */
#ifndef BV_SQLFN_H
#define BV_SQLFN_H

#include <sqlite3.h>

/* Registers every function and the virtual table on connection h: SQLITE_OK
 * or an SQLite error code (the message is sqlite3_errmsg(h)). */
int bv_sqlfn_register(sqlite3 *h);

#endif
