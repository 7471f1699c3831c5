/*-------------------------------------------------------------------------
 *
 * json_scan_fuzz.c
 *	  libFuzzer target for kappa's JSON scanner (src/decode/json_scan.c), the part
 *	  of the event decoder that reads untrusted bytes.
 *
 * Every input is scanned with a fixed trie of paths like a stream's: top
 * level keys, nested paths, and a node with enough children to use a hash
 * table.  On success, every value found must lie inside the input, and is
 * run through the helpers the decoder uses next (unescaping, number
 * checks and conversions); on failure, the error's offset must lie inside
 * it.  AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer do
 * the rest.  test/t/030_fuzz.pl builds it with clang and runs it for a
 * bounded time over the checked-in corpus (test/fuzz/corpus/json_scan).
 *
 * test/fuzz/json_scan_fuzz.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "decode/json_scan.h"

static KappaJsonTrie *trie;
static KappaJsonValue *found;

/* The paths: what the bench's streams read, and a wide object "h". */
static void
build_trie(void)
{
	static const char *const fixed[] = {
		"eventId", "deviceId", "eventTimestamp", "data.temperature",
		"data.humidity", "a.b.c.d", "a.b", "n", "s", "ts",
	};
	List	   *paths = NIL;
	int32	   *nodes;
	int			npaths = 0;

	for (int i = 0; i < (int) lengthof(fixed); i++, npaths++)
		paths = lappend(paths, (void *) fixed[i]);
	for (int i = 0; i < 40; i++, npaths++)
	{
		char	   *path = palloc(16);

		snprintf(path, 16, "h.k%d", i);
		paths = lappend(paths, path);
	}
	nodes = palloc(sizeof(int32) * npaths);
	trie = kappa_json_trie_build(paths, nodes);
	found = palloc(sizeof(KappaJsonValue) * trie->nnodes);
}

/* Run a found value through the decoder's helpers. */
static void
check_value(const char *json, size_t size, const KappaJsonValue *v)
{
	const char *text = json + v->start;

	if ((size_t) v->start + v->len > size)
		abort();
	if (v->type == KAPPA_JSON_STRING)
	{
		/* malloc, not the shim's palloc: per input, and must be freed */
		char	   *dst = malloc(v->len + 1);
		bool		has_nul = false;
		size_t		n;

		if (dst == NULL)
			abort();
		n = kappa_json_unescape(text, v->len, dst, &has_nul);
		if (n > v->len)
			abort();
		free(dst);
	}
	if (v->type == KAPPA_JSON_NUMBER || v->type == KAPPA_JSON_STRING)
	{
		float8		f;
		int64		scaled;

		if (kappa_json_is_number(text, v->len))
		{
			(void) kappa_json_number_float8(text, v->len, &f);
			(void) kappa_json_number_scaled(text, v->len, 3, 0, &scaled);
			(void) kappa_json_number_scaled(text, v->len, 6, INT64CONST(-946684800000000), &scaled);
		}
	}
}

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	build_trie();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	KappaJsonError error;
	const char *json = (const char *) data;

	if (kappa_json_scan(trie, json, size, found, &error))
	{
		for (int i = 0; i < trie->nnodes; i++)
		{
			if (found[i].type != KAPPA_JSON_NONE)
				check_value(json, size, &found[i]);
		}
	}
	else if (error.offset > size)
		abort();
	return 0;
}
