/*-------------------------------------------------------------------------
 *
 * view_query_fuzz.c
 *	  libFuzzer target for kappa's view-query compiler, driven through a
 *	  running server.
 *
 * The compiler (src/engine/compile.c) runs inside a backend, on Postgres's own
 * parser and analyser, so it cannot be linked into a fuzzer.  This target
 * is libFuzzer's mutation engine on the outside instead: each input is
 * given, as a query, to kappa_create_view over libpq (the server in
 * KAPPA_FUZZ_CONNINFO has a stream "fz"), and the answer must be a view
 * (then dropped again) or an error with a proper SQLSTATE.  An internal
 * error (XX000, elog) or a lost connection (a crashed backend) aborts, and
 * libFuzzer saves the input.  There is no coverage from inside the server:
 * the outcome (a view, or the error's SQLSTATE class) is the feedback,
 * each outcome taking its own branch here, so that libFuzzer keeps inputs
 * that reach a new kind of answer.  Run it with -keep_seed=1, so that every
 * query of the corpus (test/fuzz/corpus/view_query) stays to be mutated.
 *
 * test/fuzz/view_query_fuzz.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define MAX_QUERY 8192

static PGconn *conn;
static volatile int outcomes[8];

/*
 * A branch per kind of answer: libFuzzer sees these edges as coverage.
 * The classes are those the compiler answers with most.
 */
static void
note_outcome(const char *state)
{
	if (state == NULL)
		outcomes[0]++;			/* a view */
	else if (strncmp(state, "0A", 2) == 0)
		outcomes[1]++;			/* feature not supported: refused by name */
	else if (strncmp(state, "42601", 5) == 0)
		outcomes[2]++;			/* syntax error */
	else if (strncmp(state, "42", 2) == 0)
		outcomes[3]++;			/* other analysis errors */
	else if (strncmp(state, "22", 2) == 0)
		outcomes[4]++;			/* data exceptions (window sizes, ...) */
	else if (strncmp(state, "54", 2) == 0)
		outcomes[5]++;			/* limits exceeded */
	else if (strncmp(state, "57", 2) == 0)
		outcomes[6]++;			/* canceled: statement_timeout */
	else
		outcomes[7]++;
}

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *conninfo = getenv("KAPPA_FUZZ_CONNINFO");
	PGresult   *res;

	conn = PQconnectdb(conninfo ? conninfo : "");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "view_query_fuzz: cannot connect: %s", PQerrorMessage(conn));
		exit(2);
	}
	res = PQexec(conn, "SET statement_timeout = '5s'");
	PQclear(res);
	return 0;
}

/* Run a statement whose failure must be a proper error; abort if not. */
static PGresult *
run(const char *sql, const char *param)
{
	PGresult   *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, &param, NULL, NULL, 0);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "view_query_fuzz: the server went away: %s", PQerrorMessage(conn));
		abort();
	}
	if (PQresultStatus(res) == PGRES_FATAL_ERROR && (state == NULL || strcmp(state, "XX000") == 0))
	{
		fprintf(stderr, "view_query_fuzz: internal error: %s", PQresultErrorMessage(res));
		abort();
	}
	return res;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		query[MAX_QUERY + 1];
	PGresult   *res;

	if (size > MAX_QUERY)
		return 0;
	memcpy(query, data, size);
	query[size] = '\0';			/* a NUL inside just ends the query */
	res = run("SELECT kappa_create_view('fz_view', $1)", query);
	note_outcome(PQresultStatus(res) == PGRES_TUPLES_OK ? NULL :
				 PQresultErrorField(res, PG_DIAG_SQLSTATE));
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		PGresult   *drop = run("SELECT kappa_drop_view('fz_view')", NULL);

		if (PQresultStatus(drop) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "view_query_fuzz: cannot drop the view: %s", PQresultErrorMessage(drop));
			abort();
		}
		PQclear(drop);
	}
	PQclear(res);
	return 0;
}
