/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  Configuration settings of kappa (the kappa.* GUCs).
 *
 * src/guc.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_GUC_H
#define KAPPA_GUC_H

extern char *kappa_database;
extern bool kappa_enabled;
extern int	kappa_launcher_naptime;
extern int	kappa_max_streams;
extern int	kappa_workers_per_stream;
extern int	kappa_restart_backoff_max;
extern int	kappa_broker_timeout;
extern int	kappa_flush_interval;
extern int	kappa_flush_events;
extern int	kappa_max_payload;
extern bool kappa_archive_deflate;
extern int	kappa_archive_roll_size;
extern int	kappa_archive_roll_interval;
extern bool kappa_replay_prefer_archive;
extern int	kappa_max_state_memory;

extern void kappa_guc_define(void);

#endif							/* KAPPA_GUC_H */
