-- The reader pages: double opt-in and change-of-address tokens, the consent
-- record (GDPR art. 7(1): the controller must be able to show that the person
-- consented), and the suppression list that keeps an erased person from being
-- re-added by an import.
--
-- Addresses outside the subscribers table are kept only as a keyed hash
-- (HMAC-SHA256 under a key derived from NEWSLETTER_SECRET of the lower-cased
-- address, see subscribers.Tokens.AddressHash): a copy of the database alone
-- can't tell whether someone was ever on the list.

-- Tokens mailed to a reader: "confirm" (sign-up or resubscribe) and
-- "change_address" (the new address of a subscription). 256 random bits from
-- crypto/rand; only SHA-256 of the token is kept. Single use: used_at is set
-- when one is pressed.
CREATE TABLE subscriber_tokens (
    token_hash    bytea       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    subscriber_id bigint      NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    purpose       text        NOT NULL CHECK (purpose IN ('confirm', 'change_address')),
    -- The address a change_address token moves the subscription to.
    new_email     text        CHECK (new_email <> '' AND new_email !~ '[\r\n]'),
    -- Keyed hash of the address the token was mailed to: the per-address
    -- limit on confirmation emails counts these, across processes.
    address_hash  bytea       NOT NULL CHECK (octet_length(address_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    CHECK ((purpose = 'change_address') = (new_email IS NOT NULL)),
    CHECK (expires_at > created_at)
);
CREATE INDEX subscriber_tokens_subscriber_idx ON subscriber_tokens (subscriber_id);
CREATE INDEX subscriber_tokens_address_idx ON subscriber_tokens (address_hash, created_at);
CREATE INDEX subscriber_tokens_expires_idx ON subscriber_tokens (expires_at);

-- One row per sign-up, confirmation, unsubscribe and the other changes of
-- consent: when, what, how, and from where (IP and user agent, for requests
-- over HTTP). Rows outlive an erased person's personal data: erase keeps
-- them as proof of consent, stripped of IP and user agent.
CREATE TABLE consents (
    id            bigserial   PRIMARY KEY,
    subscriber_id bigint      REFERENCES subscribers (id) ON DELETE SET NULL,
    email_hash    bytea       NOT NULL CHECK (octet_length(email_hash) = 32),
    action        text        NOT NULL CHECK (action IN (
                      'signup',         -- asked to join on the form (pending until confirmed)
                      'confirm',        -- pressed the confirmation link's button
                      'unsubscribe',
                      'resubscribe',    -- asked to come back (pending until confirmed)
                      'import',         -- added or updated by a list import
                      'add',            -- added by an editor (subscribers add)
                      'address_change', -- confirmed a new address
                      'erase')),        -- personal data removed on request (GDPR art. 17)
    method        text        NOT NULL CHECK (method IN ('form', 'one-click', 'import', 'editor')),
    -- What else there is to say, e.g. "status=confirmed" for an import.
    detail        text        NOT NULL DEFAULT '' CHECK (length(detail) <= 200),
    ip            inet,
    user_agent    text        NOT NULL DEFAULT '' CHECK (length(user_agent) <= 512),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consents_subscriber_idx ON consents (subscriber_id, id);
CREATE INDEX consents_email_hash_idx ON consents (email_hash);

-- Addresses that must not be added back silently: import skips them (and
-- says so), `subscribers add` refuses them. The person can still sign up on
-- the form, which needs their confirmation; confirming removes the entry.
CREATE TABLE suppressions (
    email_hash bytea       PRIMARY KEY CHECK (octet_length(email_hash) = 32),
    reason     text        NOT NULL CHECK (reason IN ('erased')),
    created_at timestamptz NOT NULL DEFAULT now()
);
