package edgefn

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// Every field of Limits has exactly one entry in LimitFields, in order, and
// every entry's default lies within its range and under its ceiling.
func TestLimitFieldsCoverLimits(t *testing.T) {
	lt := reflect.TypeFor[Limits]()
	if lt.NumField() != len(LimitFields) {
		t.Fatalf("Limits has %d fields, LimitFields %d entries", lt.NumField(), len(LimitFields))
	}
	for i, f := range LimitFields {
		sf := lt.Field(i)
		if sf.Tag.Get("yaml") != f.Key || !strings.HasPrefix(sf.Tag.Get("json"), f.Key+",") {
			t.Errorf("LimitFields[%d] = %q, Limits field %d is %s (yaml %q)", i, f.Key, i, sf.Name, sf.Tag.Get("yaml"))
		}
		if f.CheckRange(f.Default) != nil || f.CheckRange(f.Ceiling) != nil || f.Default > f.Ceiling {
			t.Errorf("%s: default %s or ceiling %s out of range %s..%s", f.Key, f.Format(f.Default), f.Format(f.Ceiling), f.Format(f.Min), f.Format(f.Max))
		}
	}
	if DefaultMaxLimits.MaxOutput != 4*MiB || DefaultMaxLimits.MaxLog != 64*KiB || DefaultMaxLimits.MaxPublishes != 256 {
		t.Errorf("default maxima = %+v", DefaultMaxLimits)
	}
}

// docs/manifest.md carries the table LimitsReference writes, so the reference
// cannot drift from the code.
func TestLimitsReferenceInDocs(t *testing.T) {
	doc, err := os.ReadFile("docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), LimitsReference()) {
		t.Errorf("docs/manifest.md does not contain the limits table; paste:\n%s", LimitsReference())
	}
}
