package workload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCgroupFixtures(t *testing.T) {
	b, err := os.ReadFile("testdata/cgroup/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File        string `json:"file"`
		Runtime     string `json:"runtime"`
		ContainerID string `json:"container_id"`
		PodUID      string `json:"pod_uid"`
		Unit        string `json:"unit"`
		Source      string `json:"source"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/cgroup/*.txt")
	if len(cases) != len(files) || len(cases) < 15 {
		t.Fatalf("%d cases for %d fixture files", len(cases), len(files))
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.File, ".txt"), func(t *testing.T) {
			content, err := os.ReadFile(filepath.Join("testdata/cgroup", tc.File))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseCgroup(content)
			if err != nil {
				t.Fatalf("%s: %v", tc.Source, err)
			}
			if got.Runtime != tc.Runtime || got.ContainerID != tc.ContainerID || got.PodUID != tc.PodUID || got.Unit != tc.Unit {
				t.Errorf("%s:\ngot  runtime=%q id=%q pod=%q unit=%q\nwant runtime=%q id=%q pod=%q unit=%q",
					tc.Source, got.Runtime, got.ContainerID, got.PodUID, got.Unit, tc.Runtime, tc.ContainerID, tc.PodUID, tc.Unit)
			}
			if !strings.Contains(string(content), got.Path) {
				t.Errorf("path %q is not from the file", got.Path)
			}
		})
	}
}

func TestParseCgroupOwnProcess(t *testing.T) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	got, err := ParseCgroup(b)
	if err != nil {
		t.Fatalf("this machine's /proc/self/cgroup:\n%s\n%v", b, err)
	}
	// Whatever the machine, the chosen path is one of its lines, and an ID
	// or UID is only reported when that line really carries it.
	if !strings.Contains(string(b), ":"+got.Path+"\n") {
		t.Errorf("path %q is not a line of\n%s", got.Path, b)
	}
	if got.ContainerID != "" && !strings.Contains(got.Path, got.ContainerID) {
		t.Errorf("container %q not in path %q", got.ContainerID, got.Path)
	}
	if got.PodUID != "" && !strings.Contains(strings.ReplaceAll(got.Path, "_", "-"), got.PodUID) {
		t.Errorf("pod %q not in path %q", got.PodUID, got.Path)
	}
	t.Logf("own cgroup: %+v", got)
}

func TestParseCgroupRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "\n\n", "not a cgroup file", "0::relative/path", "::/x"} {
		if got, err := ParseCgroup([]byte(in)); err == nil {
			t.Errorf("ParseCgroup(%q) = %+v, want an error", in, got)
		}
	}
	// Near misses are not containers or pods.
	for _, in := range []string{
		"0::/docker/abc", // short ID
		"0::/system.slice/docker-" + strings.Repeat("g", 64) + ".scope", // not hex
		"0::/kubepods/podnot-a-uid/" + strings.Repeat("a", 63),
		"0::/user.slice/user-1000.slice/session-3.scope",
	} {
		got, err := ParseCgroup([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got.ContainerID != "" || got.PodUID != "" {
			t.Errorf("%q resolved to %+v", in, got)
		}
	}
}
