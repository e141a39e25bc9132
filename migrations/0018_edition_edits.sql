-- An editor's changes to an edition before its send (package edition,
-- edit.go), kept beside the imported content rather than in it: content
-- stays what the source gave, so importing the same page again is still
-- "unchanged" (the comparison is of content alone) and keeps the edits,
-- while a re-import with other content replaces the content and clears
-- these, since they were made for the old one.
--
-- subject, preheader: what the editor wrote in place of what the templates
-- derive (NULL: derived). related_order: the related headlines to show, as
-- indexes into content's related list, in the order to show them (NULL:
-- all, as imported; an empty array: none). edited_at: the last edit, part
-- of the edition's version, so that what is rendered from it (the web
-- edition's cache) is made again.
ALTER TABLE editions
    ADD COLUMN subject       text CHECK (subject <> '' AND subject !~ '[[:cntrl:]]' AND length(subject) <= 200),
    ADD COLUMN preheader     text CHECK (preheader !~ '[[:cntrl:]]' AND length(preheader) <= 250),
    ADD COLUMN related_order int[] CHECK (0 <= ALL (related_order)),
    ADD COLUMN edited_at     timestamptz;
