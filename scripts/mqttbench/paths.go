package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The two reference paths run as child processes of this program (so their
// CPU and memory are measured apart from the load tool's): `mqttbench
// floor` and `mqttbench forward`.

// republishHook turns every reading into a derived message from inside the
// broker: the least any embedded path can do per message.
type republishHook struct {
	mqttsrv.HookBase
	srv *mqttsrv.Server
}

func (h *republishHook) ID() string           { return "republish" }
func (h *republishHook) Provides(b byte) bool { return b == mqttsrv.OnPublish }

func (h *republishHook) OnPublish(cl *mqttsrv.Client, pk packets.Packet) (packets.Packet, error) {
	if strings.HasPrefix(pk.TopicName, "sensors/") {
		if err := h.srv.Publish(outTopic, pk.Payload, false, 1); err != nil {
			return pk, err
		}
	}
	return pk, nil
}

// floorMain: mochi with the options edgefn's embedded broker uses (inline
// client on, everything else default) and the republish hook.
func floorMain(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:1883", "TCP listen address")
	_ = fs.Parse(args)
	srv := mqttsrv.New(&mqttsrv.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return err
	}
	if err := srv.AddHook(&republishHook{srv: srv}, nil); err != nil {
		return err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *listen})); err != nil {
		return err
	}
	if err := srv.Serve(); err != nil {
		return err
	}
	fmt.Println("ready")
	waitSignal()
	return srv.Close()
}

// allowAll is mochi's auth.AllowHook, inlined to keep the floor's imports
// to what edgefn's broker has.
type allowAll struct{ mqttsrv.HookBase }

func (h *allowAll) ID() string { return "allow-all" }
func (h *allowAll) Provides(b byte) bool {
	return b == mqttsrv.OnConnectAuthenticate || b == mqttsrv.OnACLCheck
}
func (h *allowAll) OnConnectAuthenticate(*mqttsrv.Client, packets.Packet) bool { return true }
func (h *allowAll) OnACLCheck(*mqttsrv.Client, string, bool) bool              { return true }

// forwardMain: a paho client that republishes every reading it receives,
// without waiting for anything (auto-ack, fire-and-forget QoS 1 publish).
func forwardMain(args []string) error {
	fs := flag.NewFlagSet("forward", flag.ExitOnError)
	broker := fs.String("broker", "127.0.0.1:1883", "broker address")
	_ = fs.Parse(args)
	var c mqtt.Client
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + *broker).SetClientID("forwarder").
		SetCleanSession(true).SetOrderMatters(false).SetWriteTimeout(10 * time.Second)
	c = mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect %s: %v", *broker, tok.Error())
	}
	tok := c.Subscribe("sensors/+/temperature", 1, func(c mqtt.Client, m mqtt.Message) {
		c.Publish(outTopic, 1, false, m.Payload())
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	fmt.Println("ready")
	waitSignal()
	c.Disconnect(250)
	return nil
}

func waitSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	<-ch
}
