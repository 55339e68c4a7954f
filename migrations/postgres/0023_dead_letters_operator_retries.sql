-- An operator's retries of a dead letter, apart from auto-heal's rounds (`heal_rounds`): a
-- retry takes the letter out of quarantine and gives auto-heal its rounds again, and the
-- loop guard (`admin-api --max-retries`) counts these alone, so a letter auto-heal gave up on
-- can still be retried once its cause is fixed (decision 0011, amended).
ALTER TABLE dead_letters ADD COLUMN operator_retries integer NOT NULL DEFAULT 0;
