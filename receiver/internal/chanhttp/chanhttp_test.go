package chanhttp

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitKeepsRunesAndPrefersLines(t *testing.T) {
	line := strings.Repeat("告警内容", 10) + "\n" // 121 bytes
	for _, tc := range []struct {
		name string
		in   string
		max  int
	}{
		{"short", "abc", 10},
		{"ascii", strings.Repeat("a", 1000), 64},
		{"multibyte no newline", strings.Repeat("错误率过高😀", 300), 100},
		{"lines", strings.Repeat(line, 50), 1000},
		{"tiny max", "😀😀😀", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := Split(tc.in, tc.max)
			if strings.Join(parts, "") != tc.in {
				t.Fatal("parts do not reassemble the input")
			}
			limit := max(tc.max, utf8.UTFMax)
			for i, p := range parts {
				if len(p) > limit {
					t.Errorf("part %d is %d bytes > %d", i, len(p), limit)
				}
				if !utf8.ValidString(p) {
					t.Errorf("part %d splits a rune", i)
				}
				if p == "" {
					t.Errorf("part %d is empty", i)
				}
			}
			if tc.name == "lines" {
				for i, p := range parts[:len(parts)-1] {
					if !strings.HasSuffix(p, "\n") {
						t.Errorf("part %d does not end on a line boundary", i)
					}
				}
			}
			if len(tc.in) <= tc.max && len(parts) != 1 {
				t.Errorf("short input split into %d", len(parts))
			}
		})
	}
}

func TestRedactHidesQueryAndUser(t *testing.T) {
	for in, want := range map[string]string{
		"https://oapi.dingtalk.com/robot/send?access_token=SECRET&sign=X": "https://oapi.dingtalk.com/robot/send?<redacted>",
		"https://user:pw@host/path":                                       "https://host/path",
		"http://127.0.0.1:8080/hook":                                      "http://127.0.0.1:8080/hook",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
