-- The editors' desk: accounts, API tokens and the audit record of who did
-- what. Passwords are Argon2id hashes (PHC strings); API tokens are kept
-- as SHA-256 hashes (a token is 256 random bits: a fast hash is enough,
-- and the plain token is shown once, when it is made).
CREATE TABLE editors (
    id            bigserial   PRIMARY KEY,
    email         text        NOT NULL CHECK (email <> '' AND email !~ '[\r\n]' AND length(email) <= 254),
    role          text        NOT NULL CHECK (role IN ('admin', 'editor')),
    password_hash text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX editors_email_key ON editors (lower(email));

CREATE TABLE api_tokens (
    id           bigserial   PRIMARY KEY,
    editor_id    bigint      NOT NULL REFERENCES editors (id) ON DELETE CASCADE,
    name         text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    token_hash   bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

-- Who did what and when. The actor is kept as text (an editor's address,
-- "token NAME", or "cli") so the record outlives the account.
CREATE TABLE audit_log (
    id     bigserial   PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text        NOT NULL CHECK (length(actor) <= 300),
    action text        NOT NULL CHECK (action ~ '^[a-z][a-z_.-]{0,40}$'),
    target text        NOT NULL DEFAULT '' CHECK (length(target) <= 300),
    detail text        NOT NULL DEFAULT '' CHECK (length(detail) <= 1000),
    ip     inet
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
