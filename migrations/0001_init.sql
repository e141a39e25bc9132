-- The foundation schema: subscribers, editions and the per-recipient
-- deliveries that are both the send queue and its record.

CREATE TABLE subscribers (
    id               bigserial PRIMARY KEY,
    -- uuid is the subscriber's public identity: random, never an address.
    uuid             uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    email            text        NOT NULL CHECK (email <> '' AND email !~ '[\r\n]'),
    name             text        NOT NULL DEFAULT '' CHECK (name !~ '[\r\n]'),
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    -- SHA-256 of the List-Unsubscribe token; the token itself is never stored.
    unsub_token_hash bytea       NOT NULL UNIQUE CHECK (octet_length(unsub_token_hash) = 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    confirmed_at     timestamptz,
    unsubscribed_at  timestamptz
);
CREATE UNIQUE INDEX subscribers_email_key ON subscribers (lower(email));
-- The send streams confirmed subscribers in id order (keyset pagination).
CREATE INDEX subscribers_confirmed_idx ON subscribers (id) WHERE status = 'confirmed';

CREATE TABLE editions (
    id              bigserial PRIMARY KEY,
    date            date        NOT NULL UNIQUE,
    -- The whole edition (edition.Edition as JSON): site, lead story, related.
    content         jsonb       NOT NULL,
    source_format   text        NOT NULL CHECK (source_format IN ('text', 'rss', 'atom', 'json')),
    imported_at     timestamptz NOT NULL DEFAULT now(),
    -- Set when the first recipient is queued; from then on the edition is frozen.
    send_started_at timestamptz
);

CREATE TABLE deliveries (
    id               bigserial PRIMARY KEY,
    edition_id       bigint      NOT NULL REFERENCES editions (id),
    subscriber_id    bigint      NOT NULL REFERENCES subscribers (id),
    status           text        NOT NULL DEFAULT 'queued'
                     -- skipped: the subscriber left (or bounced) between enqueue and send.
                     CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    -- Fixed at enqueue and reused on every attempt.
    message_id       text        NOT NULL UNIQUE,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
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
    UNIQUE (edition_id, subscriber_id),
    CHECK ((status = 'sending') = (lease_holder IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (status <> 'sent' OR sent_at IS NOT NULL),
    CHECK (status <> 'failed' OR permanent IS NOT NULL)
);
CREATE INDEX deliveries_queued_idx ON deliveries (edition_id, id) WHERE status = 'queued';
CREATE INDEX deliveries_sending_idx ON deliveries (lease_expires_at) WHERE status = 'sending';
CREATE INDEX deliveries_subscriber_idx ON deliveries (subscriber_id);
