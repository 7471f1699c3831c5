/*-------------------------------------------------------------------------
 *
 * json_scan.h
 *	  A single-pass, validating JSON scanner that picks out the values at a
 *	  fixed set of key paths, for the decoder.
 *
 * Build a trie of the wanted paths once (kappa_json_trie_build), then scan
 * each payload with it (kappa_json_scan): the scan validates the whole
 * payload and says where each wanted value lies; the helpers below read
 * those values.  Nothing here raises errors for bad input, allocates per
 * payload, or takes locks; see json_scan.c.
 *
 * src/decode/json_scan.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_JSON_SCAN_H
#define KAPPA_JSON_SCAN_H

#include "nodes/pg_list.h"

/* Containers nested deeper than this make a payload invalid. */
#define KAPPA_JSON_MAX_DEPTH 64

/* The type of a value found at a path; NONE when the path is absent. */
typedef enum KappaJsonType
{
	KAPPA_JSON_NONE = 0,
	KAPPA_JSON_STRING,
	KAPPA_JSON_NUMBER,
	KAPPA_JSON_TRUE,
	KAPPA_JSON_FALSE,
	KAPPA_JSON_NULL,
	KAPPA_JSON_OBJECT,
	KAPPA_JSON_ARRAY
} KappaJsonType;

/*
 * Where a value lies in the payload.  A string's span is its contents,
 * without the quotes, still escaped; any other value's span is its JSON
 * text, containers from bracket to bracket.
 */
typedef struct KappaJsonValue
{
	uint8		type;			/* KappaJsonType */
	bool		escaped;		/* a string with backslash escapes */
	uint32		start;			/* byte offset in the payload */
	uint32		len;			/* bytes */
} KappaJsonValue;

/* One key of a path; the nodes are numbered in preorder from the root. */
typedef struct KappaJsonNode
{
	const char *key;			/* not NUL-terminated here */
	uint32		keylen;
	int32		first_child;	/* index into KappaJsonTrie.children */
	int32		nchildren;
	int32		tag_index;		/* its own entry in KappaJsonTrie.tags */
	int32		end;			/* the subtree is nodes [this, end) */
	int32		hash_off;		/* index into KappaJsonTrie.hash, or -1 */
	uint32		hash_mask;
	bool		wanted;			/* some path ends here */
} KappaJsonNode;

/* The paths a decoder wants, as a trie of their keys. */
typedef struct KappaJsonTrie
{
	int32		nnodes;			/* node 0 is the root, the payload itself */
	KappaJsonNode *nodes;
	int32	   *children;		/* each node's children, contiguous */
	uint64	   *tags;			/* per child: its key's length and prefix */
	int32	   *hash;			/* lookup tables of nodes with many children */
	uint32		max_keylen;
} KappaJsonTrie;

/* Why a payload was rejected. */
typedef enum KappaJsonErrorKind
{
	KAPPA_JSON_ERROR_SYNTAX,	/* message, at offset */
	KAPPA_JSON_ERROR_UTF8,		/* at offset */
	KAPPA_JSON_ERROR_BLANK,		/* white space only */
	KAPPA_JSON_ERROR_DEPTH,		/* nested too deeply, at offset */
	KAPPA_JSON_ERROR_NOT_OBJECT /* message names what it is */
} KappaJsonErrorKind;

/* A scan's failure: what, and where. */
typedef struct KappaJsonError
{
	KappaJsonErrorKind kind;
	const char *message;		/* static text */
	size_t		offset;			/* bytes from the start of the payload */
} KappaJsonError;

extern KappaJsonTrie *kappa_json_trie_build(List *paths, int32 *nodes);
extern bool kappa_json_scan(const KappaJsonTrie *trie, const char *json,
							size_t len, KappaJsonValue *found,
							KappaJsonError *error);
extern size_t kappa_json_unescape(const char *src, size_t len, char *dst,
								  bool *has_nul);
extern bool kappa_json_is_number(const char *s, size_t len);
extern bool kappa_json_number_float8(const char *s, size_t len, float8 *result);
extern int	kappa_json_number_scaled(const char *s, size_t len, int scale,
									 int64 bias, int64 *result);

#endif							/* KAPPA_JSON_SCAN_H */
