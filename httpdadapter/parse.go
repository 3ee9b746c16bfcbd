package httpdadapter

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// This file reads an httpd configuration as httpd 2.4 does
// (ap_cfg_getline, ap_getword_conf, ap_build_config): logical lines with
// backslash continuations, comments, quoted words, ${VAR} substitution,
// sections, and the directives that act while the file is read: Include,
// IncludeOptional, Define, UnDefine, ServerRoot, LoadModule and the
// <IfModule>, <IfDefine>, <IfVersion>, <IfFile>, <IfDirective>, <IfSection>
// conditionals. The result is a tree of directives, each with its file and
// line; conditionals that hold and Includes are spliced into their parent.

// hdDirective is one directive or section of the configuration.
type hdDirective struct {
	Name    string   // as written, without '<' for a section
	Args    []string // words after the name, ${VAR} substituted, quotes removed
	Raw     string   // the argument text after substitution (RAW_ARGS directives)
	File    string
	Line    int
	Section bool
	Body    []*hdDirective // a section's contents
}

// lname is the directive name in lower case.
func (d *hdDirective) lname() string { return strings.ToLower(d.Name) }

// display is the directive's name as messages show it: "<Proxy>" for a section.
func (d *hdDirective) display() string {
	if d.Section {
		return "<" + d.Name + ">"
	}
	return d.Name
}

// hdError is a configuration error at a place in the configuration.
type hdError struct {
	File, Directive string
	Line            int
	Msg             string
}

func (e *hdError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Directive != "" {
		b.WriteString(e.Directive)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// hdLine is one logical line.
type hdLine struct {
	text string
	line int
}

// hdReader holds the state of reading: what the read-time directives set.
type hdReader struct {
	serverRoot string
	defines    map[string]string
	// loaded holds the modules named by LoadModule, by identifier
	// (proxy_module) and by source name (mod_proxy.c).
	loaded        map[string]bool
	anyLoadModule bool
	warnings      *[]caddyconfig.Warning
	includeDepth  int
	files         []string // every file read, in order
	// env looks up ${VAR} that no Define set (the process environment).
	env func(string) (string, bool)
}

// hdBuiltinModules are compiled into httpd (Debian's apache2) and always present.
var hdBuiltinModules = []string{"core", "so", "watchdog", "http", "log_config", "logio", "version", "unixd", "mpm_common"}

// hdTranslatedModules are the modules whose directives this adapter reads;
// <IfModule> on them holds even when no LoadModule line names them.
var hdTranslatedModules = []string{
	"proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests", "lbmethod_bytraffic",
	"lbmethod_bybusyness", "proxy_hcheck", "headers", "authz_core", "authz_host", "access_compat",
	"slotmem_shm", "proxy_wstunnel",
}

func newHdReader(serverRoot string, warnings *[]caddyconfig.Warning) *hdReader {
	r := &hdReader{
		serverRoot: serverRoot,
		defines:    map[string]string{},
		loaded:     map[string]bool{},
		warnings:   warnings,
		env:        os.LookupEnv,
	}
	for _, m := range hdBuiltinModules {
		r.markLoaded(m + "_module")
	}
	return r
}

func (r *hdReader) warn(file string, line int, directive, format string, args ...any) {
	*r.warnings = append(*r.warnings, caddyconfig.Warning{File: file, Line: line, Directive: directive, Message: fmt.Sprintf(format, args...)})
}

// markLoaded records a module by its identifier (proxy_module); its source
// name (mod_proxy.c) is recorded too.
func (r *hdReader) markLoaded(id string) {
	id = strings.ToLower(id)
	r.loaded[id] = true
	r.loaded["mod_"+strings.TrimSuffix(id, "_module")+".c"] = true
}

// moduleKnown reports whether <IfModule name> holds, and whether the answer
// is certain (the module was loaded, is built in, is one this adapter reads,
// or the configuration has LoadModule lines that would have named it).
func (r *hdReader) moduleKnown(name string) (present, certain bool) {
	n := strings.ToLower(name)
	if r.loaded[n] {
		return true, true
	}
	base := n
	switch {
	case strings.HasSuffix(n, "_module"):
		base = strings.TrimSuffix(n, "_module")
	case strings.HasPrefix(n, "mod_") && strings.HasSuffix(n, ".c"):
		base = strings.TrimSuffix(strings.TrimPrefix(n, "mod_"), ".c")
	}
	for _, m := range hdTranslatedModules {
		if base == m {
			return true, true
		}
	}
	return false, r.anyLoadModule
}

// readFile reads and parses one configuration file; the result is its
// top-level directives.
func (r *hdReader) readFile(name string) ([]*hdDirective, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return r.parse(name, data)
}

// parse parses the text of one file.
func (r *hdReader) parse(name string, data []byte) ([]*hdDirective, error) {
	r.files = append(r.files, name)
	lines := hdLogicalLines(string(data))
	p := &hdParser{r: r, file: name, lines: lines}
	dirs, err := p.block("", 0)
	if err != nil {
		return nil, err
	}
	return dirs, nil
}

// hdLogicalLines splits text into logical lines as ap_cfg_getline does:
// trailing white space is removed, a line ending in a backslash continues on
// the next one, leading white space is removed, and empty lines and lines
// whose first character is '#' are dropped. Each line keeps the number of the
// physical line it starts on.
func hdLogicalLines(text string) []hdLine {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	phys := strings.Split(text, "\n")
	var out []hdLine
	for i := 0; i < len(phys); i++ {
		start := i + 1
		s := strings.TrimRight(phys[i], " \t\r\f\v")
		for strings.HasSuffix(s, "\\") && i+1 < len(phys) {
			i++
			s = s[:len(s)-1] + strings.TrimRight(phys[i], " \t\r\f\v")
		}
		s = strings.TrimLeft(s, " \t\r\f\v")
		if s == "" || s[0] == '#' {
			continue
		}
		out = append(out, hdLine{text: s, line: start})
	}
	return out
}

// hdWords splits an argument string into words as ap_getword_conf does:
// white space separates words; a word that starts with " or ' runs to the
// matching quote, inside which \" (or \') and \\ are escapes; elsewhere \\
// stands for one backslash.
func hdWords(s string) []string {
	var words []string
	i := 0
	for {
		for i < len(s) && hdIsSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return words
		}
		var b strings.Builder
		if q := s[i]; q == '"' || q == '\'' {
			i++
			for i < len(s) && s[i] != q {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == q || s[i+1] == '\\') {
					i++
				}
				b.WriteByte(s[i])
				i++
			}
			if i < len(s) {
				i++ // the closing quote
			}
		} else {
			for i < len(s) && !hdIsSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) && s[i+1] == '\\' {
					i++
				}
				b.WriteByte(s[i])
				i++
			}
		}
		words = append(words, b.String())
	}
}

func hdIsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

var hdVarRE = regexp.MustCompile(`\$\{([A-Za-z0-9_.:-]+)\}`)

// hdParser parses the logical lines of one file.
type hdParser struct {
	r     *hdReader
	file  string
	lines []hdLine
	pos   int
}

// substitute replaces ${VAR} with a Define's value or an environment
// variable, as ap_resolve_env does; an unknown variable stays as written,
// with a warning (httpd's AH00111).
func (p *hdParser) substitute(s string, line int, directive string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return hdVarRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := p.r.defines[name]; ok {
			return v
		}
		if p.r.env != nil {
			if v, ok := p.r.env(name); ok {
				return v
			}
		}
		p.r.warn(p.file, line, directive, "config variable ${%s} is not defined (left as written)", name)
		return m
	})
}

func (p *hdParser) errf(line int, directive, format string, args ...any) error {
	return &hdError{File: p.file, Line: line, Directive: directive, Msg: fmt.Sprintf(format, args...)}
}

// block parses directives until the closing tag of section end ("" for the
// end of the file). open is the line of the section's start, for errors.
func (p *hdParser) block(end string, open int) ([]*hdDirective, error) {
	var out []*hdDirective
	for p.pos < len(p.lines) {
		ln := p.lines[p.pos]
		p.pos++
		text := ln.text
		if strings.HasPrefix(text, "</") {
			name := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(text[2:]), ">"))
			if end == "" {
				return nil, p.errf(ln.line, "</"+name+">", "closing tag without a matching <%s>", name)
			}
			if !strings.EqualFold(name, end) {
				return nil, p.errf(ln.line, "</"+name+">", "expected </%s> but saw </%s>", end, name)
			}
			return out, nil
		}
		if strings.HasPrefix(text, "<") {
			d, keep, err := p.section(ln)
			if err != nil {
				return nil, err
			}
			out = append(out, keep...)
			if d != nil {
				out = append(out, d)
			}
			continue
		}
		name, rest := hdCutWord(text)
		rest = p.substitute(rest, ln.line, name)
		d := &hdDirective{Name: name, Args: hdWords(rest), Raw: strings.TrimSpace(rest), File: p.file, Line: ln.line}
		spliced, err := p.readTime(d)
		if err != nil {
			return nil, err
		}
		if spliced != nil {
			out = append(out, spliced...)
			continue
		}
		out = append(out, d)
	}
	if end != "" {
		return nil, p.errf(open, "<"+end+">", "<%s> was not closed", end)
	}
	return out, nil
}

// hdCutWord splits a line into its first word (the directive name) and the rest.
func hdCutWord(s string) (string, string) {
	i := 0
	for i < len(s) && !hdIsSpace(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// section parses a section starting at ln. Conditionals are evaluated as
// httpd does, before their contents are read: a true one returns its
// contents (keep), a false one is skipped unread.
func (p *hdParser) section(ln hdLine) (*hdDirective, []*hdDirective, error) {
	text := strings.TrimSpace(ln.text[1:])
	if !strings.HasSuffix(text, ">") {
		name, _ := hdCutWord(text)
		return nil, nil, p.errf(ln.line, "<"+name+">", "<%s> directive missing closing '>'", name)
	}
	text = strings.TrimSpace(text[:len(text)-1])
	name, rest := hdCutWord(text)
	rest = p.substitute(rest, ln.line, "<"+name+">")
	d := &hdDirective{Name: name, Args: hdWords(rest), Raw: strings.TrimSpace(rest), File: p.file, Line: ln.line, Section: true}

	holds, isCond, uncertain, err := p.condition(d)
	if err != nil {
		return nil, nil, err
	}
	if !isCond {
		body, err := p.block(name, ln.line)
		if err != nil {
			return nil, nil, err
		}
		d.Body = body
		return d, nil, nil
	}
	if !holds {
		n, err := p.skip(name, ln.line)
		if err != nil {
			return nil, nil, err
		}
		if uncertain && n > 0 {
			p.r.warn(d.File, d.Line, d.display(), "module %s is neither loaded by a LoadModule line nor one this adapter translates; assumed absent, so the %d lines of this block are skipped", strings.TrimPrefix(d.Args[0], "!"), n)
		}
		return nil, nil, nil
	}
	body, err := p.block(name, ln.line)
	if err != nil {
		return nil, nil, err
	}
	if uncertain && len(body) > 0 {
		p.r.warn(d.File, d.Line, d.display(), "module %s is neither loaded by a LoadModule line nor one this adapter translates; assumed absent, so this block is read", strings.TrimPrefix(d.Args[0], "!"))
	}
	if body == nil {
		body = []*hdDirective{}
	}
	return nil, body, nil
}

// skip passes over the lines of a false conditional up to its closing tag,
// nested sections included, as ap_soak_end_container does. It returns the
// number of lines skipped.
func (p *hdParser) skip(end string, open int) (int, error) {
	depth := []string{end}
	n := 0
	for p.pos < len(p.lines) {
		ln := p.lines[p.pos]
		p.pos++
		t := ln.text
		switch {
		case strings.HasPrefix(t, "</"):
			name := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(t[2:]), ">"))
			top := depth[len(depth)-1]
			if !strings.EqualFold(name, top) {
				return 0, p.errf(ln.line, "</"+name+">", "expected </%s> but saw </%s>", top, name)
			}
			depth = depth[:len(depth)-1]
			if len(depth) == 0 {
				return n, nil
			}
		case strings.HasPrefix(t, "<"):
			name, _ := hdCutWord(strings.TrimSuffix(strings.TrimSpace(t[1:]), ">"))
			depth = append(depth, name)
		}
		n++
	}
	return 0, p.errf(open, "<"+end+">", "<%s> was not closed", end)
}

// condition evaluates a conditional section. isCond is false for other
// sections; uncertain is true for <IfModule> on a module the adapter cannot
// know about (no LoadModule line in the configuration).
func (p *hdParser) condition(d *hdDirective) (holds, isCond, uncertain bool, err error) {
	arg := func() (string, bool, error) {
		if len(d.Args) != 1 {
			return "", false, p.errf(d.Line, d.display(), "takes one argument")
		}
		a := d.Args[0]
		neg := strings.HasPrefix(a, "!")
		return strings.TrimPrefix(a, "!"), neg, nil
	}
	switch d.lname() {
	case "ifmodule":
		m, neg, err := arg()
		if err != nil {
			return false, true, false, err
		}
		present, certain := p.r.moduleKnown(m)
		return present != neg, true, !certain, nil
	case "ifdefine":
		name, neg, err := arg()
		if err != nil {
			return false, true, false, err
		}
		_, ok := p.r.defines[name]
		return ok != neg, true, false, nil
	case "iffile":
		name, neg, err := arg()
		if err != nil {
			return false, true, false, err
		}
		if !filepath.IsAbs(name) {
			name = filepath.Join(p.r.serverRoot, name)
		}
		_, statErr := os.Stat(name)
		return (statErr == nil) != neg, true, false, nil
	case "ifdirective":
		name, neg, err := arg()
		if err != nil {
			return false, true, false, err
		}
		_, ok := hdKnownDirectives[strings.ToLower(name)]
		return ok != neg, true, false, nil
	case "ifsection":
		name, neg, err := arg()
		if err != nil {
			return false, true, false, err
		}
		_, ok := hdKnownSections[strings.ToLower(name)]
		return ok != neg, true, false, nil
	case "ifversion":
		ok, err := hdIfVersion(d.Args)
		if err != nil {
			return false, true, false, p.errf(d.Line, d.display(), "%v", err)
		}
		return ok, true, false, nil
	}
	return false, false, false, nil
}

// hdCount counts the directives in a body, sections included.
func hdCount(body []*hdDirective) int {
	n := 0
	for _, d := range body {
		n++
		if d.Section {
			n += hdCount(d.Body)
		}
	}
	return n
}

// hdVersion is the httpd version <IfVersion> compares with: the release the
// emulation follows.
var hdVersion = [3]int{2, 4, 71}

// hdIfVersion evaluates <IfVersion [[!]operator] version> (mod_version).
func hdIfVersion(args []string) (bool, error) {
	op, v := "=", ""
	switch len(args) {
	case 1:
		v = args[0]
	case 2:
		op, v = args[0], args[1]
	default:
		return false, fmt.Errorf("wants [operator] version")
	}
	neg := strings.HasPrefix(op, "!")
	op = strings.TrimPrefix(op, "!")
	if op == "~" || op == "=" && strings.HasPrefix(v, "/") {
		re := strings.Trim(v, "/")
		rx, err := regexp.Compile(re)
		if err != nil {
			return false, err
		}
		return rx.MatchString(fmt.Sprintf("%d.%d.%d", hdVersion[0], hdVersion[1], hdVersion[2])) != neg, nil
	}
	parts := strings.Split(v, ".")
	var want [3]int
	for i := 0; i < 3; i++ {
		if i < len(parts) {
			n, err := strconv.Atoi(parts[i])
			if err != nil {
				return false, fmt.Errorf("invalid version %q", v)
			}
			want[i] = n
		} else {
			want[i] = -1 // missing components match anything
		}
	}
	cmp := 0
	for i := 0; i < 3 && cmp == 0; i++ {
		if want[i] < 0 {
			break
		}
		switch {
		case hdVersion[i] < want[i]:
			cmp = -1
		case hdVersion[i] > want[i]:
			cmp = 1
		}
	}
	var ok bool
	switch op {
	case "=", "==":
		ok = cmp == 0
	case "<":
		ok = cmp < 0
	case "<=":
		ok = cmp <= 0
	case ">":
		ok = cmp > 0
	case ">=":
		ok = cmp >= 0
	default:
		return false, fmt.Errorf("unknown operator %q", op)
	}
	return ok != neg, nil
}

// readTime runs the directives that act while the configuration is read.
// It returns the directives to splice in place of d (Include), or nil to
// keep d.
func (p *hdParser) readTime(d *hdDirective) ([]*hdDirective, error) {
	switch d.lname() {
	case "define":
		switch len(d.Args) {
		case 1:
			p.r.defines[d.Args[0]] = ""
		case 2:
			p.r.defines[d.Args[0]] = d.Args[1]
		default:
			return nil, p.errf(d.Line, d.Name, "wants a name and an optional value")
		}
	case "undefine":
		if len(d.Args) != 1 {
			return nil, p.errf(d.Line, d.Name, "wants a name")
		}
		delete(p.r.defines, d.Args[0])
	case "serverroot":
		if len(d.Args) != 1 {
			return nil, p.errf(d.Line, d.Name, "wants one directory")
		}
		root := d.Args[0]
		if !filepath.IsAbs(root) {
			// httpd takes it relative to its compiled-in root; the
			// adapter takes the directory it already uses.
			root = filepath.Join(p.r.serverRoot, root)
		}
		p.r.serverRoot = root
	case "loadmodule":
		if len(d.Args) != 2 {
			return nil, p.errf(d.Line, d.Name, "wants a module identifier and a file")
		}
		p.r.anyLoadModule = true
		p.r.markLoaded(d.Args[0])
	case "include", "includeoptional":
		if len(d.Args) != 1 {
			return nil, p.errf(d.Line, d.Name, "wants one file name or pattern")
		}
		return p.include(d, d.lname() == "includeoptional")
	}
	return nil, nil
}

// include reads the files an Include names: a file, a directory (every file
// in it and its subdirectories, in name order), or a wildcard pattern.
// Relative names are relative to ServerRoot.
func (p *hdParser) include(d *hdDirective, optional bool) ([]*hdDirective, error) {
	if p.r.includeDepth >= 128 {
		return nil, p.errf(d.Line, d.Name, "exceeded the maximum include depth of 128 (an Include loop?)")
	}
	pattern := d.Args[0]
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(p.r.serverRoot, pattern)
	}
	var files []string
	if strings.ContainsAny(pattern, "*?[") {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, p.errf(d.Line, d.Name, "%v", err)
		}
		sort.Strings(matches)
		if len(matches) == 0 && !optional {
			return nil, p.errf(d.Line, d.Name, "no matches for the wildcard %q", d.Args[0])
		}
		for _, m := range matches {
			fs, err := hdFilesUnder(m)
			if err != nil {
				return nil, p.errf(d.Line, d.Name, "%v", err)
			}
			files = append(files, fs...)
		}
	} else {
		fs, err := hdFilesUnder(pattern)
		if err != nil {
			if optional && os.IsNotExist(err) {
				return []*hdDirective{}, nil // spliced: nothing
			}
			return nil, p.errf(d.Line, d.Name, "could not open configuration file %s: %v", pattern, err)
		}
		files = fs
	}
	var out []*hdDirective
	p.r.includeDepth++
	defer func() { p.r.includeDepth-- }()
	for _, f := range files {
		dirs, err := p.r.readFile(f)
		if err != nil {
			if _, ok := err.(*hdError); ok {
				return nil, err
			}
			return nil, p.errf(d.Line, d.Name, "%v", err)
		}
		out = append(out, dirs...)
	}
	if out == nil {
		out = []*hdDirective{} // spliced: nothing
	}
	return out, nil
}

// hdFilesUnder lists name if it is a file, or every file under it if it is
// a directory, in name order.
func hdFilesUnder(name string) ([]string, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{name}, nil
	}
	entries, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		fs, err := hdFilesUnder(filepath.Join(name, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}
