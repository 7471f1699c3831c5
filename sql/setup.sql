--
-- setup: create the extension, and a helper that shows an error exactly:
-- its SQLSTATE, message, detail and hint, so that the expected output
-- asserts all four.
--
-- The embedded broker's address comes from the environment (scripts/test
-- starts one and exports KAPPA_BROKER).
--
CREATE EXTENSION kappa;

CREATE FUNCTION expect_error(statement text,
	OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE statement;
	RAISE EXCEPTION 'statement succeeded: %', statement;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS
		code = RETURNED_SQLSTATE,
		message = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL,
		hint = PG_EXCEPTION_HINT;
	IF message LIKE 'statement succeeded: %' THEN
		RAISE;
	END IF;
END
$$;

-- The extension is in place, with its role and schema.
SELECT extname, extversion FROM pg_extension WHERE extname = 'kappa';
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'kappa_admin';
SELECT count(*) AS streams FROM kappa_streams;
