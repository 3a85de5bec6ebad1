package dingtalk

import (
	"context"
	"strconv"
	"testing"
	"time"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
)

// BenchmarkDigestDelivery renders, splits, signs and posts digests of
// growing size to the fake robot and reports the cost per digest.
func BenchmarkDigestDelivery(b *testing.B) {
	fake := providertest.NewDingTalk(b, token, secret)
	fake.PerMinute = 1 << 30
	n := newNotifier(b, Config{Endpoint: ep(fake.URL()), Secret: fileconfig.Secret(secret), AtMobiles: []string{"13800000000"}}, nil, nil)
	b.Logf("%-8s %-8s %-8s %-12s", "groups", "alerts", "parts", "ms/digest")
	for _, groups := range []int{1, 10, 50} {
		ns := make([]*notify.Notification, 0, groups)
		for i := 0; i < groups; i++ {
			ns = append(ns, fixture.Notification("LLMHighErrorRate", 10, 800))
		}
		before := len(fake.Messages())
		start := time.Now()
		const rounds = 5
		for r := 0; r < rounds; r++ {
			// Fresh ids: a repeated id would be treated as a retry of parts already sent.
			for i, no := range ns {
				no.ID = "g" + strconv.Itoa(groups) + "-r" + strconv.Itoa(r) + "-" + strconv.Itoa(i)
			}
			if err := n.Notify(context.Background(), ns...); err != nil {
				b.Fatal(err)
			}
		}
		per := time.Since(start) / rounds
		parts := (len(fake.Messages()) - before) / rounds
		b.Logf("%-8d %-8d %-8d %-12.2f", groups, groups*10, parts, float64(per.Microseconds())/1000)
		b.ReportMetric(float64(per.Microseconds())/1000, "ms/digest-"+strconv.Itoa(groups))
	}
}
