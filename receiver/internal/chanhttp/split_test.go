package chanhttp

import (
	"context"
	"strings"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

func TestSplitterResendsOnlyMissingPartsAndResplits(t *testing.T) {
	ns := []*notify.Notification{{ID: "n1"}}
	text := strings.Repeat("告警内容 line\n", 400) // about 7 KB
	var sent []string
	failAt := 2
	s := NewSplitter("TOO-LONG", 512)
	send := func(_ context.Context, i, n int, part string) error {
		if i == failAt {
			failAt = -1
			return notify.Errorf(notify.Retry, "-1", "busy")
		}
		sent = append(sent, part)
		return nil
	}
	err := s.Send(context.Background(), ns, text, 2048, 16, false, send)
	c, code, _ := notify.Classify(err)
	if c != notify.Retry || code != "-1" || !strings.Contains(err.Error(), "part 3/") {
		t.Fatalf("failure of part 3 = %v", err)
	}
	if len(sent) != 2 {
		t.Fatalf("sent %d parts before the failure", len(sent))
	}
	if err := s.Send(context.Background(), ns, text, 2048, 16, false, send); err != nil {
		t.Fatal(err)
	}
	if strings.Join(sent, "") != text {
		t.Fatal("the retry did not complete the text exactly once")
	}

	// The provider says too long: the rest goes again in parts half the size.
	var sizes []int
	tooLong := true
	err = NewSplitter("TOO-LONG", 512).Send(context.Background(), []*notify.Notification{{ID: "n2"}}, text, 4096, 16, false, func(_ context.Context, _, _ int, part string) error {
		if len(part) > 2048 && tooLong {
			return notify.Errorf(notify.Permanent, "TOO-LONG", "too long")
		}
		sizes = append(sizes, len(part))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range sizes {
		if n > 2048 {
			t.Errorf("part of %d bytes after re-splitting", n)
		}
		total += n
	}
	if total != len(text) {
		t.Errorf("re-split parts carry %d of %d bytes", total, len(text))
	}
}
