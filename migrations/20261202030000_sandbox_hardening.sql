-- The SQL sandbox, hardened after a review found what the first migration left open:
-- * PL/pgSQL: a `DO` block is one statement that can `SET LOCAL finch.user_id` and then read
--   another user's rows; the sandbox role may no longer write PL/pgSQL.
-- * Watching other sessions: the `pg_stat_get_*` statistics (activity counts of every table),
--   `pg_lock_status` (other sessions' locks), and the functions that take or show
--   transaction ids join the built-ins the role may not run.
-- The checks now live in `sandbox_assert()`, which later migrations call after adding tables.

CREATE OR REPLACE FUNCTION sandbox_forbidden_functions() RETURNS SETOF regprocedure
LANGUAGE sql STABLE AS $$
    SELECT p.oid::regprocedure
    FROM pg_proc p
    WHERE p.pronamespace = 'pg_catalog'::regnamespace AND (
           p.proname IN ('set_config', 'pg_sleep', 'pg_sleep_for', 'pg_sleep_until',
                         'pg_cancel_backend', 'pg_terminate_backend', 'pg_notify',
                         'pg_listening_channels', 'query_to_xml', 'query_to_xmlschema',
                         'query_to_xml_and_xmlschema', 'cursor_to_xml', 'cursor_to_xmlschema',
                         'table_to_xml', 'table_to_xmlschema', 'table_to_xml_and_xmlschema',
                         'schema_to_xml', 'schema_to_xmlschema', 'schema_to_xml_and_xmlschema',
                         'database_to_xml', 'database_to_xmlschema', 'database_to_xml_and_xmlschema',
                         'ts_stat', 'ts_rewrite', 'loread', 'lowrite',
                         'pg_read_file', 'pg_read_binary_file', 'pg_stat_file', 'pg_ls_dir',
                         'pg_current_logfile', 'pg_logical_emit_message', 'pg_reload_conf',
                         'pg_rotate_logfile', 'pg_switch_wal', 'pg_create_restore_point',
                         'pg_promote', 'pg_log_backend_memory_contexts', 'pg_import_system_collations',
                         'pg_lock_status', 'txid_current', 'txid_current_if_assigned', 'txid_current_snapshot',
                         'pg_current_xact_id', 'pg_current_xact_id_if_assigned', 'pg_current_snapshot')
        OR p.proname LIKE 'pg\_%advisory\_%'
        OR p.proname LIKE 'lo\_%'
        OR p.proname LIKE 'pg\_ls\_%'
        OR p.proname LIKE 'pg\_stat\_get\_%'
        OR p.proname LIKE 'pg\_stat\_reset%'
        OR p.proname LIKE 'dblink%')
$$;

DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT sandbox_forbidden_functions() LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, current_user);
    END LOOP;
    REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC;
    EXECUTE format('GRANT USAGE ON LANGUAGE plpgsql TO %I', current_user);
END
$$;

-- Everything the sandbox relies on in the database, checked: anything wrong raises.
CREATE FUNCTION sandbox_assert() RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    problem text;
BEGIN
    SELECT string_agg(f::text, ', ') INTO problem
    FROM sandbox_forbidden_functions() AS f
    WHERE has_function_privilege('finch_sql', f, 'EXECUTE');
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'finch_sql can still run %', problem;
    END IF;
    IF has_table_privilege('finch_sql', 'pg_catalog.pg_stat_activity', 'SELECT') THEN
        RAISE EXCEPTION 'finch_sql can still read pg_stat_activity';
    END IF;
    IF has_language_privilege('finch_sql', 'plpgsql', 'USAGE') THEN
        RAISE EXCEPTION 'finch_sql can still write PL/pgSQL';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finch_sql'
               AND (rolsuper OR rolinherit OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)) THEN
        RAISE EXCEPTION 'finch_sql has attributes it must not have';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_auth_members WHERE member = 'finch_sql'::regrole) THEN
        RAISE EXCEPTION 'finch_sql belongs to a role';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname IN ('dblink', 'postgres_fdw', 'file_fdw', 'adminpack')) THEN
        RAISE EXCEPTION 'an extension that reaches files or other servers is installed';
    END IF;
    SELECT string_agg(c.relname, ', ') INTO problem
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
      AND c.relname <> '_sqlx_migrations' AND NOT (c.relrowsecurity AND c.relforcerowsecurity);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'row-level security is not forced on %', problem;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION sandbox_assert() FROM PUBLIC;

SELECT sandbox_assert();
