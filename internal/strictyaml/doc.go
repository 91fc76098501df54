// Package strictyaml decodes every YAML file the agent reads (function
// manifests, the agent config and the trigger and uplink configs inside it)
// into Go structs driven by their `yaml` struct tags, strictly: an unknown or
// duplicate key, a value of the wrong type, a bad size or duration is an
// error naming the file, the line and the field, and every problem of a file
// is reported at once. A Doc remembers the line of every field so checks made
// after decoding name lines too. Files are capped in size before parsing.
package strictyaml
