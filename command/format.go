package command

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table writes rows of cells aligned in columns, two spaces apart.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() { _ = t.tw.Flush() }

// kv is one "Key = Value" line of a header block.
type kv struct{ k, v string }

// printKV writes a header block with the = signs aligned. A row with an
// empty value ends at its "=" (what follows is on the next lines).
func printKV(w io.Writer, rows []kv) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.TrimRight(fmt.Sprintf("%s\t= %s", r.k, r.v), " "))
	}
	_ = tw.Flush()
}

// printJSON writes v as indented JSON, as Nomad's CLI does.
func printJSON(w io.Writer, v any) error {
	buf, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", buf)
	return err
}

// shortID cuts a UUID to its first 8 characters unless verbose.
func shortID(id string, verbose bool) string {
	if verbose || len(id) <= 8 {
		return id
	}
	return id[:8]
}

// formatTime renders an absolute time in UTC, "-" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// formatUnixNano renders a Nomad timestamp (nanoseconds since the epoch).
func formatUnixNano(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return formatTime(time.Unix(0, ns))
}

// ago renders t relative to now: "45s ago", "2m30s ago", "3h12m ago",
// "4d2h ago", or "in 2m" for future times. Times more than 30 days away
// are shown absolute.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	if d > 30*24*time.Hour {
		return formatTime(t)
	}
	s := humanDuration(d)
	if future {
		return "in " + s
	}
	return s + " ago"
}

// agoUnixNano is ago for a Nomad timestamp.
func agoUnixNano(ns int64, now time.Time) string {
	if ns == 0 {
		return "-"
	}
	return ago(time.Unix(0, ns), now)
}

// humanDuration renders d with its two largest units: 2m30s, 3h12m, 4d2h.
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	days, hours := int(d/(24*time.Hour)), int(d/time.Hour)%24
	mins, secs := int(d/time.Minute)%60, int(d/time.Second)%60
	switch {
	case days > 0:
		return twoUnits(days, "d", hours, "h")
	case hours > 0:
		return twoUnits(hours, "h", mins, "m")
	case mins > 0:
		return twoUnits(mins, "m", secs, "s")
	}
	return fmt.Sprintf("%ds", secs)
}

func twoUnits(a int, au string, b int, bu string) string {
	if b == 0 {
		return fmt.Sprintf("%d%s", a, au)
	}
	return fmt.Sprintf("%d%s%d%s", a, au, b, bu)
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural returns "1 allocation" or "3 allocations".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
