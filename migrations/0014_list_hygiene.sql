-- List hygiene: one suppression list, and a send that stops itself on a
-- stale list.
--
-- One suppression list: every address never to mail, whatever put it
-- there. Until now it held only erasures (a keyed hash, no address). An
-- operator can now add an address by hand, and a complaint or a bounce
-- handled outside a send can be recorded with its reason. Those rows keep
-- the address, so `newsletter suppression list` can show it; an erasure
-- keeps only the hash, as the person asked to be forgotten.
ALTER TABLE suppressions DROP CONSTRAINT suppressions_reason_check;
ALTER TABLE suppressions
    ADD CONSTRAINT suppressions_reason_check CHECK (reason IN ('erased', 'bounced', 'complained', 'manual')),
    ADD COLUMN email text CHECK (email <> '' AND email !~ '[\r\n]'),
    ADD COLUMN note  text NOT NULL DEFAULT '' CHECK (length(note) <= 180 AND note !~ '[\r\n]'),
    ADD CONSTRAINT suppressions_erased_no_address CHECK ((reason = 'erased') = (email IS NULL));

-- The consent record says when a subscriber was put on the list and taken
-- off it, and why.
ALTER TABLE consents DROP CONSTRAINT consents_action_check;
ALTER TABLE consents ADD CONSTRAINT consents_action_check CHECK (action IN (
    'signup', 'confirm', 'unsubscribe', 'resubscribe', 'import', 'add',
    'address_change', 'erase',
    'suppress',    -- put on the suppression list (by hand, a complaint, a bounce)
    'unsuppress'   -- taken off it by an operator; still not mailed until they confirm again
));

-- A send pauses itself when its first 1,000 outcomes hold too many hard
-- bounces (a stale imported list). Once that window is over, or the send
-- was paused for it and resumed by someone who looked, no run watches it
-- again: this says so, for every process.
ALTER TABLE editions ADD COLUMN bounce_watch_done boolean NOT NULL DEFAULT false;
