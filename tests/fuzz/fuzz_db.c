/*
 * fuzz_db: a whole database file from someone else. The input is written as
 * the database, then report, plot and decompose run on it (fuzz_db.h). A
 * SQLite file is a poor thing to mutate byte by byte (most mutants are "not a
 * database"), so fuzz_db_sql edits a valid database with SQL instead; this
 * target covers the file format itself: headers, user_version and
 * application_id, page damage, WAL flags.
 */
#include "fuzz_db.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512];
	if (size > (1u << 22))
		return 0;
	fz_clear(fz_dir());
	fz_path(path, sizeof path, "in.db");
	fz_write(path, data, size);
	fz_analyse(path);
	return 0;
}
