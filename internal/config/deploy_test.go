package config

import (
	"path/filepath"
	"testing"
)

// The quickstart's configuration must stay loadable as the keys evolve.
func TestQuickstartConfigLoads(t *testing.T) {
	if _, err := Load(filepath.Join("..", "..", "deploy", "autoglm", "autoglm.yml")); err != nil {
		t.Fatal(err)
	}
}
