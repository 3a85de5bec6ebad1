package backtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

const (
	plotW = 1300.0
	plotH = 240.0
)

type plot struct {
	Input, Model       string
	Kind, KindFrom     string
	Warnings           []string
	Error              string
	Alerts             int
	From, To           string
	Band, Line         template.HTML
	Rects              []rect
	Ticks              []tick
	YMinText, YMaxText string
}

type rect struct{ X, W float64 }

type tick struct {
	X     float64
	Label string
}

var reportTmpl = template.Must(template.New("r").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>rulegen backtest</title>
<style>
body{font-family:system-ui,sans-serif;margin:20px;color:#222;background:#fafafa}
h1{font-size:20px} h2{font-size:15px;margin:18px 0 4px}
.meta{color:#555;font-size:13px} svg{background:#fff;border:1px solid #ddd}
.legend span{display:inline-block;margin-right:16px;font-size:13px}
.err{color:#b30000;font-size:13px} .warn{color:#8a5a00;font-size:13px}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
</style></head><body>
<h1>rulegen backtest: bands and alert episodes</h1>
<p class="legend"><span><i class="sw" style="background:#9ecae1"></i>normal band (walk-forward, as the rules would have used it)</span>
<span><i class="sw" style="background:#de2d26"></i>spike band (dotted: a value beyond it fires at once)</span>
<span><i class="sw" style="background:#08519c"></i>signal</span>
<span><i class="sw" style="background:#e6550d;opacity:.35"></i>alert firing</span></p>
{{range .P}}
<h2>{{.Input}}</h2>
{{if .Error}}<div class="err">not scored: {{.Error}}</div>{{else}}
<div class="meta">kind {{.Kind}} ({{.KindFrom}}) · model {{.Model}} · {{.Alerts}} alert episodes · {{.From}} → {{.To}}</div>
{{range .Warnings}}<div class="warn">{{.}}</div>{{end}}
<svg width="{{$.W}}" height="{{$.H}}" viewBox="0 0 {{$.W}} {{$.H}}" xmlns="http://www.w3.org/2000/svg">
{{range .Rects}}<rect x="{{printf "%.1f" .X}}" y="0" width="{{printf "%.1f" .W}}" height="{{$.PH}}" fill="#e6550d" opacity="0.35"/>{{end}}
{{.Band}}
{{.Line}}
{{range .Ticks}}<line x1="{{printf "%.1f" .X}}" x2="{{printf "%.1f" .X}}" y1="0" y2="{{$.PH}}" stroke="#eee"/><text x="{{printf "%.1f" .X}}" y="{{$.TY}}" font-size="10" fill="#666">{{.Label}}</text>{{end}}
<text x="2" y="10" font-size="10" fill="#666">{{.YMaxText}}</text><text x="2" y="{{$.PH}}" font-size="10" fill="#666">{{.YMinText}}</text>
</svg>{{end}}
{{end}}
</body></html>
`))

// WriteReport draws every series with its band and alert episodes as
// inline SVG, with the kind it was treated as and why, the repairs its
// file needed, or why it could not be scored.
func WriteReport(w io.Writer, outs []SeriesOutput, results []Result) error {
	plots := make([]plot, 0, len(results))
	for i, r := range results {
		p := makePlot(outs[i].Input, r)
		p.Kind, p.KindFrom, p.Warnings, p.Error = outs[i].Kind, outs[i].KindFrom, outs[i].Warnings, outs[i].Error
		plots = append(plots, p)
	}
	return reportTmpl.Execute(w, wrap{plots, plotW, plotH + 16, plotH, plotH + 12})
}

type wrap struct {
	P            []plot
	W, H, PH, TY float64
}

func makePlot(input string, r Result) plot {
	p := plot{Input: input, Model: r.Model, Alerts: len(r.Alerts)}
	n := len(r.Trace)
	if n == 0 {
		return p
	}
	t0, t1 := r.Trace[0].T, r.Trace[n-1].T
	p.From, p.To = t0.Format(time.RFC3339), t1.Format(time.RFC3339)
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	xOf := func(t time.Time) float64 { return t.Sub(t0).Seconds() / span * plotW }
	// Per pixel column: min/max of the signal, and the band at its last point.
	cols := int(plotW)
	lo := make([]float64, cols)
	hi := make([]float64, cols)
	bl := make([]float64, cols)
	bu := make([]float64, cols)
	sl := make([]float64, cols)
	su := make([]float64, cols)
	for c := range lo {
		lo[c], hi[c], bl[c], bu[c], sl[c], su[c] = math.Inf(1), math.Inf(-1), math.NaN(), math.NaN(), math.NaN(), math.NaN()
	}
	var vals []float64
	for _, tp := range r.Trace {
		c := min(cols-1, int(xOf(tp.T)))
		if !math.IsNaN(tp.SignalMin) {
			lo[c], hi[c] = math.Min(lo[c], tp.SignalMin), math.Max(hi[c], tp.SignalMax)
			vals = append(vals, tp.SignalMin, tp.SignalMax)
		}
		b := tp.Band
		if !math.IsNaN(b.Lower) {
			bl[c] = b.Lower
		}
		if !math.IsNaN(b.Upper) {
			bu[c] = b.Upper
		}
		if !math.IsNaN(b.SpikeLower) {
			sl[c] = b.SpikeLower
		}
		if !math.IsNaN(b.SpikeUpper) {
			su[c] = b.SpikeUpper
		}
	}
	// Scale to the signal's range (bands far outside would flatten the data).
	ymin, ymax := quantileOf(vals, 0.0), quantileOf(vals, 1.0)
	pad := (ymax - ymin) * 0.15
	if pad == 0 {
		pad = math.Max(math.Abs(ymax)*0.1, 1)
	}
	ymin, ymax = ymin-pad, ymax+pad
	yOf := func(v float64) float64 {
		y := plotH - (v-ymin)/(ymax-ymin)*plotH
		return math.Max(0, math.Min(plotH, y))
	}
	p.YMinText, p.YMaxText = fmt.Sprintf("%.4g", ymin), fmt.Sprintf("%.4g", ymax)
	var band strings.Builder
	// Each contiguous run of columns with a band becomes one polygon.
	for c := 0; c < cols; {
		if math.IsNaN(bu[c]) && math.IsNaN(bl[c]) {
			c++
			continue
		}
		start := c
		for c < cols && !(math.IsNaN(bu[c]) && math.IsNaN(bl[c])) {
			c++
		}
		band.WriteString(`<polygon fill="#9ecae1" opacity="0.7" points="`)
		for k := start; k < c; k++ {
			if !math.IsNaN(bu[k]) {
				fmt.Fprintf(&band, "%d,%.1f ", k, yOf(bu[k]))
			} else {
				fmt.Fprintf(&band, "%d,0 ", k)
			}
		}
		for k := c - 1; k >= start; k-- {
			if !math.IsNaN(bl[k]) {
				fmt.Fprintf(&band, "%d,%.1f ", k, yOf(bl[k]))
			} else {
				fmt.Fprintf(&band, "%d,%.1f ", k, plotH)
			}
		}
		band.WriteString(`"/>`)
	}
	// The spike band (a value beyond it fires at once) as dotted lines.
	for _, s := range [][]float64{su, sl} {
		band.WriteString(`<path fill="none" stroke="#de2d26" stroke-width="1" stroke-dasharray="2,3" d="`)
		move := true
		for c, v := range s {
			if math.IsNaN(v) {
				move = true
				continue
			}
			cmd := "L"
			if move {
				cmd, move = "M", false
			}
			fmt.Fprintf(&band, "%s%d,%.1f ", cmd, c, yOf(v))
		}
		band.WriteString(`"/>`)
	}
	p.Band = template.HTML(band.String())
	var line strings.Builder
	line.WriteString(`<path fill="none" stroke="#08519c" stroke-width="1" d="`)
	move := true
	for c := 0; c < cols; c++ {
		if math.IsInf(lo[c], 1) {
			move = true
			continue
		}
		cmd := "L"
		if move {
			cmd, move = "M", false
		}
		fmt.Fprintf(&line, "%s%d,%.1f L%d,%.1f ", cmd, c, yOf(hi[c]), c, yOf(lo[c]))
	}
	line.WriteString(`"/>`)
	p.Line = template.HTML(line.String())
	for _, a := range r.Alerts {
		x := xOf(a.Start)
		p.Rects = append(p.Rects, rect{X: x, W: math.Max(2, xOf(a.End)-x)})
	}
	for d := t0.Truncate(24 * time.Hour).Add(24 * time.Hour); d.Before(t1); d = d.Add(24 * time.Hour) {
		if span > 20*86400 && d.Weekday() != time.Monday {
			continue
		}
		p.Ticks = append(p.Ticks, tick{X: xOf(d), Label: d.Format("Jan 2")})
	}
	return p
}

func quantileOf(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	if q <= 0 {
		return lo
	}
	return hi
}
