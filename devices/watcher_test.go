package devices_test

import (
	"github.com/edgefn/edgefn/devices"
	"github.com/edgefn/edgefn/triggers"
)

// The GPIO trigger can watch a devices.GPIO.
var _ triggers.EdgeWatcher = (*devices.GPIO)(nil)
