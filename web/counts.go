package web

import "sync/atomic"

// Counts are the reader pages' events since the process started, for
// /metrics (package metrics reads them when scraped): an atomic add each,
// never a subscriber's data.
type Counts struct {
	SignUps       atomic.Int64 // sign-up forms stored (a confirmation email asked for)
	Confirmations atomic.Int64 // subscriptions confirmed by their link
	// Unsubscribes by how: the RFC 8058 one-click POST a mailbox provider
	// makes, or the button of the subscription's page in a browser.
	OneClickUnsubscribes atomic.Int64
	PageUnsubscribes     atomic.Int64
}
