package llmsim

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Pacing describes how long a simulated model takes. Time to first token is
// lognormal (a long right tail, as measured on real inference servers),
// per-token time is uniform, and the completion length follows the
// request's max_tokens or, without one, a lognormal around CompletionMedian.
type Pacing struct {
	TTFTMedian          time.Duration
	TTFTSigma           float64
	TokenMin, TokenMax  time.Duration
	CompletionMedian    int
	CompletionSigma     float64
	MaxCompletionTokens int
}

// DefaultPacing is close to a mid-size model on a busy GPU.
func DefaultPacing() Pacing {
	return Pacing{
		TTFTMedian:          300 * time.Millisecond,
		TTFTSigma:           0.35,
		TokenMin:            20 * time.Millisecond,
		TokenMax:            40 * time.Millisecond,
		CompletionMedian:    120,
		CompletionSigma:     0.8,
		MaxCompletionTokens: 4096,
	}
}

// lockedRand is a seeded source safe for concurrent handlers.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed uint64) *lockedRand {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func (l *lockedRand) NormFloat64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.NormFloat64()
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (p Pacing) ttft(r *lockedRand) time.Duration {
	if p.TTFTMedian <= 0 {
		return 0
	}
	return time.Duration(float64(p.TTFTMedian) * math.Exp(p.TTFTSigma*r.NormFloat64()))
}

func (p Pacing) perToken(r *lockedRand) time.Duration {
	if p.TokenMax <= p.TokenMin {
		return p.TokenMin
	}
	return p.TokenMin + time.Duration(r.Float64()*float64(p.TokenMax-p.TokenMin))
}

// completionTokens returns how many tokens to generate for a request that
// asked for maxTokens (<= 0: not given).
func (p Pacing) completionTokens(r *lockedRand, maxTokens int) int {
	n := maxTokens
	if n <= 0 {
		median := p.CompletionMedian
		if median <= 0 {
			median = 1
		}
		n = int(math.Round(float64(median) * math.Exp(p.CompletionSigma*r.NormFloat64())))
	}
	if p.MaxCompletionTokens > 0 && n > p.MaxCompletionTokens {
		n = p.MaxCompletionTokens
	}
	return max(n, 1)
}

// estimateTokens is the simulator's tokenizer: one token per four bytes, the
// usual rule of thumb for English text. The load generator relies on it to
// send prompts of an exact token count.
func estimateTokens(bytes int) int {
	if bytes <= 0 {
		return 0
	}
	return (bytes + 3) / 4
}
