-- Enqueueing a million recipients spent a fifth of its time keeping a unique
-- index on message_id, whose values are random UUIDs (122 random bits: unique
-- by construction). The index goes; (edition_id, subscriber_id) stays unique.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_message_id_key;
