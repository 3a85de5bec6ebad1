package sli

// Classic histogram buckets of the exporter. They live here because SLOs
// read the same boundaries: a latency or TTFT objective can only be
// measured exactly at a bucket's upper bound (le).
var (
	// DurationBuckets reach ten minutes because LLM streams are long.
	DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600}
	// TTFTBuckets are the bounds of the time-to-first-token histogram.
	TTFTBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60, 120}
)
