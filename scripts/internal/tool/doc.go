// Package tool holds what the measuring programs under scripts share: how
// they end on an error and how they find a free port for what they start.
package tool
