// Package rawmqtt writes hand-made MQTT packets to a socket, for tests that
// play a hostile client: headers declaring any length, CONNECTs, and
// bodies streamed until the broker hangs up.
package rawmqtt
