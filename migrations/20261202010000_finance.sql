-- The finance domain: users and how they sign in, their accounts, transactions, budgets,
-- goals and income, their conversations with the assistant, their notifications, and an
-- append-only audit log.
--
-- Invariants kept by the database itself, whatever the code above it does:
-- * every row a user owns carries `user_id`, and every reference between owned rows goes
--   through a composite foreign key `(user_id, x_id) → x (user_id, id)`, so no row can point
--   at another user's row;
-- * money is NUMERIC(14,2); amounts are positive, balances and saved amounts never negative;
-- * a recurring income is credited at most once per due date, a budget alert is raised at most
--   once per budget, month and level, a bank row is imported at most once.

CREATE TABLE users (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email              text NOT NULL CHECK (email LIKE '%_@_%'),
    first_name         text NOT NULL,
    last_name          text NOT NULL,
    job_title          text,
    employment_status  text CHECK (employment_status IN
        ('Employed Full-time', 'Employed Part-time', 'Unemployed', 'Retired', 'Student')),
    education_level    text CHECK (education_level IN
        ('High school', 'Associate degree', 'Bachelor degree', 'Masters Degree', 'PhD')),
    address            text,
    birthday           date,
    preferred_currency text NOT NULL DEFAULT 'USD' CHECK (preferred_currency ~ '^[A-Z]{3}$'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (lower(email));

-- The Argon2id hash of a user's password, as a PHC string.
CREATE TABLE credentials (
    user_id       bigint PRIMARY KEY REFERENCES users ON DELETE CASCADE,
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Opaque bearer tokens: the client holds 32 random bytes, the database only their SHA-256.
CREATE TABLE api_tokens (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE accounts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    name       text NOT NULL CHECK (name <> ''),
    kind       text NOT NULL DEFAULT 'regular' CHECK (kind IN ('regular', 'savings')),
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance    numeric(14,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id)
);

CREATE TABLE budgets (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    name          text NOT NULL CHECK (name <> ''),
    description   text,
    monthly_limit numeric(14,2) NOT NULL CHECK (monthly_limit >= 0),
    priority      smallint CHECK (priority BETWEEN 1 AND 10),
    icon          text NOT NULL DEFAULT 'wallet',
    color         text NOT NULL DEFAULT '#10b981' CHECK (color ~ '^#[0-9a-fA-F]{6}$'),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id)
);
-- Two active budgets of one user never share a name (case-insensitively).
CREATE UNIQUE INDEX budgets_name ON budgets (user_id, lower(name)) WHERE active;

CREATE TABLE goals (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    name        text NOT NULL CHECK (name <> ''),
    description text,
    plan        text,
    target      numeric(14,2) NOT NULL CHECK (target > 0),
    saved       numeric(14,2) NOT NULL DEFAULT 0 CHECK (saved >= 0),
    start_date  date NOT NULL DEFAULT current_date,
    due_date    date CHECK (due_date >= start_date),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'achieved', 'inactive')),
    icon        text NOT NULL DEFAULT 'flag',
    color       text NOT NULL DEFAULT '#10b981' CHECK (color ~ '^#[0-9a-fA-F]{6}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id)
);

-- Income sources. A recurring one has a payment day and the next date it is due; the server
-- credits it on that date with a deposit and moves the date on by a month.
CREATE TABLE incomes (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind <> ''),
    amount            numeric(14,2) NOT NULL CHECK (amount > 0),
    description       text,
    account_id        bigint,
    payment_day       smallint CHECK (payment_day BETWEEN 1 AND 31),
    next_payment_date date,
    active            boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    CONSTRAINT incomes_account FOREIGN KEY (user_id, account_id) REFERENCES accounts (user_id, id),
    CHECK ((payment_day IS NULL) = (next_payment_date IS NULL)),
    CHECK (payment_day IS NULL OR account_id IS NOT NULL)
);
CREATE INDEX incomes_due ON incomes (next_payment_date) WHERE active AND payment_day IS NOT NULL;

CREATE TABLE transactions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    kind           text NOT NULL DEFAULT 'expense' CHECK (kind IN ('expense', 'deposit', 'transfer')),
    date           date NOT NULL,
    amount         numeric(14,2) NOT NULL CHECK (amount > 0),
    description    text,
    city           text,
    neighbourhood  text,
    tags           text[] NOT NULL DEFAULT '{}',
    budget_id      bigint,
    account_id     bigint,
    transfer_to_id bigint,
    income_id      bigint,
    -- A stable id of the bank-statement row this came from.
    import_id      text,
    deleted_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    CONSTRAINT transactions_budget FOREIGN KEY (user_id, budget_id) REFERENCES budgets (user_id, id),
    CONSTRAINT transactions_account FOREIGN KEY (user_id, account_id) REFERENCES accounts (user_id, id),
    CONSTRAINT transactions_transfer_to FOREIGN KEY (user_id, transfer_to_id) REFERENCES accounts (user_id, id),
    CONSTRAINT transactions_income FOREIGN KEY (user_id, income_id) REFERENCES incomes (user_id, id),
    CHECK (budget_id IS NULL OR kind = 'expense'),
    CHECK (income_id IS NULL OR kind = 'deposit'),
    CHECK ((kind = 'transfer') = (transfer_to_id IS NOT NULL)),
    CHECK (kind <> 'transfer' OR (account_id IS NOT NULL AND account_id <> transfer_to_id))
);
CREATE INDEX transactions_by_date ON transactions (user_id, date DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX transactions_by_budget ON transactions (user_id, budget_id, date)
    WHERE deleted_at IS NULL AND kind = 'expense';
CREATE UNIQUE INDEX transactions_import ON transactions (user_id, import_id) WHERE import_id IS NOT NULL;
-- A recurring income is credited once per due date, even if its deposit is later deleted.
CREATE UNIQUE INDEX transactions_income_credit ON transactions (income_id, date) WHERE income_id IS NOT NULL;

CREATE TABLE conversations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    title           text,
    channel         text NOT NULL DEFAULT 'web',
    -- The engine thread that holds the assistant's state for this conversation.
    thread_id       uuid,
    summary         text,
    summary_at      timestamptz,
    started_at      timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz,
    UNIQUE (user_id, id)
);
CREATE INDEX conversations_by_user ON conversations (user_id, id DESC);

CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint NOT NULL,
    conversation_id bigint NOT NULL,
    sender          text NOT NULL CHECK (sender IN ('user', 'assistant')),
    agent           text NOT NULL,
    content         text NOT NULL,
    content_type    text NOT NULL DEFAULT 'text' CHECK (content_type IN ('text', 'json')),
    -- Structured data that came with the message (rows, a chart); decimals kept as strings.
    data            jsonb,
    language        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_conversation FOREIGN KEY (user_id, conversation_id)
        REFERENCES conversations (user_id, id) ON DELETE CASCADE
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

CREATE TABLE notifications (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('budget_warning', 'budget_exceeded', 'info')),
    title      text NOT NULL,
    message    text NOT NULL,
    budget_id  bigint,
    -- The first day of the month a budget alert is about.
    period     date,
    is_read    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_budget FOREIGN KEY (user_id, budget_id) REFERENCES budgets (user_id, id),
    CHECK ((budget_id IS NULL) = (period IS NULL))
);
CREATE INDEX notifications_by_user ON notifications (user_id, id DESC);
CREATE UNIQUE INDEX notifications_once ON notifications (user_id, budget_id, period, kind)
    WHERE budget_id IS NOT NULL;

-- The stored response of a creating request sent with an `Idempotency-Key`.
CREATE TABLE idempotency_keys (
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,
    status       smallint NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Who changed what, when. No foreign keys: the log outlives what it describes.
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    user_id    bigint,
    action     text NOT NULL,
    object     text NOT NULL,
    object_id  bigint,
    detail     jsonb NOT NULL DEFAULT '{}',
    request_id text
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
