package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool is the path of an installed tool the tests need; missing, the test
// fails (.ci/run installs it).
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (Debian package %s; .ci/run installs it): %v", name, pkg, err)
	}
	return p
}

// The alert rules the README documents are rules Prometheus loads.
func TestPrometheusAlertRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	const rules = "../../contrib/prometheus/newsletter-alerts.yml"
	out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS: 4 rules found") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	data, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	// Every metric the rules read is one /metrics serves.
	for _, name := range []string{"newsletter_last_send_finished_timestamp_seconds", "newsletter_messages_failed_total",
		"newsletter_messages_sent_total", "newsletter_deliveries_queued", "newsletter_schedule_last_failure_timestamp_seconds"} {
		if !strings.Contains(string(data), name) {
			t.Errorf("the rules do not use %s", name)
		}
	}
}

// The systemd units in contrib/ are ones systemd accepts, without a
// warning: an unknown or misspelt directive is only a warning to systemd,
// and a hardening option silently ignored.
func TestSystemdUnits(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "systemd")
	units, err := filepath.Glob("../../contrib/systemd/newsletter*")
	if err != nil || len(units) != 3 {
		t.Fatalf("contrib/systemd: %v %v", units, err)
	}
	// verify wants ExecStart's binary to exist: this test's own stands in
	// for the installed newsletter.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "/usr/local/bin/newsletter", self)
		p := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
