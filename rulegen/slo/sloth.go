package slo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// SlothVersion is the only Sloth spec version read.
const SlothVersion = "prometheus/v1"

// slothSpec is Sloth's prometheus/v1 SLO spec (sloth.dev, "Prometheus" spec).
type slothSpec struct {
	Version string            `yaml:"version"`
	Service string            `yaml:"service"`
	Labels  map[string]string `yaml:"labels"`
	SLOs    []slothSLO        `yaml:"slos"`
}

type slothSLO struct {
	Name        string            `yaml:"name"`
	Objective   float64           `yaml:"objective"`
	Description string            `yaml:"description"`
	Labels      map[string]string `yaml:"labels"`
	SLI         struct {
		Events *struct {
			ErrorQuery string `yaml:"error_query"`
			TotalQuery string `yaml:"total_query"`
		} `yaml:"events"`
		Raw *struct {
			ErrorRatioQuery string `yaml:"error_ratio_query"`
		} `yaml:"raw"`
		Plugin map[string]any `yaml:"plugin"`
	} `yaml:"sli"`
	Alerting struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
		PageAlert   slothAlert        `yaml:"page_alert"`
		TicketAlert slothAlert        `yaml:"ticket_alert"`
	} `yaml:"alerting"`
}

type slothAlert struct {
	Disable     bool              `yaml:"disable"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

var (
	slothName  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	yamlLineRe = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// LoadSloth reads a Sloth prometheus/v1 spec file. window is the SLO
// period (Sloth's --default-slo-period: specs carry none). Every problem is
// reported with the file, line and key.
func LoadSloth(path string, window time.Duration) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("read Sloth spec: %w", err)
	}
	return ParseSloth(b, path, window)
}

// ParseSloth parses a Sloth prometheus/v1 spec; name is used in errors.
func ParseSloth(b []byte, name string, window time.Duration) (Spec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return Spec{}, yamlError(name, err)
	}
	var raw slothSpec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return Spec{}, &config.FieldError{File: name, Key: "spec", Msg: "empty Sloth spec"}
		}
		return Spec{}, yamlError(name, err)
	}
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, &config.FieldError{File: name, Line: lineOf(&root, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if raw.Version != SlothVersion {
		add("version", "must be %q, got %q", SlothVersion, raw.Version)
	}
	if !slothName.MatchString(raw.Service) {
		add("service", "must be set and match %s, got %q", slothName, raw.Service)
	}
	checkLabels(raw.Labels, "labels", add)
	if len(raw.SLOs) == 0 {
		add("slos", "must list at least one SLO")
	}
	spec := Spec{Source: name}
	seen := map[string]int{}
	for i, r := range raw.SLOs {
		key := fmt.Sprintf("slos[%d]", i)
		if !slothName.MatchString(r.Name) {
			add(key+".name", "must be set and match %s, got %q", slothName, r.Name)
		} else if j, dup := seen[r.Name]; dup {
			add(key+".name", "%q is already used by slos[%d]", r.Name, j)
		}
		seen[r.Name] = i
		if !(r.Objective > 0 && r.Objective <= 100) {
			add(key+".objective", "must be a percentage within (0, 100], got %g", r.Objective)
		}
		checkLabels(r.Labels, key+".labels", add)
		s := SLO{ID: raw.Service + "-" + r.Name, Service: raw.Service, Name: r.Name, Description: r.Description,
			Objective: r.Objective, Window: window, Labels: merge(raw.Labels, r.Labels)}
		n := 0
		if r.SLI.Events != nil {
			n++
			s.ErrorQuery, s.TotalQuery = r.SLI.Events.ErrorQuery, r.SLI.Events.TotalQuery
			for _, q := range []struct{ key, q string }{{"error_query", s.ErrorQuery}, {"total_query", s.TotalQuery}} {
				if err := checkQuery(q.q); err != nil {
					add(key+".sli.events."+q.key, "%v", err)
				}
			}
		}
		if r.SLI.Raw != nil {
			n++
			s.RawErrorRatio = r.SLI.Raw.ErrorRatioQuery
			if err := checkQuery(s.RawErrorRatio); err != nil {
				add(key+".sli.raw.error_ratio_query", "%v", err)
			}
		}
		if r.SLI.Plugin != nil {
			add(key+".sli.plugin", "SLI plugins are not supported; write the plugin's queries as sli.events or sli.raw")
			n++
		}
		if n != 1 {
			add(key+".sli", "needs exactly one of events, raw or plugin, got %d", n)
		}
		a := r.Alerting
		s.Alerting = Alerting{Name: a.Name, Labels: a.Labels, Annotations: a.Annotations,
			Page:   AlertKind{Disable: a.PageAlert.Disable, Labels: a.PageAlert.Labels, Annotations: a.PageAlert.Annotations},
			Ticket: AlertKind{Disable: a.TicketAlert.Disable, Labels: a.TicketAlert.Labels, Annotations: a.TicketAlert.Annotations}}
		if a.Name == "" && !(a.PageAlert.Disable && a.TicketAlert.Disable) {
			add(key+".alerting.name", "must be set unless page_alert and ticket_alert are both disabled")
		} else if a.Name != "" && !labelName.MatchString(a.Name) {
			add(key+".alerting.name", "is not a valid alert name: %q", a.Name)
		}
		checkLabels(a.Labels, key+".alerting.labels", add)
		checkLabels(a.PageAlert.Labels, key+".alerting.page_alert.labels", add)
		checkLabels(a.TicketAlert.Labels, key+".alerting.ticket_alert.labels", add)
		spec.SLOs = append(spec.SLOs, s)
	}
	if len(errs) > 0 {
		return Spec{}, errors.Join(errs...)
	}
	return spec, nil
}

func checkLabels(m map[string]string, key string, add func(key, format string, args ...any)) {
	for _, k := range sortedKeys(m) {
		if !labelName.MatchString(k) || strings.HasPrefix(k, "__") {
			add(key+"."+k, "is not a valid label name")
		}
	}
}

// checkQuery renders a query for one window and parses it as PromQL.
func checkQuery(q string) error {
	if strings.TrimSpace(q) == "" {
		return errors.New("must be set")
	}
	r, err := render(q, 5*time.Minute)
	if err != nil {
		return err
	}
	if _, err := promql.ParseExpr(r); err != nil {
		return fmt.Errorf("is not valid PromQL once {{.window}} is 5m: %w", err)
	}
	return nil
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n"), "yaml: ")
	var errs []error
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if m := yamlLineRe.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			errs = append(errs, &config.FieldError{File: name, Line: n, Key: "spec", Msg: m[2]})
		} else if l != "" {
			errs = append(errs, &config.FieldError{File: name, Key: "spec", Msg: l})
		}
	}
	return errors.Join(errs...)
}

// lineOf finds the line of a dotted key path ("slos[1].sli.events") in a
// document, or of its nearest existing parent.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range strings.Split(strings.ReplaceAll(path, "[", ".["), ".") {
		if part == "" {
			continue
		}
		var next *yaml.Node
		if strings.HasPrefix(part, "[") {
			i, _ := strconv.Atoi(strings.Trim(part, "[]"))
			if n.Kind == yaml.SequenceNode && i < len(n.Content) {
				next = n.Content[i]
			}
		} else if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}
