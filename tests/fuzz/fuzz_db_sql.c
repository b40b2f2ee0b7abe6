/*
 * fuzz_db_sql: a valid database that someone edited with sqlite3 before
 * sharing it. The input is SQL text; its statements are applied, one by one
 * and each on its own (a failing one is skipped), to a copy of the seed
 * database (BV_FUZZ_SEED_DB), then report, plot and decompose run on the
 * result (fuzz_db.h). The attacker's statements may do what a sqlite3 shell
 * does to one file: wrong labels, NULLs, huge or non-finite numbers, strings
 * with quotes, backquotes and newlines, dropped tables, views and triggers of
 * their own, PRAGMA writable_schema edits of sqlite_schema, user_version.
 *
 * What the attacker's part may not do, to keep this process in its own
 * directory and its time on bvtool: ATTACH (another file), VACUUM (VACUUM
 * INTO writes a file anywhere), statements running more than ~1e6 virtual
 * machine steps, values over 1 MB. bvtool's own reads are not limited.
 */
#include "fuzz_db.h"

#include <sqlite3.h>
#include <strings.h>

static int stop_long(void *ctx)
{
	return ++*(int *)ctx > 1000; /* 1000 callbacks of 1000 steps */
}

static int has_word(const char *s, const char *w)
{
	size_t n = strlen(w);
	for (; *s; s++)
		if (strncasecmp(s, w, n) == 0)
			return 1;
	return 0;
}

static void apply_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return;
	}
	sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
	sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1 << 20);
	int ticks = 0;
	sqlite3_progress_handler(db, 1000, stop_long, &ticks);
	const char *p = sql;
	while (*p) {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		ticks = 0;
		if (sqlite3_prepare_v2(db, p, -1, &st, &tail) != SQLITE_OK) {
			/* skip to the next statement */
			const char *semi = strchr(p, ';');
			p = semi ? semi + 1 : p + strlen(p);
			continue;
		}
		if (st) {
			for (int rows = 0; rows < 10000 && sqlite3_step(st) == SQLITE_ROW; rows++)
				;
			sqlite3_finalize(st);
		}
		if (!tail || tail == p)
			break;
		p = tail;
	}
	/* an open transaction (BEGIN without COMMIT) is committed, as the shell does on exit */
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512];
	size_t seed_len;
	const unsigned char *seed = fz_seed_db(&seed_len);

	if (size > 65536)
		return 0;
	char *sql = malloc(size + 1);
	if (!sql)
		abort();
	memcpy(sql, data, size);
	sql[size] = '\0';
	if (has_word(sql, "vacuum")) {
		free(sql);
		return 0;
	}
	fz_clear(fz_dir());
	fz_path(path, sizeof path, "in.db");
	fz_write(path, seed, seed_len);
	apply_sql(path, sql);
	free(sql);
	fz_analyse(path);
	return 0;
}
