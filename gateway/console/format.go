package console

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/edgefn/edgefn"
)

var funcs = template.FuncMap{
	"dur":   fmtDuration,
	"ago":   func(t time.Time) string { return fmtAge(time.Since(t)) },
	"age":   fmtAge,
	"rate":  func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"size":  func(n int64) string { return edgefn.Size(n).String() },
	"join":  strings.Join,
	"path":  url.PathEscape,
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	"stamp": func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
}

// fmtDuration rounds a duration to what a person reads: 3 significant
// figures below a second, whole seconds above.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3g ms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.3g s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func fmtAge(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// chart is the last hour of a function, laid out for an SVG drawn by the
// template: a bar per minute for invocations, a line for p99.
type chart struct {
	W, H      int
	Bars      []bar
	Line      string // polyline points
	Points    []point
	MaxEvents int64
	MaxP99    time.Duration
	Total     int64
}

type point struct{ X, Y float64 }

type bar struct {
	X, Y, W, H float64
	Title      string
	Failed     bool
}

const (
	chartW   = 600
	chartH   = 120
	chartTop = 10
)

func newChart(hour []Minute) chart {
	c := chart{W: chartW, H: chartH}
	for _, m := range hour {
		c.MaxEvents = max(c.MaxEvents, m.Events)
		c.MaxP99 = max(c.MaxP99, m.P99)
		c.Total += m.Events
	}
	if len(hour) == 0 {
		return c
	}
	step := float64(chartW) / float64(len(hour))
	plot := float64(chartH - chartTop)
	var pts []string
	for i, m := range hour {
		x := float64(i) * step
		if m.Events > 0 {
			h := plot * float64(m.Events) / float64(c.MaxEvents)
			c.Bars = append(c.Bars, bar{X: x + 1, Y: chartH - h, W: step - 2, H: h, Failed: m.Failures > 0,
				Title: fmt.Sprintf("%s: %d invocations, %d failed, p99 %s", m.Start.Local().Format("15:04"), m.Events, m.Failures, fmtDuration(m.P99))})
		}
		if m.P99 > 0 && c.MaxP99 > 0 {
			y := chartH - plot*float64(m.P99)/float64(c.MaxP99)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x+step/2, y))
			c.Points = append(c.Points, point{x + step/2, y})
		}
	}
	c.Line = strings.Join(pts, " ")
	return c
}
