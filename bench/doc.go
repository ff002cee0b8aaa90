// Package bench holds Skiff's benchmark harnesses. Each figure is
// measured next to its raw baseline in the same run (see
// ../shared/BENCHMARKS.md and bench/README.md); run them with
// "make bench", not in CI.
package bench
