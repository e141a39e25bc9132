package subscribers_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"newsletter/internal/pgtest"
	"newsletter/subscribers"
)

// The CSV importer takes odd files without panicking, counts a file it
// takes exactly (every row added, updated, unchanged or suppressed), and
// stores addresses in their one form and names within the limit. The files
// include what fuzzing found: a row that fails to parse once made the
// importer read its position before the error (a panic). The importer's
// parsing is fuzzed without a database by FuzzParseRow; this runs the whole
// import, whose database round trips are too slow for a short fuzz run.
func TestImportOddFiles(t *testing.T) {
	files := []string{
		"email\nada@example.com\n",
		"name,email,status\n\"Brontë, Charlotte\",charlotte@example.com,confirmed\n",
		"email,name\ndup@bücher.example,A\ndup@xn--bcher-kva.example,B\n",
		"\ufeffEmail ,Status\nx@example.com,unsubscribed\n",
		"email\n\"a\x00b\"@example.com\n",
		"email,name\ny@example.com,\"Y\r\nBcc: z@example.com\"\n",
		"email,name\nz@example.com,=HYPERLINK(\"x\")\n",
		"email\n\"a\x00b\"@example.com\n",
		"email,name\n\"unterminated,x\n",
	}
	tok, err := subscribers.NewTokens([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	s := &subscribers.Store{DB: pgtest.New(t), Tokens: tok}
	for _, file := range files {
		res, err := s.Import(context.Background(), strings.NewReader(file), subscribers.Confirmed)
		if err != nil {
			continue
		}
		if n := res.Added + res.Updated + res.Unchanged + res.Suppressed; n != res.Rows {
			t.Fatalf("%+v: %d rows accounted for, of %d", res, n, res.Rows)
		}
		var bad []string
		err = s.Each(context.Background(), "", func(sub subscribers.Subscriber) error {
			if a, err := subscribers.NormalizeAddress(sub.Email); err != nil || a != sub.Email {
				bad = append(bad, "address "+sub.Email)
			}
			if utf8.RuneCountInString(sub.Name) > subscribers.MaxNameLen || sub.Name != subscribers.CleanName(sub.Name) {
				bad = append(bad, "name "+sub.Name)
			}
			return nil
		})
		if err != nil || len(bad) > 0 {
			t.Fatalf("after importing %q: %v %q", file, err, bad)
		}
	}
}
