-- deliveries partitioned by month, so that a year of history costs what it
-- must: old months are dropped whole (a DROP TABLE, no DELETE to vacuum), and
-- autovacuum scans the partitions being written, not every edition ever sent.
--
-- The partition key is send_month: the month (UTC) the edition's send
-- started, the same for every delivery of the edition, fixed at the first
-- enqueue. Not the edition's own date: an old edition sent today belongs to
-- today's month, so retention never drops the rows of a send that has just
-- happened, and an edition's rows are always in one partition. The edition
-- row carries the key (editions.send_month, derived from send_started_at)
-- so every statement on an edition's deliveries can name it and PostgreSQL
-- reads one partition.
ALTER TABLE editions ADD COLUMN send_month date
    GENERATED ALWAYS AS (date_trunc('month', send_started_at AT TIME ZONE 'UTC')::date) STORED;

-- The unpartitioned table steps aside, its indexes' names with it (index
-- names are the schema's, and the new table's take them).
ALTER TABLE deliveries RENAME TO deliveries_unpartitioned;
ALTER INDEX deliveries_pkey RENAME TO deliveries_unpartitioned_pkey;
ALTER INDEX deliveries_edition_id_subscriber_id_key RENAME TO deliveries_unpartitioned_pair_key;
ALTER INDEX deliveries_subscriber_idx RENAME TO deliveries_unpartitioned_subscriber_idx;
ALTER INDEX deliveries_edition_idx RENAME TO deliveries_unpartitioned_edition_idx;

-- The same columns, checks and defaults, and the key. A partitioned table's
-- primary key and unique constraints must include the partition key; since
-- an edition's rows all have one send_month, (edition_id, subscriber_id,
-- send_month) is as unique as the pair was. The indexes are still only on
-- columns fixed at enqueue, so status changes stay HOT (migration 0009).
-- Message-IDs have no index, as since migration 0005: a derived one names
-- its edition and subscriber (delivery.Queue.ByMessageID).
CREATE TABLE deliveries (
    id               bigint      NOT NULL DEFAULT nextval('deliveries_id_seq'),
    edition_id       bigint      NOT NULL,
    subscriber_id    bigint      NOT NULL,
    send_month       date        NOT NULL,
    status           text        NOT NULL DEFAULT 'queued'
                     CONSTRAINT deliveries_status_check
                     CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    message_id       text,
    attempts         integer     NOT NULL DEFAULT 0 CONSTRAINT deliveries_attempts_check CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_holder     text,
    lease_expires_at timestamptz,
    permanent        boolean,
    smtp_code        integer,
    smtp_enhanced    text,
    smtp_reply       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    last_attempt_at  timestamptz,
    CONSTRAINT deliveries_pkey PRIMARY KEY (id, send_month),
    CONSTRAINT deliveries_edition_id_subscriber_id_key UNIQUE (edition_id, subscriber_id, send_month),
    CONSTRAINT deliveries_check CHECK ((status = 'sending') = (lease_holder IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT deliveries_check1 CHECK (status <> 'sent' OR sent_at IS NOT NULL),
    CONSTRAINT deliveries_check2 CHECK (status <> 'failed' OR permanent IS NOT NULL)
) PARTITION BY RANGE (send_month);
CREATE INDEX deliveries_subscriber_idx ON deliveries (subscriber_id);
CREATE INDEX deliveries_edition_idx ON deliveries (edition_id, id);
ALTER SEQUENCE deliveries_id_seq OWNED BY deliveries.id;

-- deliveries_partition creates the partition of the month holding day
-- (named deliveries_YYYY_MM) unless it exists, and returns its name. The
-- binary calls it for the months ahead (package delivery, partitions.go).
-- The advisory lock serialises processes creating the same month, whose
-- CREATE TABLE IF NOT EXISTS could otherwise both pass the check and one
-- fail; the check before it keeps the common case (the month exists) from
-- waiting on it. fillfactor 35 on every partition, for the in-place updates
-- (migration 0009): a partitioned table itself has no storage to set it on.
--
-- No DEFAULT partition: rows outside every month would land there, and a
-- month could then no longer be created while the default held rows of it;
-- enqueue makes sure its month exists instead.
CREATE FUNCTION deliveries_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', day)::date;
    name  text := 'deliveries_' || to_char(first, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(7453010373645639028); -- "nlpartit"
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF deliveries
            FOR VALUES FROM (%L) TO (%L) WITH (fillfactor = 35)',
            name, first, (first + interval '1 month')::date);
    END IF;
    RETURN name;
END $$;

-- A partition for every month the table holds, and for this month and the
-- next three, then the rows, every column kept. Every delivery's edition has
-- a send_month (rows are only queued after the edition's send started); the
-- creation time stands in should one not.
SELECT deliveries_partition(m)
FROM (SELECT DISTINCT coalesce(e.send_month, date_trunc('month', d.created_at AT TIME ZONE 'UTC')::date) AS m
      FROM deliveries_unpartitioned d LEFT JOIN editions e ON e.id = d.edition_id
      UNION
      SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => k))::date
      FROM generate_series(0, 3) AS k) AS months;

INSERT INTO deliveries (id, edition_id, subscriber_id, send_month, status, message_id, attempts,
    next_attempt_at, lease_holder, lease_expires_at, permanent, smtp_code, smtp_enhanced, smtp_reply,
    created_at, updated_at, sent_at, last_attempt_at)
SELECT d.id, d.edition_id, d.subscriber_id,
    coalesce(e.send_month, date_trunc('month', d.created_at AT TIME ZONE 'UTC')::date),
    d.status, d.message_id, d.attempts, d.next_attempt_at, d.lease_holder, d.lease_expires_at,
    d.permanent, d.smtp_code, d.smtp_enhanced, d.smtp_reply, d.created_at, d.updated_at, d.sent_at,
    d.last_attempt_at
FROM deliveries_unpartitioned d LEFT JOIN editions e ON e.id = d.edition_id
ORDER BY d.id;

DROP TABLE deliveries_unpartitioned;

-- What an edition's send came to, kept once its deliveries are dropped with
-- their month (NEWSLETTER_RETENTION): the counts by outcome, and its
-- failures by SMTP reply code and enhanced code (no reply text: servers
-- write the recipient's address into it).
CREATE TABLE delivery_summaries (
    edition_id       bigint PRIMARY KEY REFERENCES editions (id),
    queued           bigint NOT NULL DEFAULT 0,
    sending          bigint NOT NULL DEFAULT 0,
    sent             bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    failed_permanent bigint NOT NULL DEFAULT 0,
    skipped          bigint NOT NULL DEFAULT 0,
    -- [{"code": 550, "enhanced": "5.1.1", "permanent": true, "count": 12}, ...],
    -- the most frequent first.
    failures         jsonb  NOT NULL DEFAULT '[]',
    summarised_at    timestamptz NOT NULL DEFAULT now()
);
