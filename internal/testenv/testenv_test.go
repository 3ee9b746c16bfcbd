package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder stands in for the test that calls the helper: it records whether
// the helper skipped or failed it, and stops the calling goroutine as the
// real methods do.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder in its own goroutine and returns the recorder
// and f's result if f returned.
func run(f func(testing.TB) string) (rec *recorder, got string, returned bool) {
	rec = &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = f(rec)
		returned = true
	}()
	<-done
	return rec, got, returned
}

func TestNeedToolMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-tool")
	for _, c := range []struct {
		ci       string
		wantFail bool
	}{{"", false}, {"false", false}, {"0", false}, {"true", true}, {"1", true}, {"yes", true}} {
		t.Run("CI="+c.ci, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			for _, file := range []string{missing, "no-such-tool-caddy-balancer"} {
				rec, _, returned := run(func(tb testing.TB) string { return NeedTool(tb, "pkg-x", file) })
				if returned {
					t.Fatalf("NeedTool(%q) returned although the tool is missing", file)
				}
				switch {
				case c.wantFail && (rec.failed == "" || rec.skipped != ""):
					t.Fatalf("CI=%q: NeedTool(%q) skipped (%q) instead of failing", c.ci, file, rec.skipped)
				case !c.wantFail && (rec.skipped == "" || rec.failed != ""):
					t.Fatalf("CI=%q: NeedTool(%q) failed (%q) instead of skipping", c.ci, file, rec.failed)
				}
				msg := rec.failed + rec.skipped
				for _, want := range []string{filepath.Base(file), "apt-get install -y pkg-x"} {
					if !strings.Contains(msg, want) {
						t.Errorf("message %q does not name %q", msg, want)
					}
				}
			}
		})
	}
}

func TestNeedToolPresent(t *testing.T) {
	t.Setenv("CI", "true")
	exe := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExe := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(notExe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", filepath.Dir(exe))
	for file, want := range map[string]string{exe: exe, "tool": exe} {
		rec, got, returned := run(func(tb testing.TB) string { return NeedTool(tb, "pkg", file) })
		if !returned || got != want || rec.failed != "" || rec.skipped != "" {
			t.Errorf("NeedTool(%q) = %q (returned %v, failed %q, skipped %q); want %q", file, got, returned, rec.failed, rec.skipped, want)
		}
	}
	if rec, _, returned := run(func(tb testing.TB) string { return NeedTool(tb, "pkg", notExe) }); returned || rec.failed == "" {
		t.Errorf("NeedTool accepted a file that is not executable")
	}
}

func TestSkip(t *testing.T) {
	t.Setenv("CI", "")
	rec, _, _ := run(func(tb testing.TB) string { Skip(tb, "no %s here", "bs4"); return "" })
	if rec.skipped != "no bs4 here" || rec.failed != "" {
		t.Errorf("without CI: skipped %q, failed %q", rec.skipped, rec.failed)
	}
	t.Setenv("CI", "true")
	rec, _, _ = run(func(tb testing.TB) string { Skip(tb, "no %s here", "bs4"); return "" })
	if rec.skipped != "" || !strings.Contains(rec.failed, "no bs4 here") {
		t.Errorf("with CI=true: skipped %q, failed %q", rec.skipped, rec.failed)
	}
}
