-- The desk's sign-in sessions. The browser holds a random 256-bit session
-- id; only its SHA-256 is kept, so a copy of this table signs nobody in. A
-- session ends when idle too long (last_seen_at), at its absolute expiry
-- (expires_at), at sign-out (its row deleted), or with its account.
CREATE TABLE desk_sessions (
    id_hash      bytea       PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    editor_id    bigint      NOT NULL REFERENCES editors (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX desk_sessions_expires_idx ON desk_sessions (expires_at);

-- Failed sign-ins are counted from the audit record, by address and by
-- client, over the last minutes.
CREATE INDEX audit_log_failed_sign_in_idx ON audit_log (at) WHERE action = 'sign-in-failed';
