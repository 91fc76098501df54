package fleet

import (
	"bytes"
	"context"
	"strings"
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

// FetchBlob subscribes to chunk topics exactly, FetchWindow at a time (AWS
// IoT Core sends no retained message to a wildcard filter): a blob of
// several windows arrives whole; one with a chunk cleared from the broker
// in the last window times out naming how many arrived.
func TestFetchBlobWindows(t *testing.T) {
	b := mosquittotest.Start(t)
	cn := connect(t, b)
	ctx := context.Background()
	blob := make([]byte, 20*16-5) // 20 chunks of 16 bytes, the last short
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	m, err := cn.PublishBlob(ctx, blob, 16)
	if err != nil {
		t.Fatal(err)
	}
	if m.Chunks() != 20 || m.Chunks() <= 2*FetchWindow {
		t.Fatalf("want a blob of more than two windows, got %d chunks", m.Chunks())
	}
	got, err := connect(t, b).FetchBlob(ctx, m, 1<<20)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("fetch of %d chunks: %v (%d bytes)", m.Chunks(), err, len(got))
	}
	// An empty retained message clears chunk 17.
	if err := cn.Publish(ctx, cn.Topics().Chunk(m.SHA256, 17), nil, true); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = connect(t, b).FetchBlob(short, m, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "19 of 20 chunks arrived") {
		t.Errorf("fetch with chunk 17 cleared: %v", err)
	}
}
