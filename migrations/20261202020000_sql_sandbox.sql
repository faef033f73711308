-- The SQL sandbox: what SQL written by a model may read, as whom, and what it may not run.
--
-- * `semantic`: views over the finance tables for the questions people ask, without user ids
--   or internal columns; `security_invoker` (the reader's rights and row-level security
--   apply) and `security_barrier` (the reader's conditions never see rows the view filters
--   out). Their comments are what the model is told (`engine/src/sandbox/catalog.rs`).
-- * `finch_sql`: the role sandboxed queries log in as. It owns nothing, belongs to no role,
--   can read only the semantic views (and, for them, the columns they use), and cannot run
--   the built-ins that change settings, sleep, lock, signal other sessions, run SQL given as
--   text, or touch large objects, files or other servers.
-- * Row-level security, enabled and forced on every table: the sandbox role sees the rows
--   of the user set with `SET LOCAL finch.user_id`, and no row at all when it is not set;
--   the role that runs the migrations (the application's) keeps seeing everything.
-- * `sandbox_queries`: one row per sandboxed query, for the audit and the per-user rate.
--
-- The revocations need a superuser; the end of this file checks their outcome instead of
-- trusting it, so a migration run without the rights fails.

-- Roles belong to the cluster, not to this database: another database (or a test database
-- migrated at the same moment) may have created it already.
DO $$
BEGIN
    CREATE ROLE finch_sql LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
        NOBYPASSRLS CONNECTION LIMIT 64;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

CREATE TABLE sandbox_queries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    -- Whom it ran for: the user id as the sandbox set it.
    user_ref        text NOT NULL,
    -- The user's question, hashed: the audit need not keep what people ask.
    question_sha256 bytea,
    sql             text NOT NULL,
    -- What ran: the re-printed query with its limit (NULL when refused before running).
    ran_sql         text,
    verdict         text NOT NULL CHECK (verdict IN ('ran', 'rejected', 'failed')),
    error           text,
    rows            integer NOT NULL,
    truncated       boolean NOT NULL,
    duration_ms     integer NOT NULL
);
CREATE INDEX sandbox_queries_by_user ON sandbox_queries (user_ref, at);

CREATE SCHEMA semantic;
COMMENT ON SCHEMA semantic IS 'What the database agent may query: one user''s finances.';

CREATE VIEW semantic.transactions WITH (security_invoker = true, security_barrier = true) AS
SELECT t.date,
       date_trunc('month', t.date)::date AS month,
       trim(to_char(t.date, 'Day')) AS weekday,
       extract(isodow FROM t.date)::integer AS weekday_number,
       t.kind,
       t.amount,
       b.name AS category,
       t.description,
       t.city,
       t.neighbourhood,
       t.tags,
       a.name AS account,
       ta.name AS transfer_to
FROM public.transactions t
LEFT JOIN public.budgets b ON b.id = t.budget_id
LEFT JOIN public.accounts a ON a.id = t.account_id
LEFT JOIN public.accounts ta ON ta.id = t.transfer_to_id
WHERE t.user_id = current_setting('finch.user_id')::bigint AND t.deleted_at IS NULL;
COMMENT ON VIEW semantic.transactions IS 'Every transaction of the user, one row each: expenses, deposits (income, refunds) and transfers between their accounts.
Example: How much did I spend on groceries last month?
Example: Which merchants did I spend the most at this year?
Example: Do I spend more at weekends?';
COMMENT ON COLUMN semantic.transactions.date IS 'The day it happened.';
COMMENT ON COLUMN semantic.transactions.month IS 'The first day of its month, for grouping by month.';
COMMENT ON COLUMN semantic.transactions.weekday IS 'Day of the week, in English (Monday … Sunday).';
COMMENT ON COLUMN semantic.transactions.weekday_number IS '1 = Monday … 7 = Sunday.';
COMMENT ON COLUMN semantic.transactions.kind IS '''expense'' (money spent), ''deposit'' (money received) or ''transfer'' (between own accounts; neither spent nor earned).';
COMMENT ON COLUMN semantic.transactions.amount IS 'Always positive, in the account''s currency; spending is kind = ''expense''.';
COMMENT ON COLUMN semantic.transactions.category IS 'The budget the expense counts against (its category); NULL when uncategorized or not an expense.';
COMMENT ON COLUMN semantic.transactions.description IS 'What was bought or where: the merchant or a note.';
COMMENT ON COLUMN semantic.transactions.city IS 'Where it happened, when known.';
COMMENT ON COLUMN semantic.transactions.neighbourhood IS 'Part of the city, when known.';
COMMENT ON COLUMN semantic.transactions.tags IS 'Free labels (text array).';
COMMENT ON COLUMN semantic.transactions.account IS 'The account the money left (expense, transfer) or reached (deposit).';
COMMENT ON COLUMN semantic.transactions.transfer_to IS 'For a transfer, the account that received the money.';

CREATE VIEW semantic.monthly_spending WITH (security_invoker = true, security_barrier = true) AS
SELECT date_trunc('month', t.date)::date AS month,
       b.name AS category,
       sum(t.amount) AS total,
       count(*)::integer AS transactions
FROM public.transactions t
LEFT JOIN public.budgets b ON b.id = t.budget_id
WHERE t.user_id = current_setting('finch.user_id')::bigint AND t.deleted_at IS NULL AND t.kind = 'expense'
GROUP BY 1, 2;
COMMENT ON VIEW semantic.monthly_spending IS 'Spending (expenses only) per month and category.
Example: How did my spending change over the last six months?
Example: Which category grew the most compared with last month?';
COMMENT ON COLUMN semantic.monthly_spending.month IS 'The first day of the month.';
COMMENT ON COLUMN semantic.monthly_spending.category IS 'The budget (category); NULL for uncategorized expenses.';
COMMENT ON COLUMN semantic.monthly_spending.total IS 'Sum of the expenses.';
COMMENT ON COLUMN semantic.monthly_spending.transactions IS 'How many expenses.';

CREATE VIEW semantic.budgets WITH (security_invoker = true, security_barrier = true) AS
SELECT b.name,
       b.description,
       b.monthly_limit,
       b.priority,
       b.active,
       coalesce(s.spent, 0) AS spent_this_month,
       b.monthly_limit - coalesce(s.spent, 0) AS remaining_this_month,
       CASE WHEN b.monthly_limit > 0 THEN round(100 * coalesce(s.spent, 0) / b.monthly_limit, 1) END
           AS percent_used
FROM public.budgets b
LEFT JOIN LATERAL (
    SELECT sum(t.amount) AS spent
    FROM public.transactions t
    WHERE t.budget_id = b.id AND t.kind = 'expense' AND t.deleted_at IS NULL
      AND t.date >= date_trunc('month', current_date)
      AND t.date < date_trunc('month', current_date) + interval '1 month'
) s ON true
WHERE b.user_id = current_setting('finch.user_id')::bigint;
COMMENT ON VIEW semantic.budgets IS 'The user''s budgets (spending categories with a monthly limit), with this month''s spending so far.
Example: Which budgets am I over this month?
Example: How much is left in my dining budget?';
COMMENT ON COLUMN semantic.budgets.name IS 'The budget''s name, also the category of its expenses.';
COMMENT ON COLUMN semantic.budgets.description IS 'What it is for.';
COMMENT ON COLUMN semantic.budgets.monthly_limit IS 'What may be spent each month.';
COMMENT ON COLUMN semantic.budgets.priority IS '1 (lowest) to 10 (highest), when set.';
COMMENT ON COLUMN semantic.budgets.active IS 'Archived budgets are false.';
COMMENT ON COLUMN semantic.budgets.spent_this_month IS 'Expenses in it since the first of the current month.';
COMMENT ON COLUMN semantic.budgets.remaining_this_month IS 'Limit minus spent; negative when over.';
COMMENT ON COLUMN semantic.budgets.percent_used IS 'Spent as a percentage of the limit, one decimal.';

CREATE VIEW semantic.goals WITH (security_invoker = true, security_barrier = true) AS
SELECT g.name,
       g.description,
       g.plan,
       g.target,
       g.saved,
       greatest(g.target - g.saved, 0) AS remaining,
       round(100 * g.saved / g.target, 1) AS progress_percent,
       g.start_date,
       g.due_date,
       g.status,
       CASE WHEN g.due_date > current_date THEN
           (extract(year FROM age(g.due_date, current_date)) * 12
            + extract(month FROM age(g.due_date, current_date)))::integer
       END AS months_left,
       CASE WHEN g.due_date > current_date THEN
           round(greatest(g.target - g.saved, 0) / greatest(
               (extract(year FROM age(g.due_date, current_date)) * 12
                + extract(month FROM age(g.due_date, current_date))), 1), 2)
       END AS monthly_saving_needed
FROM public.goals g
WHERE g.user_id = current_setting('finch.user_id')::bigint;
COMMENT ON VIEW semantic.goals IS 'The user''s saving goals and how far along they are.
Example: How close am I to my emergency fund goal?
Example: How much must I save each month to reach my goals on time?';
COMMENT ON COLUMN semantic.goals.name IS 'The goal''s name.';
COMMENT ON COLUMN semantic.goals.description IS 'What it is for.';
COMMENT ON COLUMN semantic.goals.plan IS 'How the user means to reach it.';
COMMENT ON COLUMN semantic.goals.target IS 'The amount to reach.';
COMMENT ON COLUMN semantic.goals.saved IS 'Saved so far.';
COMMENT ON COLUMN semantic.goals.remaining IS 'Target minus saved, never below zero.';
COMMENT ON COLUMN semantic.goals.progress_percent IS 'Saved as a percentage of the target, one decimal.';
COMMENT ON COLUMN semantic.goals.start_date IS 'When the goal was set.';
COMMENT ON COLUMN semantic.goals.due_date IS 'When it should be reached, if set.';
COMMENT ON COLUMN semantic.goals.status IS '''active'', ''achieved'' or ''inactive''.';
COMMENT ON COLUMN semantic.goals.months_left IS 'Whole months until the due date; NULL when none or past.';
COMMENT ON COLUMN semantic.goals.monthly_saving_needed IS 'Remaining divided by the months left (at least one); NULL without a future due date.';

CREATE VIEW semantic.income WITH (security_invoker = true, security_barrier = true) AS
SELECT i.kind,
       i.amount,
       i.description,
       i.payment_day,
       i.next_payment_date,
       a.name AS account,
       i.active
FROM public.incomes i
LEFT JOIN public.accounts a ON a.id = i.account_id
WHERE i.user_id = current_setting('finch.user_id')::bigint;
COMMENT ON VIEW semantic.income IS 'The user''s sources of income; recurring ones are paid monthly on their payment day.
Example: What is my total monthly income?
Example: When is my next salary paid?';
COMMENT ON COLUMN semantic.income.kind IS 'What kind of income (salary, freelance, rent …).';
COMMENT ON COLUMN semantic.income.amount IS 'The amount of one payment.';
COMMENT ON COLUMN semantic.income.description IS 'A note about it.';
COMMENT ON COLUMN semantic.income.payment_day IS 'Day of the month it is paid, for recurring income.';
COMMENT ON COLUMN semantic.income.next_payment_date IS 'The next date it is due.';
COMMENT ON COLUMN semantic.income.account IS 'The account it is paid into.';
COMMENT ON COLUMN semantic.income.active IS 'Stopped income is false.';

CREATE VIEW semantic.accounts WITH (security_invoker = true, security_barrier = true) AS
SELECT a.name, a.kind, a.currency, a.balance, a.active
FROM public.accounts a
WHERE a.user_id = current_setting('finch.user_id')::bigint;
COMMENT ON VIEW semantic.accounts IS 'The user''s accounts and their balances.
Example: How much money do I have in all my accounts?
Example: What is in my savings account?';
COMMENT ON COLUMN semantic.accounts.name IS 'The account''s name.';
COMMENT ON COLUMN semantic.accounts.kind IS '''regular'' or ''savings''.';
COMMENT ON COLUMN semantic.accounts.currency IS 'ISO 4217 code, such as USD.';
COMMENT ON COLUMN semantic.accounts.balance IS 'Current balance.';
COMMENT ON COLUMN semantic.accounts.active IS 'Closed accounts are false.';

-- The sandbox role reads the views, and (since they run with its rights) the columns they use.
GRANT USAGE ON SCHEMA semantic TO finch_sql;
GRANT SELECT ON ALL TABLES IN SCHEMA semantic TO finch_sql;
GRANT SELECT (id, user_id, kind, date, amount, description, city, neighbourhood, tags, budget_id,
              account_id, transfer_to_id, deleted_at) ON public.transactions TO finch_sql;
GRANT SELECT (id, user_id, name, description, monthly_limit, priority, active) ON public.budgets TO finch_sql;
GRANT SELECT (user_id, name, description, plan, target, saved, start_date, due_date, status)
    ON public.goals TO finch_sql;
GRANT SELECT (user_id, kind, amount, description, account_id, payment_day, next_payment_date, active)
    ON public.incomes TO finch_sql;
GRANT SELECT (id, user_id, name, kind, currency, balance, active) ON public.accounts TO finch_sql;

-- Row-level security on every table: the application's role sees all rows, the sandbox role
-- the rows of the user it was given, and any other role none. Tables made by later
-- migrations must do the same (a test checks every table).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname,
               EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped) AS owned
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> '_sqlx_migrations'
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('CREATE POLICY application ON public.%I TO %I USING (true) WITH CHECK (true)',
                       t.relname, current_user);
        IF t.owned THEN
            EXECUTE format('CREATE POLICY sandbox_own_rows ON public.%I FOR SELECT TO finch_sql '
                           'USING (user_id = current_setting(''finch.user_id'')::bigint)', t.relname);
        END IF;
    END LOOP;
END
$$;

-- The built-ins every role may run by default that a sandboxed query must not: they change
-- settings (the user id among them), sleep, take locks that outlive the transaction, signal
-- or watch other sessions, run SQL given as text (which no parser sees), or touch large
-- objects, files or other servers. The application keeps them (sqlx's migrations take an
-- advisory lock, pg_dump calls set_config).
CREATE FUNCTION sandbox_forbidden_functions() RETURNS SETOF regprocedure
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
                         'ts_stat', 'ts_rewrite', 'pg_stat_get_activity', 'loread', 'lowrite',
                         'pg_read_file', 'pg_read_binary_file', 'pg_stat_file', 'pg_ls_dir',
                         'pg_current_logfile', 'pg_logical_emit_message', 'pg_reload_conf',
                         'pg_rotate_logfile', 'pg_switch_wal', 'pg_create_restore_point',
                         'pg_promote', 'pg_log_backend_memory_contexts', 'pg_import_system_collations')
        OR p.proname LIKE 'pg\_%advisory\_%'
        OR p.proname LIKE 'lo\_%'
        OR p.proname LIKE 'pg\_ls\_%'
        OR p.proname LIKE 'pg\_stat\_get\_backend\_%'
        OR p.proname LIKE 'pg\_stat\_reset%'
        OR p.proname LIKE 'dblink%')
$$;
REVOKE EXECUTE ON FUNCTION sandbox_forbidden_functions() FROM PUBLIC;

DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT sandbox_forbidden_functions() LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, current_user);
    END LOOP;
    -- The running queries of every session of a role, other users' questions among them.
    REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC;
    EXECUTE format('GRANT SELECT ON pg_catalog.pg_stat_activity TO %I', current_user);
END
$$;

-- The outcome, checked: anything wrong stops the migration.
DO $$
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
