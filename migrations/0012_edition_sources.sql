-- What the last fetch of each source URL answered (package edition,
-- fetch.go): the validators of a conditional GET (RFC 9110 section 13.1)
-- and the date of the edition that fetch stored. A fetch for that same day
-- sends them, so a cron job's second run gets a 304 and stores nothing; a
-- fetch for another day sends none, so a page that did not change since
-- yesterday is read and refused as a repeat of yesterday's lead story.
CREATE TABLE edition_sources (
    url           text        PRIMARY KEY,
    edition_date  date        NOT NULL,
    etag          text,
    last_modified text,
    fetched_at    timestamptz NOT NULL DEFAULT now()
);
