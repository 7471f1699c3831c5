# Makefile for kappa (PGXS)
#
#   make                  build the extension and the kappa-broker program
#                         (tools/kappa-broker, where the tests, the demo and
#                         the benchmark run it from)
#   make install          install the extension into the PostgreSQL found by
#                         pg_config; KAPPA_INSTALL_BROKER=1 installs
#                         kappa-broker beside the server's programs too
#   make installcheck     pg_regress (sql/ + expected/) and the TAP tests
#                         (test/t/) against an installed server; see
#                         scripts/test, which sets up a throwaway cluster and
#                         broker and runs every layer including pgTAP.

EXTENSION = kappa
MODULE_big = kappa
OBJS = \
	src/kappa.o \
	src/guc.o \
	src/catalog.o \
	src/subxact.o \
	src/shmem.o \
	src/launcher.o \
	src/worker.o \
	src/columns.o \
	src/connection.o \
	src/stream.o \
	src/alter.o \
	src/kafka.o \
	src/consumer.o \
	src/produce.o \
	src/decode.o \
	src/json_scan.o \
	src/window.o \
	src/compile.o \
	src/lookup.o \
	src/view.o \
	src/history.o \
	src/gap.o \
	src/monitor.o \
	src/ddl.o \
	src/portable.o \
	src/sink.o \
	src/aggregate.o \
	src/aggfuncs.o \
	src/aggfuncs_pick.o \
	src/aggfuncs_hll.o \
	src/aggfuncs_bag.o \
	src/state.o \
	src/engine.o \
	src/engine_views.o \
	src/poison.o \
	src/retry.o \
	src/recovery.o \
	src/flush.o \
	src/feed.o \
	src/check.o \
	src/archive_read.o \
	src/archive_write.o \
	src/archive_register.o \
	src/replay.o

DATA = sql/kappa--0.1.sql sql/kappa--0.2.sql sql/kappa--0.1--0.2.sql

# Regression tests: an explicit list, because sql/ also holds install scripts.
REGRESS = setup streams stream_errors eventhubs produce redaction decode aggfuncs views
REGRESS_OPTS = --use-existing

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CPPFLAGS = -I$(srcdir)/src
# -Wextra, less unused-parameter: PG's own inline functions and callback
# signatures (PG_FUNCTION_ARGS, shmem and xact callbacks) have many.
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter
SHLIB_LINK = -lrdkafka -lavro

# The embedded broker: librdkafka's mock cluster as a stand-alone program,
# a test tool: installed only when a packager asks for it.
ifdef KAPPA_INSTALL_BROKER
SCRIPTS_built = tools/kappa-broker
endif
EXTRA_CLEAN = tools/kappa-broker

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS sets these two itself, so they must come after it: the regression
# database (the launcher's kappa.database, which pg_regress must not drop)
# and the TAP tests' own library.
CONTRIB_TESTDB = kappa_regress
PROVE_FLAGS = -I $(srcdir)/test/lib

# PGXS tracks no header dependencies (unless Postgres was configured with
# --enable-depend): without this, a changed struct in a header leaves
# stale objects that read it with the old layout.
$(OBJS): $(wildcard $(srcdir)/src/*.h)

all: tools/kappa-broker

tools/kappa-broker: tools/kappa-broker.c tools/broker_control.c tools/broker_control.h
	$(CC) -std=gnu99 -O2 -g -Wall -Wextra $(COPT) -o $@ tools/kappa-broker.c tools/broker_control.c -lrdkafka -lpthread
