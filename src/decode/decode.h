/*-------------------------------------------------------------------------
 *
 * decode.h
 *	  Decoding of event payloads: JSON bytes to a stream's typed columns.
 *
 * src/decode/decode.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_DECODE_H
#define KAPPA_DECODE_H

#include "nodes/pg_list.h"

#include "kappa_catalog/stream.h"

typedef struct KappaDecoder KappaDecoder;

/*
 * Prepare a decoder for a stream: its columns (KappaColumn, with their
 * paths and NOT NULL flags), which column is the event time (or -1), how
 * JSON numbers count event time, and the largest payload it accepts.
 * Allocated in the current memory context; looks up the catalog (type
 * input functions) here, never while decoding.
 */
extern KappaDecoder *kappa_decoder_create(KappaStream *stream, size_t max_payload);

/*
 * Decode one payload into values[]/nulls[], each column at its place in
 * the stream's relation (KappaColumn.attnum - 1; the places of the four
 * metadata columns are left alone).  Returns true, or false with *reason
 * set to why the message must be dead-lettered (kappa_decoder_sqlstate
 * gives its SQLSTATE).  An input
 * function of a type that is not known to be safe, or a domain's
 * constraint, may raise an error instead (see decode.c): call it as the
 * stream's owner, and roll back on an error.
 * By-reference values are allocated in the decoder's own per-message
 * memory, valid until the next call; the reason is too.
 */
extern bool kappa_decode(KappaDecoder *decoder, const char *payload, size_t len,
						 Datum *values, bool *nulls, const char **reason);
extern const char *kappa_decoder_sqlstate(KappaDecoder *decoder);
extern const char *kappa_decoder_field(KappaDecoder *decoder);

#endif							/* KAPPA_DECODE_H */
