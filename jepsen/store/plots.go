package store

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/roster-io/roster/jepsen/checker"
	"github.com/roster-io/roster/jepsen/history"
)

// The plots, each as PNG and SVG: the figure's base name.
const (
	LatencyPlot    = "latency"
	ThroughputPlot = "throughput"
	StatesPlot     = "states"
	StableCDFPlot  = "stable-latency-cdf"
)

// PlotFormats are the formats every plot is written in.
var PlotFormats = []string{"png", "svg"}

// StableQuantiles names the checkers' quantiles the stable-latency CDF
// shows (checker.Result.Quantiles).
const StableQuantiles = "stable-latency"

// maxPoints caps the latency plot's points: beyond it, ok operations
// are thinned evenly (fail and info ones are all drawn), and the title
// says so.
const maxPoints = 20000

const plotWidth, plotHeight = 10 * vg.Inch, 4.5 * vg.Inch

var (
	outcomeColors = map[history.Type]color.Color{
		history.OK:   color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
		history.Fail: color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
		history.Info: color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	}
	faultColors = map[string]color.Color{
		"partition": color.NRGBA{R: 0xe0, G: 0x30, B: 0x30, A: 0x30},
		"loss":      color.NRGBA{R: 0xe0, G: 0x90, B: 0x10, A: 0x30},
		"pause":     color.NRGBA{R: 0x30, G: 0x60, B: 0xe0, A: 0x30},
		"kill":      color.NRGBA{R: 0x60, G: 0x60, B: 0x60, A: 0x40},
	}
	instantColor = color.NRGBA{R: 0x80, G: 0x20, B: 0x80, A: 0xc0}
)

func faultColor(kind string) color.Color {
	if c, ok := faultColors[kind]; ok {
		return c
	}
	if instantKinds[kind] {
		return instantColor
	}
	return color.NRGBA{R: 0x90, G: 0x90, B: 0x30, A: 0x30}
}

// savePlots draws the four figures; a failing one does not stop the
// others.
func (d *Dir) savePlots(ops []history.Op, rep checker.Report) error {
	windows := FaultWindows(ops)
	end := lastTime(ops)
	var errs []error
	for _, fig := range []struct {
		name string
		draw func() (*plot.Plot, error)
	}{
		{LatencyPlot, func() (*plot.Plot, error) { return latencyPlot(ops, windows, end) }},
		{ThroughputPlot, func() (*plot.Plot, error) { return throughputPlot(ops, windows, end) }},
		{StatesPlot, func() (*plot.Plot, error) { return statesPlot(ops, windows, end) }},
		{StableCDFPlot, func() (*plot.Plot, error) { return stablePlot(ops, rep) }},
	} {
		p, err := fig.draw()
		if err == nil {
			err = d.savePlot(p, fig.name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: plot %s: %v", ErrWrite, fig.name, err))
		}
	}
	return errors.Join(errs...)
}

func (d *Dir) savePlot(p *plot.Plot, name string) error {
	for _, format := range PlotFormats {
		wt, err := render(p, format)
		if err != nil {
			return err
		}
		if err := writeWith(filepath.Join(d.path, name+"."+format), func(w io.Writer) error {
			_, err := wt.WriteTo(w)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// render draws p with its legend to the right of the plot, where it
// hides no data, turning a panic of the plotting library (a range it
// cannot scale) into an error.
func render(p *plot.Plot, format string) (wt io.WriterTo, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing: %v", r)
		}
	}()
	vc, err := draw.NewFormattedCanvas(plotWidth, plotHeight, format)
	if err != nil {
		return nil, err
	}
	c := draw.New(vc)
	legend := p.Legend
	legend.Top, legend.Left = true, true
	legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend = plot.NewLegend()
	defer func() { p.Legend = legend }()
	width := legend.Rectangle(c).Size().X + vg.Points(8)
	p.Draw(draw.Crop(c, 0, -width, 0, 0))
	legend.Draw(draw.Crop(c, plotWidth-width+vg.Points(4), 0, 0, -vg.Points(24)))
	return vc, nil
}

func secs(ns int64) float64 { return float64(ns) / 1e9 }

// timePlot is a plot over the run's time, seconds on X from 0 to end,
// with the fault windows shaded behind whatever is added next.
func timePlot(title, ylabel string, windows []Window, end int64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "time since start (s)"
	p.Y.Label.Text = ylabel
	p.X.Min, p.X.Max = 0, math.Max(secs(end), 1)
	p.Add(plotter.NewGrid())
	p.Add(shade{windows: windows})
	kinds := map[string]bool{}
	for _, w := range windows {
		if kinds[w.Kind] {
			continue
		}
		kinds[w.Kind] = true
	}
	for _, k := range sortedKeys(kinds) {
		p.Legend.Add(k, swatch{faultColor(k), instantKinds[k]})
	}
	p.Legend.Top = true
	return p
}

// shade draws the fault windows as bands over the whole height of the
// data area (an instant as a line), each labelled with its kind and
// shape at the top, staggered so that neighbours stay readable.
type shade struct{ windows []Window }

func (s shade) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := p.X.Tick.Label
	sty.Font.Size = vg.Points(8)
	sty.Color = color.Gray{Y: 0x30}
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YTop
	sty.Rotation = 0
	line := sty.Handler.Extents(sty.Font).Height
	for i, w := range s.windows {
		x0, x1 := trX(secs(w.Start)), trX(secs(w.End))
		col := faultColor(w.Kind)
		if w.Start == w.End {
			c.StrokeLine2(draw.LineStyle{Color: col, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}, x0, c.Min.Y, x0, c.Max.Y)
		} else {
			pts := []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}}
			if clipped := c.ClipPolygonX(pts); len(clipped) > 2 {
				c.FillPolygon(col, clipped)
			}
		}
		label := w.Kind
		if w.Name != "" {
			label += " " + w.Name
		}
		pt := vg.Point{X: x0 + vg.Points(2), Y: c.Max.Y - vg.Length(i%3)*line - vg.Points(2)}
		if c.ContainsX(pt.X) {
			c.FillText(sty, pt, label)
		}
	}
}

// swatch is a legend entry for a fault kind.
type swatch struct {
	c       color.Color
	instant bool
}

func (s swatch) Thumbnail(c *draw.Canvas) {
	if s.instant {
		x := (c.Min.X + c.Max.X) / 2
		c.StrokeLine2(draw.LineStyle{Color: s.c, Width: vg.Points(1)}, x, c.Min.Y, x, c.Max.Y)
		return
	}
	c.FillPolygon(s.c, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
}

// latencyPlot: one point per completed client operation, at its
// completion, its latency in ms on a log scale, colored by outcome.
func latencyPlot(ops []history.Op, windows []Window, end int64) (*plot.Plot, error) {
	pts := Latencies(ops)
	stride := 1
	if len(pts) > maxPoints {
		stride = (len(pts) + maxPoints - 1) / maxPoints
	}
	title := "operation latency"
	if stride > 1 {
		title += fmt.Sprintf(" (1 in %d ok operations drawn)", stride)
	}
	p := timePlot(title, "latency (ms, log)", windows, end)
	byOutcome := map[history.Type]plotter.XYs{}
	lo, hi := math.Inf(1), math.Inf(-1)
	nOK := 0
	for _, pt := range pts {
		if pt.Outcome == history.OK {
			nOK++
			if (nOK-1)%stride != 0 {
				continue
			}
		}
		ms := math.Max(float64(pt.Latency)/1e6, 0.001)
		lo, hi = math.Min(lo, ms), math.Max(hi, ms)
		byOutcome[pt.Outcome] = append(byOutcome[pt.Outcome], plotter.XY{X: secs(pt.T), Y: ms})
	}
	for _, o := range []history.Type{history.OK, history.Fail, history.Info} {
		xys := byOutcome[o]
		if len(xys) == 0 {
			continue
		}
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = outcomeColors[o]
		s.GlyphStyle.Radius = vg.Points(1.5)
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(s)
		p.Legend.Add(fmt.Sprintf("%s (%d)", o, len(xys)), s)
	}
	if len(pts) == 0 {
		p.Title.Text += ": no completed operations"
		p.Y.Min, p.Y.Max = 0, 1
		return p, nil
	}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = math.Pow10(int(math.Floor(math.Log10(lo)))), math.Pow10(int(math.Ceil(math.Log10(hi))))
	if p.Y.Min == p.Y.Max {
		p.Y.Max *= 10
	}
	p.X.Min, p.X.Max = 0, math.Max(secs(end), 1)
	return p, nil
}

// throughputPlot: ok completions per second, one line per F.
func throughputPlot(ops []history.Op, windows []Window, end int64) (*plot.Plot, error) {
	p := timePlot("throughput (ok operations per second)", "ok ops/s", windows, end)
	tp := Throughput(ops, time.Second)
	top := 1.0
	for i, f := range sortedKeys(tp) {
		xys := make(plotter.XYs, 0, 2*len(tp[f]))
		for k, n := range tp[f] {
			xys = append(xys, plotter.XY{X: float64(k), Y: float64(n)}, plotter.XY{X: float64(k + 1), Y: float64(n)})
			top = math.Max(top, float64(n))
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.LineStyle.Color = plotutil.Color(i)
		l.LineStyle.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(f, l)
	}
	p.Y.Min, p.Y.Max = 0, top*1.15
	p.X.Min, p.X.Max = 0, math.Max(secs(end), 1)
	return p, nil
}

// statesPlot: DistinctStates per second, as steps.
func statesPlot(ops []history.Op, windows []Window, end int64) (*plot.Plot, error) {
	p := timePlot("distinct views of a group among the nodes (max over groups, 1 s buckets)", "distinct member sets", windows, end)
	counts := DistinctStates(ops, time.Second)
	xys := make(plotter.XYs, 0, 2*len(counts))
	top := 1
	for k, n := range counts {
		xys = append(xys, plotter.XY{X: float64(k), Y: float64(n)}, plotter.XY{X: float64(k + 1), Y: float64(n)})
		top = max(top, n)
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.LineStyle.Color = color.RGBA{B: 0xa0, A: 0xff}
	l.LineStyle.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add("distinct views", l)
	p.Y.Min, p.Y.Max = 0, float64(top)+1
	p.Y.Tick.Marker = integerTicks{}
	p.X.Min, p.X.Max = 0, math.Max(secs(end), 1)
	return p, nil
}

// integerTicks labels every integer of a small range (else defaults).
type integerTicks struct{}

func (integerTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi-lo > 20 {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	var ts []plot.Tick
	for v := math.Ceil(lo); v <= hi; v++ {
		ts = append(ts, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
	}
	return ts
}

// stablePlot: the CDF of StableLatencies, with the checkers' stable
// latency quantiles as points when the report has them.
func stablePlot(ops []history.Op, rep checker.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "time from a join's invocation until every later read shows it (CDF)"
	p.X.Label.Text = "stable latency (ms, log)"
	p.Y.Label.Text = "fraction of joins"
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	lo, hi := math.Inf(1), math.Inf(-1)
	lats := StableLatencies(ops)
	if len(lats) > 0 {
		xys := make(plotter.XYs, 0, 2*len(lats))
		for i, d := range lats {
			ms := math.Max(float64(d)/1e6, 0.01)
			lo, hi = math.Min(lo, ms), math.Max(hi, ms)
			xys = append(xys, plotter.XY{X: ms, Y: float64(i) / float64(len(lats))}, plotter.XY{X: ms, Y: float64(i+1) / float64(len(lats))})
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.LineStyle.Color = color.RGBA{B: 0xa0, A: 0xff}
		l.LineStyle.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("from the history (%d joins)", len(lats)), l)
	}
	if q := checkerQuantiles(rep); len(q) > 0 {
		s, err := plotter.NewScatter(q)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = outcomeColors[history.Fail]
		s.GlyphStyle.Radius = vg.Points(3)
		s.GlyphStyle.Shape = draw.CrossGlyph{}
		p.Add(s)
		p.Legend.Add("checker quantiles", s)
		for _, xy := range q {
			lo, hi = math.Min(lo, xy.X), math.Max(hi, xy.X)
		}
	}
	p.Y.Min, p.Y.Max = 0, 1.05
	if math.IsInf(lo, 1) {
		p.Title.Text += ": no join became stable"
		p.X.Min, p.X.Max = 0, 1
		return p, nil
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Min, p.X.Max = math.Pow10(int(math.Floor(math.Log10(lo)))), math.Pow10(int(math.Ceil(math.Log10(hi))))
	if p.X.Min == p.X.Max {
		p.X.Max *= 10
	}
	return p, nil
}

// checkerQuantiles are the report's stable-latency quantiles as (ms,
// quantile) points, ascending by quantile; every result's that has them.
func checkerQuantiles(rep checker.Report) plotter.XYs {
	var out plotter.XYs
	for _, res := range rep.Results {
		for qs, ms := range res.Quantiles[StableQuantiles] {
			q, err := strconv.ParseFloat(qs, 64)
			if err != nil || q < 0 || q > 1 || math.IsNaN(ms) || math.IsInf(ms, 0) {
				continue
			}
			out = append(out, plotter.XY{X: math.Max(ms, 0.01), Y: q})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Y < out[j].Y || (out[i].Y == out[j].Y && out[i].X < out[j].X) })
	return out
}
