-- The registry of live workers (package fleet): every process that sends
-- (`send`, `worker`, `serve --worker`) has a row while it runs. The row is
-- for display and to name the process's leases (holder); whether the
-- process is alive is told by a session-level advisory lock it holds on a
-- connection of its own, keyed by the row's id (pg_advisory_lock(class, id)
-- with the class of fleet.LockClass): PostgreSQL releases it the moment the
-- process's connection drops, so a dead worker is known at once, not when
-- a heartbeat goes stale. heartbeat_at is for display only.
CREATE TABLE workers (
    -- integer: the id is the second key of the two-int advisory lock.
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The prefix of the lease holders of the process's connections
    -- (deliveries.lease_holder is holder || '/' || connection).
    holder       text NOT NULL UNIQUE CHECK (holder <> '' AND holder !~ '/$'),
    host         text NOT NULL,
    pid          integer NOT NULL,
    version      text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- What it is doing: the date of the edition it sends (NULL: idle), its
    -- rate in messages a second (NULL: unlimited), its SMTP connections.
    edition      text,
    rate         double precision CHECK (rate > 0),
    conns        integer NOT NULL DEFAULT 0 CHECK (conns >= 0)
);
