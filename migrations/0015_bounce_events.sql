-- What came back after a send and was acted on: each hard bounce, soft
-- bounce, complaint and mailto unsubscribe, with its evidence (where it came
-- from, the status code, the server's diagnostic without any address), so
-- that a subscriber marked bounced or unsubscribed can be shown why.
--
-- delivery_id names the delivery the bounce is about (its VERP token), NULL
-- for a mailto unsubscribe; no foreign key, since deliveries is partitioned
-- and its old months are dropped whole (retention): the evidence outlives
-- the delivery row. One event of a kind per delivery: a second bounce of the
-- same kind for it (a token used again) changes nothing.
CREATE TABLE bounce_events (
    id            bigserial   PRIMARY KEY,
    delivery_id   bigint,
    subscriber_id bigint      NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint', 'unsubscribe')),
    source        text        NOT NULL CHECK (source ~ '^[a-z0-9:-]{1,40}$'),
    status        text        NOT NULL DEFAULT '' CHECK (length(status) <= 20),
    diagnostic    text        NOT NULL DEFAULT '' CHECK (length(diagnostic) <= 200 AND diagnostic !~ '[\r\n]'),
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX bounce_events_delivery_kind ON bounce_events (delivery_id, kind) WHERE delivery_id IS NOT NULL;
-- The soft-bounce policy counts a subscriber's recent soft bounces.
CREATE INDEX bounce_events_subscriber ON bounce_events (subscriber_id, received_at);

-- The consent record says a subscriber left by the mailto unsubscribe, or
-- was taken off by a bounce or a complaint.
ALTER TABLE consents DROP CONSTRAINT consents_method_check;
ALTER TABLE consents ADD CONSTRAINT consents_method_check CHECK (method IN (
    'form', 'one-click', 'import', 'editor',
    'mailto',    -- a mail to the List-Unsubscribe mailto address
    'bounce',    -- a bounce (at send time or after)
    'complaint'  -- a spam complaint (a feedback report)
));
