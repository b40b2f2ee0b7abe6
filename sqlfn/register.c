/*
 * bv_sqlfn_register, and the entry point of the loadable extension:
 * sqlite3_bvtoolsql_init, the name SQLite derives from the file name
 * bvtool_sql.so (".load build/bvtool_sql" in the shell,
 * conn.load_extension("build/bvtool_sql") in Python).
 */
#include "sqlfn_int.h"

#ifdef BV_SQLFN_EXTENSION
SQLITE_EXTENSION_INIT1
#endif

#include "sqlfn.h"

int bv_sqlfn_register(sqlite3 *h)
{
	int rc = sqlfn_scalar_register(h);
	if (rc == SQLITE_OK)
		rc = sqlfn_json_register(h);
	if (rc == SQLITE_OK)
		rc = sqlfn_aggregate_register(h);
	if (rc == SQLITE_OK)
		rc = sqlfn_vtab_register(h);
	return rc;
}

#ifdef BV_SQLFN_EXTENSION
/* The oldest SQLite whose routines this module calls (sqlite3_vtab_in and
 * its iterators arrived in 3.38.0): an older library's routines table is
 * shorter, so loading is refused before any of them is reached. */
#define MIN_VERSION 3038000

__attribute__((visibility("default"))) int sqlite3_bvtoolsql_init(sqlite3 *h, char **err,
								  const sqlite3_api_routines *api)
{
	SQLITE_EXTENSION_INIT2(api);
	if (sqlite3_libversion_number() < MIN_VERSION) {
		*err = sqlite3_mprintf("bvtool_sql needs SQLite 3.38.0 or later; this is %s",
				       sqlite3_libversion());
		return SQLITE_ERROR;
	}
	int rc = bv_sqlfn_register(h);
	if (rc != SQLITE_OK)
		*err = sqlite3_mprintf("bvtool_sql: cannot register its functions: %s",
				       sqlite3_errmsg(h));
	return rc;
}
#endif
