-- The built-in schedule's runs: one row per local day the schedule names.
-- The primary key on the day is what makes exactly one process run a day's
-- digest: every scheduler inserts the day's row with ON CONFLICT DO NOTHING
-- and only the one whose insert wrote it starts the run; every later step is
-- a conditional UPDATE of that row (see package schedule).
CREATE TABLE schedule_runs (
    day           date PRIMARY KEY,           -- the local day (NEWSLETTER_TZ) the run is for
    scheduled_for timestamptz NOT NULL,       -- when the schedule said to run it
    started_at    timestamptz,                -- when a process began it; NULL for a missed run
    state         text NOT NULL CHECK (state IN ('importing', 'holding', 'sending', 'sent', 'failed', 'missed', 'skipped')),
    held          boolean NOT NULL DEFAULT false, -- an editor held it: not sent until released
    edition_date  date,                       -- the edition imported for it
    reason        text NOT NULL DEFAULT '',   -- why it failed, was missed or skipped; the last error while retrying
    attempts      integer NOT NULL DEFAULT 0, -- imports or send starts tried
    next_at       timestamptz,                -- when the next step is due (a retry, the end of the hold)
    lease_holder  text,                       -- the process doing a step now
    lease_until   timestamptz,
    sent_at       timestamptz,                -- when its send started
    finished_at   timestamptz                 -- when its outcome (sent, failed, missed, skipped) was recorded
);

-- The runs with a step to do, which every scheduler looks for on each tick.
CREATE INDEX schedule_runs_open ON schedule_runs (next_at) WHERE state IN ('importing', 'holding', 'sending');
