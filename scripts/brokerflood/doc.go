// Command brokerflood plays the hostile MQTT clients of docs/mqtt.md's
// limits against a broker: CONNECTs or a PUBLISH declaring a huge length
// and streamed until the broker hangs up, or sockets that never send
// anything. It prints what each connection managed; scripts/brokerflood.sh
// wraps it with the agent's memory figures.
//
//	brokerflood -addr 127.0.0.1:1883 -mode connect -n 2 -size 150MiB
//	brokerflood -mode publish -size 200MiB
//	brokerflood -mode silent -n 1500 -wait 15s
package main
