package backtest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// TestReportOnDataset writes alerts.json and report.html for the
// llm-sli-dev series into $AUTOGLM_REPORT_DIR, for looking at the bands
// before trusting them. It does nothing unless that variable is set.
func TestReportOnDataset(t *testing.T) {
	dir := os.Getenv("AUTOGLM_REPORT_DIR")
	if dir == "" {
		t.Skip("set AUTOGLM_REPORT_DIR to write a report of the llm-sli-dev series")
	}
	inputs, err := filepath.Glob(filepath.Join(testenv.Dataset(t, "llm-sli-dev"), "data", "*", "*.csv.gz"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	c := CLI{Inputs: inputs, Kind: "auto", Output: filepath.Join(dir, "alerts.json"), Report: filepath.Join(dir, "report.html")}
	if err := Run(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
}
