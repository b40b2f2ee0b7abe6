/*
 * db's private seam between the schema (schema.c: the tables and views of
 * every schema version, the migrations between them, the SQL functions) and
 * the connection and data code (db.c). Not installed, not included outside db/.
 */
#ifndef BV_DB_SCHEMA_H
#define BV_DB_SCHEMA_H

#include <sqlite3.h>
#include <stddef.h>

/* Upgrade the open connection's database from schema version `from` to
 * BV_DB_SCHEMA_VERSION, setting user_version and application_id. The caller
 * holds the write transaction. Returns a SQLite result code: SQLITE_RANGE,
 * with nothing run, when `from` is outside 0..BV_DB_SCHEMA_VERSION. */
int db_schema_migrate(sqlite3 *h, int from);

/* Does the connection's database hold every table and view of the current
 * schema, each with all its columns (by name; extra objects and columns are
 * allowed)? SQLITE_OK when it does; SQLITE_SCHEMA when not, with `what` saying
 * what is missing ("it has no table 'runs'", "table 'samples' has no column
 * 'split'", "'predictions' is a table, not a view"); another SQLite code when
 * the schema could not be read (the message on h). */
int db_schema_check(sqlite3 *h, char *what, size_t size);

#endif
