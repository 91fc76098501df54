// Package ratelog keeps warnings from flooding the log: a slog.Handler that
// passes at most a few records per message and function in each interval
// and says, on the next one it passes, how many it held back.
package ratelog
