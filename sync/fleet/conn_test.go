package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/mosquittotest"
)

// A Conn dialled with Resubscribe gets messages again after the broker
// restarts (a clean session forgets subscriptions), except for filters it
// unsubscribed; one dialled with OnLost hears that its connection dropped;
// a plain Conn does neither.
func TestConnAcrossBrokerRestart(t *testing.T) {
	b := mosquittotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lost := make(chan struct{}, 1)
	dial := func(d Dial) *Conn {
		d.Broker = b.URL()
		cn, err := Connect(ctx, d, Topics{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cn.Close)
		return cn
	}
	watch := dial(Dial{Resubscribe: true})
	plain := dial(Dial{OnLost: func() { lost <- struct{}{} }})
	got := make(chan string, 16)
	for _, f := range []string{"kept/#", "dropped/#"} {
		if err := watch.Subscribe(ctx, f, func(topic string, _ []byte, _ bool) { got <- "watch " + topic }); err != nil {
			t.Fatal(err)
		}
	}
	if err := plain.Subscribe(ctx, "kept/#", func(topic string, _ []byte, _ bool) { got <- "plain " + topic }); err != nil {
		t.Fatal(err)
	}
	if err := watch.Unsubscribe(ctx, "dropped/#"); err != nil {
		t.Fatal(err)
	}

	b.Restart()
	select {
	case <-lost:
	case <-ctx.Done():
		t.Fatal("OnLost did not run when the broker stopped")
	}
	pub := connect(t, b)
	// Publish until the resubscribed Conn hears one: it reconnects on its
	// own schedule.
	var first string
	for first == "" {
		if err := pub.Publish(ctx, "kept/x", []byte("1"), false); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, "dropped/x", []byte("1"), false); err != nil {
			t.Fatal(err)
		}
		select {
		case first = <-got:
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no message after the broker restart on the Conn dialled with Resubscribe")
		}
	}
	// One more round trip, then nothing but "watch kept/x" may have come.
	if err := pub.Publish(ctx, "kept/y", []byte("1"), false); err != nil {
		t.Fatal(err)
	}
	for seen := first; seen != "watch kept/y"; {
		if seen != "watch kept/x" {
			t.Errorf("after the restart: %q (want only the resubscribed, still subscribed filter)", seen)
		}
		select {
		case seen = <-got:
		case <-ctx.Done():
			t.Fatal("kept/y did not arrive")
		}
	}
}
