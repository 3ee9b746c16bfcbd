package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
)

// Record is one field of the operator's intent for a balancer, as the fleet
// shares it: the last value written, when, by which node, and under which
// configuration. Its JSON is the format stored in Redis (one hash field per
// record) and in the storage fallback's node files; what comes back from the
// store is checked like a request before it is applied.
type Record struct {
	// Balancer is the balancer's name, without balancer://.
	Balancer string `json:"b"`
	// Member is the member's name (normalized URL); empty for a balancer
	// parameter.
	Member string `json:"m,omitempty"`
	// Field names what the record sets: a member's loadfactor (×100),
	// lbset, route, redirect, hc (health-check settings), flag:D, flag:S,
	// flag:N, flag:I, flag:H or flag:R (set or not), and member (the member
	// added at run time: its configuration, or null once removed); a
	// balancer's lbmethod, stickysession, timeout (nanoseconds),
	// maxattempts, nofailover or forcerecovery.
	Field string `json:"f"`
	// Value is the field's value in JSON.
	Value json.RawMessage `json:"v"`
	// Config is the fingerprint of the configuration the write was made
	// under: the member's (or, for balancer parameters, the balancer's
	// configured parameters). A node whose configuration differs ignores the
	// record: a deploy wins over an older run-time change.
	Config string `json:"c"`
	// Stamp orders the writes of a field (hybrid logical clock); Node breaks
	// ties and says who wrote it.
	Stamp Stamp  `json:"t"`
	Node  string `json:"n"`
}

// Key is what a record is the latest value of.
type Key struct{ Balancer, Member, Field string }

// Key returns the record's key.
func (r Record) Key() Key { return Key{r.Balancer, r.Member, r.Field} }

// field is the record's key within its balancer, as stored (the Redis hash
// field): "<member>|<field>".
func (r Record) field() string { return r.Member + "|" + r.Field }

// Newer reports whether r wins over o: the later stamp, then the greater
// node ID, so that every node picks the same winner.
func (r Record) Newer(o Record) bool {
	if c := r.Stamp.Compare(o.Stamp); c != 0 {
		return c > 0
	}
	return r.Node > o.Node
}

// order is a string that sorts as records win: the stamp, then the node.
func (r Record) order() string { return r.Stamp.String() + "." + r.Node }

// Stamp is a hybrid logical clock reading: wall time in milliseconds and a
// counter for writes in the same millisecond or after a clock behind a
// peer's.
type Stamp struct {
	Wall    int64  `json:"w"`
	Logical uint32 `json:"l"`
}

// Compare returns -1, 0 or 1 as s is before, equal to or after o.
func (s Stamp) Compare(o Stamp) int {
	switch {
	case s.Wall != o.Wall:
		if s.Wall < o.Wall {
			return -1
		}
		return 1
	case s.Logical != o.Logical:
		if s.Logical < o.Logical {
			return -1
		}
		return 1
	}
	return 0
}

// String is a fixed-width form that sorts as Compare does.
func (s Stamp) String() string { return fmt.Sprintf("%015d.%010d", s.Wall, s.Logical) }

// Time is the stamp's wall time.
func (s Stamp) Time() time.Time { return time.UnixMilli(s.Wall) }

// The fields a record can set.
const (
	FieldLoadFactor    = "loadfactor"
	FieldLBSet         = "lbset"
	FieldRoute         = "route"
	FieldRedirect      = "redirect"
	FieldHealthCheck   = "hc"
	FieldMember        = "member"
	FieldLBMethod      = "lbmethod"
	FieldStickySession = "stickysession"
	FieldTimeout       = "timeout"
	FieldMaxAttempts   = "maxattempts"
	FieldNoFailover    = "nofailover"
	FieldForceRecovery = "forcerecovery"
	flagPrefix         = "flag:"
)

// SharedFlags are the status flags the fleet shares: the operator's (D S N
// I H R). E and C are what each node observes for itself.
const SharedFlags = balancer.Disabled | balancer.Stopped | balancer.Drain | balancer.IgnoreErrors |
	balancer.HotStandby | balancer.HotSpare

// stickyValue is the JSON of a stickysession record.
type stickyValue struct {
	Cookie string `json:"cookie"`
	Path   string `json:"path"`
}

// Fingerprint is the fingerprint of a member's configuration, the same on
// every node that has the same configuration for it.
func Fingerprint(mc balancer.MemberConfig) string {
	js, _ := json.Marshal(mc)
	return hash(js)
}

// paramsFingerprint is the fingerprint of a balancer's configured parameters
// (those a run-time change can override).
func paramsFingerprint(cfg balancer.Config) string {
	p := struct {
		LBMethod, Sticky, Path string
		Timeout                time.Duration
		MaxAttempts            int
		MaxSet, NoFailover, FR bool
	}{cfg.LBMethod, cfg.StickySession, cfg.StickyPath, cfg.Timeout, cfg.MaxAttempts, cfg.MaxAttemptsSet, cfg.NoFailover, cfg.ForceRecovery}
	if p.LBMethod == "" {
		p.LBMethod = "byrequests"
	}
	js, _ := json.Marshal(p)
	return hash(js)
}

func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// records turns an edit made on this node into the records to share. member
// finds a member's configuration by name (its fingerprint's source).
func records(bal string, e balancer.Edit, cfg balancer.Config, member func(name string) (balancer.MemberConfig, bool)) []Record {
	var out []Record
	add := func(m, field, fp string, v any) {
		js, err := json.Marshal(v)
		if err == nil {
			out = append(out, Record{Balancer: bal, Member: m, Field: field, Value: js, Config: fp})
		}
	}
	bfp := paramsFingerprint(cfg)
	if e.LBMethod != nil {
		add("", FieldLBMethod, bfp, *e.LBMethod)
	}
	if s := e.StickySession; s != nil {
		add("", FieldStickySession, bfp, stickyValue{s.Cookie, s.Path})
	}
	if e.Timeout != nil {
		add("", FieldTimeout, bfp, int64(*e.Timeout))
	}
	if e.MaxAttempts != nil {
		add("", FieldMaxAttempts, bfp, *e.MaxAttempts)
	}
	if e.NoFailover != nil {
		add("", FieldNoFailover, bfp, *e.NoFailover)
	}
	if e.ForceRecovery != nil {
		add("", FieldForceRecovery, bfp, *e.ForceRecovery)
	}
	for _, me := range e.Members {
		mc, ok := member(me.Name)
		if !ok {
			continue
		}
		fp := Fingerprint(mc)
		if me.LoadFactor != nil {
			add(me.Name, FieldLoadFactor, fp, *me.LoadFactor)
		}
		if me.LBSet != nil {
			add(me.Name, FieldLBSet, fp, *me.LBSet)
		}
		if me.Route != nil {
			add(me.Name, FieldRoute, fp, *me.Route)
		}
		if me.Redirect != nil {
			add(me.Name, FieldRedirect, fp, *me.Redirect)
		}
		if me.HealthCheck != nil {
			add(me.Name, FieldHealthCheck, fp, *me.HealthCheck)
		}
		for _, f := range flags((me.Set | me.Clear) & SharedFlags) {
			add(me.Name, flagPrefix+f.Letters(), fp, me.Set&f != 0)
		}
	}
	for _, mc := range e.Add {
		name, _, _, _, _, _, err := balancer.NormalizeURL(mc.URL)
		if err == nil {
			added, ok := member(name)
			if !ok {
				added = mc
			}
			add(name, FieldMember, "", added)
		}
	}
	for _, name := range e.Remove {
		add(name, FieldMember, "", nil)
	}
	return out
}

// flags splits a set of flags into single flags, in a fixed order.
func flags(s balancer.Status) []balancer.Status {
	var out []balancer.Status
	for f := balancer.Status(1); f != 0 && f <= s; f <<= 1 {
		if s&f != 0 {
			out = append(out, f)
		}
	}
	return out
}

// errStale is a record that does not apply to this node's configuration.
var errStale = errors.New("written under another configuration")

// edit turns a record into the engine edit that applies it here, after
// checking it: its value must decode and fit the field, and it must have been
// written under this node's configuration of the member or balancer. v is
// the balancer's view.
func (r Record) edit(v balancer.View, cfg balancer.Config) (balancer.Edit, error) {
	var e balancer.Edit
	if r.Member == "" {
		if r.Config != paramsFingerprint(cfg) {
			return e, errStale
		}
		var err error
		switch r.Field {
		case FieldLBMethod:
			var s string
			err = json.Unmarshal(r.Value, &s)
			e.LBMethod = &s
		case FieldStickySession:
			var s stickyValue
			err = json.Unmarshal(r.Value, &s)
			e.StickySession = &balancer.StickySession{Cookie: s.Cookie, Path: s.Path}
		case FieldTimeout:
			var n int64
			err = json.Unmarshal(r.Value, &n)
			d := time.Duration(n)
			e.Timeout = &d
		case FieldMaxAttempts:
			var n int
			err = json.Unmarshal(r.Value, &n)
			e.MaxAttempts = &n
		case FieldNoFailover, FieldForceRecovery:
			var b bool
			err = json.Unmarshal(r.Value, &b)
			if r.Field == FieldNoFailover {
				e.NoFailover = &b
			} else {
				e.ForceRecovery = &b
			}
		default:
			return e, fmt.Errorf("unknown balancer field %q", r.Field)
		}
		return e, err
	}
	var cur *balancer.MemberView
	for i := range v.Members {
		if v.Members[i].Name == r.Member {
			cur = &v.Members[i]
		}
	}
	if r.Field == FieldMember {
		return r.membership(cur)
	}
	if cur == nil {
		return e, fmt.Errorf("no member %s here", r.Member)
	}
	if r.Config != Fingerprint(cur.Config) {
		return e, errStale
	}
	me := balancer.MemberEdit{Name: r.Member}
	var err error
	switch {
	case r.Field == FieldLoadFactor:
		var n int
		err = json.Unmarshal(r.Value, &n)
		me.LoadFactor = &n
	case r.Field == FieldLBSet:
		var n int
		err = json.Unmarshal(r.Value, &n)
		me.LBSet = &n
	case r.Field == FieldRoute, r.Field == FieldRedirect:
		var s string
		err = json.Unmarshal(r.Value, &s)
		if r.Field == FieldRoute {
			me.Route = &s
		} else {
			me.Redirect = &s
		}
	case r.Field == FieldHealthCheck:
		var hc balancer.HealthCheck
		err = json.Unmarshal(r.Value, &hc)
		me.HealthCheck = &hc
	case strings.HasPrefix(r.Field, flagPrefix) && len(r.Field) == len(flagPrefix)+1:
		f, ok := balancer.FlagForLetter(r.Field[len(flagPrefix)])
		if !ok || f&SharedFlags == 0 {
			return e, fmt.Errorf("flag %q is not shared", r.Field)
		}
		var on bool
		err = json.Unmarshal(r.Value, &on)
		if on {
			me.Set = f
		} else {
			me.Clear = f
		}
	default:
		return e, fmt.Errorf("unknown member field %q", r.Field)
	}
	e.Members = []balancer.MemberEdit{me}
	return e, err
}

// membership is the edit of a member record: add the member (if it is not
// here), or remove it (if it is here and was added at run time).
func (r Record) membership(cur *balancer.MemberView) (balancer.Edit, error) {
	var e balancer.Edit
	if string(r.Value) == "null" {
		if cur == nil || !cur.Dynamic {
			return e, nil // gone already, or configured here
		}
		e.Remove = []string{r.Member}
		return e, nil
	}
	var mc balancer.MemberConfig
	if err := json.Unmarshal(r.Value, &mc); err != nil {
		return e, err
	}
	if name, _, _, _, _, _, err := balancer.NormalizeURL(mc.URL); err != nil || name != r.Member {
		return e, fmt.Errorf("member record for %s holds the URL %q", r.Member, mc.URL)
	}
	if cur != nil {
		return e, nil // here already (configured, or added)
	}
	e.Add = []balancer.MemberConfig{mc}
	return e, nil
}

// sortRecords orders records as they must be applied: balancer parameters,
// then members added or removed, then member fields (which need the member),
// each by key, so that every node applies a set of records the same way.
func sortRecords(rs []Record) {
	rank := func(r Record) int {
		switch {
		case r.Member == "":
			return 0
		case r.Field == FieldMember:
			return 1
		}
		return 2
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.Balancer != b.Balancer {
			return a.Balancer < b.Balancer
		}
		if a.Member != b.Member {
			return a.Member < b.Member
		}
		return a.Field < b.Field
	})
}

// parseOrder reads the prefix of a stored value written by encode: the
// record's order string.
func parseOrder(s string) (order, js string, ok bool) {
	return strings.Cut(s, "|")
}

// encode writes a record as stored: its order string, '|', its JSON.
func encode(r Record) (string, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	return r.order() + "|" + string(js), nil
}

// decode reads a stored record, checking that its order string agrees.
func decode(s string) (Record, error) {
	order, js, ok := parseOrder(s)
	if !ok {
		return Record{}, errors.New("not a fleet record")
	}
	var r Record
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return r, err
	}
	if r.order() != order || r.Balancer == "" || r.Field == "" || r.Node == "" {
		return r, errors.New("malformed fleet record")
	}
	return r, nil
}
