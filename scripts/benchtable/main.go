// Command benchtable reads `go test -bench` output on stdin and prints one
// table: the median of every metric over -count runs, and, inside each
// benchmark, the ratio of every variant to its baseline variant (guard off,
// native Go, net/http). Used by `make bench`.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)

// baselines are the sub-benchmark names other variants are compared to.
var baselines = []string{"sensor=off", "guard_off", "native-go", "nethttp", "off"}

// primary metrics, most meaningful first; higher-is-better ones are marked.
var primary = []struct {
	unit   string
	higher bool
}{{"cpu-ns/op", false}, {"cpu-µs/op", false}, {"cpu-ns/event", false}, {"req/s", true}, {"ns/op", false}}

func median(v []float64) float64 {
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func main() {
	runs := map[string]map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name := m[1]
		if runs[name] == nil {
			runs[name] = map[string][]float64{}
			order = append(order, name)
		}
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			runs[name][f[i+1]] = append(runs[name][f[i+1]], v)
		}
	}
	med := map[string]map[string]float64{}
	for _, name := range order {
		med[name] = map[string]float64{}
		for unit, vs := range runs[name] {
			med[name][unit] = median(vs)
		}
	}
	fmt.Printf("%-62s %-14s %s\n", "benchmark", "cost ÷ base", "medians")
	for _, name := range order {
		ratio := ""
		parent, variant, ok := cut(name)
		if ok && !isBaseline(variant) {
			for _, b := range baselines {
				base, found := med[parent+"/"+b]
				if !found {
					continue
				}
				for _, p := range primary {
					x, y := med[name][p.unit], base[p.unit]
					if x == 0 || y == 0 {
						continue
					}
					r := x / y
					if p.higher {
						r = y / x
					}
					ratio = fmt.Sprintf("%.2fx %s", r, b)
					break
				}
				break
			}
		}
		var ms []string
		units := make([]string, 0, len(med[name]))
		for u := range med[name] {
			units = append(units, u)
		}
		sort.Strings(units)
		for _, u := range units {
			if u == "B/op" || u == "allocs/op" {
				continue
			}
			ms = append(ms, fmt.Sprintf("%s %s", strconv.FormatFloat(med[name][u], 'g', 4, 64), u))
		}
		fmt.Printf("%-62s %-14s %s\n", strings.TrimPrefix(name, "Benchmark"), ratio, strings.Join(ms, ", "))
	}
}

func cut(name string) (string, string, bool) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

func isBaseline(v string) bool {
	for _, b := range baselines {
		if v == b {
			return true
		}
	}
	return false
}
