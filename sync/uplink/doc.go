// Package uplink drains the durable outbox to the cloud: HTTP(S) batches of
// gzip NDJSON, or QoS 1 MQTT publishes to a cloud broker. An uplink sends
// records in outbox order, confirms only what the cloud confirmed, retries
// with capped backoff while the link is down, and parks records the cloud
// refuses for good as dead letters so the queue moves on.
package uplink
