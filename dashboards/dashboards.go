// Package dashboards builds the Grafana dashboards of the monitor from code.
// The JSON under json/ is generated (go generate) and committed, so users can
// import it directly; tests keep the two byte-for-byte identical.
package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Tag marks every dashboard of the monitor; dashboard links use it.
const Tag = "autoglm"

// Stable uids: links, alert dashboard_url annotations and bookmarks depend on them.
const (
	UIDOverview  = "autoglm-overview"
	UIDModels    = "autoglm-models"
	UIDBaselines = "autoglm-baselines"
	UIDAlerting  = "autoglm-alerting"
	UIDExporter  = "autoglm-exporter"
	UIDEngine    = "autoglm-engine"
	UIDSLO       = "autoglm-slo"
)

// File is one generated dashboard.
type File struct {
	// Name is the file name under json/ (and in the mixin's dashboards_out/).
	Name string
	UID  string
	JSON []byte
}

func newDashboard(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{Tag}).
		Readonly().
		Refresh("30s").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("AutoGLM").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).
			Icon("external link").
			Tooltip("Other AutoGLM dashboards").
			AsDropdown(true).
			IncludeVars(false).
			KeepTime(true)).
		WithVariable(datasourceVariable())
}

// Generate builds every dashboard, in a fixed order.
func Generate() ([]File, error) {
	builders := []struct {
		name string
		uid  string
		b    *dashboard.DashboardBuilder
	}{
		{"overview.json", UIDOverview, overview()},
		{"models.json", UIDModels, models()},
		{"baselines.json", UIDBaselines, baselines()},
		{"alerting.json", UIDAlerting, alerting()},
		{"exporter.json", UIDExporter, exporterHealth()},
		{"engine.json", UIDEngine, engineDashboard()},
		{"slo.json", UIDSLO, sloDashboard()},
	}
	out := make([]File, 0, len(builders))
	for _, d := range builders {
		db, err := d.b.Build()
		if err != nil {
			return nil, fmt.Errorf("build dashboard %s: %w", d.name, err)
		}
		numberPanels(&db)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(db); err != nil {
			return nil, fmt.Errorf("encode dashboard %s: %w", d.name, err)
		}
		out = append(out, File{Name: d.name, UID: d.uid, JSON: buf.Bytes()})
	}
	return out, nil
}

// Write generates every dashboard into dir, replacing files of the same name.
func Write(dir string) error {
	files, err := Generate()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, f.JSON, 0o644); err != nil {
			return fmt.Errorf("write dashboard: %w", err)
		}
	}
	return nil
}

// numberPanels gives every panel and row a unique id in layout order; Grafana
// needs them for links to a single panel and the SDK leaves them unset.
func numberPanels(db *dashboard.Dashboard) {
	id := uint32(1)
	for _, p := range db.Panels {
		switch {
		case p.Panel != nil:
			p.Panel.Id = cog.ToPtr(id)
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
		id++
	}
}
