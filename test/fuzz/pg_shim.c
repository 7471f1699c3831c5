/*-------------------------------------------------------------------------
 *
 * pg_shim.c
 *	  The few backend functions src/decode/json_scan.c calls, for running it in a
 *	  fuzzer outside Postgres.
 *
 * json_scan.c allocates only when a decoder builds its trie, and never
 * raises errors.  So palloc here carves from a static arena and pfree does
 * nothing, much as a memory context that lives as long as the decoder:
 * what the trie's construction drops is not a leak, and LeakSanitizer
 * does not see it as one.  Running out of the arena aborts, as does a List
 * longer than lappend's fixed capacity.  The UTF-8 functions come from
 * libpgcommon.
 *
 * test/fuzz/pg_shim.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nodes/pg_list.h"

#define SHIM_LIST_CAPACITY 256

#define SHIM_ARENA_SIZE (8 * 1024 * 1024)

static char arena[SHIM_ARENA_SIZE] __attribute__((aligned(MAXIMUM_ALIGNOF)));
static Size arena_used;

void *
palloc(Size size)
{
	void	   *p;

	size = MAXALIGN(size ? size : 1);
	if (size > SHIM_ARENA_SIZE - arena_used)
		abort();
	p = arena + arena_used;
	arena_used += size;
	return p;
}

void *
palloc0(Size size)
{
	return memset(palloc(size), 0, size);
}

void
pfree(void *pointer)
{
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out = palloc(len + 1);

	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

/* Append a pointer to a List of at most SHIM_LIST_CAPACITY cells. */
List *
lappend(List *list, void *datum)
{
	if (list == NIL)
	{
		list = palloc0(offsetof(List, initial_elements) +
					   SHIM_LIST_CAPACITY * sizeof(ListCell));
		list->type = T_List;
		list->max_length = SHIM_LIST_CAPACITY;
		list->elements = list->initial_elements;
	}
	if (list->length >= list->max_length)
		abort();
	list->elements[list->length++].ptr_value = datum;
	return list;
}

/* The fuzzer's inputs are bounded; the scanner caps nesting itself. */
void
check_stack_depth(void)
{
}
