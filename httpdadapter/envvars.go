package httpdadapter

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Debian starts httpd through apache2ctl, which sources the shell script
// envvars beside apache2.conf (`. $APACHE_CONFDIR/envvars`) and so gives
// httpd the variables its configuration uses: ${APACHE_LOG_DIR},
// ${APACHE_RUN_USER}, ... When the configuration is Debian's apache2.conf,
// the adapter reads envvars as apache2ctl would, for the sh it contains:
// comments; NAME=value, export NAME[=value] and unset NAME; values
// unquoted, '...' or "...", with $NAME, ${NAME}, ${NAME#word}, ${NAME##word},
// ${NAME%word} and ${NAME%%word} for a literal word; and if [ a = b ] /
// [ a != b ] / [ -z a ] / [ -n a ] with else and fi. A line with other
// syntax (commands, pipes, `. file`) is skipped with a warning. Only
// exported variables reach httpd, as with apache2ctl.

// hdEnvvars is the result of reading envvars.
type hdEnvvars struct {
	exported map[string]string
	unset    map[string]bool
}

// lookup finds a variable as httpd started by apache2ctl sees it: envvars'
// exported variables, else the process environment (minus what envvars
// unsets).
func (ev *hdEnvvars) lookup(name string) (string, bool) {
	if v, ok := ev.exported[name]; ok {
		return v, true
	}
	if ev.unset[name] {
		return "", false
	}
	return os.LookupEnv(name)
}

// debianEnvvars reads the envvars beside a configuration named
// apache2.conf; nil when there is none.
func (r *hdReader) debianEnvvars(mainFile string) *hdEnvvars {
	if filepath.Base(mainFile) != "apache2.conf" {
		return nil
	}
	dir := filepath.Dir(mainFile)
	path := filepath.Join(dir, "envvars")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sh := &hdShell{vars: map[string]string{}, exported: map[string]bool{}, unset: map[string]bool{}}
	// apache2ctl sets APACHE_CONFDIR (default /etc/apache2, the directory
	// of apache2.conf) before it sources envvars.
	if v, ok := os.LookupEnv("APACHE_CONFDIR"); ok {
		sh.vars["APACHE_CONFDIR"] = v
	} else {
		sh.vars["APACHE_CONFDIR"] = dir
	}
	sh.exported["APACHE_CONFDIR"] = true
	for i, line := range strings.Split(string(data), "\n") {
		if !sh.exec(line) {
			r.warn(path, i+1, "", "not read: shell syntax the httpd adapter does not follow (it reads assignments, export, unset and if [ ... ])")
		}
	}
	ev := &hdEnvvars{exported: map[string]string{}, unset: sh.unset}
	for name := range sh.exported {
		if v, ok := sh.vars[name]; ok {
			ev.exported[name] = v
		}
	}
	return ev
}

// hdShell runs the subset of sh described above.
type hdShell struct {
	vars     map[string]string
	exported map[string]bool
	unset    map[string]bool
	// skip holds, for each open if, whether its current branch is skipped
	// and whether the enclosing code is.
	skip []hdShellIf
}

type hdShellIf struct{ outer, cond bool }

func (sh *hdShell) skipping() bool {
	return len(sh.skip) > 0 && (sh.skip[len(sh.skip)-1].outer || !sh.skip[len(sh.skip)-1].cond)
}

// hdShellWord is one word of a line; assign is the NAME of a NAME=value word.
type hdShellWord struct {
	text, assign string
}

var hdShellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// exec runs one line; false when its syntax is not followed.
func (sh *hdShell) exec(line string) bool {
	words, ok := sh.words(line)
	if !ok {
		return sh.skipping() // an unread line in a skipped branch does not matter
	}
	if len(words) == 0 {
		return true
	}
	keyword := ""
	if words[0].assign == "" {
		keyword = words[0].text
	}
	switch keyword {
	case "if":
		cond, ok := hdShellTest(words[1:])
		if !ok {
			return false
		}
		sh.skip = append(sh.skip, hdShellIf{outer: sh.skipping(), cond: cond})
		return true
	case "else":
		if len(sh.skip) == 0 {
			return false
		}
		sh.skip[len(sh.skip)-1].cond = !sh.skip[len(sh.skip)-1].cond
		return true
	case "fi":
		if len(sh.skip) == 0 {
			return false
		}
		sh.skip = sh.skip[:len(sh.skip)-1]
		return true
	}
	if sh.skipping() {
		return true
	}
	switch {
	case words[0].assign != "":
		for _, w := range words {
			if w.assign == "" {
				return false // NAME=value command: not followed
			}
			sh.set(w.assign, w.text)
		}
	case words[0].text == "export":
		for _, w := range words[1:] {
			name := w.assign
			if name == "" {
				name = w.text
			} else {
				sh.set(name, w.text)
			}
			sh.exported[name] = true
		}
	case words[0].text == "unset":
		for _, w := range words[1:] {
			delete(sh.vars, w.text)
			delete(sh.exported, w.text)
			sh.unset[w.text] = true
		}
	default:
		return false
	}
	return true
}

func (sh *hdShell) set(name, val string) {
	sh.vars[name] = val
	delete(sh.unset, name)
}

func (sh *hdShell) get(name string) string {
	if v, ok := sh.vars[name]; ok {
		return v
	}
	if sh.unset[name] {
		return ""
	}
	v, _ := os.LookupEnv(name)
	return v
}

// hdShellTest evaluates `[ a = b ] ; then` (and !=, -z, -n).
func hdShellTest(w []hdShellWord) (bool, bool) {
	var t []string
	for _, x := range w {
		t = append(t, x.text)
	}
	if n := len(t); n >= 2 && t[n-1] == "then" {
		t = t[:n-1]
		if t[len(t)-1] == ";" {
			t = t[:len(t)-1]
		}
	} else {
		return false, false
	}
	if len(t) < 3 || t[0] != "[" || t[len(t)-1] != "]" {
		return false, false
	}
	t = t[1 : len(t)-1]
	switch {
	case len(t) == 3 && (t[1] == "=" || t[1] == "=="):
		return t[0] == t[2], true
	case len(t) == 3 && t[1] == "!=":
		return t[0] != t[2], true
	case len(t) == 2 && t[0] == "-z":
		return t[1] == "", true
	case len(t) == 2 && t[0] == "-n":
		return t[1] != "", true
	}
	return false, false
}

// words splits a line into words, expanding variables; ';' is a word of its
// own. false: the line uses syntax not followed.
func (sh *hdShell) words(line string) ([]hdShellWord, bool) {
	var out []hdShellWord
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
			i++
		}
		if i >= len(line) || line[i] == '#' {
			return out, true
		}
		if line[i] == ';' {
			out = append(out, hdShellWord{text: ";"})
			i++
			continue
		}
		var w hdShellWord
		if m := hdShellName.FindString(line[i:]); m != "" && i+len(m) < len(line) && line[i+len(m)] == '=' {
			w.assign = m
			i += len(m) + 1
		}
		var b strings.Builder
		for i < len(line) {
			ch := line[i]
			if ch == ' ' || ch == '\t' || ch == '\r' || ch == ';' {
				break
			}
			switch ch {
			case '\'':
				j := strings.IndexByte(line[i+1:], '\'')
				if j < 0 {
					return nil, false
				}
				b.WriteString(line[i+1 : i+1+j])
				i += j + 2
			case '"':
				i++
				for i < len(line) && line[i] != '"' {
					switch {
					case line[i] == '\\' && i+1 < len(line) && strings.IndexByte("$`\"\\", line[i+1]) >= 0:
						b.WriteByte(line[i+1])
						i += 2
					case line[i] == '$':
						n, ok := sh.expand(line[i:], &b)
						if !ok {
							return nil, false
						}
						i += n
					case line[i] == '`':
						return nil, false
					default:
						b.WriteByte(line[i])
						i++
					}
				}
				if i >= len(line) {
					return nil, false
				}
				i++
			case '$':
				n, ok := sh.expand(line[i:], &b)
				if !ok {
					return nil, false
				}
				i += n
			case '\\':
				if i+1 >= len(line) {
					return nil, false
				}
				b.WriteByte(line[i+1])
				i += 2
			case '|', '&', '(', ')', '<', '>', '`', '*', '?':
				return nil, false
			default:
				b.WriteByte(ch)
				i++
			}
		}
		w.text = b.String()
		out = append(out, w)
	}
}

// expand writes the value of the expansion at the start of s ($NAME or
// ${...}) and returns its length.
func (sh *hdShell) expand(s string, b *strings.Builder) (int, bool) {
	if len(s) < 2 {
		return 0, false
	}
	if s[1] != '{' {
		name := hdShellName.FindString(s[1:])
		if name == "" {
			return 0, false
		}
		b.WriteString(sh.get(name))
		return 1 + len(name), true
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return 0, false
	}
	body := s[2:end]
	name := hdShellName.FindString(body)
	if name == "" {
		return 0, false
	}
	val, op := sh.get(name), body[len(name):]
	word := strings.TrimLeft(op, "#%")
	if strings.ContainsAny(word, "*?[$'\"\\") {
		return 0, false
	}
	switch op[:len(op)-len(word)] {
	case "":
		if word != "" {
			return 0, false
		}
	case "#", "##":
		val = strings.TrimPrefix(val, word)
	case "%", "%%":
		val = strings.TrimSuffix(val, word)
	default:
		return 0, false
	}
	b.WriteString(val)
	return end + 1, true
}
