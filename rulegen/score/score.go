// Package score rates alert episodes against labelled anomaly windows with
// the rules of the Numenta Anomaly Benchmark (NAB, MIT licence, © Numenta),
// reimplemented here, plus the operational figures an on-call team cares
// about: window recall, false-alert episodes per series-day and detection delay.
//
// A detector is judged by its alert onsets (the instants a notification
// would go out). Each onset is mapped to the first data row at or after it,
// exactly as NAB maps an anomaly score above threshold to its row.
package score

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"time"
)

// Profile is a NAB cost matrix plus the probationary share of each file.
type Profile struct {
	TP, FP, FN float64
	// Probation is the share of each file (capped at Probation×5000 rows)
	// during which detections are neither rewarded nor penalised.
	Probation float64
}

// Standard is NAB's standard application profile.
var Standard = Profile{TP: 1.0, FP: 0.11, FN: 1.0, Probation: 0.15}

// Window is a labelled anomaly window (both ends inclusive).
type Window struct {
	Start, End time.Time
	// Onset is when the incident really began, when known (else Start).
	Onset time.Time
}

// File is what one series contributes to the totals.
type File struct {
	Name string
	// Raw is the NAB raw score; Null and Perfect are the raw scores of the
	// detector that never alerts and of the one that alerts at the first row
	// of every window, used for normalisation.
	Raw, Null, Perfect float64
	Windows, Detected  int
	// FalseEpisodes are onsets outside every window after the probationary period.
	FalseEpisodes int
	// FalseOnsets are those onsets, for diagnosis.
	FalseOnsets []time.Time
	// Days is the scored length of the file (after the probationary period).
	Days float64
	// Delays are, per detected window, first detection minus incident onset (never negative).
	Delays []time.Duration
}

// Summary aggregates files the way NAB aggregates a corpus: raw scores are
// summed before normalising.
type Summary struct {
	NAB            float64
	Recall         float64
	FalsePerDay    float64
	MedianDelay    time.Duration
	Windows        int
	Detected       int
	FalseEpisodes  int
	SeriesDays     float64
	RawScore       float64
	NormalisedFrom [2]float64 // null and perfect totals
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// scaledSigmoid is NAB's reward curve: about +1 at the left edge of a
// window, 0 at its right edge, approaching -1 further right.
func scaledSigmoid(pos float64) float64 {
	if pos >= 3 {
		return -1
	}
	return 2*sigmoid(-5*pos) - 1
}

// probationRows mirrors NAB: floor(p×rows) but never more than p×5000 rows.
func probationRows(p float64, rows int) int {
	n := math.Floor(p * float64(rows))
	if c := p * 5000; c < n {
		n = c
	}
	return int(math.Ceil(n))
}

// rowAtOrAfter returns the first index with ts[i] >= t, or len(ts).
func rowAtOrAfter(ts []time.Time, t time.Time) int {
	return sort.Search(len(ts), func(i int) bool { return !ts[i].Before(t) })
}

// rowAtOrBefore returns the last index with ts[i] <= t, or -1.
func rowAtOrBefore(ts []time.Time, t time.Time) int {
	return sort.Search(len(ts), func(i int) bool { return ts[i].After(t) }) - 1
}

// ScoreFile scores the alert onsets of one series. timestamps are the data
// rows (ascending), windows are ascending and disjoint.
func ScoreFile(name string, timestamps []time.Time, onsets []time.Time, windows []Window, p Profile) File {
	f := File{Name: name}
	n := len(timestamps)
	if n == 0 {
		return f
	}
	prob := probationRows(p.Probation, n)
	maxTP := scaledSigmoid(-1)

	type win struct{ left, right int }
	ws := make([]win, 0, len(windows))
	for _, w := range windows {
		l, r := rowAtOrAfter(timestamps, w.Start), rowAtOrBefore(timestamps, w.End)
		if l > r || l >= n {
			continue
		}
		ws = append(ws, win{l, r})
	}
	// A window counts only when it reaches past the probationary period, as in NAB.
	scored := make([]bool, len(ws))
	for i, w := range ws {
		if w.right >= prob {
			scored[i] = true
			f.Windows++
			f.Null -= p.FN
			f.Perfect += p.TP
		}
	}

	rows := make([]int, 0, len(onsets))
	for _, o := range onsets {
		if i := rowAtOrAfter(timestamps, o); i < n {
			rows = append(rows, i)
		}
	}
	sort.Ints(rows)

	best := make([]float64, len(ws))
	hit := make([]bool, len(ws))
	firstHit := make([]int, len(ws))
	fp := 0.0
	wi := 0
	for _, i := range rows {
		for wi < len(ws) && ws[wi].right < i {
			wi++
		}
		inWin := wi < len(ws) && ws[wi].left <= i && i <= ws[wi].right
		if i < prob {
			continue
		}
		if inWin {
			w := ws[wi]
			width := float64(w.right - w.left + 1)
			pos := -float64(w.right-i+1) / width
			s := scaledSigmoid(pos) * p.TP / maxTP
			if !hit[wi] || s > best[wi] {
				best[wi] = s
			}
			if !hit[wi] {
				firstHit[wi] = i
			}
			hit[wi] = true
			continue
		}
		// Outside every window: penalty shrinks right after a window (late
		// detections are only mildly wrong) and is full before any window.
		pos := 3.0
		if wi > 0 {
			prev := ws[wi-1]
			width := float64(prev.right - prev.left + 1)
			if width > 1 {
				pos = math.Abs(float64(prev.right-i)) / (width - 1)
			}
		}
		fp += scaledSigmoid(pos) * p.FP
		f.FalseEpisodes++
		f.FalseOnsets = append(f.FalseOnsets, timestamps[i])
	}
	f.Raw = fp
	for i := range ws {
		if !scored[i] {
			continue
		}
		if hit[i] {
			f.Raw += best[i]
			f.Detected++
			onset := windows[i].Onset
			if onset.IsZero() {
				onset = windows[i].Start
			}
			d := timestamps[firstHit[i]].Sub(onset)
			if d < 0 {
				d = 0
			}
			f.Delays = append(f.Delays, d)
		} else {
			f.Raw -= p.FN
		}
	}
	if prob < n {
		f.Days = timestamps[n-1].Sub(timestamps[prob]).Hours() / 24
	}
	return f
}

// Summarise normalises the summed raw score to 0 (never alert) … 100
// (alert at the start of every window).
func Summarise(files []File) Summary {
	var s Summary
	var raw, null, perfect float64
	var delays []time.Duration
	for _, f := range files {
		raw += f.Raw
		null += f.Null
		perfect += f.Perfect
		s.Windows += f.Windows
		s.Detected += f.Detected
		s.FalseEpisodes += f.FalseEpisodes
		s.SeriesDays += f.Days
		delays = append(delays, f.Delays...)
	}
	s.RawScore = raw
	s.NormalisedFrom = [2]float64{null, perfect}
	if perfect > null {
		s.NAB = 100 * (raw - null) / (perfect - null)
	}
	if s.Windows > 0 {
		s.Recall = float64(s.Detected) / float64(s.Windows)
	}
	if s.SeriesDays > 0 {
		s.FalsePerDay = float64(s.FalseEpisodes) / s.SeriesDays
	}
	if len(delays) > 0 {
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		m := len(delays) / 2
		if len(delays)%2 == 1 {
			s.MedianDelay = delays[m]
		} else {
			s.MedianDelay = (delays[m-1] + delays[m]) / 2
		}
	}
	return s
}

const labelLayout = "2006-01-02 15:04:05.999999"

// LoadWindows reads a NAB combined_windows.json (file → [[start, end], ...]).
// When incidents.json sits next to it (onset per incident), each window gets
// its real onset so delays are measured from the incident, not the label margin.
func LoadWindows(path string) (map[string][]Window, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read windows: %w", err)
	}
	var raw map[string][][2]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse windows %s: %w", path, err)
	}
	out := make(map[string][]Window, len(raw))
	for name, ws := range raw {
		list := make([]Window, 0, len(ws))
		for i, w := range ws {
			s, err := time.Parse(labelLayout, w[0])
			if err != nil {
				return nil, fmt.Errorf("%s: %s window %d start: %w", path, name, i, err)
			}
			e, err := time.Parse(labelLayout, w[1])
			if err != nil {
				return nil, fmt.Errorf("%s: %s window %d end: %w", path, name, i, err)
			}
			list = append(list, Window{Start: s, End: e})
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Start.Before(list[j].Start) })
		out[name] = list
	}
	return out, nil
}

// Incident is one entry of incidents.json.
type Incident struct {
	Onset   string `json:"onset"`
	Minutes int    `json:"minutes"`
	Type    string `json:"type"`
}

// AttachOnsets reads incidents.json and sets Window.Onset for the window
// that contains each incident onset.
func AttachOnsets(windows map[string][]Window, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read incidents: %w", err)
	}
	var inc map[string][]Incident
	if err := json.Unmarshal(b, &inc); err != nil {
		return fmt.Errorf("parse incidents %s: %w", path, err)
	}
	for name, list := range inc {
		ws := windows[name]
		for i, in := range list {
			t, err := time.Parse(labelLayout, in.Onset)
			if err != nil {
				return fmt.Errorf("%s: %s incident %d onset: %w", path, name, i, err)
			}
			for j := range ws {
				if !t.Before(ws[j].Start) && !t.After(ws[j].End) {
					ws[j].Onset = t
					break
				}
			}
		}
	}
	return nil
}
