package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// figure is one plot: a figure of every run against the cluster size,
// one line per design and model.
type figure struct {
	file, title, unit string
	logY              bool
	value             func(row) float64
}

var figures = []figure{
	{"reach-p99.png", "time for a change to reach every live node, p99", "ms", true,
		func(r row) float64 { return float64(r.res.p99) / 1e6 }},
	{"copies.png", "full copies received per node per change", "copies", true,
		func(r row) float64 { return r.res.copies }},
	{"writer.png", "messages the writer sends per change", "messages", true,
		func(r row) float64 { return r.res.writerMsg }},
	{"busiest.png", "busiest node's bytes per second at the run's change rate", "KB/s", true,
		func(r row) float64 { return r.res.busyBps / 1e3 }},
	{"background.png", "roster's background bytes per node per second, no changes", "B/s", true,
		func(r row) float64 { return r.bg.roster }},
}

// drawPlots writes one PNG per figure into dir.
func drawPlots(dir string, rows []row) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	type key struct{ design, model string }
	var keys []key
	for _, r := range rows {
		k := key{r.res.sc.design.name, r.model}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, f := range figures {
		p := plot.New()
		p.Title.Text = f.title
		p.X.Label.Text = "nodes"
		p.Y.Label.Text = f.unit
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		if f.logY {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		p.Legend.Top = true
		var lines []any
		for _, k := range keys {
			var pts plotter.XYs
			for _, r := range rows {
				if r.res.sc.design.name == k.design && r.model == k.model {
					// A log axis cannot show 0: a figure of 0 is drawn at
					// the axis' floor.
					pts = append(pts, plotter.XY{X: float64(r.res.sc.nodes), Y: max(f.value(r), 0.01)})
				}
			}
			if len(pts) < 2 {
				continue
			}
			lines = append(lines, k.design+" "+k.model, pts)
		}
		if len(lines) == 0 {
			return fmt.Errorf("plots: need at least two sizes per design (-nodes)")
		}
		if err := plotutil.AddLinePoints(p, lines...); err != nil {
			return fmt.Errorf("plots: %w", err)
		}
		if err := p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, f.file)); err != nil {
			return fmt.Errorf("plots: %w", err)
		}
	}
	return nil
}
