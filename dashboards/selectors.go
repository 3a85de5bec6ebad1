package dashboards

import (
	"fmt"
	"strings"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// sel renders a selector from label matchers written as name=~"value" pairs.
func sel(metric string, matchers ...string) string {
	return metric + "{" + strings.Join(matchers, ", ") + "}"
}

const (
	mJob       = `job=~"$job"`
	mNamespace = sli.LabelK8sNamespace + `=~"$namespace"`
	mService   = sli.LabelServiceName + `=~"$service"`
	mInstance  = `instance=~"$instance"`
	mRoute     = sli.LabelRoute + `=~"$route"`
	mModel     = sli.LabelModel + `=~"$model"`
)

// raw selects an exporter metric for the chosen job, workload, instance and route.
func raw(metric string, extra ...string) string {
	return sel(metric, append([]string{mJob, mNamespace, mService, mInstance, mRoute}, extra...)...)
}

// rawModel also narrows to the chosen models.
func rawModel(metric string, extra ...string) string {
	return raw(metric, append([]string{mModel}, extra...)...)
}

// rec selects a per-route recording rule (instance is aggregated away).
func rec(record string, extra ...string) string {
	return sel(record, append([]string{mJob, mNamespace, mService, mRoute}, extra...)...)
}

// recModel selects a per-route-and-model recording rule.
func recModel(record string, extra ...string) string {
	return rec(record, append([]string{mModel}, extra...)...)
}

// rate is the dashboard form of a rate: Grafana picks a window that is safe for the scrape interval.
func rate(selector string) string {
	return fmt.Sprintf("rate(%s[$__rate_interval])", selector)
}

func sumRate(by, selector string) string {
	if by == "" {
		return fmt.Sprintf("sum(%s)", rate(selector))
	}
	return fmt.Sprintf("sum by (%s) (%s)", by, rate(selector))
}

// quantile of a classic histogram over the dashboard's rate interval.
func quantile(q float64, by, bucketSelector string) string {
	return fmt.Sprintf("histogram_quantile(%g, sum by (%s, le) (%s))", q, by, rate(bucketSelector))
}
