// Package receiver is a test cloud for the HTTP uplink: a real HTTP server
// on loopback that decodes gzip NDJSON batches, records every line, and can
// be told to fail, stall, refuse records or go down and come back on the
// same address.
package receiver
