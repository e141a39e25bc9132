-- Enqueueing a million recipients took 32 s, and 15 of them were the two
-- foreign-key triggers of deliveries (one call per row each, measured with
-- EXPLAIN ANALYZE); a random Message-ID per row cost most of the rest.
--
-- 1. The foreign keys go. Rows are only ever inserted by the enqueue
--    statement, which takes the subscriber ids from subscribers and the
--    edition id of a row it has just locked, so the insert side is kept by
--    construction. The delete side is kept by the triggers below: a
--    subscriber or an edition that deliveries refer to can't be deleted
--    (nothing deletes them: erasure blanks a subscriber's row instead).
ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_edition_id_fkey,
    DROP CONSTRAINT deliveries_subscriber_id_fkey;

CREATE FUNCTION deliveries_keep_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'subscribers' THEN
        IF EXISTS (SELECT 1 FROM deliveries WHERE subscriber_id = OLD.id) THEN
            RAISE EXCEPTION 'subscriber % has deliveries; erase the subscriber instead of deleting the row', OLD.id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSIF EXISTS (SELECT 1 FROM deliveries WHERE edition_id = OLD.id) THEN
        RAISE EXCEPTION 'edition % has deliveries and can''t be deleted', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER subscribers_keep_deliveries BEFORE DELETE ON subscribers
    FOR EACH ROW EXECUTE FUNCTION deliveries_keep_referenced();
CREATE TRIGGER editions_keep_deliveries BEFORE DELETE ON editions
    FOR EACH ROW EXECUTE FUNCTION deliveries_keep_referenced();

-- 2. The Message-ID is no longer a random value stored per row but derived,
--    still fixed at enqueue and the same on every retry: the subscriber's
--    random UUID, the edition's id, and the domain fixed when the edition's
--    send started (editions.message_id_domain). Rows queued before this
--    migration keep the Message-ID they were given.
ALTER TABLE deliveries ALTER COLUMN message_id DROP NOT NULL;
ALTER TABLE editions ADD COLUMN message_id_domain text
    CHECK (message_id_domain <> '' AND message_id_domain !~ '[[:space:]<>@"]');
