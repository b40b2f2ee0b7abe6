/*
 * db's private seam between the schema (schema.c: the tables and views of
 * every schema version, the migrations between them, the SQL functions) and
 * the connection and data code (db.c). Not installed, not included outside db/.
 */
#ifndef BV_DB_SCHEMA_H
#define BV_DB_SCHEMA_H

#include <sqlite3.h>

/* Upgrade the open connection's database from schema version `from` to
 * BV_DB_SCHEMA_VERSION, setting user_version and application_id. The caller
 * holds the write transaction. Returns a SQLite result code. */
int db_schema_migrate(sqlite3 *h, int from);

/* Register bv_argmax, bv_logit and bv_softmax on a connection. Returns a
 * SQLite result code. */
int db_schema_functions(sqlite3 *h);

#endif
