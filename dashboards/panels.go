package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/piechart"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Every panel and variable reads from the one datasource variable, so a user
// picks their Prometheus once per dashboard.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

// query is one PromQL target of a panel.
type query struct {
	expr   string
	legend string
}

func q(expr, legend string) query { return query{expr: expr, legend: legend} }

// panel is what every visualisation needs; the linter test insists on all of it.
type panel struct {
	title, description, unit string
	width, height            uint32
	queries                  []query
}

// common builder surface of the SDK's panel builders.
type panelBuilder[T any] interface {
	cog.Builder[dashboard.Panel]
	Title(string) T
	Description(string) T
	Unit(string) T
	Datasource(common.DataSourceRef) T
	WithTarget(cog.Builder[variants.Dataquery]) T
	Span(uint32) T
	Height(uint32) T
}

func apply[T panelBuilder[T]](b T, p panel, instant bool) T {
	b = b.Title(p.title).Description(p.description).Unit(p.unit).Datasource(datasource())
	if p.width == 0 {
		p.width = 12
	}
	if p.height == 0 {
		p.height = 8
	}
	b = b.Span(p.width).Height(p.height)
	refs := "ABCDEFGHIJ"
	for i, qq := range p.queries {
		t := prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(string(refs[i])).
			Expr(qq.expr).
			LegendFormat(qq.legend)
		if instant {
			t = t.Instant()
		} else {
			t = t.Range()
		}
		b = b.WithTarget(t)
	}
	return b
}

func timeSeries(p panel) *timeseries.PanelBuilder {
	return apply(timeseries.NewPanelBuilder(), p, false).
		FillOpacity(10).
		LineWidth(1).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
}

// stacked is a time series whose series add up to a meaningful total (rates by status, by reason).
func stacked(p panel) *timeseries.PanelBuilder {
	return timeSeries(p).Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(40)
}

func statPanel(p panel) *stat.PanelBuilder {
	if p.width == 0 {
		p.width = 6
	}
	if p.height == 0 {
		p.height = 4
	}
	return apply(stat.NewPanelBuilder(), p, false).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

// bars ranks series by their current value (top clients, top alert types).
func bars(p panel) *bargauge.PanelBuilder {
	return apply(bargauge.NewPanelBuilder(), p, true).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		Orientation(common.VizOrientationHorizontal).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

func pie(p panel) *piechart.PanelBuilder {
	return apply(piechart.NewPanelBuilder(), p, true).
		PieType(piechart.PieChartTypeDonut).
		Orientation(common.VizOrientationAuto).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeSingle).Sort(common.SortOrderNone)).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Legend(piechart.NewPieChartLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementRight).
			ShowLegend(true).
			Values([]piechart.PieChartLegendValues{piechart.PieChartLegendValuesValue, piechart.PieChartLegendValuesPercent}))
}

// variable describes a dashboard query variable over label values.
type variable struct {
	name, label, query string
	multi              bool
}

func (v variable) builder() *dashboard.QueryVariableBuilder {
	b := dashboard.NewQueryVariableBuilder(v.name).
		Label(v.label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(v.query)}).
		Definition(v.query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if v.multi {
		b = b.Multi(true).IncludeAll(true).AllValue(".*").Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
		})
	}
	return b
}

func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus").
		Regex("")
}
