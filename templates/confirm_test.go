package templates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfirmEmail(t *testing.T) {
	s := builtin(t)
	m, err := s.ConfirmEmail(ConfirmEmail{
		SiteName: "London Daily", Name: `Ada <script>alert(1)</script>`, Email: "ada@example.com",
		ConfirmURL: "https://news.example.com/confirm/TOKEN", ValidFor: "7 days",
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Confirm your subscription to London Daily" {
		t.Errorf("subject %q", m.Subject)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "Hello Ada &lt;script&gt;") {
		t.Error("the name is not escaped in the HTML part")
	}
	for _, part := range []string{m.HTML, m.Text} {
		if !strings.Contains(part, "https://news.example.com/confirm/TOKEN") || !strings.Contains(part, "7 days") {
			t.Errorf("a part lacks the link or the validity:\n%s", part)
		}
	}
	// The link has a line of its own in the text part, so no client wraps it.
	if !strings.Contains(m.Text, "\nhttps://news.example.com/confirm/TOKEN\n") {
		t.Errorf("text part:\n%s", m.Text)
	}
	for _, line := range strings.Split(m.Text, "\n") {
		if len(line) > 78 {
			t.Errorf("text line longer than 78: %q", line)
		}
	}
	c, err := s.ConfirmEmail(ConfirmEmail{SiteName: "London Daily", ChangeAddress: true, ConfirmURL: "https://x.example/confirm/T", ValidFor: "1 day"})
	if err != nil || c.Subject != "Confirm your new address for London Daily" || !strings.Contains(c.Text, "Hello,\n") {
		t.Fatalf("change-of-address email: %q %v\n%s", c.Subject, err, c.Text)
	}
}

// The confirmation email can be overridden like the edition's, and a broken
// override fails Load naming the file.
func TestConfirmEmailOverride(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "email"), 0o755)
	os.WriteFile(filepath.Join(dir, "email", "confirm-subject.txt"), []byte("Please confirm: {{.SiteName}}\n"), 0o644)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.ConfirmEmail(ConfirmEmail{SiteName: "London Daily", ConfirmURL: "https://x.example/confirm/T", ValidFor: "7 days"})
	if err != nil || m.Subject != "Please confirm: London Daily" {
		t.Fatalf("overridden subject %q %v", m.Subject, err)
	}
	os.WriteFile(filepath.Join(dir, "email", "confirm.html"), []byte("{{.NoSuchField}}"), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "confirm.html") {
		t.Fatalf("a broken override: %v", err)
	}
}
