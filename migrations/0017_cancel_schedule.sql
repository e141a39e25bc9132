-- Cancelled sends and scheduled sends (issue 12).
--
-- A cancelled send records every recipient not yet sent as 'cancelled', so
-- the record still accounts for everyone: total = sent + failed + skipped +
-- cancelled (+ the messages in flight, which record their real outcome).
-- The CHECK is replaced on the partitioned table, which replaces it on every
-- partition. No index names a status (migration 0009: status changes stay
-- in-place updates), so none needs changing.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped', 'cancelled'));

-- The summary kept once a month's deliveries are pruned counts them too.
ALTER TABLE delivery_summaries ADD COLUMN cancelled bigint NOT NULL DEFAULT 0;

-- Who cancelled the send and when; a cancelled edition is also paused
-- (paused_at), which is what stops every worker at its next lease, so the
-- send path needs no check of its own. send_at: when a scheduled send is to
-- start (the live workers start it, see edition.Store.ClaimDue), and who
-- scheduled it. A send that starts keeps send_at as the record of the
-- schedule it followed.
ALTER TABLE editions
    ADD COLUMN cancelled_at timestamptz,
    ADD COLUMN cancelled_by text CHECK (length(cancelled_by) <= 300),
    ADD COLUMN send_at      timestamptz,
    ADD COLUMN scheduled_by text CHECK (length(scheduled_by) <= 300),
    ADD CONSTRAINT editions_cancelled_started CHECK (cancelled_at IS NULL OR send_started_at IS NOT NULL);

-- The scheduled sends not started yet: what ClaimDue looks at every few
-- seconds in every live process.
CREATE INDEX editions_due_idx ON editions (send_at) WHERE send_at IS NOT NULL AND send_started_at IS NULL;
