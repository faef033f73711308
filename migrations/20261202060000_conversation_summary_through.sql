-- The rolling summary of a long conversation (`conversations.summary`) covers its messages up
-- to this id; the assistant folds later ones in once they leave its window of recent messages.
ALTER TABLE conversations ADD COLUMN summary_through bigint;

SELECT sandbox_assert();
