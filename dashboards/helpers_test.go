package dashboards

import (
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/dashboards/lint"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// startProcess runs an external program until the test ends.
func startProcess(t *testing.T, logf *os.File, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
	})
}

func netListen(port int) (net.Listener, error) { return net.Listen("tcp", testenv.Addr(port)) }

func parseDashboard(b []byte) (*lint.Dashboard, error) { return lint.ParseDashboard(b) }
