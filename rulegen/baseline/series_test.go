package baseline

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestMedianMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 15, 16, 17, 18, 101, 1000, 1001} {
		for rep := 0; rep < 20; rep++ {
			v := make([]float64, n)
			for i := range v {
				v[i] = math.Round(r.NormFloat64() * 3) // ties on purpose
			}
			s := append([]float64(nil), v...)
			sort.Float64s(s)
			want := s[n/2]
			if n%2 == 0 {
				want = (s[n/2-1] + s[n/2]) / 2
			}
			if got := median(v); got != want {
				t.Fatalf("n=%d: median %v, want %v", n, got, want)
			}
		}
	}
}
