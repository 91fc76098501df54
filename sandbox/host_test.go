package sandbox

import (
	"context"
	"strings"
	"testing"

	"github.com/edgefn/edgefn"
)

func TestPublishGrants(t *testing.T) {
	f := loadAlone(t, "script", func(s *Spec) { s.Grants.Publish = []string{"actuators/fan/#"} })
	res := f.Invoke(context.Background(), event("publish actuators/fan/1 on 1\npublish sensors/x off\npublish bad/+ x\npublish actuators/fan/2 x 3"))
	wantOK(t, res)
	logs := logText(res)
	for _, w := range []string{"publish=0", "publish=-1", "publish=-4\npublish=-4"} {
		if !strings.Contains(logs, w) {
			t.Errorf("logs %q lack %q", logs, w)
		}
	}
	want := edgefn.Effect{Kind: edgefn.EffectPublish, Topic: "actuators/fan/1", QoS: 1, Payload: []byte("on")}
	if len(res.Effects) != 1 || res.Effects[0].Topic != want.Topic || res.Effects[0].QoS != 1 || string(res.Effects[0].Payload) != "on" {
		t.Errorf("effects %+v", res.Effects)
	}
}

func TestKVReadYourWritesAndRollback(t *testing.T) {
	kv := &memKV{data: map[string]string{"script/b": "xyz"}}
	r := newRuntime(t, Config{KV: kv})
	f := load(t, r, "script", func(s *Spec) { s.Grants.KV = true })
	res := f.Invoke(context.Background(), event("get b\nset a 1\nget a\ndel a\nget a\nset b 22\nget b\nget none"))
	wantOK(t, res)
	want := "get=3:xyz\nset=0\nget=1:1\ndel=0\nget=-3\nset=0\nget=2:22\nget=-3\n"
	if logText(res) != want {
		t.Errorf("logs\n%s\nwant\n%s", logText(res), want)
	}
	kinds := []edgefn.EffectKind{edgefn.EffectKVSet, edgefn.EffectKVDelete, edgefn.EffectKVSet}
	if len(res.Effects) != len(kinds) {
		t.Fatalf("effects %+v", res.Effects)
	}
	for i, k := range kinds {
		if res.Effects[i].Kind != k {
			t.Errorf("effect %d: %s, want %s", i, res.Effects[i].Kind, k)
		}
	}
	if res.Effects[2].Key != "b" || string(res.Effects[2].Payload) != "22" {
		t.Errorf("last effect %+v", res.Effects[2])
	}

	// A failed invocation leaves nothing but logs, and the next one does
	// not see its writes.
	res = f.Invoke(context.Background(), event("set c 1\nemit x\nfail"))
	wantFailure(t, res, edgefn.ReasonExit)
	if !strings.Contains(logText(res), "set=0") {
		t.Errorf("logs lost: %q", logText(res))
	}
	res = f.Invoke(context.Background(), event("get c"))
	wantOK(t, res)
	if logText(res) != "get=-3\n" {
		t.Errorf("write of failed invocation seen: %q", logText(res))
	}

	// Default deny, and no store at all.
	g := load(t, r, "script", nil)
	if got := logText(g.Invoke(context.Background(), event("set a 1\nget a\ndel a"))); got != "set=-1\nget=-1\ndel=-1\n" {
		t.Errorf("without the grant: %q", got)
	}
	h := loadAlone(t, "script", func(s *Spec) { s.Grants.KV = true })
	if got := logText(h.Invoke(context.Background(), event("get a\nset a 1\nget a"))); got != "get=-5\nset=0\nget=1:1\n" {
		t.Errorf("without a store: %q", got)
	}
}

func TestGPIO(t *testing.T) {
	r := newRuntime(t, Config{GPIO: pins{"GPIO18": false, "GPIO27": true, "GPIO5": true}})
	f := load(t, r, "script", func(s *Spec) {
		s.Grants.GPIOWrite = []string{"GPIO18", "GPIO99"}
		s.Grants.GPIORead = []string{"GPIO27"}
	})
	res := f.Invoke(context.Background(), event("gpiow GPIO18 1\ngpiow GPIO5 1\ngpiow GPIO99 1\ngpiow GPIO18 2\ngpior GPIO27\ngpior GPIO5\ngpior GPIO18"))
	wantOK(t, res)
	want := "gpiow=0\ngpiow=-1\ngpiow=-5\ngpiow=-4\ngpior=1\ngpior=-1\ngpior=0\n"
	if logText(res) != want {
		t.Errorf("logs\n%s\nwant\n%s", logText(res), want)
	}
	if len(res.Effects) != 1 || res.Effects[0].Kind != edgefn.EffectGPIOWrite || res.Effects[0].Pin != "GPIO18" || !res.Effects[0].High {
		t.Errorf("effects %+v", res.Effects)
	}
	g := loadAlone(t, "script", func(s *Spec) { s.Grants.GPIOWrite = []string{"GPIO18"} })
	if got := logText(g.Invoke(context.Background(), event("gpiow GPIO18 1\ngpior GPIO18"))); got != "gpiow=-5\ngpior=-5\n" {
		t.Errorf("no GPIO: %q", got)
	}
}

func TestMetaAndEmitOrder(t *testing.T) {
	f := loadAlone(t, "script", func(s *Spec) {
		s.Version = 3
		s.Grants.Publish = []string{"#"}
		s.Env = map[string]string{"THRESHOLD": "30"}
	})
	res := f.Invoke(context.Background(), event("meta source\nmeta subject\nmeta event_id\nmeta time_ms\nmeta function\nmeta version\nmeta qos\nmeta nope\nmeta env.THRESHOLD\nmeta env.NOPE\nemit one\npublish t two\nemit three"))
	wantOK(t, res)
	want := "meta=4:mqtt\nmeta=14:sensors/a/temp\nmeta=4:ev-1\nmeta=13:1700000000123\nmeta=6:script\nmeta=1:3\nmeta=1:1\nmeta=-3\nmeta=2:30\nmeta=-3\nemit=0\npublish=0\nemit=0\n"
	if logText(res) != want {
		t.Errorf("logs\n%s\nwant\n%s", logText(res), want)
	}
	var got []string
	for _, e := range res.Effects {
		got = append(got, e.Kind.String()+":"+string(e.Payload))
	}
	if strings.Join(got, ",") != "emit:one,publish:two,emit:three" {
		t.Errorf("effects out of call order: %v", got)
	}
}

func TestCommandModule(t *testing.T) {
	f := loadAlone(t, "cmd", func(s *Spec) {
		s.Env = map[string]string{"GREETING": "hi"}
		s.Limits.MaxOutput = 64 * edgefn.KiB
	})
	res := f.Invoke(context.Background(), event("hello"))
	wantOK(t, res)
	if len(res.Effects) != 1 || string(res.Effects[0].Payload) != "HELLO" || logText(res) != "got 5 bytes\n" || !res.Cold {
		t.Errorf("effects %+v logs %q", res.Effects, logText(res))
	}
	res = f.Invoke(context.Background(), event("env"))
	wantOK(t, res)
	if string(res.Effects[0].Payload) != "sensors/a/temp|cmd|hi" {
		t.Errorf("env: %q", res.Effects[0].Payload)
	}
	res = f.Invoke(context.Background(), event("exit 3"))
	fl := wantFailure(t, res, edgefn.ReasonExit)
	if res.ExitCode != 3 || !strings.Contains(fl.Message, "exit code 3") || !strings.Contains(fl.Message, "bye 3") {
		t.Errorf("exit: %d %q", res.ExitCode, fl.Message)
	}
	wantFailure(t, f.Invoke(context.Background(), event("big")), edgefn.ReasonOutputLimit)
	if st := f.Stats(); st.Alive != 0 || st.Cold != 4 {
		t.Errorf("stats %+v", st)
	}
}
