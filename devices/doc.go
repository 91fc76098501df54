// Package devices drives GPIO pins through periph.io: reads, writes and edge
// watches with pulls and debounce, plus a simulated chip built on periph's
// gpiotest pins for laptops and tests. Every backend runs the same code above
// the periph driver; only where the gpio.PinIO values come from differs.
package devices
