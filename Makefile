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
	src/subxact.o \
	src/kappa_catalog/catalog.o \
	src/kappa_catalog/statement.o \
	src/kappa_catalog/columns.o \
	src/kappa_catalog/dead_letters.o \
	src/kappa_catalog/gaps.o \
	src/kappa_catalog/stream.o \
	src/kappa_catalog/positions.o \
	src/kappa_catalog/view_state.o \
	src/kappa_catalog/view.o \
	src/kappa_catalog/stream_rows.o \
	src/kappa_catalog/stream_origin.o \
	src/kappa_catalog/view_status.o \
	src/kappa_catalog/view_plan.o \
	src/kappa_catalog/view_version.o \
	src/kappa_catalog/ddl.o \
	src/kappa_catalog/sinks.o \
	src/kappa_catalog/archive_files.o \
	src/engine/portable.o \
	src/engine/view_read.o \
	src/shmem.o \
	src/bgw/launcher.o \
	src/bgw/worker.o \
	src/kappa_catalog/connection.o \
	src/kafka/kafka.o \
	src/kafka/consumer.o \
	src/decode/decode.o \
	src/decode/json_scan.o \
	src/agg/aggregate.o \
	src/agg/aggfuncs.o \
	src/agg/aggfuncs_serial.o \
	src/agg/aggfuncs_set.o \
	src/agg/aggfuncs_list.o \
	src/agg/aggfuncs_pick.o \
	src/agg/aggfuncs_hll.o \
	src/agg/aggfuncs_bag.o \
	src/engine/window.o \
	src/engine/compile.o \
	src/engine/compile_aggs.o \
	src/engine/view_rules.o \
	src/engine/lookup.o \
	src/engine/history.o \
	src/engine/gap.o \
	src/engine/state.o \
	src/engine/engine.o \
	src/engine/apply.o \
	src/engine/engine_views.o \
	src/engine/poison.o \
	src/engine/recovery.o \
	src/engine/flush.o \
	src/engine/flush_shared.o \
	src/archive/archive_read.o \
	src/archive/archive_write.o \
	src/archive/archive_register.o \
	src/engine/sink.o \
	src/api/alter.o \
	src/api/args.o \
	src/api/create_stream.o \
	src/api/create_view.o \
	src/api/produce.o \
	src/api/monitor.o \
	src/engine/retry.o \
	src/api/feed.o \
	src/api/check.o \
	src/api/replay.o

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
$(OBJS): $(wildcard $(srcdir)/src/*.h $(srcdir)/src/*/*.h)

all: tools/kappa-broker

tools/kappa-broker: tools/kappa-broker.c tools/broker_control.c tools/broker_control.h
	$(CC) -std=gnu99 -O2 -g -Wall -Wextra $(COPT) -o $@ tools/kappa-broker.c tools/broker_control.c -lrdkafka -lpthread
