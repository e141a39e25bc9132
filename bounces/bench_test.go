package bounces_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"newsletter/bounces"
)

// BenchmarkParse is the reading of one bounce, complaint or auto-reply
// (every fixture in turn), without the database: what bounces serve does
// for each message before it acts.
func BenchmarkParse(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	var msgs [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bounces.Parse(bytes.NewReader(data)); err == nil { // the mailto unsubscribe is no report
			msgs = append(msgs, data)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := bounces.Parse(bytes.NewReader(msgs[i%len(msgs)])); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkInboundHardBounce is a DSN for a real delivery handled whole:
// the VERP token checked, the message read, the delivery looked up, the
// subscriber marked bounced and suppressed, the evidence recorded, in
// PostgreSQL. Each iteration bounces another delivery.
func BenchmarkInboundHardBounce(b *testing.B) {
	const readers = 10000
	f := newFixture(b, readers)
	var ids []int64
	if err := f.db.Select(&ids, `SELECT id FROM deliveries WHERE edition_id = $1 ORDER BY id`, f.edition); err != nil {
		b.Fatal(err)
	}
	dsn, err := os.ReadFile(filepath.Join("testdata", "postfix-hard.eml"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	handled := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i >= len(ids) {
			b.Fatalf("more iterations (%d) than deliveries: run with -benchtime at most %dx", i+1, readers)
		}
		out, err := f.h.Inbound(ctx, "inbound", f.h.VERP.Address(ids[i]), bytes.NewReader(dsn))
		if err != nil || out != bounces.Bounced {
			b.Fatalf("delivery %d: %s, %v", ids[i], out, err)
		}
		handled++
	}
	b.ReportMetric(float64(handled)/b.Elapsed().Seconds(), "bounces/s")
}
