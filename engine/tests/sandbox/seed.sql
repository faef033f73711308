-- Two users for the sandbox tests. Everything of user 9797 (B) carries a marker — `B-SECRET`
-- in text, 777.77 in amounts — that must never come back to user 4242 (A); A's carry
-- `A-OWN` and 111.11 the other way round.
INSERT INTO users (id, email, first_name, last_name) OVERRIDING SYSTEM VALUE VALUES
    (4242, 'a-own@example.com', 'A-OWN-first', 'A-OWN-last'),
    (9797, 'b-secret@example.com', 'B-SECRET-first', 'B-SECRET-last');
INSERT INTO credentials (user_id, password_hash) VALUES
    (4242, '$argon2id$A-OWN-hash'), (9797, '$argon2id$B-SECRET-hash');
INSERT INTO accounts (id, user_id, name, kind, currency, balance) OVERRIDING SYSTEM VALUE VALUES
    (41, 4242, 'A-OWN checking', 'regular', 'USD', 1200.00),
    (42, 4242, 'A-OWN savings', 'savings', 'USD', 300.00),
    (97, 9797, 'B-SECRET account', 'regular', 'USD', 777.77);
INSERT INTO budgets (id, user_id, name, monthly_limit, priority) OVERRIDING SYSTEM VALUE VALUES
    (41, 4242, 'A-OWN groceries', 400.00, 8),
    (42, 4242, 'A-OWN dining', 150.00, 3),
    (97, 9797, 'B-SECRET budget', 777.77, 9);
INSERT INTO goals (user_id, name, target, saved, due_date) VALUES
    (4242, 'A-OWN trip', 2000.00, 500.00, current_date + 300),
    (9797, 'B-SECRET goal', 777.77, 7.77, current_date + 300);
INSERT INTO incomes (user_id, kind, amount, account_id, payment_day, next_payment_date) VALUES
    (4242, 'A-OWN salary', 3000.00, 41, 1, date_trunc('month', current_date)::date + 31),
    (9797, 'B-SECRET salary', 777.77, 97, 1, date_trunc('month', current_date)::date + 31);
-- Dates from the first of the month, so that "this month" holds the same rows any day.
INSERT INTO transactions (user_id, kind, date, amount, description, city, budget_id, account_id)
SELECT user_id, kind, date_trunc('month', current_date)::date + days, amount, description, city, budget_id, account_id
FROM (VALUES
    (4242, 'expense', 0, 42.10, 'A-OWN market', 'Lisbon', 41, 41),
    (4242, 'expense', 0, 18.50, 'A-OWN cafe', 'Lisbon', 42, 41),
    (4242, 'expense', -40, 111.11, 'A-OWN bakery', 'Porto', 41, 41),
    (4242, 'expense', 0, 9.99, 'A-OWN kiosk', 'Lisbon', NULL, 41),
    (4242, 'deposit', 0, 3000.00, 'A-OWN salary', NULL, NULL, 41),
    (9797, 'expense', 0, 777.77, 'B-SECRET merchant', 'B-SECRET city', 97, 97),
    (9797, 'expense', -40, 777.77, 'B-SECRET second', 'B-SECRET city', 97, 97)
) AS t (user_id, kind, days, amount, description, city, budget_id, account_id);
INSERT INTO transactions (user_id, kind, date, amount, description, account_id, transfer_to_id) VALUES
    (4242, 'transfer', date_trunc('month', current_date)::date, 100.00, 'A-OWN to savings', 41, 42);
INSERT INTO conversations (id, user_id, summary) OVERRIDING SYSTEM VALUE VALUES
    (97, 9797, 'B-SECRET summary');
INSERT INTO messages (user_id, conversation_id, sender, agent, content) VALUES
    (9797, 97, 'user', 'user', 'B-SECRET question about my salary');
INSERT INTO notifications (user_id, kind, title, message) VALUES
    (9797, 'info', 'B-SECRET title', 'B-SECRET message');
INSERT INTO audit_log (user_id, action, object) VALUES (9797, 'B-SECRET action', 'B-SECRET object');
