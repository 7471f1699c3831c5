/*-------------------------------------------------------------------------
 *
 * message.h
 *	  A message of a stream's log, as every part of kappa passes it on.
 *
 * The consumer (kafka/) and the archive reader (archive/) produce them,
 * the engine (engine/) applies them, the archive writer keeps them: the
 * type lives below all of them.  The bytes belong to whoever produced
 * the message (librdkafka, an Avro reader, a table) and stay valid until
 * that one says otherwise.
 *
 * src/message.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_MESSAGE_H
#define KAPPA_MESSAGE_H

/* One message from the log. */
typedef struct KappaMessage
{
	int32		partition;
	int64		offset;
	int64		timestamp_ms;	/* broker timestamp, -1 if none */
	const char *key;
	size_t		key_len;
	const char *payload;		/* NULL for a tombstone */
	size_t		len;
} KappaMessage;

/* Where to start reading a partition that has no stored position. */
#define KAPPA_OFFSET_BEGINNING (-2)
#define KAPPA_OFFSET_END (-1)
/* A partition not to be read at all. */
#define KAPPA_OFFSET_NONE (-1000)

/* A message read back (from the log or the archive), for a caller to apply. */
typedef void (*KappaMessageCallback) (const KappaMessage *message, void *arg);

#endif							/* KAPPA_MESSAGE_H */
