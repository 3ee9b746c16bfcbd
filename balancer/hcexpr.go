package balancer

import (
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// HCResponse is what a health-check condition sees of a check's response.
type HCResponse struct {
	// Status is the response status code (%{REQUEST_STATUS}).
	Status int
	// Header holds the response headers (resp('Name')).
	Header http.Header
	// Body is the response body, read for GET checks only (hc('body'),
	// %{HC_BODY}).
	Body string
}

// HCExpr is a parsed health-check condition, the subset of httpd's ap_expr
// that ProxyHCExpr conditions use.
type HCExpr interface {
	// Eval reports whether the condition holds for the response. An error
	// (e.g. a non-numeric operand of -lt) means the check failed.
	Eval(r *HCResponse) (bool, error)
	// String is the source text.
	String() string
}

// ParseHCExpr parses a health-check condition in httpd's ap_expr syntax, the
// forms ProxyHCExpr conditions are written in:
//
//	%{REQUEST_STATUS} =~ /^[234]/
//	%{REQUEST_STATUS} -lt 400
//	%{REQUEST_STATUS} == '200'
//	hc('body') !~ /Under maintenance/
//	%{HC_BODY} =~ /ok/i && resp('Content-Type') =~ m#^text/#
//	!(%{REQUEST_STATUS} in {'500', '503'}) || -n resp('X-Ready')
//
// Conditions: true, false, !, &&, || and parentheses; string comparison
// == (=) != < <= > >=; integer comparison -eq -ne -lt -le -gt -ge (also
// without the dash); regular expressions (Go regexp syntax, flag i) with =~
// and !~ written /re/ or m#re#; `in {word, ...}`; -strmatch, -strcmatch,
// -fnmatch (glob); the unary tests -n (not empty), -z (empty) and -T (true).
// Words: 'string' or "string" (with %{VAR} inside), numbers, %{VAR},
// function(word), and words joined with '.'. Variables: REQUEST_STATUS,
// HC_BODY, CONTENT_TYPE. Functions: hc('body'), resp('Header'), tolower,
// toupper. Anything else is a parse error.
func ParseHCExpr(src string) (HCExpr, error) {
	p := &exprParser{src: src}
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("hcexpr: empty condition")
	}
	c, err := p.parseOr()
	if err != nil {
		return nil, fmt.Errorf("hcexpr %q: %w", src, err)
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, fmt.Errorf("hcexpr %q: unexpected %q at offset %d", src, p.rest(10), p.pos)
	}
	return &hcExpr{src: src, cond: c}, nil
}

type hcExpr struct {
	src  string
	cond cond
}

func (e *hcExpr) Eval(r *HCResponse) (bool, error) {
	if r == nil {
		r = &HCResponse{}
	}
	return e.cond.eval(r)
}

func (e *hcExpr) String() string { return e.src }

// ---- AST ----

type cond interface {
	eval(r *HCResponse) (bool, error)
}

type word interface {
	value(r *HCResponse) string
}

type constCond bool

func (c constCond) eval(*HCResponse) (bool, error) { return bool(c), nil }

type notCond struct{ c cond }

func (n notCond) eval(r *HCResponse) (bool, error) {
	v, err := n.c.eval(r)
	return !v, err
}

type andCond struct{ a, b cond }

func (c andCond) eval(r *HCResponse) (bool, error) {
	v, err := c.a.eval(r)
	if err != nil || !v {
		return false, err
	}
	return c.b.eval(r)
}

type orCond struct{ a, b cond }

func (c orCond) eval(r *HCResponse) (bool, error) {
	v, err := c.a.eval(r)
	if err != nil {
		return false, err
	}
	if v {
		return true, nil
	}
	return c.b.eval(r)
}

type unaryCond struct {
	op string
	w  word
}

func (c unaryCond) eval(r *HCResponse) (bool, error) {
	v := c.w.value(r)
	switch c.op {
	case "-n":
		return v != "", nil
	case "-z":
		return v == "", nil
	default: // -T
		switch strings.ToLower(v) {
		case "", "0", "off", "false", "no":
			return false, nil
		}
		return true, nil
	}
}

type binCond struct {
	op   string
	a, b word
}

func (c binCond) eval(r *HCResponse) (bool, error) {
	a, b := c.a.value(r), c.b.value(r)
	switch c.op {
	case "==", "=":
		return a == b, nil
	case "!=":
		return a != b, nil
	case "<":
		return a < b, nil
	case "<=":
		return a <= b, nil
	case ">":
		return a > b, nil
	case ">=":
		return a >= b, nil
	case "-strmatch", "-fnmatch":
		return path.Match(b, a)
	case "-strcmatch":
		return path.Match(strings.ToLower(b), strings.ToLower(a))
	}
	x, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not an integer", c.op, a)
	}
	y, err := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not an integer", c.op, b)
	}
	switch strings.TrimPrefix(c.op, "-") {
	case "eq":
		return x == y, nil
	case "ne":
		return x != y, nil
	case "lt":
		return x < y, nil
	case "le":
		return x <= y, nil
	case "gt":
		return x > y, nil
	default: // ge
		return x >= y, nil
	}
}

type matchCond struct {
	w      word
	re     *regexp.Regexp
	negate bool
}

func (c matchCond) eval(r *HCResponse) (bool, error) {
	return c.re.MatchString(c.w.value(r)) != c.negate, nil
}

type inCond struct {
	w    word
	list []word
}

func (c inCond) eval(r *HCResponse) (bool, error) {
	v := c.w.value(r)
	for _, l := range c.list {
		if l.value(r) == v {
			return true, nil
		}
	}
	return false, nil
}

type litWord string

func (l litWord) value(*HCResponse) string { return string(l) }

type varWord string // upper-case variable name

func (v varWord) value(r *HCResponse) string {
	switch v {
	case "REQUEST_STATUS":
		return strconv.Itoa(r.Status)
	case "HC_BODY":
		return r.Body
	default: // CONTENT_TYPE
		return r.Header.Get("Content-Type")
	}
}

type funcWord struct {
	name string // lower-case
	arg  word
}

func (f funcWord) value(r *HCResponse) string {
	a := f.arg.value(r)
	switch f.name {
	case "hc":
		if strings.EqualFold(a, "body") {
			return r.Body
		}
		return ""
	case "resp":
		return strings.Join(r.Header.Values(a), ", ")
	case "tolower":
		return strings.ToLower(a)
	default: // toupper
		return strings.ToUpper(a)
	}
}

type concatWord []word

func (c concatWord) value(r *HCResponse) string {
	var b strings.Builder
	for _, w := range c {
		b.WriteString(w.value(r))
	}
	return b.String()
}

// ---- parser ----

var (
	knownVars  = map[string]bool{"REQUEST_STATUS": true, "HC_BODY": true, "CONTENT_TYPE": true}
	knownFuncs = map[string]bool{"hc": true, "resp": true, "tolower": true, "toupper": true}
	binOps     = map[string]bool{
		"==": true, "=": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true,
		"-eq": true, "-ne": true, "-lt": true, "-le": true, "-gt": true, "-ge": true,
		"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
		"-strmatch": true, "-strcmatch": true, "-fnmatch": true,
	}
	unaryOps = map[string]bool{"-n": true, "-z": true, "-T": true}
)

type exprParser struct {
	src string
	pos int
}

func (p *exprParser) rest(n int) string {
	r := p.src[p.pos:]
	if len(r) > n {
		r = r[:n] + "…"
	}
	return r
}

func (p *exprParser) skipSpace() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
}

// accept consumes s (after spaces) if it comes next.
func (p *exprParser) accept(s string) bool {
	p.skipSpace()
	if strings.HasPrefix(p.src[p.pos:], s) {
		p.pos += len(s)
		return true
	}
	return false
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// peekIdent returns the identifier (letters, digits, '_', optionally with a
// leading '-') at the current position without consuming it.
func (p *exprParser) peekIdent() string {
	p.skipSpace()
	i := p.pos
	if i < len(p.src) && p.src[i] == '-' {
		i++
	}
	j := i
	for j < len(p.src) && isIdent(p.src[j]) {
		j++
	}
	if j == i {
		return ""
	}
	return p.src[p.pos:j]
}

func (p *exprParser) parseOr() (cond, error) {
	c, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.accept("||") {
		d, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		c = orCond{c, d}
	}
	return c, nil
}

func (p *exprParser) parseAnd() (cond, error) {
	c, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for p.accept("&&") {
		d, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		c = andCond{c, d}
	}
	return c, nil
}

func (p *exprParser) parseNot() (cond, error) {
	p.skipSpace()
	if strings.HasPrefix(p.src[p.pos:], "!") && !strings.HasPrefix(p.src[p.pos:], "!=") && !strings.HasPrefix(p.src[p.pos:], "!~") {
		p.pos++
		c, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return notCond{c}, nil
	}
	return p.parsePrimary()
}

func (p *exprParser) parsePrimary() (cond, error) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("condition expected at end")
	}
	if p.accept("(") {
		c, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if !p.accept(")") {
			return nil, fmt.Errorf("')' expected at offset %d", p.pos)
		}
		return c, nil
	}
	id := p.peekIdent()
	switch {
	case id == "true" || id == "false":
		p.pos += len(id)
		return constCond(id == "true"), nil
	case strings.HasPrefix(id, "-"):
		if !unaryOps[id] {
			return nil, fmt.Errorf("unknown unary operator %q at offset %d", id, p.pos)
		}
		p.pos += len(id)
		w, err := p.parseWord()
		if err != nil {
			return nil, err
		}
		return unaryCond{op: id, w: w}, nil
	}
	a, err := p.parseWord()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	switch {
	case p.accept("=~"):
		re, err := p.parseRegex()
		if err != nil {
			return nil, err
		}
		return matchCond{w: a, re: re}, nil
	case p.accept("!~"):
		re, err := p.parseRegex()
		if err != nil {
			return nil, err
		}
		return matchCond{w: a, re: re, negate: true}, nil
	}
	op := p.parseBinOp()
	if op == "" {
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("operator expected at end")
		}
		return nil, fmt.Errorf("unknown operator %q at offset %d", p.rest(10), p.pos)
	}
	if op == "in" {
		if !p.accept("{") {
			return nil, fmt.Errorf("'{' expected after 'in' at offset %d", p.pos)
		}
		var list []word
		for {
			w, err := p.parseWord()
			if err != nil {
				return nil, err
			}
			list = append(list, w)
			if p.accept("}") {
				break
			}
			if !p.accept(",") {
				return nil, fmt.Errorf("',' or '}' expected at offset %d", p.pos)
			}
		}
		return inCond{w: a, list: list}, nil
	}
	b, err := p.parseWord()
	if err != nil {
		return nil, err
	}
	return binCond{op: op, a: a, b: b}, nil
}

// parseBinOp consumes a binary operator, or returns "" with nothing consumed.
func (p *exprParser) parseBinOp() string {
	p.skipSpace()
	for _, s := range []string{"==", "!=", "<=", ">=", "=", "<", ">"} {
		if strings.HasPrefix(p.src[p.pos:], s) {
			p.pos += len(s)
			return s
		}
	}
	id := p.peekIdent()
	if id == "in" || binOps[id] {
		p.pos += len(id)
		return id
	}
	return ""
}

// parseRegex parses /re/flags or m<d>re<d>flags.
func (p *exprParser) parseRegex() (*regexp.Regexp, error) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("regular expression expected at end")
	}
	var delim byte
	switch c := p.src[p.pos]; {
	case c == '/':
		delim = '/'
		p.pos++
	case c == 'm' && p.pos+1 < len(p.src) && !isIdent(p.src[p.pos+1]) && p.src[p.pos+1] != ' ':
		delim = p.src[p.pos+1]
		p.pos += 2
	default:
		return nil, fmt.Errorf("regular expression /.../ expected at offset %d", p.pos)
	}
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("unterminated regular expression")
		}
		c := p.src[p.pos]
		if c == '\\' && p.pos+1 < len(p.src) && p.src[p.pos+1] == delim {
			b.WriteByte(delim)
			p.pos += 2
			continue
		}
		p.pos++
		if c == delim {
			break
		}
		b.WriteByte(c)
	}
	pattern := b.String()
	for p.pos < len(p.src) && isIdent(p.src[p.pos]) {
		switch p.src[p.pos] {
		case 'i':
			pattern = "(?i)" + pattern
		default:
			return nil, fmt.Errorf("unknown regular expression flag %q", p.src[p.pos])
		}
		p.pos++
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("regular expression: %v", err)
	}
	return re, nil
}

// parseWord parses term ('.' term)*.
func (p *exprParser) parseWord() (word, error) {
	w, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	var cat concatWord
	for {
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == '.' {
			p.pos++
			t, err := p.parseTerm()
			if err != nil {
				return nil, err
			}
			if cat == nil {
				cat = concatWord{w}
			}
			cat = append(cat, t)
			continue
		}
		break
	}
	if cat != nil {
		return cat, nil
	}
	return w, nil
}

func (p *exprParser) parseTerm() (word, error) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("value expected at end")
	}
	c := p.src[p.pos]
	switch {
	case c == '\'' || c == '"':
		return p.parseString(c)
	case c == '%':
		return p.parseVar()
	case c >= '0' && c <= '9':
		j := p.pos
		for j < len(p.src) && p.src[j] >= '0' && p.src[j] <= '9' {
			j++
		}
		w := litWord(p.src[p.pos:j])
		p.pos = j
		return w, nil
	case isIdent(c):
		id := p.peekIdent()
		name := strings.ToLower(id)
		p.pos += len(id)
		if !p.accept("(") {
			return nil, fmt.Errorf("unexpected word %q (quote strings, call functions as name('arg'))", id)
		}
		if !knownFuncs[name] {
			return nil, fmt.Errorf("unknown function %q (known: hc, resp, tolower, toupper)", id)
		}
		arg, err := p.parseWord()
		if err != nil {
			return nil, err
		}
		if !p.accept(")") {
			return nil, fmt.Errorf("')' expected after argument of %s at offset %d", id, p.pos)
		}
		if l, ok := arg.(litWord); ok && name == "hc" && !strings.EqualFold(string(l), "body") {
			return nil, fmt.Errorf("hc(%q): only hc('body') is known", string(l))
		}
		return funcWord{name: name, arg: arg}, nil
	}
	return nil, fmt.Errorf("value expected at offset %d, found %q", p.pos, p.rest(10))
}

// parseVar parses %{NAME}.
func (p *exprParser) parseVar() (word, error) {
	if !strings.HasPrefix(p.src[p.pos:], "%{") {
		return nil, fmt.Errorf("'%%{' expected at offset %d", p.pos)
	}
	end := strings.IndexByte(p.src[p.pos:], '}')
	if end < 0 {
		return nil, fmt.Errorf("unterminated %%{ at offset %d", p.pos)
	}
	name := strings.ToUpper(strings.TrimSpace(p.src[p.pos+2 : p.pos+end]))
	if !knownVars[name] {
		return nil, fmt.Errorf("unknown variable %%{%s} (known: REQUEST_STATUS, HC_BODY, CONTENT_TYPE)", p.src[p.pos+2:p.pos+end])
	}
	p.pos += end + 1
	return varWord(name), nil
}

// parseString parses a quoted string; %{VAR} inside is interpolated and a
// backslash escapes the next character.
func (p *exprParser) parseString(q byte) (word, error) {
	p.pos++
	var parts concatWord
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("unterminated string")
		}
		c := p.src[p.pos]
		switch {
		case c == q:
			p.pos++
			if b.Len() > 0 || len(parts) == 0 {
				parts = append(parts, litWord(b.String()))
			}
			if len(parts) == 1 {
				return parts[0], nil
			}
			return parts, nil
		case c == '\\' && p.pos+1 < len(p.src):
			b.WriteByte(p.src[p.pos+1])
			p.pos += 2
		case c == '%' && strings.HasPrefix(p.src[p.pos:], "%{"):
			if b.Len() > 0 {
				parts = append(parts, litWord(b.String()))
				b.Reset()
			}
			v, err := p.parseVar()
			if err != nil {
				return nil, err
			}
			parts = append(parts, v)
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}
