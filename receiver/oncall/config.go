package oncall

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// Config is the receiver.oncall section: people, their schedules and the
// escalation chains that page them.
type Config struct {
	People    map[string]Person         `yaml:"people"`
	Schedules map[string]ScheduleConfig `yaml:"schedules"`
	Chains    map[string][]StepConfig   `yaml:"chains"`
}

// Person is someone who can be paged. The ids are used by the channels:
// phone for SMS, voice calls, DingTalk and WeCom mentions; dingtalk_user_id
// and feishu_open_id for mentions in those robots.
type Person struct {
	Name           string `yaml:"name"`
	Phone          string `yaml:"phone"`
	Email          string `yaml:"email"`
	DingTalkUserID string `yaml:"dingtalk_user_id"`
	FeishuOpenID   string `yaml:"feishu_open_id"`
}

// Display is the person's name, or the id when no name is set.
func (p Person) Display(id string) string {
	if p.Name != "" {
		return p.Name
	}
	return id
}

// ScheduleConfig is one schedule as written in the file.
type ScheduleConfig struct {
	// TimeZone of hand-offs and windows, an IANA name such as Asia/Shanghai (default UTC).
	TimeZone  string           `yaml:"time_zone"`
	Layers    []LayerConfig    `yaml:"layers"`
	Overrides []OverrideConfig `yaml:"overrides"`
}

// LayerConfig is one rotation as written in the file.
type LayerConfig struct {
	Name    string   `yaml:"name"`
	Members []string `yaml:"members"`
	// Start is the first hand-off, local to the schedule: "2026-01-05 09:00".
	Start string `yaml:"start"`
	// Rotation is the length of a turn: 1d, 1w, 12h, ... (whole minutes).
	Rotation config.Duration `yaml:"rotation"`
	// Hours restricts the layer to a daily window, "09:00-18:00" (may wrap midnight: "22:00-08:00").
	Hours string `yaml:"hours"`
	// Days restricts the window to weekdays it starts on: [mon, tue, ...].
	Days []string `yaml:"days"`
}

// OverrideConfig is a temporary override as written in the file.
type OverrideConfig struct {
	Person string `yaml:"person"`
	// From and To are local to the schedule ("2026-03-07 18:00") or RFC 3339.
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

const localLayout = "2006-01-02 15:04"

// ParseTime reads a local "2006-01-02 15:04" time in loc, or an RFC 3339 time.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation(localLayout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither \"YYYY-MM-DD HH:MM\" (local to the schedule) nor RFC 3339", s)
	}
	return wallDate(t.Year(), t.Month(), t.Day(), minutesOf(t), loc), nil
}

var hoursRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$`)

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func parseWindow(hours string, days []string) (*Window, error) {
	if hours == "" && len(days) == 0 {
		return nil, nil
	}
	w := &Window{From: 0, To: 0}
	if hours != "" {
		m := hoursRE.FindStringSubmatch(hours)
		if m == nil {
			return nil, fmt.Errorf("hours %q must look like 09:00-18:00", hours)
		}
		n := func(s string) int { v, _ := strconv.Atoi(s); return v }
		w.From, w.To = n(m[1])*60+n(m[2]), n(m[3])*60+n(m[4])
		if w.To > 24*60 {
			return nil, fmt.Errorf("hours %q ends after 24:00", hours)
		}
		if w.From == w.To {
			return nil, fmt.Errorf("hours %q is empty", hours)
		}
	}
	for _, d := range days {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return nil, fmt.Errorf("day %q is not one of mon, tue, wed, thu, fri, sat, sun", d)
		}
		w.Days = append(w.Days, wd)
	}
	return w, nil
}

// Compile turns one schedule of the file into a Schedule. key is its
// dotted path for errors (e.g. "receiver.oncall.schedules.sre").
func (c *Config) Compile(name string, sc ScheduleConfig, key string) (*Schedule, []error) {
	var errs []error
	add := func(k, format string, args ...any) { errs = append(errs, config.Errorf(key+k, format, args...)) }
	loc := time.UTC
	if sc.TimeZone != "" {
		l, err := time.LoadLocation(sc.TimeZone)
		if err != nil {
			add(".time_zone", "unknown time zone %q: use an IANA name such as Asia/Shanghai or Europe/Berlin", sc.TimeZone)
		} else {
			loc = l
		}
	}
	s := &Schedule{Name: name, Loc: loc}
	if len(sc.Layers) == 0 {
		add(".layers", "needs at least one layer")
	}
	names := map[string]bool{}
	for i, lc := range sc.Layers {
		lk := fmt.Sprintf(".layers[%d]", i)
		l := Layer{Name: lc.Name, Members: lc.Members, Rotation: lc.Rotation.D()}
		if l.Name == "" {
			l.Name = fmt.Sprintf("layer-%d", i+1)
		}
		if names[l.Name] {
			add(lk+".name", "layer %q defined twice", l.Name)
		}
		names[l.Name] = true
		if len(lc.Members) == 0 {
			add(lk+".members", "needs at least one person")
		}
		for j, m := range lc.Members {
			if _, ok := c.People[m]; !ok {
				add(fmt.Sprintf("%s.members[%d]", lk, j), "%q is not defined under receiver.oncall.people", m)
			}
		}
		switch {
		case l.Rotation <= 0:
			add(lk+".rotation", "is required: the length of one turn, such as 1d, 1w or 12h")
		case l.Rotation%time.Minute != 0 || l.Rotation < time.Hour:
			add(lk+".rotation", "must be whole minutes and at least 1h, got %s", lc.Rotation)
		}
		if lc.Start == "" {
			add(lk+".start", "is required: the first hand-off, \"YYYY-MM-DD HH:MM\" in %s", loc)
		} else if t, err := ParseTime(lc.Start, loc); err != nil {
			add(lk+".start", "%v", err)
		} else {
			l.Start = t
		}
		w, err := parseWindow(lc.Hours, lc.Days)
		if err != nil {
			add(lk, "%v", err)
		}
		l.Window = w
		s.Layers = append(s.Layers, l)
	}
	for i, oc := range sc.Overrides {
		ok := fmt.Sprintf(".overrides[%d]", i)
		if _, found := c.People[oc.Person]; !found {
			add(ok+".person", "%q is not defined under receiver.oncall.people", oc.Person)
		}
		from, err1 := ParseTime(oc.From, loc)
		if err1 != nil {
			add(ok+".from", "%v", err1)
		}
		to, err2 := ParseTime(oc.To, loc)
		if err2 != nil {
			add(ok+".to", "%v", err2)
		}
		if err1 == nil && err2 == nil && !to.After(from) {
			add(ok+".to", "must be after from (%s)", oc.From)
		}
		s.Overrides = append(s.Overrides, Override{Person: oc.Person, From: from, To: to})
	}
	return s, errs
}

var phoneRE = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// Validate checks people, schedules and chains; key is the section's path.
func (c *Config) Validate(key string) []error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, id := range sortedKeys(c.People) {
		p := c.People[id]
		if p.Phone != "" && !phoneRE.MatchString(p.Phone) {
			errs = append(errs, config.Errorf(key+".people."+id+".phone", "%q is not a phone number (digits, optional leading +)", p.Phone))
		}
		if p.Phone == "" && p.Email == "" && p.DingTalkUserID == "" && p.FeishuOpenID == "" {
			errs = append(errs, config.Errorf(key+".people."+id, "has no way to be reached: set phone, email, dingtalk_user_id or feishu_open_id"))
		}
	}
	for _, name := range sortedKeys(c.Schedules) {
		_, es := c.Compile(name, c.Schedules[name], key+".schedules."+name)
		errs = append(errs, es...)
	}
	for _, name := range sortedKeys(c.Chains) {
		errs = append(errs, c.validateChain(c.Chains[name], key+".chains."+name)...)
	}
	return errs
}

// CompileAll compiles every schedule of a validated section.
func (c *Config) CompileAll() (map[string]*Schedule, error) {
	out := make(map[string]*Schedule, len(c.Schedules))
	for _, name := range sortedKeys(c.Schedules) {
		s, errs := c.Compile(name, c.Schedules[name], "receiver.oncall.schedules."+name)
		if len(errs) > 0 {
			return nil, errs[0]
		}
		out[name] = s
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
