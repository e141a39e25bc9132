-- The dispatcher: a send can be paused (an error threshold, or by hand) and
-- resumed where it stopped, has a send-by deadline after which temporary
-- failures are given up, and is marked finished once every recipient has an
-- outcome.
ALTER TABLE editions
    ADD COLUMN send_by      timestamptz,
    ADD COLUMN paused_at    timestamptz,
    ADD COLUMN pause_reason text,
    ADD COLUMN finished_at  timestamptz,
    ADD CONSTRAINT editions_pause_reason CHECK ((paused_at IS NULL) = (pause_reason IS NULL));

ALTER TABLE deliveries
    ADD COLUMN last_attempt_at timestamptz;

-- The long-lived worker looks for editions with work left.
CREATE INDEX editions_active_idx ON editions (date)
    WHERE send_started_at IS NOT NULL AND finished_at IS NULL;
