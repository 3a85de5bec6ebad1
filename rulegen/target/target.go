// Package target delivers validated rule sets: a rule directory plus a
// Prometheus reload, a prometheus-operator PrometheusRule file, and the
// Mimir/Cortex ruler API. Each target is behind the one-method Target
// interface so the refit loop treats them alike.
package target

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"

	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

// Result says what a delivery did.
type Result struct {
	// Written counts files written (unchanged files are not).
	Written int
	// Reloaded is true when a reload was requested and verified.
	Reloaded bool
}

// Target receives a rule set.
type Target interface {
	Deliver(ctx context.Context, set *rules.Set) (Result, error)
}

// ReloadError is a failed reload; the files on disk are valid and stay.
type ReloadError struct{ Err error }

func (e *ReloadError) Error() string { return "reload: " + e.Err.Error() }
func (e *ReloadError) Unwrap() error { return e.Err }

// WriteAtomic replaces path with b so readers see either the old or the new
// file, never a partial one, and the rename survives a crash.
func WriteAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Chmod(0o644); err != nil {
		_ = f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	if err = d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	if err = d.Close(); err != nil {
		return fmt.Errorf("close directory %s: %w", dir, err)
	}
	return nil
}

// writeIfChanged returns whether the file was written.
func writeIfChanged(path string, b []byte) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, b) {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := WriteAtomic(path, b); err != nil {
		return false, err
	}
	return true, nil
}

// Bootstrapper is a target that can lay down a first rule set without
// touching anything already delivered (used when history cannot be read on
// the very first refit, so Prometheus never runs without our rules).
type Bootstrapper interface {
	Bootstrap(ctx context.Context, set *rules.Set) (Result, error)
}

// Bootstrap writes the files of set that do not exist yet and reloads if it wrote any.
func (d *Dir) Bootstrap(ctx context.Context, set *rules.Set) (Result, error) {
	var res Result
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		return res, fmt.Errorf("create rule directory: %w", err)
	}
	for _, name := range set.FileNames() {
		p := filepath.Join(d.Path, name)
		if _, err := os.Stat(p); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("stat %s: %w", p, err)
		}
		if err := WriteAtomic(p, set.Rendered[name]); err != nil {
			return res, err
		}
		res.Written++
	}
	if d.ReloadURL == "" || res.Written == 0 {
		return res, nil
	}
	if err := d.reload(ctx); err != nil {
		d.pending = true
		return res, &ReloadError{err}
	}
	res.Reloaded = true
	return res, nil
}

// Dir writes the rule files (and the inhibit snippet) into a directory and
// reloads Prometheus when a rule file changed.
type Dir struct {
	Path string
	// ReloadURL is POSTed after a change ("" skips the reload).
	ReloadURL string
	Client    *http.Client
	// Now is the clock used to check the reload happened after the request.
	Now func() time.Time
	// pending remembers a failed reload so the next delivery retries it even when nothing changed.
	pending bool
}

// Deliver implements Target.
func (d *Dir) Deliver(ctx context.Context, set *rules.Set) (Result, error) {
	var res Result
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		return res, fmt.Errorf("create rule directory: %w", err)
	}
	for _, name := range set.FileNames() {
		w, err := writeIfChanged(filepath.Join(d.Path, name), set.Rendered[name])
		if err != nil {
			return res, err
		}
		if w {
			res.Written++
		}
	}
	if len(set.Inhibit) > 0 {
		if _, err := writeIfChanged(filepath.Join(d.Path, rules.InhibitFile), set.Inhibit); err != nil {
			return res, err
		}
	}
	if d.ReloadURL == "" || (res.Written == 0 && !d.pending) {
		return res, nil
	}
	if err := d.reload(ctx); err != nil {
		d.pending = true
		return res, &ReloadError{err}
	}
	d.pending = false
	res.Reloaded = true
	return res, nil
}

func (d *Dir) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (d *Dir) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// reload POSTs the reload URL, then reads prometheus_config_last_reload_successful
// and its timestamp from the same server: the POST answer alone does not
// prove the configuration Prometheus runs now includes our files.
func (d *Dir) reload(ctx context.Context) error {
	started := d.now().Add(-time.Second).Truncate(time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.ReloadURL, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := d.client().Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", redactURL(d.ReloadURL), err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err := resp.Body.Close(); err != nil {
		return fmt.Errorf("close response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %s: %s: %s", redactURL(d.ReloadURL), resp.Status, strings.TrimSpace(string(body)))
	}
	u, err := url.Parse(d.ReloadURL)
	if err != nil {
		return fmt.Errorf("parse reload URL: %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/-/reload") + "/metrics"
	u.RawQuery = ""
	ok, ts, err := d.lastReload(ctx, u.String())
	if err != nil {
		return fmt.Errorf("verify reload: %w", err)
	}
	if !ok {
		return errors.New("prometheus_config_last_reload_successful is 0: Prometheus rejected its configuration")
	}
	if time.Unix(int64(ts), 0).Before(started) {
		return fmt.Errorf("last successful reload at %s predates the request", time.Unix(int64(ts), 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func (d *Dir) lastReload(ctx context.Context, metricsURL string) (bool, float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := d.client().Do(req)
	if err != nil {
		return false, 0, fmt.Errorf("get %s: %w", redactURL(metricsURL), err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return false, 0, fmt.Errorf("get %s: %s", redactURL(metricsURL), resp.Status)
	}
	var okSeen, tsSeen bool
	var okV, ts float64
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range []struct {
			name string
			seen *bool
			v    *float64
		}{
			{"prometheus_config_last_reload_successful ", &okSeen, &okV},
			{"prometheus_config_last_reload_success_timestamp_seconds ", &tsSeen, &ts},
		} {
			if strings.HasPrefix(line, m.name) {
				f, err := strconv.ParseFloat(strings.Fields(line[len(m.name):])[0], 64)
				if err != nil {
					return false, 0, fmt.Errorf("parse %q: %w", line, err)
				}
				*m.seen, *m.v = true, f
			}
		}
	}
	if err := sc.Err(); err != nil {
		return false, 0, fmt.Errorf("read %s: %w", redactURL(metricsURL), err)
	}
	if !okSeen || !tsSeen {
		return false, 0, fmt.Errorf("%s has no prometheus_config_last_reload_* metrics: is it a Prometheus server?", redactURL(metricsURL))
	}
	return okV == 1, ts, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// PrometheusRuleFile writes a PrometheusRule object for prometheus-operator.
type PrometheusRuleFile struct {
	Path, Name, Namespace string
	Labels                map[string]string
}

// Deliver implements Target.
func (p *PrometheusRuleFile) Deliver(_ context.Context, set *rules.Set) (Result, error) {
	b, err := rules.PrometheusRule(set.Groups(), p.Name, p.Namespace, p.Labels)
	if err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(filepath.Dir(p.Path), 0o755); err != nil {
		return Result{}, fmt.Errorf("create directory of %s: %w", p.Path, err)
	}
	w, err := writeIfChanged(p.Path, b)
	if err != nil {
		return Result{}, err
	}
	if w {
		return Result{Written: 1}, nil
	}
	return Result{}, nil
}

// MimirRuler pushes each rule group to a Mimir/Cortex ruler
// (POST <url>/prometheus/config/v1/rules/<namespace>, one group per request).
type MimirRuler struct {
	URL, Tenant, Namespace string
	Client                 *http.Client
	// last remembers what was pushed, so unchanged groups are not pushed again.
	last map[string][]byte
}

// Deliver implements Target.
func (m *MimirRuler) Deliver(ctx context.Context, set *rules.Set) (Result, error) {
	var res Result
	if m.last == nil {
		m.last = map[string][]byte{}
	}
	client := m.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	endpoint := strings.TrimSuffix(m.URL, "/") + "/prometheus/config/v1/rules/" + url.PathEscape(m.Namespace)
	for _, g := range set.Groups() {
		b, err := encodeGroup(g)
		if err != nil {
			return res, err
		}
		if bytes.Equal(m.last[g.Name], b) {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(b))
		if err != nil {
			return res, fmt.Errorf("build request: %w", err)
		}
		req.Header.Set("Content-Type", "application/yaml")
		if m.Tenant != "" {
			req.Header.Set("X-Scope-OrgID", m.Tenant)
		}
		resp, err := client.Do(req)
		if err != nil {
			return res, fmt.Errorf("push group %s to %s: %w", g.Name, redactURL(endpoint), err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err := resp.Body.Close(); err != nil {
			return res, fmt.Errorf("close response: %w", err)
		}
		if resp.StatusCode/100 != 2 {
			return res, fmt.Errorf("push group %s to %s: %s: %s", g.Name, redactURL(endpoint), resp.Status, strings.TrimSpace(string(body)))
		}
		m.last[g.Name] = b
		res.Written++
	}
	return res, nil
}

func encodeGroup(g rulefmt.RuleGroup) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(g); err != nil {
		return nil, fmt.Errorf("encode group %s: %w", g.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode group %s: %w", g.Name, err)
	}
	return buf.Bytes(), nil
}
