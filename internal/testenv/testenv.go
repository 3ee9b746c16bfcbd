// Package testenv decides what a test does when the machine lacks an external
// tool it drives (Debian's apache2 for the conformance suite and the oracle
// tests, ansible and python3-bs4, chromium and chromedriver, curl, ...).
//
// On a developer's machine the test is skipped with the reason and how to
// install the tool. In CI, where the environment variable CI is set (CI
// systems set CI=true; .ci/run exports it), the same test fails instead: CI
// installs every tool first, so a skip there means a broken install step,
// and a suite that silently skipped would pass without having run.
//
// Only skips for a missing tool go through here; skips for other reasons
// (testing.Short, a helper process) stay plain t.Skip.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// InCI reports whether the environment variable CI is set to a true value
// ("true", "1", or any value strconv.ParseBool does not read as false).
func InCI() bool {
	v := os.Getenv("CI")
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// Skip skips t because something the test needs is missing, or fails t with
// the same reason when InCI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s\n(CI is set: this test must not skip; CI installs what it needs)", reason)
	}
	t.Skip(reason)
}

// NeedTool returns the path of the program file, an absolute path (checked as
// is) or a command name (looked up in PATH). When it is missing, t is
// skipped, or fails when InCI; pkg names the Debian package that installs it.
func NeedTool(t testing.TB, pkg, file string) string {
	t.Helper()
	if filepath.IsAbs(file) {
		fi, err := os.Stat(file)
		if err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return file
		}
		if err == nil {
			err = fmt.Errorf("not an executable file")
		}
		Skip(t, "%s is missing (%v); install it with apt-get install -y %s", file, err, pkg)
		return ""
	}
	p, err := exec.LookPath(file)
	if err != nil {
		Skip(t, "%s is missing (%v); install it with apt-get install -y %s", file, err, pkg)
		return ""
	}
	return p
}
