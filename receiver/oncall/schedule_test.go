package oncall

import (
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

var people = map[string]Person{
	"ann": {Name: "Ann", Phone: "+8613800000001"}, "bob": {Phone: "+8613800000002"}, "cat": {Phone: "+8613800000003"},
	"dan": {Phone: "+8613800000004"}, "eve": {Phone: "+8613800000005"}, "lead": {Name: "Team Lead", Phone: "+8613800000009"},
}

func compile(t *testing.T, sc ScheduleConfig) *Schedule {
	t.Helper()
	c := &Config{People: people}
	s, errs := c.Compile("test", sc, "receiver.oncall.schedules.test")
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return s
}

func day1(d int) config.Duration { return config.Duration(time.Duration(d) * 24 * time.Hour) }

type at struct {
	when       string // UTC
	who        string
	start, end string // UTC, "" = not checked
}

func check(t *testing.T, s *Schedule, cases []at) {
	t.Helper()
	for _, c := range cases {
		sh := s.At(utc(c.when))
		if sh.Person != c.who {
			t.Errorf("%s at %s UTC: %q on call, want %q", s.Name, c.when, sh.Person, c.who)
			continue
		}
		if c.start != "" && !sh.Start.Equal(utc(c.start)) {
			t.Errorf("%s at %s UTC: shift starts %s, want %s UTC", s.Name, c.when, sh.Start.UTC().Format(localLayout), c.start)
		}
		if c.end != "" && !sh.End.Equal(utc(c.end)) {
			t.Errorf("%s at %s UTC: shift ends %s, want %s UTC", s.Name, c.when, sh.End.UTC().Format(localLayout), c.end)
		}
	}
}

func TestDailyRotationKeepsWallClockAcrossDST(t *testing.T) {
	// New York 2026: clocks go 02:00 EST → 03:00 EDT on 8 March and 02:00 EDT → 01:00 EST on 1 November.
	s := compile(t, ScheduleConfig{TimeZone: "America/New_York", Layers: []LayerConfig{
		{Name: "primary", Members: []string{"ann", "bob", "cat"}, Start: "2026-03-05 09:00", Rotation: day1(1)},
	}})
	check(t, s, []at{
		{"2026-03-05 14:00", "ann", "2026-03-05 14:00", "2026-03-06 14:00"}, // 09:00 EST
		{"2026-03-07 13:59", "bob", "2026-03-06 14:00", "2026-03-07 14:00"},
		// The shift over the spring change lasts 23 hours: 09:00 EST to 09:00 EDT.
		{"2026-03-08 12:00", "cat", "2026-03-07 14:00", "2026-03-08 13:00"},
		{"2026-03-08 13:00", "ann", "2026-03-08 13:00", "2026-03-09 13:00"},
		// Autumn: 09:00 EDT on 31 October to 09:00 EST on 1 November is 25 hours.
		{"2026-11-01 13:30", "ann", "2026-10-31 13:00", "2026-11-01 14:00"}, // 240 days after the start: ann again
		{"2026-11-01 14:00", "bob", "2026-11-01 14:00", "2026-11-02 14:00"},
		// Before the first hand-off the rotation runs backwards.
		{"2026-03-04 20:00", "cat", "2026-03-04 14:00", "2026-03-05 14:00"},
	})
}

func TestWeeklyRotationInBerlinAcrossDST(t *testing.T) {
	// Berlin 2026: 02:00 CET → 03:00 CEST on 29 March, back on 25 October. Mondays 10:00 local.
	s := compile(t, ScheduleConfig{TimeZone: "Europe/Berlin", Layers: []LayerConfig{
		{Members: []string{"ann", "bob"}, Start: "2026-03-23 10:00", Rotation: day1(7)},
	}})
	check(t, s, []at{
		{"2026-03-23 09:00", "ann", "2026-03-23 09:00", "2026-03-30 08:00"}, // 10:00 CET → 10:00 CEST: 167 hours
		{"2026-03-30 08:00", "bob", "2026-03-30 08:00", "2026-04-06 08:00"},
		{"2026-10-19 08:00", "ann", "2026-10-19 08:00", "2026-10-26 09:00"}, // 169 hours over the autumn change
	})
	if next := s.Next(utc("2026-03-25 00:00")); next.Person != "bob" || !next.Start.Equal(utc("2026-03-30 08:00")) {
		t.Errorf("next = %+v", next)
	}
}

func TestTwelveHourShiftsStayAtNineAndTwentyOne(t *testing.T) {
	s := compile(t, ScheduleConfig{TimeZone: "America/New_York", Layers: []LayerConfig{
		{Members: []string{"ann", "bob"}, Start: "2026-03-07 09:00", Rotation: config.Duration(12 * time.Hour)},
	}})
	check(t, s, []at{
		{"2026-03-07 14:00", "ann", "2026-03-07 14:00", "2026-03-08 02:00"}, // 09:00 EST – 21:00 EST
		// The night shift over the change is 11 hours: 21:00 EST – 09:00 EDT.
		{"2026-03-08 05:00", "bob", "2026-03-08 02:00", "2026-03-08 13:00"},
		{"2026-03-08 13:00", "ann", "2026-03-08 13:00", "2026-03-09 01:00"}, // 09:00 EDT – 21:00 EDT
	})
}

func TestHandOffInsideTheGapAndTheRepeat(t *testing.T) {
	gap := compile(t, ScheduleConfig{TimeZone: "America/New_York", Layers: []LayerConfig{
		{Members: []string{"ann", "bob"}, Start: "2026-03-06 02:30", Rotation: day1(1)},
	}})
	// 02:30 does not exist on 8 March: the hand-off happens at 03:30 EDT (07:30 UTC), never before the gap.
	check(t, gap, []at{
		{"2026-03-08 07:29", "bob", "2026-03-07 07:30", "2026-03-08 07:30"},
		{"2026-03-08 07:30", "ann", "2026-03-08 07:30", "2026-03-09 06:30"},
	})
	berlin := compile(t, ScheduleConfig{TimeZone: "Europe/Berlin", Layers: []LayerConfig{
		{Members: []string{"ann", "bob"}, Start: "2026-03-27 02:30", Rotation: day1(1)},
	}})
	check(t, berlin, []at{{"2026-03-29 01:29", "bob", "", "2026-03-29 01:30"}}) // 03:30 CEST, same rule in another zone
	repeat := compile(t, ScheduleConfig{TimeZone: "America/New_York", Layers: []LayerConfig{
		{Members: []string{"ann", "bob"}, Start: "2026-10-30 01:30", Rotation: day1(1)},
	}})
	// 01:30 happens twice on 1 November: the first (EDT, 05:30 UTC) is the hand-off.
	check(t, repeat, []at{{"2026-11-01 05:29", "bob", "", "2026-11-01 05:30"}, {"2026-11-01 05:30", "ann", "2026-11-01 05:30", "2026-11-02 06:30"}})
	berlinRepeat := compile(t, ScheduleConfig{TimeZone: "Europe/Berlin", Layers: []LayerConfig{
		{Members: []string{"ann", "bob"}, Start: "2026-10-23 02:30", Rotation: day1(1)},
	}})
	check(t, berlinRepeat, []at{{"2026-10-25 00:30", "ann", "2026-10-25 00:30", ""}}) // 02:30 CEST, the first of the two
}

func TestLayersWindowsAndOverrides(t *testing.T) {
	s := compile(t, ScheduleConfig{TimeZone: "Asia/Shanghai",
		Layers: []LayerConfig{
			{Name: "weekly", Members: []string{"ann", "bob"}, Start: "2026-01-05 09:00", Rotation: day1(7)},
			{Name: "office", Members: []string{"cat", "dan"}, Start: "2026-01-05 09:00", Rotation: day1(1), Hours: "09:00-18:00", Days: []string{"mon", "tue", "wed", "thu", "fri"}},
			{Name: "night", Members: []string{"eve"}, Start: "2026-01-05 22:00", Rotation: day1(7), Hours: "22:00-02:00", Days: []string{"fri"}},
		},
		Overrides: []OverrideConfig{{Person: "lead", From: "2026-01-07 12:00", To: "2026-01-07 14:00"}},
	})
	check(t, s, []at{
		// Monday 5 January, Shanghai = UTC+8. 08:00 local is still the previous week (bob),
		// whose shift began when Friday's night window closed at 02:00 Saturday.
		{"2026-01-05 00:00", "bob", "2026-01-02 18:00", "2026-01-05 01:00"},
		// 09:00–18:00 local Monday: office layer, cat.
		{"2026-01-05 01:00", "cat", "2026-01-05 01:00", "2026-01-05 10:00"},
		{"2026-01-05 10:00", "ann", "2026-01-05 10:00", "2026-01-06 01:00"},
		{"2026-01-06 02:00", "dan", "2026-01-06 01:00", "2026-01-06 10:00"},
		// Wednesday 12:00–14:00 local: the override beats the office layer.
		{"2026-01-07 04:00", "lead", "2026-01-07 04:00", "2026-01-07 06:00"},
		{"2026-01-07 06:00", "cat", "2026-01-07 06:00", "2026-01-07 10:00"},
		// Friday night window wraps midnight into Saturday.
		{"2026-01-09 14:00", "eve", "2026-01-09 14:00", "2026-01-09 18:00"},
		{"2026-01-09 18:00", "ann", "2026-01-09 18:00", "2026-01-12 01:00"},
		// Saturday: office layer does not cover; weekly layer has bob from Monday 12 Jan.
		{"2026-01-12 00:59", "ann", "", "2026-01-12 01:00"},
	})
	next := s.Next(utc("2026-01-07 04:30"))
	if next.Person != "cat" || !next.Start.Equal(utc("2026-01-07 06:00")) || next.Layer != "office" {
		t.Errorf("next after the override = %+v", next)
	}
	shifts := s.Shifts(utc("2026-01-05 00:00"), utc("2026-01-06 00:00"), 10)
	if len(shifts) != 3 || shifts[0].Person != "bob" || shifts[1].Person != "cat" || shifts[2].Person != "ann" {
		t.Errorf("shifts = %+v", shifts)
	}
}

func TestNobodyOnCallOutsideTheOnlyWindow(t *testing.T) {
	s := compile(t, ScheduleConfig{Layers: []LayerConfig{
		{Members: []string{"ann"}, Start: "2026-01-05 09:00", Rotation: day1(1), Hours: "09:00-17:00"},
	}})
	check(t, s, []at{{"2026-01-05 08:00", "", "2026-01-04 17:00", "2026-01-05 09:00"}, {"2026-01-05 09:00", "ann", "2026-01-05 09:00", "2026-01-05 17:00"}})
}

func TestCompileErrorsNameTheKey(t *testing.T) {
	c := &Config{People: people, Schedules: map[string]ScheduleConfig{
		"bad": {TimeZone: "Mars/Olympus", Layers: []LayerConfig{
			{Members: []string{"ann", "zed"}, Start: "yesterday", Rotation: config.Duration(90 * time.Second), Hours: "9-5", Days: []string{"funday"}},
		}, Overrides: []OverrideConfig{{Person: "ann", From: "2026-01-02 10:00", To: "2026-01-02 09:00"}}},
		"empty": {},
	}, Chains: map[string][]StepConfig{
		"p1": {{After: config.Duration(5 * time.Minute), Channels: []string{"sms"}, Schedules: []string{"nope"}}, {After: 0, Channels: nil}},
	}}
	var joined []string
	for _, e := range c.Validate("receiver.oncall") {
		joined = append(joined, e.Error())
	}
	all := strings.Join(joined, "\n")
	for _, want := range []string{
		`receiver.oncall.schedules.bad.time_zone: unknown time zone "Mars/Olympus"`,
		`receiver.oncall.schedules.bad.layers[0].members[1]: "zed" is not defined`,
		`receiver.oncall.schedules.bad.layers[0].start: "yesterday" is neither`,
		`receiver.oncall.schedules.bad.layers[0].rotation: must be whole minutes and at least 1h`,
		`receiver.oncall.schedules.bad.layers[0]: hours "9-5" must look like 09:00-18:00`,
		`receiver.oncall.schedules.bad.overrides[0].to: must be after from`,
		`receiver.oncall.schedules.empty.layers: needs at least one layer`,
		`receiver.oncall.chains.p1[0].schedules[0]: schedule "nope" is not defined`,
		`receiver.oncall.chains.p1[1].after: steps must be in order`,
		`receiver.oncall.chains.p1[1].channels: must list at least one channel`,
		`receiver.oncall.chains.p1[1]: names nobody`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing error %q in:\n%s", want, all)
		}
	}
	bad := &Config{People: map[string]Person{"x": {Phone: "12ab"}, "y": {}}}
	all = ""
	for _, e := range bad.Validate("receiver.oncall") {
		all += e.Error() + "\n"
	}
	if !strings.Contains(all, `receiver.oncall.people.x.phone: "12ab" is not a phone number`) || !strings.Contains(all, "receiver.oncall.people.y: has no way to be reached") {
		t.Errorf("people errors:\n%s", all)
	}
}

func TestChainStepsAndRecipients(t *testing.T) {
	c := &Config{People: people,
		Schedules: map[string]ScheduleConfig{
			"sre":       {Layers: []LayerConfig{{Members: []string{"ann", "bob"}, Start: "2026-01-05 09:00", Rotation: day1(1)}}},
			"secondary": {Layers: []LayerConfig{{Members: []string{"bob", "cat"}, Start: "2026-01-05 09:00", Rotation: day1(1)}}},
		},
		Chains: map[string][]StepConfig{"p1": {
			{After: 0, Channels: []string{"im"}, Schedules: []string{"sre"}},
			{After: config.Duration(5 * time.Minute), Channels: []string{"sms"}, Schedules: []string{"sre"}},
			{After: config.Duration(10 * time.Minute), Channels: []string{"voice"}, Schedules: []string{"sre"}},
			{After: config.Duration(15 * time.Minute), Channels: []string{"voice"}, Schedules: []string{"secondary"}, People: []string{"lead", "bob"}},
		}},
	}
	if errs := c.Validate("receiver.oncall"); len(errs) > 0 {
		t.Fatal(errs)
	}
	if errs := c.ValidateChannels("receiver.oncall", func(n string) bool { return n != "voice" }); len(errs) != 2 {
		t.Errorf("unknown channel errors = %v", errs)
	}
	ch, ok := c.Chain("p1")
	if !ok {
		t.Fatal("chain missing")
	}
	scheds, err := c.CompileAll()
	if err != nil {
		t.Fatal(err)
	}
	start := utc("2026-01-05 10:00")
	for _, tc := range []struct {
		elapsed time.Duration
		done    int
		want    int
	}{{0, 0, 0}, {4 * time.Minute, 1, -1}, {5 * time.Minute, 1, 1}, {9*time.Minute + 59*time.Second, 2, -1}, {10 * time.Minute, 2, 2}, {time.Hour, 4, -1}} {
		if got := ch.Due(start, start.Add(tc.elapsed), tc.done); got != tc.want {
			t.Errorf("after %s with %d done: due %d, want %d", tc.elapsed, tc.done, got, tc.want)
		}
	}
	if !ch.NextAt(start, 2).Equal(start.Add(10*time.Minute)) || !ch.NextAt(start, 4).IsZero() {
		t.Error("NextAt")
	}
	// Monday 10:00 UTC: sre has ann, secondary has bob; step 3 pages bob once and the lead.
	var ids []string
	for _, r := range ch.Recipients(3, start, scheds, c.People) {
		ids = append(ids, r.ID+"/"+r.Schedule)
	}
	if strings.Join(ids, ",") != "bob/secondary,lead/" {
		t.Errorf("step 3 pages %v", ids)
	}
	if r := ch.Recipients(0, start.Add(24*time.Hour), scheds, c.People); len(r) != 1 || r[0].ID != "bob" {
		t.Errorf("next day step 0 pages %v", r)
	}
}

func TestDiffListsScheduleChanges(t *testing.T) {
	old := &Config{People: people, Schedules: map[string]ScheduleConfig{
		"sre":  {TimeZone: "Asia/Shanghai", Layers: []LayerConfig{{Members: []string{"ann", "bob"}, Start: "2026-01-05 09:00", Rotation: day1(7)}}},
		"gone": {Layers: []LayerConfig{{Members: []string{"ann"}, Start: "2026-01-05 09:00", Rotation: day1(1)}}},
	}}
	next := &Config{People: map[string]Person{"ann": {Phone: "+8613999999999"}, "bob": people["bob"]}, Schedules: map[string]ScheduleConfig{
		"sre": {TimeZone: "Asia/Shanghai", Layers: []LayerConfig{{Members: []string{"ann", "bob", "cat"}, Start: "2026-01-05 09:00", Rotation: day1(7)}},
			Overrides: []OverrideConfig{{Person: "bob", From: "2026-01-07 18:00", To: "2026-01-08 09:00"}}},
		"new": {Layers: []LayerConfig{{Members: []string{"ann"}, Start: "2026-01-05 09:00", Rotation: day1(1)}}},
	}}
	var got []string
	for _, c := range Diff(old, next) {
		got = append(got, c.Subject+": "+c.Detail)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"schedule gone: removed", "schedule new: added with 1 layers",
		"schedule sre: layer 1 changed: [ann bob cat]", "schedule sre: override added: bob from 2026-01-07 18:00 to 2026-01-08 09:00",
		"person ann: contact details changed", "person cat: removed",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("diff lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "+8613999999999") {
		t.Error("diff shows a phone number")
	}
	if d := Diff(next, next); len(d) != 0 {
		t.Errorf("no change: %v", d)
	}
}
