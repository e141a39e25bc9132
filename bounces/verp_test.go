package bounces

import (
	"strings"
	"testing"
)

func TestVERPRoundTrip(t *testing.T) {
	v := NewVERP([]byte(strings.Repeat("k", 32)), "Bounces.Example.com")
	for _, id := range []int64{1, 42, 1 << 40, 1<<63 - 1} {
		addr := v.Address(id)
		r := v.Classify(addr)
		if r.Kind != ToVERP || len(r.Token) != TokenLen || len(addr) > 64+1+len("bounces.example.com") {
			t.Fatalf("%q: classified %+v", addr, r)
		}
		for _, tok := range []string{r.Token, strings.ToUpper(r.Token)} {
			if got, err := v.Delivery(tok); err != nil || got != id {
				t.Fatalf("Delivery(%q) = %d, %v; want %d", tok, got, err, id)
			}
		}
	}
}

func TestVERPRefusesForgedTokens(t *testing.T) {
	v := NewVERP([]byte(strings.Repeat("k", 32)), "example.com")
	other := NewVERP([]byte(strings.Repeat("x", 32)), "example.com")
	tok := v.Classify(v.Address(7)).Token
	flipped := []byte(tok)
	flipped[TokenLen-1] ^= 1 // still base32: 'a'<->'b' and so on
	cases := map[string]string{
		"another secret": other.Classify(other.Address(7)).Token,
		"a bit flipped":  string(flipped),
		"cut short":      tok[:TokenLen-1],
		"not base32":     strings.Repeat("1", TokenLen),
		"empty":          "",
		"id zero":        other.Classify(v.Address(0)).Token,
	}
	for name, tok := range cases {
		if id, err := v.Delivery(tok); err == nil {
			t.Errorf("%s: token %q accepted as delivery %d", name, tok, id)
		}
	}
}

func TestClassify(t *testing.T) {
	v := NewVERP([]byte(strings.Repeat("k", 32)), "example.com")
	cases := map[string]RecipientKind{
		"bounces+abc@example.com":     ToVERP,
		"BOUNCES+abc@EXAMPLE.COM":     ToVERP,
		"unsubscribe+abc@example.com": ToUnsubscribe,
		"bounces@example.com":         NotOurs,
		"bounces+@example.com":        NotOurs,
		"bounces+abc@example.org":     NotOurs,
		"postmaster@example.com":      NotOurs,
		"someone@elsewhere.example":   NotOurs,
		"bounces+abc@sub.example.com": NotOurs,
		"bounces+abc":                 NotOurs,
	}
	for addr, want := range cases {
		if got := v.Classify(addr).Kind; got != want {
			t.Errorf("Classify(%q) = %d, want %d", addr, got, want)
		}
	}
}

func BenchmarkAppendAddress(b *testing.B) {
	v := NewVERP([]byte(strings.Repeat("k", 32)), "example.com")
	var buf []byte
	b.ReportAllocs()
	for i := range b.N {
		buf = v.AppendAddress(buf[:0], int64(i))
	}
}
