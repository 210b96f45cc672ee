package baseline

import "math"

// Rate categories: per-minute counts per container instance.
const (
	rateFork = iota
	rateExec
	rateConnect
	rateOpen
	numRates
)

var rateNames = [numRates]string{"fork", "exec", "connect", "open"}

// Dist is a learned distribution of per-minute counts: an exponentially
// weighted mean and variance (West's incremental form) plus the largest
// minute seen. EWMA rather than a histogram because it is 32 bytes, adapts
// to slow drift, and is all the anomaly test needs (mean + k·sd).
type Dist struct {
	Mean, Var float64
	Max       uint32
	N         uint32 // minutes folded in
}

// ewmaAlpha weighs the newest minute; 0.05 remembers about the last 20
// minutes strongly and the last few hours weakly.
const ewmaAlpha = 0.05

// Add folds one minute's count into the distribution.
func (d *Dist) Add(count uint32) {
	x := float64(count)
	if d.N == 0 {
		d.Mean, d.Var = x, 0
	} else {
		diff := x - d.Mean
		incr := ewmaAlpha * diff
		d.Mean += incr
		d.Var = (1 - ewmaAlpha) * (d.Var + diff*incr)
	}
	if count > d.Max {
		d.Max = count
	}
	if d.N < math.MaxUint32 {
		d.N++
	}
}

// Threshold is the count above which a minute is anomalous: the largest of
// an absolute floor, mean + k·sd, and twice the busiest learned minute.
// Twice the maximum keeps the normal spikes a workload showed while learning
// (start-up, cron) from ever alerting.
func (d *Dist) Threshold(floor uint32, k float64) float64 {
	t := float64(floor)
	if v := d.Mean + k*math.Sqrt(d.Var); v > t {
		t = v
	}
	if v := 2 * float64(d.Max); v > t {
		t = v
	}
	return t
}

// Z returns how many standard deviations count lies above the mean (sd
// floored at 1 so quiet categories do not divide by zero).
func (d *Dist) Z(count uint32) float64 {
	sd := math.Sqrt(d.Var)
	if sd < 1 {
		sd = 1
	}
	return (float64(count) - d.Mean) / sd
}

// RateDist returns the learned distribution of the named per-minute rate
// ("fork", "exec", "connect" or "open").
func (p *Profile) RateDist(name string) (Dist, bool) {
	for r, n := range rateNames {
		if n == name {
			return p.Rates[r], true
		}
	}
	return Dist{}, false
}
