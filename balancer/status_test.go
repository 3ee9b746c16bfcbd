package balancer

import (
	"strings"
	"testing"
)

// §2.3: the status string, [OBSERVED] examples and the table order.
func TestStatusString(t *testing.T) {
	O := Initialized
	cases := []struct {
		s    Status
		want string
	}{
		{O, "Init Ok "},
		{O | InError, "Init Err "},
		{O | Disabled, "Init Dis "},
		{O | HotStandby, "Init Stby Ok "},
		{O | HotSpare, "Init Spar Ok "},
		{O | IgnoreErrors | Disabled, "Init Ign Dis "},
		{O | HCFail, "Init HcFl "},
		{O | IgnoreErrors | Drain | Disabled | Stopped | InError | HotStandby | HotSpare | HCFail,
			"Init Ign Drn Dis Stop Err Stby Spar HcFl "},
		// Table order puts Free between Spar and HcFl, Gen before Shut.
		{O | HCFail | Free | HotSpare | InShutdown | Generic, "Init Gen Shut Spar Free HcFl "},
		// N does not make a member unusable.
		{O | Drain, "Init Drn Ok "},
		// Nothing set.
		{0, "??? "},
		// Without Init a member is never usable.
		{HotSpare, "Spar "},
	}
	for _, c := range cases {
		if got := c.s.String(); got != c.want {
			t.Errorf("Status(%#x).String() = %q, want %q", uint16(c.s), got, c.want)
		}
	}
}

// §2.2: usable ⇔ Init and none of U, D, S, E, C.
func TestUsable(t *testing.T) {
	for _, f := range []Status{InShutdown, Disabled, Stopped, InError, HCFail} {
		if (Initialized | f).Usable() {
			t.Errorf("Init|%s usable, want unusable", f.Letters())
		}
	}
	for _, f := range []Status{IgnoreErrors, Drain, Generic, HotStandby, Free, HotSpare} {
		if !(Initialized | f).Usable() {
			t.Errorf("Init|%s unusable, want usable", f.Letters())
		}
	}
	if Status(0).Usable() || HotSpare.Usable() {
		t.Error("a member without Init must not be usable")
	}
}

// §2.3 as the user sees it: members configured with status= show these strings
// before any request.
func TestConfiguredStatusStrings(t *testing.T) {
	cfgs := []struct{ host, status, want string }{
		{"a", "", "Init Ok "},
		{"b", "E", "Init Err "},
		{"c", "D", "Init Dis "},
		{"d", "H", "Init Stby Ok "},
		{"e", "R", "Init Spar Ok "},
		{"f", "+I+D", "Init Ign Dis "},
		{"g", "C", "Init HcFl "},
		{"h", "INDSEHRC", "Init Ign Drn Dis Stop Err Stby Spar HcFl "},
		{"i", "-O", "Init Ok "}, // status=-O is overridden at initialisation
	}
	var cfg Config
	for _, c := range cfgs {
		cfg.Members = append(cfg.Members, cfgMember(t, c.host, c.status))
	}
	b := newTestBalancer(t, cfg, nil)
	for _, c := range cfgs {
		wantStatusString(t, b, c.host, c.want)
	}
}

// §2.4: status= syntax.
func TestParseStatus(t *testing.T) {
	ok := []struct {
		value    string
		cur, out Status
	}{
		{"+H-H+dR-d", 0, HotSpare}, // [OBSERVED] only R
		{"+H-H+dR-d", Initialized, Initialized | HotSpare},
		{"S-E", 0, Stopped}, // [OBSERVED] S set, E cleared
		{"S-E", InError, Stopped},
		{"", Initialized | Disabled, Initialized | Disabled}, // empty: no-op
		{"h", 0, HotStandby},                                 // case-insensitive
		{"-D", Initialized | Disabled, Initialized},
	}
	for _, c := range ok {
		got, err := ParseStatus(c.value, c.cur)
		if err != nil {
			t.Errorf("ParseStatus(%q): %v", c.value, err)
			continue
		}
		if got != c.out {
			t.Errorf("ParseStatus(%q, %s) = %s (%q), want %s (%q)", c.value, c.cur.Letters(), got.Letters(), got, c.out.Letters(), c.out)
		}
	}
	// Every letter of the table is accepted, in either case.
	all, err := ParseStatus("OINGUDSEHFCR", 0)
	if err != nil || all != 0x0FFF {
		t.Errorf("all letters: %#x, %v; want 0xfff", uint16(all), err)
	}
	all, err = ParseStatus("oingudsehfcr", 0)
	if err != nil || all != 0x0FFF {
		t.Errorf("all lower-case letters: %#x, %v; want 0xfff", uint16(all), err)
	}
	// set_worker_param steps past a '+' or '-' and hands the next character to
	// ap_proxy_set_wstatus as a flag letter, so two signs in a row are an error
	// too ("+-H": '-' is not a flag).
	for _, v := range []string{"X", "H+", "H-", "+", "-", "+H-", "HZ", "D E", "1", "+-H", "++H", "--D", "-+D", "H+-R"} {
		_, err := ParseStatus(v, 0)
		if err == nil {
			t.Errorf("ParseStatus(%q) accepted, want 'Unknown status parameter option'", v)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), "unknown status parameter option") {
			t.Errorf("ParseStatus(%q) error %q does not say 'Unknown status parameter option'", v, err)
		}
	}
	if f, ok := FlagForLetter('c'); !ok || f != HCFail {
		t.Errorf("FlagForLetter('c') = %v, %v", f, ok)
	}
	if _, ok := FlagForLetter('z'); ok {
		t.Error("FlagForLetter('z') accepted")
	}
}
