package baseline

import (
	"context"
	"sync"
)

// Series is one named history for FitAll.
type Series struct {
	Name    string
	Points  []Point
	Options Options
}

// Fitted is FitAll's result for one series; Err is ErrNoHistory when the
// caller should fall back to static thresholds.
type Fitted struct {
	Name   string
	Model  Model
	Policy Policy
	Err    error
}

// FitAll fits every series with workers goroutines (at least one),
// returning results in input order. It stops early when ctx is cancelled.
func FitAll(ctx context.Context, series []Series, workers int) []Fitted {
	out := make([]Fitted, len(series))
	if workers < 1 {
		workers = 1
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := series[i]
				m, p, err := Fit(s.Points, s.Options)
				out[i] = Fitted{Name: s.Name, Model: m, Policy: p, Err: err}
			}
		}()
	}
	for i := range series {
		select {
		case next <- i:
		case <-ctx.Done():
			for j := i; j < len(series); j++ {
				out[j] = Fitted{Name: series[j].Name, Err: ctx.Err()}
			}
			close(next)
			wg.Wait()
			return out
		}
	}
	close(next)
	wg.Wait()
	return out
}
