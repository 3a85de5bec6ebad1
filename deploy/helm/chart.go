// Package helm holds the tests of the Helm chart in autoglm-monitor/: every
// value set renders with Helm's own engine and every rendered object decodes
// strictly into the Kubernetes and prometheus-operator Go types. It is a
// module of its own so the product does not depend on Helm.
package helm

//go:generate go test -run TestChartFilesMatchRepository -update .
