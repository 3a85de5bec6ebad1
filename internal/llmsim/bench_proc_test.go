package llmsim

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// processCPU returns the user+system CPU time a process has used.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// BenchmarkSimulatorProcess runs the real binary without pacing and reports
// its throughput and its own CPU use per 1k req/s, so the simulator's cost
// can be told apart from the load generator's.
func BenchmarkSimulatorProcess(b *testing.B) {
	bin := testenv.Binary(b, "autoglm-llmsim")
	port := testenv.FreePort(b)
	cmd := exec.Command(bin, "serve", "--pacing.disabled", "--web.listen-address="+testenv.Addr(port), "--log.level=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	target := "http://" + testenv.Addr(port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(target + RouteModels); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("simulator did not start")
		}
	}
	fmt.Fprintf(os.Stdout, "\n%-24s %10s %12s %16s %10s\n", "scenario", "req/s", "server cores", "server req/s/core", "p99 ms")
	for _, sc := range []struct {
		name string
		o    LoadOptions
	}{
		{"json-keepalive-c16", LoadOptions{Concurrency: 16, Routes: []RouteWeight{{RouteCompletions, 1}}, MaxTokens: 1, PromptTokens: 1}},
		{"sse16-keepalive-c16", LoadOptions{Concurrency: 16, Routes: []RouteWeight{{RouteChat, 1}}, MaxTokens: 16, StreamRatio: 1}},
	} {
		o := sc.o
		o.Target, o.Mode, o.KeepAlive, o.Duration, o.Seed, o.Timeout = target, ModeClosed, true, 3*time.Second, 1, 10*time.Second
		var sum *Summary
		var used time.Duration
		for range b.N {
			before, err := processCPU(cmd.Process.Pid)
			if err != nil {
				b.Fatal(err)
			}
			if sum, err = Run(context.Background(), o); err != nil {
				b.Fatal(err)
			}
			after, err := processCPU(cmd.Process.Pid)
			if err != nil {
				b.Fatal(err)
			}
			used = after - before
		}
		if len(sum.Errors) > 0 {
			b.Fatalf("%s: errors %v", sc.name, sum.Errors)
		}
		cores := used.Seconds() / sum.DurationSeconds
		perCore := sum.AchievedRate / max(cores, 1e-9)
		b.ReportMetric(sum.AchievedRate, sc.name+"-req/s")
		b.ReportMetric(perCore, sc.name+"-req/s/core")
		fmt.Fprintf(os.Stdout, "%-24s %10.0f %12.2f %16.0f %10.2f\n", sc.name, sum.AchievedRate, cores, perCore, sum.Latency.P99*1e3)
	}
}
