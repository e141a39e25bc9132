-- The fleet's slow-downs by recipient domain (package delivery, throttles.go).
-- A domain whose servers tell one worker to slow down (421, 4.7.28, 451 4.7.x)
-- is slowed down for every worker: rate is the whole fleet's pace to it in
-- messages per second, which each live worker shares; every worker reads the
-- table once a second, never per message. halved_at keeps the answers to one
-- burst of mail, seen by several workers at once, from halving the pace more
-- than once; a row nobody has reported on until its "until" is forgotten.
CREATE TABLE domain_throttles (
    domain    text PRIMARY KEY,
    rate      float8 NOT NULL CHECK (rate > 0),
    halved_at timestamptz NOT NULL,
    until     timestamptz NOT NULL
);
