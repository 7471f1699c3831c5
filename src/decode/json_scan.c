/*-------------------------------------------------------------------------
 *
 * json_scan.c
 *	  A single-pass, validating JSON scanner that picks out the values at a
 *	  fixed set of key paths, for the decoder.
 *
 * The decoder wants a few values out of each payload, at paths such as
 * "deviceId" or "data.temperature".  Building a jsonb for every message
 * (jsonb_in) and then looking the paths up would allocate a tree per
 * message; instead the wanted paths are compiled once into a trie of their
 * keys, numbered in preorder, and each payload is scanned once, left to
 * right, with no allocation: the scanner walks objects whose keys lead
 * somewhere in the trie, skips (while still validating) everything else,
 * and records where each wanted value lies.  Converting the values is the
 * decoder's business.
 *
 * Validation is RFC 8259 strict: UTF-8 only, no comments, no trailing
 * commas, no NaN or Infinity, no leading zeros, and \u escapes must be
 * four hex digits with surrogates in pairs (as jsonb requires).  Nesting
 * is limited to KAPPA_JSON_MAX_DEPTH containers with an explicit stack, so
 * no payload can exhaust the C stack.  Duplicate keys behave as in jsonb:
 * the last one wins, so when a key of the trie is met again, whatever was
 * found below it before is forgotten (the preorder numbering makes that
 * subtree one range of nodes).
 *
 * Byte offsets in errors count from 0.  Nothing here reports errors with
 * ereport or touches the catalog, and scanning allocates nothing (but for
 * an escaped key of over 512 bytes that might match a wanted key, in the
 * current memory context); the trie is built with palloc there too.  No
 * shared state and no locks: a trie is read-only once built, and may be
 * scanned with by its backend as often as it likes.
 *
 * src/decode/json_scan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "decode/json_scan.h"

/* Nodes with more children than this get a hash table to find them. */
#define TRIE_LINEAR_MAX 8

/* SWAR constants: a byte repeated in each lane of a 64-bit word. */
#define LANES(b) (UINT64CONST(0x0101010101010101) * (uint8) (b))
#define HIGH_BITS LANES(0x80)

/* A trie node while the trie is built. */
typedef struct BuildNode
{
	char	   *key;
	uint32		keylen;
	List	   *children;		/* BuildNode */
	bool		wanted;
	int32		index;			/* preorder position */
} BuildNode;

/* An open container while scanning. */
typedef struct ScanFrame
{
	int32		node;			/* trie node whose children its keys may be */
	int32		record;			/* wanted trie node it is the value of */
	bool		is_object;
} ScanFrame;

/*
 * Bytes that end the plain ASCII run of a string: quote, backslash,
 * controls, and the lead bytes of multibyte characters (to validate).
 */
static bool string_special[256];
static bool string_special_ready = false;

static int32 trie_number(BuildNode *node, int32 next, BuildNode **order);
static uint32 key_hash(const char *key, uint32 len);
static uint64 key_tag(const char *key, uint32 len);
static bool key_rest_equal(const char *a, const char *b, uint32 len);
static int32 trie_find(const KappaJsonTrie *trie, int32 node,
					   const char *key, uint32 len);
static bool utf8_check(const unsigned char *p, const unsigned char *end,
					   size_t *bad);
static int	hex4(const unsigned char *p);
static bool scan_payload(const KappaJsonTrie *trie, const char *json,
						 size_t len, KappaJsonValue *found,
						 KappaJsonError *error);
static const unsigned char *scan_string(const unsigned char *p,
										const unsigned char *end,
										bool *escaped, const char **msg,
										const unsigned char **at);

/*
 * Build the trie of a list of dotted paths; nodes[i] gets the trie node
 * where path i ends.  Paths that share keys share nodes.
 */
KappaJsonTrie *
kappa_json_trie_build(List *paths, int32 *nodes)
{
	BuildNode  *root = palloc0(sizeof(BuildNode));
	KappaJsonTrie *trie = palloc0(sizeof(KappaJsonTrie));
	BuildNode **order;
	List	   *ends = NIL;
	int32		nnodes = 1;
	int32		nchildren = 0;
	int32		nhash = 0;
	ListCell   *lc;

	if (!string_special_ready)
	{
		for (int c = 0; c < 0x20; c++)
			string_special[c] = true;
		for (int c = 0x80; c < 0x100; c++)
			string_special[c] = true;
		string_special['"'] = true;
		string_special['\\'] = true;
		string_special_ready = true;
	}

	foreach(lc, paths)
	{
		const char *path = lfirst(lc);
		BuildNode  *node = root;

		for (;;)
		{
			const char *dot = strchr(path, '.');
			uint32		keylen = dot ? (uint32) (dot - path) : (uint32) strlen(path);
			BuildNode  *child = NULL;
			ListCell   *cc;

			foreach(cc, node->children)
			{
				BuildNode  *c = lfirst(cc);

				if (c->keylen == keylen && memcmp(c->key, path, keylen) == 0)
				{
					child = c;
					break;
				}
			}
			if (child == NULL)
			{
				child = palloc0(sizeof(BuildNode));
				child->key = pnstrdup(path, keylen);
				child->keylen = keylen;
				node->children = lappend(node->children, child);
				nnodes++;
				trie->max_keylen = Max(trie->max_keylen, keylen);
			}
			node = child;
			if (dot == NULL)
				break;
			path = dot + 1;
		}
		node->wanted = true;
		ends = lappend(ends, node);
	}

	/* number the nodes in preorder, then lay them out in that order */
	order = palloc(sizeof(BuildNode *) * nnodes);
	trie_number(root, 0, order);
	trie->nnodes = nnodes;
	trie->nodes = palloc0(sizeof(KappaJsonNode) * nnodes);
	trie->children = palloc(sizeof(int32) * Max(nnodes - 1, 1));
	trie->tags = palloc(sizeof(uint64) * Max(nnodes - 1, 1));
	for (int32 i = 0; i < nnodes; i++)
	{
		KappaJsonNode *n = &trie->nodes[i];
		int32		count = list_length(order[i]->children);

		n->key = order[i]->key;
		n->keylen = order[i]->keylen;
		n->wanted = order[i]->wanted;
		n->first_child = nchildren;
		n->nchildren = count;
		n->hash_off = -1;
		foreach(lc, order[i]->children)
		{
			BuildNode  *child = lfirst(lc);

			trie->nodes[child->index].tag_index = nchildren;
			trie->tags[nchildren] = key_tag(child->key, child->keylen);
			trie->children[nchildren++] = child->index;
		}
		if (count > TRIE_LINEAR_MAX)
		{
			uint32		size = 1;

			while (size < (uint32) count * 2)
				size <<= 1;
			n->hash_off = nhash;
			n->hash_mask = size - 1;
			nhash += size;
		}
	}
	/* a node's subtree ends where its next sibling, or an uncle, begins */
	for (int32 i = nnodes - 1; i >= 0; i--)
	{
		KappaJsonNode *n = &trie->nodes[i];

		n->end = n->nchildren == 0 ? i + 1 :
			trie->nodes[trie->children[n->first_child + n->nchildren - 1]].end;
	}

	/* hash tables for the nodes with many children */
	trie->hash = palloc(sizeof(int32) * Max(nhash, 1));
	memset(trie->hash, -1, sizeof(int32) * Max(nhash, 1));
	for (int32 i = 0; i < nnodes; i++)
	{
		KappaJsonNode *n = &trie->nodes[i];

		if (n->hash_off < 0)
			continue;
		for (int32 j = 0; j < n->nchildren; j++)
		{
			int32		child = trie->children[n->first_child + j];
			KappaJsonNode *c = &trie->nodes[child];
			uint32		h = key_hash(c->key, c->keylen) & n->hash_mask;

			while (trie->hash[n->hash_off + h] >= 0)
				h = (h + 1) & n->hash_mask;
			trie->hash[n->hash_off + h] = child;
		}
	}

	for (int i = 0; i < list_length(ends); i++)
		nodes[i] = ((BuildNode *) list_nth(ends, i))->index;
	return trie;
}

/* Number a build node and its subtree in preorder, from next on. */
static int32
trie_number(BuildNode *node, int32 next, BuildNode **order)
{
	ListCell   *lc;

	check_stack_depth();		/* paths are short, but come from users */
	node->index = next;
	order[next++] = node;
	foreach(lc, node->children)
		next = trie_number(lfirst(lc), next, order);
	return next;
}

/* FNV-1a: cheap, and good enough to spread a few hundred keys. */
static uint32
key_hash(const char *key, uint32 len)
{
	uint32		h = 2166136261u;

	for (uint32 i = 0; i < len; i++)
		h = (h ^ (uint8) key[i]) * 16777619u;
	return h;
}

/*
 * A key's length and first four bytes in one word: keys with different
 * tags differ, and keys of up to four bytes with equal tags are equal.
 */
static inline uint64
key_tag(const char *key, uint32 len)
{
	uint32		prefix = 0;

	/* one load, not a byte copy (which would stall the load after it) */
	if (len >= 4)
		memcpy(&prefix, key, 4);
	else
		for (uint32 i = 0; i < len; i++)
			prefix |= (uint32) (uint8) key[i] << (8 * i);
	return ((uint64) len << 32) | prefix;
}

/*
 * Are two keys of the same length, whose first four bytes are equal, the
 * same?  Inline, because keys are short and a call to memcmp is not.
 */
static pg_attribute_always_inline bool
key_rest_equal(const char *a, const char *b, uint32 len)
{
	uint32		i = 4;

	for (; i + 8 <= len; i += 8)
	{
		uint64		x,
					y;

		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			return false;
	}
	for (; i < len; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* The child of node whose key is key, or -1. */
static pg_attribute_always_inline int32
trie_find(const KappaJsonTrie *trie, int32 node, const char *key, uint32 len)
{
	const KappaJsonNode *n = &trie->nodes[node];
	uint64		tag = key_tag(key, len);

	if (n->hash_off < 0)
	{
		const uint64 *tags = trie->tags + n->first_child;

		for (int32 j = 0; j < n->nchildren; j++)
		{
			if (tags[j] == tag)
			{
				int32		child = trie->children[n->first_child + j];

				if (key_rest_equal(trie->nodes[child].key, key, len))
					return child;
			}
		}
	}
	else
	{
		uint32		h = key_hash(key, len) & n->hash_mask;
		int32		child;

		while ((child = trie->hash[n->hash_off + h]) >= 0)
		{
			if (trie->tags[trie->nodes[child].tag_index] == tag &&
				key_rest_equal(trie->nodes[child].key, key, len))
				return child;
			h = (h + 1) & n->hash_mask;
		}
	}
	return -1;
}

/*
 * Is the text valid UTF-8?  For payloads that fail to scan, to say which
 * byte is wrong.  NUL bytes are valid UTF-8 (the JSON syntax rejects them).
 */
static bool
utf8_check(const unsigned char *p, const unsigned char *end, size_t *bad)
{
	const unsigned char *start = p;

	while (p < end)
	{
		if (end - p >= 8)
		{
			uint64		v;

			memcpy(&v, p, 8);
			if ((v & HIGH_BITS) == 0)
			{
				p += 8;
				continue;
			}
		}
		if (*p < 0x80)
			p++;
		else
		{
			int			l = pg_utf_mblen(p);

			if (l < 2 || end - p < l || !pg_utf8_islegal(p, l))
			{
				*bad = p - start;
				return false;
			}
			p += l;
		}
	}
	return true;
}

/* The value of four hex digits, or -1. */
static inline int
hex4(const unsigned char *p)
{
	int			v = 0;

	for (int i = 0; i < 4; i++)
	{
		int			c = p[i];

		if (c >= '0' && c <= '9')
			c -= '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			c = (c | 0x20) - 'a' + 10;
		else
			return -1;
		v = (v << 4) | c;
	}
	return v;
}

/*
 * The end of the JSON number that starts at p (RFC 8259: -?int frac? exp?),
 * or NULL if what is there breaks its grammar.  What follows the number is
 * the caller's to judge.  Shared by the scanner, where it is inlined on
 * the hot path, and kappa_json_is_number.
 */
static pg_attribute_always_inline const unsigned char *
number_end(const unsigned char *p, const unsigned char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (p < end && *p == '.')
	{
		if (++p == end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

/*
 * Scan a string's contents, from after its opening quote: the position
 * after its closing quote, or NULL with *msg and *at saying what is wrong
 * (*msg NULL: not UTF-8).  ASCII runs go eight bytes at a time; multibyte
 * characters are validated here, and escapes too (but not decoded).
 */
static const unsigned char *
scan_string(const unsigned char *p, const unsigned char *end, bool *escaped,
			const char **msg, const unsigned char **at)
{
	*escaped = false;
	for (;;)
	{
		int			cp;

		/* a word of ASCII with no quote, no backslash and no control */
		while (end - p >= 8)
		{
			uint64		v,
						q,
						b;

			memcpy(&v, p, 8);
			q = v ^ LANES('"');
			b = v ^ LANES('\\');
			if ((((q - LANES(1)) & ~q) | ((b - LANES(1)) & ~b) |
				 ((v - LANES(0x20)) & ~v) | v) & HIGH_BITS)
				break;
			p += 8;
		}
		while (p < end && !string_special[*p])
			p++;
		if (p == end)
		{
			*msg = "unexpected end of input";
			*at = p;
			return NULL;
		}
		if (*p == '"')
			return p + 1;
		if (*p >= 0x80)
		{
			int			l = pg_utf_mblen(p);

			if (l < 2 || end - p < l || !pg_utf8_islegal(p, l))
			{
				*msg = NULL;
				*at = p;
				return NULL;
			}
			p += l;
			continue;
		}
		if (*p < 0x20)
		{
			*msg = "control character in string";
			*at = p;
			return NULL;
		}

		/* a backslash */
		*escaped = true;
		*at = p;
		if (end - p < 2)
		{
			*msg = "unexpected end of input";
			*at = end;
			return NULL;
		}
		switch (p[1])
		{
			case '"':
			case '\\':
			case '/':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				p += 2;
				continue;
			case 'u':
				break;
			default:
				*msg = "invalid escape in string";
				return NULL;
		}
		if (end - p < 6 || (cp = hex4(p + 2)) < 0)
		{
			*msg = "invalid \\u escape in string";
			return NULL;
		}
		p += 6;
		if (cp >= 0xD800 && cp <= 0xDBFF)
		{
			int			lo;

			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				(lo = hex4(p + 2)) < 0xDC00 || lo > 0xDFFF)
			{
				*msg = "lone surrogate in \\u escape";
				return NULL;
			}
			p += 6;
		}
		else if (cp >= 0xDC00 && cp <= 0xDFFF)
		{
			*msg = "lone surrogate in \\u escape";
			return NULL;
		}
	}
}

/* Fail the scan with a syntax error (or, without a message, bad UTF-8). */
#define SYNTAX_ERROR(msg_, at_) \
	do { \
		error->kind = (msg_) ? KAPPA_JSON_ERROR_SYNTAX : KAPPA_JSON_ERROR_UTF8; \
		error->message = (msg_); \
		error->offset = (at_) - start; \
		return false; \
	} while (0)

/* Skip JSON white space. */
#define SKIP_WS() \
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) \
		p++

/*
 * Scan a payload: true if it is valid UTF-8, valid JSON and an object,
 * with found[n] set for each wanted trie node n present (type NONE for the
 * absent); false with *error filled in otherwise.
 */
bool
kappa_json_scan(const KappaJsonTrie *trie, const char *json, size_t len,
				KappaJsonValue *found, KappaJsonError *error)
{
	size_t		bad;

	if (scan_payload(trie, json, len, found, error))
		return true;

	/*
	 * Bytes outside strings are ASCII or a syntax error, and strings are
	 * checked as they are scanned, so a payload that scans is UTF-8.  One
	 * that does not is checked whole: not being UTF-8 is what it is first.
	 */
	if (error->kind != KAPPA_JSON_ERROR_UTF8 &&
		!utf8_check((const unsigned char *) json,
					(const unsigned char *) json + len, &bad))
	{
		error->kind = KAPPA_JSON_ERROR_UTF8;
		error->offset = bad;
	}
	return false;
}

/* kappa_json_scan, but for the precedence of bad UTF-8. */
static bool
scan_payload(const KappaJsonTrie *trie, const char *json, size_t len,
			 KappaJsonValue *found, KappaJsonError *error)
{
	const unsigned char *start = (const unsigned char *) json;
	const unsigned char *p = start;
	const unsigned char *end = start + len;
	ScanFrame	stack[KAPPA_JSON_MAX_DEPTH];
	int			depth = 0;
	int32		target = 0;		/* trie node of the value being scanned */
	KappaJsonType type = KAPPA_JSON_NONE;
	KappaJsonType top = KAPPA_JSON_NONE;
	const char *msg;
	const unsigned char *at;

	memset(found, 0, sizeof(KappaJsonValue) * trie->nnodes);
	/* errors that have no position of their own say 0 */
	error->offset = 0;
	error->message = NULL;
	SKIP_WS();
	if (p == end)
	{
		error->kind = KAPPA_JSON_ERROR_BLANK;
		return false;
	}

value:
	SKIP_WS();
	if (p == end)
		SYNTAX_ERROR("unexpected end of input", p);
	switch (*p)
	{
		case '{':
		case '[':
			{
				bool		is_object = (*p == '{');
				ScanFrame  *f;

				if (depth == KAPPA_JSON_MAX_DEPTH)
				{
					error->kind = KAPPA_JSON_ERROR_DEPTH;
					error->offset = p - start;
					return false;
				}
				f = &stack[depth++];
				f->is_object = is_object;
				f->node = (is_object && target >= 0 &&
						   trie->nodes[target].nchildren > 0) ? target : -1;
				f->record = (target >= 0 && trie->nodes[target].wanted) ? target : -1;
				if (f->record >= 0)
				{
					found[target].type = is_object ? KAPPA_JSON_OBJECT : KAPPA_JSON_ARRAY;
					found[target].start = p - start;
				}
				if (depth == 1)
					top = is_object ? KAPPA_JSON_OBJECT : KAPPA_JSON_ARRAY;
				p++;
				SKIP_WS();
				if (p < end && *p == (is_object ? '}' : ']'))
				{
					p++;
					goto close;
				}
				target = -1;
				if (is_object)
					goto key;
				goto value;
			}
		case '"':
			{
				const unsigned char *s = p + 1;
				bool		escaped;

				p = scan_string(s, end, &escaped, &msg, &at);
				if (p == NULL)
					SYNTAX_ERROR(msg, at);
				type = KAPPA_JSON_STRING;
				if (target >= 0 && trie->nodes[target].wanted)
				{
					found[target].escaped = escaped;
					found[target].start = s - start;
					found[target].len = (p - 1) - s;
				}
				break;
			}
		case 't':
		case 'f':
		case 'n':
			{
				const char *word = (*p == 't') ? "true" : (*p == 'f') ? "false" : "null";
				size_t		wlen = strlen(word);

				if ((size_t) (end - p) < wlen || memcmp(p, word, wlen) != 0)
					SYNTAX_ERROR("expected a value", p);
				type = (*p == 't') ? KAPPA_JSON_TRUE :
					(*p == 'f') ? KAPPA_JSON_FALSE : KAPPA_JSON_NULL;
				p += wlen;
				if (target >= 0 && trie->nodes[target].wanted)
				{
					found[target].start = (p - wlen) - start;
					found[target].len = wlen;
				}
				break;
			}
		case '-':
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
		case '8':
		case '9':
			{
				const unsigned char *s = p;

				p = number_end(p, end);
				if (p == NULL)
					SYNTAX_ERROR("invalid number", s);
				/* "01", "1.2.3", "1x": one bad token, not two good ones */
				if (p < end && (*p == '.' || (*p >= '0' && *p <= '9') ||
								((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
					SYNTAX_ERROR("invalid number", s);
				type = KAPPA_JSON_NUMBER;
				if (target >= 0 && trie->nodes[target].wanted)
				{
					found[target].start = s - start;
					found[target].len = p - s;
				}
				break;
			}
		default:
			SYNTAX_ERROR("expected a value", p);
	}
	if (target >= 0 && trie->nodes[target].wanted)
		found[target].type = type;
	if (depth == 0)
		top = type;
	goto next;

close:
	{
		ScanFrame  *f = &stack[--depth];

		if (f->record >= 0)
			found[f->record].len = (p - start) - found[f->record].start;
	}

next:
	SKIP_WS();
	if (depth == 0)
	{
		if (p != end)
			SYNTAX_ERROR(top == KAPPA_JSON_OBJECT ?
						 "unexpected data after the object" :
						 "unexpected data after the value", p);
		if (top == KAPPA_JSON_OBJECT)
			return true;
		error->kind = KAPPA_JSON_ERROR_NOT_OBJECT;
		error->message =
			top == KAPPA_JSON_ARRAY ? "an array" :
			top == KAPPA_JSON_STRING ? "a string" :
			top == KAPPA_JSON_NUMBER ? "a number" :
			top == KAPPA_JSON_NULL ? "null" : "a boolean";
		return false;
	}
	if (p == end)
		SYNTAX_ERROR("unexpected end of input", p);
	if (stack[depth - 1].is_object)
	{
		if (*p == '}')
		{
			p++;
			goto close;
		}
		if (*p != ',')
			SYNTAX_ERROR("expected ',' or '}'", p);
		p++;
		SKIP_WS();
		goto key;
	}
	if (*p == ']')
	{
		p++;
		goto close;
	}
	if (*p != ',')
		SYNTAX_ERROR("expected ',' or ']'", p);
	p++;
	target = -1;
	goto value;

key:
	/* at a key of the object on top of the stack, white space skipped */
	if (p == end)
		SYNTAX_ERROR("unexpected end of input", p);
	if (*p != '"')
		SYNTAX_ERROR("expected a key", p);
	{
		const unsigned char *s = p + 1;
		int32		node = stack[depth - 1].node;
		bool		escaped;

		p = scan_string(s, end, &escaped, &msg, &at);
		if (p == NULL)
			SYNTAX_ERROR(msg, at);
		target = -1;
		if (node >= 0)
		{
			size_t		klen = (p - 1) - s;

			if (!escaped)
				target = trie_find(trie, node, (const char *) s, klen);
			else if (klen <= 6 * trie->max_keylen)
			{
				/* an escape spells at least one byte in at most six */
				char		buf[512];
				char	   *k = klen <= sizeof(buf) ? buf : palloc(klen);
				bool		has_nul;
				size_t		n = kappa_json_unescape((const char *) s, klen, k, &has_nul);

				target = trie_find(trie, node, k, n);
				if (k != buf)
					pfree(k);
			}
			/* the last of duplicate keys wins: forget what the others had */
			if (target >= 0)
				memset(&found[target], 0,
					   sizeof(KappaJsonValue) * (trie->nodes[target].end - target));
		}
	}
	SKIP_WS();
	if (p == end)
		SYNTAX_ERROR("unexpected end of input", p);
	if (*p != ':')
		SYNTAX_ERROR("expected ':'", p);
	p++;
	goto value;
}

/*
 * Decode the contents of a string the scanner validated into dst, which
 * has room for len bytes (never too few: escapes only shrink); returns the
 * length, and says whether a \u0000 was among them.
 */
size_t
kappa_json_unescape(const char *src, size_t len, char *dst, bool *has_nul)
{
	const char *p = src;
	const char *end = src + len;
	char	   *d = dst;

	*has_nul = false;
	while (p < end)
	{
		const char *bs = memchr(p, '\\', end - p);
		size_t		plain = (bs ? bs : end) - p;
		pg_wchar	cp;

		memcpy(d, p, plain);
		d += plain;
		p += plain;
		if (p == end)
			break;
		switch (p[1])
		{
			case 'b':
				*d++ = '\b';
				break;
			case 'f':
				*d++ = '\f';
				break;
			case 'n':
				*d++ = '\n';
				break;
			case 'r':
				*d++ = '\r';
				break;
			case 't':
				*d++ = '\t';
				break;
			case 'u':
				cp = hex4((const unsigned char *) p + 2);
				if (cp >= 0xD800 && cp <= 0xDBFF)
				{
					cp = 0x10000 + ((cp - 0xD800) << 10) +
						(hex4((const unsigned char *) p + 8) - 0xDC00);
					p += 6;
				}
				if (cp == 0)
					*has_nul = true;
				unicode_to_utf8(cp, (unsigned char *) d);
				d += pg_utf_mblen((unsigned char *) d);
				p += 4;
				break;
			default:			/* " \ / */
				*d++ = p[1];
				break;
		}
		p += 2;
	}
	return d - dst;
}

/* Is s, all of it, a number as JSON spells numbers? */
bool
kappa_json_is_number(const char *s, size_t len)
{
	const unsigned char *end = (const unsigned char *) s + len;
	const unsigned char *p = number_end((const unsigned char *) s, end);

	return p == end;
}

/*
 * A float8 from a JSON number (s must be one) of at most 15 significant
 * digits and a decimal exponent of at most 22: both are exact doubles, so
 * one multiply or divide rounds correctly, to what strtod says (Clinger's
 * fast path).  False for any other number.
 */
bool
kappa_json_number_float8(const char *s, size_t len, float8 *result)
{
	static const double pow10[] = {
		1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
		1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
	};
	const char *p = s;
	const char *end = s + len;
	bool		neg = (*p == '-');
	uint64		m = 0;
	int			digits = 0;
	int			exp = 0;
	double		v;

	p += neg;
	for (bool frac = false; p < end; p++)
	{
		if (*p == '.')
			frac = true;
		else if (*p >= '0' && *p <= '9')
		{
			if (m != 0 || *p != '0')
				digits++;
			m = m * 10 + (*p - '0');
			exp -= frac;
			if (digits > 15)
				return false;
		}
		else
			break;
	}
	if (p < end)				/* e, E: an exponent, of no more than 2 digits */
	{
		bool		eneg = *++p == '-';
		int			e = 0;

		p += (*p == '+' || *p == '-');
		if (end - p > 2)
			return false;
		for (; p < end; p++)
			e = e * 10 + (*p - '0');
		exp += eneg ? -e : e;
	}
	if (exp < -22 || exp > 22)
		return false;
	v = (double) m;
	v = exp < 0 ? v / pow10[-exp] : v * pow10[exp];
	*result = neg ? -v : v;
	return true;
}

/*
 * With 128-bit integers, a scaled number of up to 20 digits cannot
 * overflow before the bias is subtracted, so the whole range of an int64
 * result is reachable; without them, 18 digits is what an int64 holds.
 */
#ifdef HAVE_INT128
typedef int128 scaled_acc;
#define SCALED_MAX_DIGITS 20
#else
typedef int64 scaled_acc;
#define SCALED_MAX_DIGITS 18
#endif

/*
 * A JSON number times 10^scale, rounded to an integer (halves away from
 * zero), minus bias, in exact decimal arithmetic: 0 if nothing was rounded
 * off, 1 if something was, -1 if the result does not fit in an int64.  s
 * must be a valid JSON number.
 */
int
kappa_json_number_scaled(const char *s, size_t len, int scale, int64 bias,
						 int64 *result)
{
	const char *p = s;
	const char *end = s + len;
	char		digits[40];		/* significant digits, without leading zeros */
	int			ndigits = 0;
	bool		sticky = false; /* a nonzero digit beyond those */
	bool		neg = false;
	bool		in_frac = false;
	int			exp10 = scale;	/* the value is digits * 10^exp10 */
	int			whole;			/* how many of the digits are whole units */
	int			rounded = 0;
	scaled_acc	v = 0;

	if (*p == '-')
	{
		neg = true;
		p++;
	}
	for (; p < end && (*p == '.' || (*p >= '0' && *p <= '9')); p++)
	{
		if (*p == '.')
		{
			in_frac = true;
			continue;
		}
		if (in_frac)
			exp10--;
		if (ndigits == 0 && *p == '0')
			continue;
		if (ndigits < (int) sizeof(digits))
			digits[ndigits++] = *p;
		else
		{
			exp10++;
			sticky |= *p != '0';
		}
	}
	if (p < end)				/* an exponent */
	{
		int			exp = 0;
		bool		eneg = *++p == '-';

		if (*p == '+' || *p == '-')
			p++;
		for (; p < end; p++)
			if (exp < 100000)
				exp = exp * 10 + (*p - '0');
		exp10 += eneg ? -exp : exp;
	}

	if (ndigits > 0)
	{
		whole = ndigits + Min(exp10, 0);
		if (whole + Max(exp10, 0) > SCALED_MAX_DIGITS)
			return -1;
		for (int i = 0; i < whole; i++)
			v = v * 10 + (digits[i] - '0');
		for (int i = 0; i < exp10; i++)
			v *= 10;

		/* the digits below the unit */
		rounded = sticky;
		for (int i = Max(whole, 0); i < ndigits; i++)
			rounded |= digits[i] != '0';
		if (whole >= 0 && whole < ndigits && digits[whole] >= '5')
			v++;
		if (neg)
			v = -v;
	}
#ifdef HAVE_INT128
	v -= bias;
	if (v < PG_INT64_MIN || v > PG_INT64_MAX)
		return -1;
#else
	if (pg_sub_s64_overflow(v, bias, &v))
		return -1;
#endif
	*result = (int64) v;
	return rounded;
}
