// Package procstat reads a process's CPU time and memory from Linux's
// /proc, for the benchmark programs under scripts/ that measure processes
// they start.
package procstat
