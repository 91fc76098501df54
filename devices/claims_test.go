package devices_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
)

func TestCheckClaims(t *testing.T) {
	g := openSim(t)
	for _, tc := range []struct {
		name   string
		claims []devices.Claim
		want   []string // one substring per expected *ClaimError, in order
	}{
		{"none", nil, nil},
		{"distinct pins", []devices.Claim{
			{Pin: "GPIO17", Function: "button", Use: devices.UseTrigger},
			{Pin: "GPIO18", Function: "fan", Use: devices.UseWrite},
			{Pin: "GPIO18", Function: "fan", Use: devices.UseWrite},
		}, nil},
		{"reads mix with anything", []devices.Claim{
			{Pin: "GPIO17", Function: "a", Use: devices.UseTrigger},
			{Pin: "GPIO17", Function: "b", Use: devices.UseRead},
			{Pin: "GPIO18", Function: "c", Use: devices.UseWrite},
			{Pin: "gpio18", Function: "d", Use: devices.UseRead},
		}, nil},
		{"two writers", []devices.Claim{
			{Pin: "GPIO18", Function: "fan", Use: devices.UseWrite},
			{Pin: "gpio18", Function: "alarm", Use: devices.UseWrite},
		}, []string{`pin "GPIO18": claimed for output by more than one function (functions alarm, fan)`}},
		{"trigger and output", []devices.Claim{
			{Pin: "GPIO17", Function: "button", Use: devices.UseTrigger},
			{Pin: "GPIO17", Function: "blink", Use: devices.UseWrite},
		}, []string{`pin "GPIO17": used both as a trigger input and as an output (functions blink, button)`}},
		{"unknown use", []devices.Claim{
			{Pin: "GPIO17", Function: "a", Use: "borrow"},
		}, []string{`pin "GPIO17": unknown use "borrow"`}},
		{"every problem at once", []devices.Claim{
			{Pin: "GPIO99", Function: "x", Use: devices.UseRead},
			{Pin: "GPIO5", Function: "a", Use: devices.UseWrite},
			{Pin: "GPIO5", Function: "b", Use: devices.UseWrite},
			{Pin: "GPIO5", Function: "c", Use: devices.UseTrigger},
		}, []string{
			`pin "GPIO99": no such pin on this device (gpio backend simulated) (functions x)`,
			`pin "GPIO5": claimed for output by more than one function (functions a, b)`,
			`pin "GPIO5": used both as a trigger input and as an output (functions a, b, c)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := g.CheckClaims(tc.claims)
			var got []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				got = j.Unwrap()
			} else if err != nil {
				got = []error{err}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("CheckClaims = %v, want %d problems", err, len(tc.want))
			}
			for i, e := range got {
				var ce *devices.ClaimError
				if !errors.As(e, &ce) || !strings.Contains(e.Error(), tc.want[i]) {
					t.Errorf("problem %d = %v, want a *ClaimError containing %q", i, e, tc.want[i])
				}
			}
		})
	}
}

func TestManifestClaims(t *testing.T) {
	m := &edgefn.Manifest{
		Triggers: []edgefn.Trigger{{GPIO: "GPIO17"}, {MQTT: "a/b"}, {Every: time.Second}},
		Allow:    edgefn.Grants{GPIORead: []string{"GPIO27"}, GPIOWrite: []string{"GPIO18"}},
	}
	want := []devices.Claim{
		{Pin: "GPIO17", Function: "f", Use: devices.UseTrigger},
		{Pin: "GPIO27", Function: "f", Use: devices.UseRead},
		{Pin: "GPIO18", Function: "f", Use: devices.UseWrite},
	}
	if got := devices.ManifestClaims("f", m); !slices.Equal(got, want) {
		t.Errorf("ManifestClaims = %+v, want %+v", got, want)
	}
}
