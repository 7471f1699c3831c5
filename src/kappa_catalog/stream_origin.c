/*-------------------------------------------------------------------------
 *
 * stream_origin.c
 *	  Streams restored from a dump: a stream's origin (the database that
 *	  runs it) and the dump's sentinel, kappa.zz_dump_sentinel, for the
 *	  launcher (bgw/launcher.c, launcher_adopt_restored).
 *
 * A dump's last kappa data is the row of zz_dump_sentinel, which holds
 * the origin of the database dumped (sql/kappa--0.2.sql says why it comes
 * last): once it is there, the streams of that origin have their positions,
 * views and dead letters, and the launcher makes them this database's
 * (their origin becomes this one's) and starts their workers.  Until then
 * they wait.  The sentinel then holds this database's origin alone, for
 * the next dump.
 *
 * Sections: every function runs in the launcher's catalog section; what
 * they return is in the current (SPI's) memory.  Each statement takes a
 * new snapshot, so it sees what the restore committed meanwhile.
 *
 * src/kappa_catalog/stream_origin.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/statement.h"
#include "kappa_catalog/stream_origin.h"

/*
 * Whether there is anything to adopt or to tidy: a sentinel that is not
 * this origin's alone, or a stream of another origin.
 */
bool
kappa_dump_sentinel_pending(const char *origin)
{
	static KappaStatement pending =
		KAPPA_STATEMENT("SELECT (SELECT count(*) <> 1 OR bool_or(origin <> $1) FROM kappa.zz_dump_sentinel) "
						"OR EXISTS (SELECT FROM kappa.streams WHERE origin <> $1)", "text");
	Datum		value = CStringGetTextDatum(origin);
	bool		isnull;

	kappa_statement_read(&pending, &value, NULL, 1);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Make the streams whose dump's sentinel is restored this origin's;
 * returns their names.
 */
List *
kappa_streams_adopt(const char *origin)
{
	static KappaStatement adopt =
		KAPPA_STATEMENT("UPDATE kappa.streams SET origin = $1 "
						"WHERE origin <> $1 AND origin IN (SELECT origin FROM kappa.zz_dump_sentinel) "
						"RETURNING name", "text");
	Datum		value = CStringGetTextDatum(origin);
	List	   *names = NIL;
	uint64		n;

	n = kappa_statement_run(&adopt, &value, NULL, SPI_OK_UPDATE_RETURNING, 0);
	for (uint64 i = 0; i < n; i++)
		names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return names;
}

/* The streams still of another origin, as KappaStreamWaiting. */
List *
kappa_streams_waiting(const char *origin)
{
	static KappaStatement waiting =
		KAPPA_STATEMENT("SELECT stream_id, name FROM kappa.streams WHERE origin <> $1", "text");
	Datum		value = CStringGetTextDatum(origin);
	List	   *streams = NIL;
	uint64		n;

	n = kappa_statement_run(&waiting, &value, NULL, SPI_OK_SELECT, 0);
	for (uint64 i = 0; i < n; i++)
	{
		KappaStreamWaiting *s = palloc(sizeof(KappaStreamWaiting));
		bool		isnull;

		s->stream_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		s->name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		streams = lappend(streams, s);
	}
	return streams;
}

/*
 * Leave the sentinel holding this origin, and the origins of streams not
 * adopted yet: a sentinel that arrived after kappa_streams_adopt stays
 * until its streams are adopted.
 */
void
kappa_dump_sentinel_reset(const char *origin)
{
	static KappaStatement forget_adopted =
		KAPPA_STATEMENT("DELETE FROM kappa.zz_dump_sentinel "
						"WHERE origin <> $1 AND origin NOT IN (SELECT origin FROM kappa.streams)",
						"text");
	static KappaStatement keep_own =
		KAPPA_STATEMENT("INSERT INTO kappa.zz_dump_sentinel (origin) SELECT $1 "
						"WHERE NOT EXISTS (SELECT FROM kappa.zz_dump_sentinel WHERE origin = $1)",
						"text");
	Datum		value = CStringGetTextDatum(origin);

	kappa_statement_run(&forget_adopted, &value, NULL, SPI_OK_DELETE, 0);
	kappa_statement_run(&keep_own, &value, NULL, SPI_OK_INSERT, 0);
}
