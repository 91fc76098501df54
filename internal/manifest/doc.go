// Package manifest reads function manifests (function.yaml) into
// edgefn.Manifest: strictly, every problem at once, each naming the file,
// line and field; and, for the agent, against the operator's ceilings on
// limits and grants (Rules).
package manifest
