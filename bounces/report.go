package bounces

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Counts are what came back about an edition's deliveries after its send
// and was acted on (bounce_events), for the edition's status and report.
type Counts struct {
	Hard       int64 `db:"hard" json:"hard_bounces"`
	Soft       int64 `db:"soft" json:"soft_bounces"`
	Complaints int64 `db:"complaint" json:"complaints"`
}

// Any tells whether anything came back.
func (c Counts) Any() bool { return c.Hard+c.Soft+c.Complaints > 0 }

// EditionCounts counts the events about the deliveries of an edition, in
// its send month's partition (an edition not sent yet has none). Mailto
// unsubscribes name no delivery and are not counted here.
func EditionCounts(ctx context.Context, db *sqlx.DB, editionID int64) (Counts, error) {
	var c Counts
	err := db.GetContext(ctx, &c, `
		SELECT count(*) FILTER (WHERE b.kind = 'hard') AS hard,
		       count(*) FILTER (WHERE b.kind = 'soft') AS soft,
		       count(*) FILTER (WHERE b.kind = 'complaint') AS complaint
		FROM bounce_events b
		JOIN editions e ON e.id = $1
		JOIN deliveries d ON d.id = b.delivery_id AND d.send_month = e.send_month AND d.edition_id = e.id`, editionID)
	if err != nil {
		return c, fmt.Errorf("count bounces of edition %d: %w", editionID, err)
	}
	return c, nil
}
