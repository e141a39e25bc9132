-- A send without a deadline has NULL in editions.send_by (the column has
-- allowed NULL since 0003, where it also means "not started"). Sends started
-- before this migration stored "no deadline" as a date a hundred years after
-- their start, which `status --json` showed as a deadline: those become NULL.
-- No real send window comes near fifty years.
UPDATE editions SET send_by = NULL
WHERE send_by >= send_started_at + interval '50 years';
