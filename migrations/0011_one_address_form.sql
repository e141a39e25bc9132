-- One mailbox, one subscriber. Addresses were stored as typed, the domain
-- mapped only when it was not ASCII: "dup@bücher.example" and
-- "dup@xn--bcher-kva.example" (or a local part in NFD and one in NFC) were
-- two subscribers, mailed every edition twice. subscribers.NormalizeAddress
-- now gives every address one form: the domain in Unicode (A-labels
-- decoded, RFC 3492), lower case; the local part in NFC. This migration
-- brings the stored addresses to that form and merges the subscribers that
-- turn out to share one, keeping everyone's consent record and delivery
-- history on the subscriber kept, and lists what it merged in
-- subscriber_merges (the migrate command prints it).
--
-- Stored Unicode domains went through UTS #46 mapping when they were
-- stored, so decoding the A-labels and lower-casing the rest yields the
-- form NormalizeAddress gives.

-- RFC 3492 section 6.2: decode one punycode label (without "xn--").
CREATE FUNCTION pg_temp.punycode_decode(input text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    base CONSTANT int := 36; tmin CONSTANT int := 1; tmax CONSTANT int := 26;
    skew CONSTANT int := 38; damp CONSTANT int := 700;
    n int := 128; i int := 0; bias int := 72;
    output int[] := '{}';
    b int := 0; pos int; oldi int; w int; k int; digit int; t int; c int; delta int; first boolean := true;
    numpoints int;
BEGIN
    b := length(input) - strpos(reverse(input), '-');  -- characters before the last '-'
    IF strpos(input, '-') = 0 THEN b := 0; END IF;
    FOR j IN 1..b LOOP
        output := output || ascii(substr(input, j, 1));
    END LOOP;
    pos := CASE WHEN b > 0 THEN b + 2 ELSE 1 END;
    WHILE pos <= length(input) LOOP
        oldi := i; w := 1; k := base;
        LOOP
            IF pos > length(input) THEN RAISE EXCEPTION 'bad punycode %', input; END IF;
            c := ascii(substr(input, pos, 1)); pos := pos + 1;
            digit := CASE WHEN c BETWEEN 48 AND 57 THEN c - 22
                          WHEN c BETWEEN 65 AND 90 THEN c - 65
                          WHEN c BETWEEN 97 AND 122 THEN c - 97
                          ELSE NULL END;
            IF digit IS NULL THEN RAISE EXCEPTION 'bad punycode %', input; END IF;
            i := i + digit * w;
            t := CASE WHEN k <= bias THEN tmin WHEN k >= bias + tmax THEN tmax ELSE k - bias END;
            EXIT WHEN digit < t;
            w := w * (base - t);
            k := k + base;
        END LOOP;
        numpoints := coalesce(array_length(output, 1), 0) + 1;
        -- adapt (section 6.1)
        delta := CASE WHEN first THEN (i - oldi) / damp ELSE (i - oldi) / 2 END;
        first := false;
        delta := delta + delta / numpoints;
        k := 0;
        WHILE delta > ((base - tmin) * tmax) / 2 LOOP
            delta := delta / (base - tmin);
            k := k + base;
        END LOOP;
        bias := k + (((base - tmin + 1) * delta) / (delta + skew));
        n := n + i / numpoints;
        i := i % numpoints;
        output := output[1:i] || n || output[i + 1:];
        i := i + 1;
    END LOOP;
    RETURN (SELECT string_agg(chr(cp), '' ORDER BY ord) FROM unnest(output) WITH ORDINALITY AS u(cp, ord));
END $$;

-- The canonical form of a stored address; an A-label that doesn't decode
-- is left as it is (NormalizeAddress never let such a domain in).
CREATE FUNCTION pg_temp.canonical_address(email text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    at int := length(email) - strpos(reverse(email), '@') + 1;
    local text := normalize(substr(email, 1, at - 1), NFC);
    labels text[] := string_to_array(lower(substr(email, at + 1)), '.');
BEGIN
    IF strpos(email, '@') = 0 THEN RETURN email; END IF;
    FOR j IN 1..coalesce(array_length(labels, 1), 0) LOOP
        IF labels[j] LIKE 'xn--%' THEN
            BEGIN
                labels[j] := lower(normalize(pg_temp.punycode_decode(substr(labels[j], 5)), NFC));
            EXCEPTION WHEN others THEN
                NULL;
            END;
        END IF;
    END LOOP;
    RETURN local || '@' || array_to_string(labels, '.');
END $$;

-- What was merged: the subscriber dropped and the one kept, by id only
-- (no address: this table outlives any erasure), and how many of the
-- dropped subscriber's deliveries were of an edition the kept mailbox had
-- twice (one row of each such pair is gone).
CREATE TABLE subscriber_merges (
    dropped_id           bigint      PRIMARY KEY,
    kept_id              bigint      NOT NULL,
    duplicate_deliveries integer     NOT NULL,
    merged_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TEMP TABLE address_forms ON COMMIT DROP AS
SELECT id, pg_temp.canonical_address(email) AS canonical, status,
       greatest(created_at, confirmed_at, unsubscribed_at) AS decided_at
FROM subscribers;

-- Of the subscribers sharing a mailbox, the one whose status was set last
-- is kept: it is the person's latest decision (a later unsubscribe under
-- one spelling is not undone by an earlier confirmation under another).
CREATE TEMP TABLE merge_map ON COMMIT DROP AS
SELECT id AS dropped_id, kept_id FROM (
    SELECT id, first_value(id) OVER w AS kept_id
    FROM address_forms
    WINDOW w AS (PARTITION BY lower(canonical) ORDER BY decided_at DESC, id)
) r WHERE id <> kept_id;

-- Subscribers of one mailbox that each had a delivery of one edition (the
-- mailbox got it twice): one row may stay, as deliveries are unique per
-- edition and subscriber. The one that was sent is kept; between equals,
-- the kept subscriber's, then the first.
CREATE TEMP TABLE merge_groups ON COMMIT DROP AS
SELECT kept_id AS member_id, kept_id FROM merge_map
UNION
SELECT dropped_id, kept_id FROM merge_map;

CREATE TEMP TABLE group_deliveries ON COMMIT DROP AS
SELECT d.id, d.subscriber_id, g.kept_id,
       count(*) OVER e AS copies,
       row_number() OVER (e ORDER BY (d.status = 'sent') DESC, (d.subscriber_id = g.kept_id) DESC, d.id) AS rank
FROM deliveries d JOIN merge_groups g ON g.member_id = d.subscriber_id
WINDOW e AS (PARTITION BY g.kept_id, d.edition_id);

DELETE FROM deliveries d USING group_deliveries x
WHERE x.rank > 1 AND d.subscriber_id = x.subscriber_id AND d.id = x.id;

UPDATE deliveries d SET subscriber_id = m.kept_id FROM merge_map m WHERE d.subscriber_id = m.dropped_id;
UPDATE consents c SET subscriber_id = m.kept_id FROM merge_map m WHERE c.subscriber_id = m.dropped_id;
UPDATE subscriber_tokens t SET subscriber_id = m.kept_id FROM merge_map m WHERE t.subscriber_id = m.dropped_id;

INSERT INTO subscriber_merges (dropped_id, kept_id, duplicate_deliveries)
SELECT m.dropped_id, m.kept_id, (SELECT count(*) FROM group_deliveries x WHERE x.subscriber_id = m.dropped_id AND x.copies > 1)
FROM merge_map m;

DELETE FROM subscribers s USING merge_map m WHERE s.id = m.dropped_id;

UPDATE subscribers s SET email = f.canonical
FROM address_forms f WHERE f.id = s.id AND s.email <> f.canonical;
