package slo

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func loadTestSpecs(t *testing.T) (native, sloth Spec) {
	t.Helper()
	f, err := config.Load(filepath.Join("testdata", "autoglm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	native = FromConfig(f, f.Rulegen.MinTraffic)
	sloth, err = LoadSloth(filepath.Join("testdata", "sloth-availability.yml"), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return native, sloth
}

// TestGolden keeps the generated rules reviewable: any change to them shows
// up as a diff of testdata/*.rules.yml.
func TestGolden(t *testing.T) {
	native, sloth := loadTestSpecs(t)
	for name, spec := range map[string]Spec{"native.rules.yml": native, "sloth.rules.yml": sloth} {
		g, err := Build(spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := rules.Render(g)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./rulegen/slo -update)", err)
		}
		if string(want) != string(b) {
			t.Errorf("%s differs from the generated rules; run go test ./rulegen/slo -update and review the diff", path)
		}
	}
}
