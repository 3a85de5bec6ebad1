package metrics

import "github.com/open-autoglm/autoglm-monitor/internal/sli"

// topN keeps the label values of the most frequent keys. The first n keys
// are admitted; later keys are counted as candidates (a bounded table where
// the least counted candidate makes room) and take the place of the least
// counted admitted key once they have been seen twice as often. Everything
// not admitted is reported as "other". Counts are totals since start, so an
// established key is not pushed out by a short burst.
type topN struct {
	n          int
	admitted   map[string]uint64
	candidates map[string]uint64
	evict      func(key string)
}

func newTopN(n int, evict func(string)) *topN {
	return &topN{n: n, admitted: make(map[string]uint64, n), candidates: make(map[string]uint64), evict: evict}
}

// label counts key and returns its label value.
func (t *topN) label(key string) string {
	if cnt, ok := t.admitted[key]; ok {
		t.admitted[key] = cnt + 1
		return key
	}
	if len(t.admitted) < t.n {
		t.admitted[key] = 1
		return key
	}
	if t.n == 0 {
		return sli.OtherValue
	}
	cnt, ok := t.candidates[key]
	if !ok && len(t.candidates) >= 4*t.n {
		minKey, minCnt := lowest(t.candidates)
		delete(t.candidates, minKey)
		// The newcomer inherits the count it may have had (space-saving), keeping promotion fair.
		cnt = minCnt
	}
	cnt++
	t.candidates[key] = cnt
	// Checking the admitted set is O(n); do it only now and then.
	if cnt&15 != 0 {
		return sli.OtherValue
	}
	minKey, minCnt := lowest(t.admitted)
	if cnt < 2*minCnt {
		return sli.OtherValue
	}
	delete(t.admitted, minKey)
	delete(t.candidates, key)
	t.candidates[minKey] = minCnt
	t.admitted[key] = cnt
	if t.evict != nil {
		t.evict(minKey)
	}
	return key
}

func lowest(m map[string]uint64) (string, uint64) {
	var key string
	var low uint64
	first := true
	for k, v := range m {
		if first || v < low || v == low && k < key {
			key, low, first = k, v, false
		}
	}
	return key, low
}
