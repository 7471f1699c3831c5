-- test/lib/kappa_catalog.sql: every member object of the extension kappa
-- in this database, with its definition, one line each, sorted: what
-- test/t/078_upgrade.pl and scripts/check-upgrade compare between an
-- updated catalog and a fresh one.  Internal triggers (their names carry
-- OIDs) are the foreign keys, compared as constraints; columns are listed
-- by name, their order is compared apart; so are the initial privileges
-- (pg_init_privs) pg_dump compares grants with.
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'kappa'),
members AS (
	SELECT d.classid, d.objid, d.objsubid
	FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid),
procs AS (SELECT p.* FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid)
SELECT 'member ' || (pg_identify_object(classid, objid, objsubid)).identity || ' ' || (pg_identify_object(classid, objid, objsubid)).type FROM members
UNION ALL
SELECT format('rel %s kind=%s owner=%s persistence=%s acl=%s rls=%s/%s replident=%s options=%s comment=%s',
	c.oid::regclass, c.relkind, c.relowner::regrole, c.relpersistence, c.relacl, c.relrowsecurity, c.relforcerowsecurity,
	c.relreplident, c.reloptions, obj_description(c.oid, 'pg_class')) FROM rels c
UNION ALL
SELECT format('column %s.%s %s notnull=%s default=%s storage=%s identity=%s generated=%s collation=%s acl=%s',
	c.oid::regclass, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
	pg_get_expr(ad.adbin, ad.adrelid), a.attstorage, a.attidentity, a.attgenerated, a.attcollation, a.attacl)
FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
UNION ALL
SELECT format('constraint %s %s %s', c.oid::regclass, k.conname, pg_get_constraintdef(k.oid))
FROM rels c JOIN pg_constraint k ON k.conrelid = c.oid
UNION ALL
SELECT format('index %s', pg_get_indexdef(i.indexrelid)) FROM rels c JOIN pg_index i ON i.indrelid = c.oid
UNION ALL
SELECT format('policy %s %s cmd=%s permissive=%s roles=%s using=%s check=%s', c.oid::regclass, p.polname, p.polcmd,
	p.polpermissive, p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
FROM rels c JOIN pg_policy p ON p.polrelid = c.oid
UNION ALL
SELECT format('trigger %s %s', c.oid::regclass, pg_get_triggerdef(t.oid)) FROM rels c JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
UNION ALL
SELECT format('view %s %s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM rels c WHERE c.relkind = 'v'
UNION ALL
SELECT format('sequence %s owned by %s %s', c.oid::regclass,
	(SELECT a.attrelid::regclass || '.' || a.attname FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
		WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'a'), row(s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle))
FROM rels c JOIN pg_sequence s ON s.seqrelid = c.oid
UNION ALL
SELECT format('function %s acl=%s comment=%s def=%s', p.oid::regprocedure, p.proacl, obj_description(p.oid, 'pg_proc'),
	CASE WHEN p.prokind = 'a' THEN (SELECT row(a.aggkind, a.aggnumdirectargs, a.aggtransfn::regprocedure, a.aggfinalfn::regprocedure,
		a.aggcombinefn::regprocedure, a.aggserialfn::regprocedure, a.aggdeserialfn::regprocedure, a.aggfinalextra, a.aggfinalmodify,
		a.aggtranstype::regtype, a.aggtransspace, a.agginitval, p.proparallel, pg_get_function_arguments(p.oid))::text
		FROM pg_aggregate a WHERE a.aggfnoid = p.oid)
	ELSE pg_get_functiondef(p.oid) END)
FROM procs p
UNION ALL
SELECT format('event trigger %s %s %s %s %s comment=%s', e.evtname, e.evtevent, e.evtfoid::regprocedure, e.evtenabled, e.evttags,
	obj_description(e.oid, 'pg_event_trigger'))
FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
UNION ALL
SELECT format('schema %s acl=%s comment=%s', n.nspname, n.nspacl, obj_description(n.oid, 'pg_namespace'))
FROM pg_namespace n JOIN members m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
UNION ALL
SELECT format('config_dump %s condition=%s', cfg.rel, cfg.cond)
FROM pg_extension e, unnest(e.extconfig::regclass[], e.extcondition) AS cfg(rel, cond) WHERE e.extname = 'kappa'
UNION ALL
SELECT format('extension %s version=%s relocatable=%s schema=%s', e.extname, e.extversion, e.extrelocatable, e.extnamespace::regnamespace)
FROM pg_extension e WHERE e.extname = 'kappa'
UNION ALL
-- the privileges the scripts set, which pg_dump leaves to CREATE EXTENSION
SELECT format('init_privs %s %s %s', pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype, i.initprivs)
FROM pg_init_privs i JOIN members m ON m.classid = i.classoid AND m.objid = i.objoid
UNION ALL
SELECT format('sentinel rows=%s', count(*)) FROM kappa.zz_dump_sentinel
ORDER BY 1;
