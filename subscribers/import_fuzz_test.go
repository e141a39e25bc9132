package subscribers_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"newsletter/internal/pgtest"
	"newsletter/subscribers"
)

// FuzzImport feeds the CSV importer any file: it never panics, a file it
// takes is counted exactly (every row added, updated, unchanged or
// suppressed), and what it stores is an address in its one form and a
// name within the limit.
func FuzzImport(f *testing.F) {
	for _, s := range []string{
		"email\nada@example.com\n",
		"name,email,status\n\"Brontë, Charlotte\",charlotte@example.com,confirmed\n",
		"email,name\ndup@bücher.example,A\ndup@xn--bcher-kva.example,B\n",
		"\ufeffEmail ,Status\nx@example.com,unsubscribed\n",
		"email\n\"a\x00b\"@example.com\n",
		"email,name\ny@example.com,\"Y\r\nBcc: z@example.com\"\n",
		"email,name\nz@example.com,=HYPERLINK(\"x\")\n",
	} {
		f.Add(s)
	}
	tok, err := subscribers.NewTokens([]byte(strings.Repeat("k", 32)))
	if err != nil {
		f.Fatal(err)
	}
	s := &subscribers.Store{DB: pgtest.New(f), Tokens: tok}
	f.Fuzz(func(t *testing.T, file string) {
		res, err := s.Import(context.Background(), strings.NewReader(file), subscribers.Confirmed)
		if err != nil {
			return
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
	})
}
