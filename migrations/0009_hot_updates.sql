-- Status changes made in place. A delivery's row is updated twice a send (at
-- lease and at record), and PostgreSQL can make such an update in place, on
-- the same page and without touching any index (a HOT update), only if no
-- column the update changes is part of any index: key, expression or
-- partial-index predicate. The partial indexes of queued and of leased rows
-- had status in their predicate and lease_expires_at as a key, so every
-- status change wrote a new row elsewhere and a new entry in each of the
-- table's five indexes, and the table and its indexes grew with every send
-- until a vacuum.
--
-- What is left is indexed only on columns fixed at enqueue (id, edition_id,
-- subscriber_id):
--   deliveries_pkey                          record, release, extend (by id)
--   deliveries_edition_id_subscriber_id_key  the pair's uniqueness, enqueue,
--                                            counts and reports of an edition
--   deliveries_subscriber_idx                a subscriber's export and erasure,
--                                            the delete guard of migration 0005
--   deliveries_edition_idx (new)             leasing in id order from a cursor,
--                                            what an edition has left
-- Queued and leased rows are found by walking the edition's rows and looking
-- at their status: leasing from a cursor steps only over the rows it passed
-- since, and what is left is counted over the edition's rows rather than
-- over an index of just those rows (the price of the in-place updates: one
-- edition's rows, where before it was the rows left).
DROP INDEX deliveries_queued_idx;
DROP INDEX deliveries_sending_idx;
CREATE INDEX deliveries_edition_idx ON deliveries (edition_id, id);

-- Room on each page for the new versions of its rows. A lease takes
-- consecutive ids, so all of a page's rows are updated in one transaction,
-- whose own earlier versions can't be reclaimed before it ends, and a leased
-- row is half as large again as a queued one (holder, expiry, attempt time):
-- the page must hold the queued rows and their leased versions at once. The
-- record's versions then take the room of the queued ones, reclaimed by then,
-- next to the leased ones. A page filled to about a third at enqueue holds
-- both; a fuller one makes the rows that don't fit move to another page and
-- write an entry in every index, which costs more room than the gap. Applies
-- to pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 35);
